//! The agent's heap under churn. glibc gives each thread that allocates while
//! another holds an arena's lock an arena of its own (up to 8 per core); the
//! agent's tokio workers and the blocking pool's short-lived threads then spread
//! their allocations over many arenas, whose freed pages none of the others
//! reuse. Under the churn of thousands of cgroups a minute RSS then wanders by a
//! third between samples at a steady number of records (measured in the soak).
//! Two arenas serve two worker threads.

/// Limits glibc's malloc to two arenas; call it before any thread starts.
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt has no memory preconditions; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Heap bytes held by what the calling thread allocated, for tests that weigh a
/// structure: each allocation counted as glibc's chunk for it (the size plus its
/// 8-byte header, rounded up to 16, at least 32).
#[cfg(test)]
pub mod weigh {
    use std::{
        alloc::{GlobalAlloc, Layout, System},
        cell::Cell,
    };

    pub struct Counting;

    thread_local! {
        static HELD: Cell<i64> = const { Cell::new(0) };
    }

    fn chunk(layout: Layout) -> i64 {
        ((layout.size() + 8).div_ceil(16) * 16).max(32) as i64
    }

    // SAFETY: every call is passed to the system allocator unchanged; the
    // count beside it touches no allocation.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = HELD.try_with(|h| h.set(h.get() + chunk(layout)));
            // SAFETY: the caller's layout, as given.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let _ = HELD.try_with(|h| h.set(h.get() - chunk(layout)));
            // SAFETY: allocated by `alloc` above with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// What `make`'s result holds on the heap (whatever it freed meanwhile
    /// not counted), with the result.
    pub fn held_by<T>(make: impl FnOnce() -> T) -> (T, i64) {
        let before = HELD.with(Cell::get);
        let made = make();
        (made, HELD.with(Cell::get) - before)
    }
}
