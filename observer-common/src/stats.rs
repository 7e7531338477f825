//! Indexes of the `STATS` per-CPU array: what the kernel could not record is
//! counted here, so that a loss is a number, never a silence.

/// Events that could not be reserved in the ring buffer.
pub const EVENTS_LOST: u32 = 0;
/// New cgroups that found every slot taken.
pub const CGROUPS_OVERFLOW: u32 = 1;
/// Syscalls made in cgroups that found every slot taken.
pub const CALLS_UNRECORDED: u32 = 2;
/// Exits with no enter that looked like denials but came from a cgroup without
/// a slot (an overflowed one; an unwatched cgroup's exits stop at the cache).
pub const DENIALS_UNATTRIBUTED: u32 = 3;
/// Counter wraps (a u32 cell passing 2^32) that found the `WRAPS` map full:
/// that row's total is 2^32 short for each.
pub const WRAPS_UNRECORDED: u32 = 4;

/// Failed BPF helper calls, one counter per call site (`helper::SITES`): a
/// helper that fails is counted where it failed, and its failure is never
/// taken for something else (a note that could not be made is not a denial).
/// Only the failure branches write them: the hot path pays nothing.
pub mod helper {
    /// `bpf_send_signal(SIGKILL)` for a call outside the enforced profile.
    pub const KILL_VIOLATION: u32 = 5;
    /// `bpf_send_signal(SIGKILL)` for an x32 or out-of-range syscall number.
    pub const KILL_INVALID_ROW: u32 = 6;
    /// `bpf_task_storage_get(.., CREATE)` for the thread's enter note: that
    /// call's error exit (if any) is then neither an error nor a denial.
    pub const NOTE_CREATE: u32 = 7;
    /// The insert into `NOTELESS` that marks such a call for `sys_exit`
    /// failed too: if that call is an error, it may be taken for a denial.
    pub const NOTELESS_INSERT: u32 = 8;
    /// `bpf_probe_read_kernel` of the saved registers (`orig_ax` and the
    /// arguments) in `sys_exit`: an error exit whose syscall number could not
    /// be read is not counted.
    pub const EXIT_READ_NR: u32 = 9;
    /// `bpf_probe_read_kernel` of the saved argument registers: the call's
    /// deciding argument is not recorded, or its enter note (for a call its
    /// seccomp filter may deny) is not made, as for `NOTE_CREATE`.
    pub const ARGS_READ_REGS: u32 = 10;
    /// `bpf_probe_read_user` of clone3's flags: that set is marked overflowed
    /// (unknown), as for any value that does not fit.
    pub const CLONE3_READ_FLAGS: u32 = 11;
    /// `bpf_get_current_comm` for an event: the event goes out without a comm.
    pub const EVENT_COMM: u32 = 12;

    /// Every site, with the name `status` and the metrics give it.
    pub const SITES: [(u32, &str); 8] = [
        (KILL_VIOLATION, "send_signal_kill_violation"),
        (KILL_INVALID_ROW, "send_signal_kill_invalid_syscall"),
        (NOTE_CREATE, "task_storage_create_enter_note"),
        (NOTELESS_INSERT, "noteless_insert"),
        (EXIT_READ_NR, "probe_read_exit_syscall_number"),
        (ARGS_READ_REGS, "probe_read_argument_registers"),
        (CLONE3_READ_FLAGS, "probe_read_user_clone3_flags"),
        (EVENT_COMM, "get_current_comm_event"),
    ];
}

pub const LEN: u32 = 13;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_helper_site_has_its_own_index_inside_the_array() {
        let mut seen = [false; LEN as usize];
        for (index, name) in helper::SITES {
            assert!(index > WRAPS_UNRECORDED && index < LEN, "{name}: index {index}");
            assert!(!seen[index as usize], "{name}: index {index} used twice");
            seen[index as usize] = true;
        }
        assert_eq!(seen.iter().filter(|s| **s).count(), helper::SITES.len());
    }
}
