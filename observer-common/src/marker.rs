//! The per-thread note `sys_enter` leaves for `sys_exit`, in task local storage.
//!
//! A syscall that seccomp denies never reaches `sys_enter`, but `sys_exit` fires
//! for it. An exit that finds no live note of its own thread had no enter: a
//! denial, or one of the harmless cases (a child returning from fork, a task
//! that was inside a syscall when the program attached), told apart by the
//! return value and the task's seccomp mode. Keyed by thread, a note survives
//! while its thread sleeps in a syscall, whatever else runs on that CPU.

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct EnterMarker {
    /// Syscall number as `sys_enter` saw it (truncated).
    pub nr: u32,
    /// Non-zero from the enter until an error exit consumes the note.
    pub live: u32,
    pub slot: u32,
    pub row: u32,
    /// The cgroup `slot` belonged to at the enter: an exit counts nothing in a
    /// slot that changed owner meanwhile.
    pub cgroup_id: u64,
    /// `bpf_ktime_get_ns` at the enter, for the timed programs only
    /// (`observer trace --time`); 0 from the agent's programs.
    pub start_ns: u64,
}

const _: () = assert!(core::mem::size_of::<EnterMarker>() == 32);

// SAFETY: `#[repr(C)]` integers and arrays of integers, no implicit padding
// (size checked above), and every bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for EnterMarker {}
