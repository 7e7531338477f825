//! Run-time settings, in the `CONFIG` array map (u64 values) so that a running
//! or restarted agent can change them without reloading the programs.

/// Thread group id of the agent (or the `trace` process): its syscalls are never recorded.
pub const AGENT_TGID: u32 = 0;
/// `mode::*`.
pub const MODE: u32 = 1;
/// Non-zero: count syscalls that returned an error.
pub const COUNT_ERRORS: u32 = 2;
/// Bit N set: an exit with `-N` and no matching enter, from a task under a
/// seccomp filter, is a denial. Errnos of 64 and above are never denials.
pub const DENIAL_ERRNOS: u32 = 3;
/// The cgroup v2 id of a scratch cgroup the loader made and removed right
/// before switching recording on. Cgroup v2 ids are kernfs node ids, allocated
/// in increasing order (a cyclic allocator in the low half, its generation in
/// the high half), so every cgroup below it existed before: its start was not
/// seen, and its slot gets no init phase (`slot::init_exe_for`). 0 (unset):
/// every cgroup is taken as new.
pub const FIRST_NEW_CGROUP_ID: u32 = 4;
/// The cgroup v2 id of the agent's own cgroup: a slot opened for it gets
/// `slot::flags::AGENT_HERE`, and only in such a slot does a call pay the check
/// against `AGENT_TGID`. 0: none.
pub const AGENT_CGROUP_ID: u32 = 5;
pub const LEN: u32 = 8;

pub mod mode {
    /// Record only the cgroups user space put in the `CGROUPS` map (`observer trace`).
    pub const EXPLICIT: u64 = 0;
    /// Give every new cgroup a slot on its first syscall and tell user space, which
    /// keeps or ignores it (`observer agent`): no container start is missed.
    pub const AUTO: u64 = 1;
}

/// Errnos a seccomp filter returns in practice (EPERM, EACCES, ENOSYS, and every
/// other errno below 64) minus those that a syscall which really ran returns after
/// sleeping (EINTR, EAGAIN, ECHILD). The enter note is kept per thread, so a
/// sleep no longer loses it; these stay out as a second guard (a thread that was
/// already inside a call when the programs attached has no note).
pub const DEFAULT_DENIAL_ERRNOS: u64 = !((1 << 4) | (1 << 11) | (1 << 10) | 1);
