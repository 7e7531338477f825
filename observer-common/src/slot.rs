//! What the kernel keeps per watched cgroup besides its counters.

use crate::counters::{BITMAP_WORDS, ROWS_PER_SLOT};

/// Value in the `CGROUPS` hash map (cgroup id -> slot) for a cgroup that is
/// known but not recorded: its syscalls cost one lookup and nothing else.
pub const SLOT_IGNORED: u32 = u32::MAX;
/// Value for a cgroup that came when every slot was taken; its calls are
/// counted in `stats::CALLS_UNRECORDED`.
pub const SLOT_OVERFLOW: u32 = u32::MAX - 1;
/// Values at or above this are markers, not slots.
pub const SLOT_FIRST_MARKER: u32 = SLOT_OVERFLOW;

/// Entries of the direct-mapped `CGROUP_CACHE` in front of the `CGROUPS` hash:
/// one u64 per entry, `cgroup id << 32 | slot`, written and read in one piece.
/// Cgroup ids are kernfs inode numbers, below 2^32 in practice; a larger id
/// never matches and always takes the hash.
pub const CGROUP_CACHE_ENTRIES: u32 = 1 << 16;

#[inline(always)]
pub fn cache_index(cgroup_id: u64) -> u32 {
    (cgroup_id as u32) & (CGROUP_CACHE_ENTRIES - 1)
}

#[inline(always)]
pub fn cache_entry(cgroup_id: u64, slot: u32) -> u64 {
    (cgroup_id << 32) | u64::from(slot)
}

/// Start phases of a container, as the kernel program tells them apart.
pub mod phase {
    /// The runtime's init before it installed the seccomp filter.
    pub const INIT_BEFORE_FILTER: u32 = 0;
    /// The runtime's init after the filter, before it exec'd the container's process.
    pub const INIT_AFTER_FILTER: u32 = 1;
    /// The container's own processes (after the exec).
    pub const CONTAINER: u32 = 2;
    pub const COUNT: usize = 3;
}

/// Enforcement actions taken by the kernel program on a container's own phase.
pub mod enforce {
    pub const OFF: u32 = 0;
    /// Emit an `enforce` event.
    pub const ALERT: u32 = 1;
    /// Emit the event and SIGKILL the caller from the kernel.
    pub const KILL: u32 = 2;
}

/// Everything the kernel records for one cgroup: one element of the `SLOTS`
/// array map, so that the hot path does a single (inlined) array lookup. The map
/// is mmap-able: the agent reads counters live, without a syscall per cell and
/// without draining anything.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot {
    pub info: SlotInfo,
    pub calls: [u32; ROWS_PER_SLOT as usize],
    pub errors: [u32; ROWS_PER_SLOT as usize],
    pub denied: [u32; ROWS_PER_SLOT as usize],
}

/// Memory target: at most 16 KiB of kernel map memory per watched cgroup.
const _: () = assert!(core::mem::size_of::<Slot>() <= 16 * 1024);
const _: () = assert!(core::mem::size_of::<Slot>().is_multiple_of(8));

#[cfg(feature = "user")]
unsafe impl aya::Pod for Slot {}

/// Per-slot state besides the counters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SlotInfo {
    /// The cgroup v2 id this slot records; 0 when the slot is free.
    pub cgroup_id: u64,
    /// The executable (`task->mm->exe_file->f_inode`, as a kernel address) of
    /// the task whose syscall opened the slot: a container runtime's init. The
    /// init may re-exec itself (runc runs `/proc/self/exe init`) and stays the
    /// same binary; the exec of the container's process changes it. Tasks still
    /// running that binary are the runtime's init (also a `docker exec`'s init);
    /// every other task is the container's own. `u64::MAX`: no task is init.
    pub init_exe: u64,
    /// `enforce::*`.
    pub enforce: u32,
    pub _pad: u32,
    /// Rows seen so far, per phase: a clear bit turns the next call into a
    /// first-seen event.
    pub seen: [[u64; BITMAP_WORDS]; phase::COUNT],
    /// Rows a profile allows, for enforcement.
    pub allowed: [u64; BITMAP_WORDS],
    /// Rows already reported as enforcement violations (one event each).
    pub violated: [u64; BITMAP_WORDS],
    /// Rows already reported as denied (one event each).
    pub denied_seen: [u64; BITMAP_WORDS],
}

const _: () = assert!(core::mem::size_of::<SlotInfo>() == 24 + 8 * 16 * 6);

#[cfg(feature = "user")]
unsafe impl aya::Pod for SlotInfo {}
