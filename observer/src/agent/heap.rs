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
