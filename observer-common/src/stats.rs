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
/// Counter wraps (a u32 cell passing 2^32) that found the `WRAPS` map full:
/// that row's total is 2^32 short for each.
pub const WRAPS_UNRECORDED: u32 = 4;
pub const LEN: u32 = 5;
