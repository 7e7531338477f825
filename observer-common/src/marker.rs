//! The per-CPU note `sys_enter` leaves for `sys_exit`.
//!
//! A syscall that seccomp denies never reaches `sys_enter`, but `sys_exit` fires
//! for it. An exit that finds no note of its own on its CPU had no enter: a
//! denial, or one of the harmless cases (a child returning from fork, a task
//! that was inside a syscall when the program attached, a task that moved to
//! another CPU while it slept), told apart by the return value and the task's
//! seccomp mode.

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct EnterMarker {
    /// Thread id of the task that entered; 0 when the note was consumed.
    pub tid: u32,
    /// Syscall number as `sys_enter` saw it (truncated).
    pub nr: u32,
    pub slot: u32,
    pub row: u32,
}

const _: () = assert!(core::mem::size_of::<EnterMarker>() == 16);

#[cfg(feature = "user")]
unsafe impl aya::Pod for EnterMarker {}
