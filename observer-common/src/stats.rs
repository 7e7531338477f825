//! Indexes of the `STATS` per-CPU array: what the kernel could not record is
//! counted here, so that a loss is a number, never a silence.

/// Events that could not be reserved in the ring buffer.
pub const EVENTS_LOST: u32 = 0;
/// New cgroups that found every slot taken.
pub const CGROUPS_OVERFLOW: u32 = 1;
/// Syscalls made in cgroups that found every slot taken.
pub const CALLS_UNRECORDED: u32 = 2;
/// Exits with no enter that looked like denials but came from a cgroup without a slot.
pub const DENIALS_UNATTRIBUTED: u32 = 3;
pub const LEN: u32 = 4;
