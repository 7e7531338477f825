//! The per-thread note `sys_enter` leaves for `sys_exit`, in task local storage.
//!
//! A syscall that seccomp denies never reaches `sys_enter`, but `sys_exit` fires
//! for it. An exit that finds no live note of its own thread had no enter: a
//! denial, or one of the harmless cases (a child returning from fork, a task
//! that was inside a syscall when the program attached), told apart by the
//! return value and the task's seccomp mode. Keyed by thread, a note survives
//! while its thread sleeps in a syscall, whatever else runs on that CPU.
//!
//! A task under a filter leaves a note only for a call its filter may deny:
//! one whose bit in the kernel's seccomp action cache is clear (see
//! `Task::filter_always_allows` in the kernel programs). An error exit of a
//! call whose bit is set is never a denial and needs no note, which spares
//! the common call the task-storage helper call. Such a note also carries the
//! call's fingerprint: the filter it ran under, its ABI, and the registers a
//! filter sees (the arguments and the instruction pointer). A note matches
//! an exit only with the same fingerprint. The note left by an earlier call
//! (one that succeeded and so was never consumed) then matches a denied call
//! only if the two calls were the same to the filter, which is deterministic
//! and so would have allowed this one too; the calls that no longer leave
//! notes cannot make an old note look like a new call's.

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
    /// The address of the filter the call ran under; 0: the note has no
    /// fingerprint (a call its filter always allows, or a task without one)
    /// and matches on `nr` alone.
    pub filter: u64,
    /// The ABI (`counters::Abi` index) of the call.
    pub abi: u32,
    pub _pad: u32,
    /// What the filter saw besides the number: the six argument registers of
    /// the call's ABI, then the instruction pointer (`Fingerprint`).
    pub fingerprint: Fingerprint,
}

/// The six argument registers of a call's ABI and its instruction pointer,
/// as `seccomp_data` gives them to a filter.
pub type Fingerprint = [u64; 7];

const _: () = assert!(core::mem::size_of::<EnterMarker>() == 32 + 16 + 7 * 8);

// SAFETY: `#[repr(C)]` integers and arrays of integers, no implicit padding
// (size checked above), and every bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for EnterMarker {}
