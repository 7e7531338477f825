//! What the kernel keeps per watched cgroup besides its counters.

use crate::{
    args::ArgSets,
    counters::{BITMAP_WORDS, CELLS_PER_SLOT, ROW_INVALID},
};

/// What the cache (and `lookup_slow`) gives for a cgroup in the `IGNORED`
/// map: known but not recorded, its syscalls cost one lookup and nothing else.
/// Never a value in `CGROUPS`.
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
    /// The counter cell of each row (`counters::CELL_*`, or 1..CELLS_PER_SLOT);
    /// the invalid row always counts in cell 0. Set once per row, by a
    /// compare-and-swap of the u32 word holding it.
    pub cell_of: [u8; ROW_INVALID as usize],
    pub calls: [u32; CELLS_PER_SLOT as usize],
    pub errors: [u32; CELLS_PER_SLOT as usize],
    // Denials have no cells: they are rare (a container mostly makes what its
    // filter allows), so each one is a `WRAPS` spill entry, exact and sparse.
    /// The deciding arguments' values (`args`).
    pub args: ArgSets,
}

/// Memory target (issue 16): at most 4 KiB of kernel map memory per watched cgroup.
const _: () = assert!(core::mem::size_of::<Slot>() <= 4096);
const _: () = assert!(core::mem::size_of::<Slot>().is_multiple_of(8));

// SAFETY: `#[repr(C)]` integers and arrays of integers, no implicit padding
// (size checked above), and every bit pattern is a valid value.
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
    /// `flags::*`.
    pub flags: u32,
    /// Cells handed out so far (`Slot::cell_of`); past `CELLS_PER_SLOT - 1`,
    /// rows spill. Only grows while the slot has an owner.
    pub cells_used: u32,
    /// Which file `init_exe` is (`exe_tag` of its `i_ino` and `i_generation`):
    /// a task is the init only when both match. An inode's address alone may
    /// be reused by another file's inode once the init's binary is freed.
    pub init_tag: u32,
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

const _: () = assert!(core::mem::size_of::<SlotInfo>() == 32 + 8 * 16 * 6);

/// Bits of `SlotInfo::flags`.
pub mod flags {
    /// The invalid row (x32 and out-of-range numbers, which has no bit in the
    /// bitmaps) was already reported as an enforcement violation.
    pub const INVALID_VIOLATED: u32 = 1;
    /// Set with `init_exe == NO_INIT` when every process of the container is
    /// under a seccomp filter (the task that opened the slot was): a task
    /// seen there with no filter cannot descend from the container's own (filters
    /// are inherited and never removed), so it is a runtime's init that came
    /// from outside (a `docker exec` starting up), and its executable becomes
    /// `init_exe`. Without this, a `docker exec`'s init in a container that
    /// started unseen is enforced like the container's own processes.
    pub const LEARN_INIT: u32 = 2;
    /// The agent runs in this cgroup (`config::AGENT_CGROUP_ID`): its own calls
    /// are told apart by tgid and not recorded. Other slots skip that check.
    pub const AGENT_HERE: u32 = 4;
}

/// `SlotInfo::init_exe` of a cgroup with no init phase: every task in it is the container's.
pub const NO_INIT: u64 = u64::MAX;

impl SlotInfo {
    /// Whether this slot records `cgroup_id`. A slot found through the cache or
    /// the hash may have been freed and given to another cgroup since: every
    /// lookup is checked with this before anything is counted.
    #[inline(always)]
    pub fn owned_by(&self, cgroup_id: u64) -> bool {
        self.cgroup_id == cgroup_id && cgroup_id != 0
    }

    /// Takes a free slot for `cgroup_id`, before it is published in `CGROUPS`.
    #[inline(always)]
    pub fn claim(&mut self, cgroup_id: u64, init_exe: u64, init_tag: u32, flags: u32) {
        self.cgroup_id = cgroup_id;
        self.init_exe = init_exe;
        self.init_tag = init_tag;
        self.flags = flags;
    }

    /// Whether a task running the executable at `exe` is the runtime's init:
    /// the same inode address, and then (read only in that rare case, through
    /// `tag`) the same file. Nothing is init in a slot with `NO_INIT`.
    #[inline(always)]
    pub fn is_init(&self, exe: u64, tag: impl FnOnce() -> u32) -> bool {
        exe == self.init_exe && exe != NO_INIT && tag() == self.init_tag
    }

    /// Undoes `claim` for a slot that was never published (its insert was
    /// lost), before it goes back to the free list: a free slot owns nothing.
    #[inline(always)]
    pub fn unclaim(&mut self) {
        self.cgroup_id = 0;
        self.init_exe = 0;
        self.init_tag = 0;
        self.flags = 0;
    }

    /// Whether a task without a seccomp filter, running `exe`, teaches this
    /// slot its runtime's init (see `flags::LEARN_INIT`).
    #[inline(always)]
    pub fn learns_init_from(&self, exe: u64, seccomp_mode: u32) -> bool {
        self.init_exe == NO_INIT && self.flags & flags::LEARN_INIT != 0 && seccomp_mode == 0 && exe != NO_INIT
    }

    /// Whether a row is outside the enforced profile. The invalid row (x32
    /// numbers, numbers out of range) is never allowed: no profile can name it.
    #[inline(always)]
    pub fn forbids(&self, row: u32) -> bool {
        match self.allowed.get((row / 64) as usize) {
            Some(word) if row < ROW_INVALID => word & (1u64 << (row % 64)) == 0,
            _ => true,
        }
    }
}

/// The start phase boundary: `SlotInfo::init_exe` for a slot opened by a task
/// running `exe` in `cgroup_id`. A cgroup created before the programs were
/// attached (its id is below `first_new`, see `config::FIRST_NEW_CGROUP_ID`)
/// started unseen: the opener is its own process, not a runtime's init, and
/// it gets no init phase.
#[inline(always)]
pub fn init_exe_for(cgroup_id: u64, first_new: u64, exe: u64) -> u64 {
    if cgroup_id < first_new { NO_INIT } else { exe }
}

/// Which file an inode is, beyond its address, in the 32 bits `SlotInfo`
/// has for it: its number and generation folded together. A filesystem gives
/// two files alive at once distinct numbers, and a number it reuses a new
/// generation (ext4, tmpfs, btrfs draw or count them), so a freed inode's
/// memory reused for another file matches only by a 32-bit coincidence.
#[inline(always)]
pub const fn exe_tag(ino: u64, generation: u32) -> u32 {
    ((ino ^ (ino >> 32)) as u32) ^ generation.rotate_left(16)
}

// SAFETY: `#[repr(C)]` integers and arrays of integers, no implicit padding
// (size checked above), and every bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for SlotInfo {}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> SlotInfo {
        SlotInfo {
            cgroup_id: 0,
            init_exe: 0,
            enforce: 0,
            flags: 0,
            cells_used: 0,
            init_tag: 0,
            seen: [[0; BITMAP_WORDS]; phase::COUNT],
            allowed: [0; BITMAP_WORDS],
            violated: [0; BITMAP_WORDS],
            denied_seen: [0; BITMAP_WORDS],
        }
    }

    #[test]
    fn a_slot_returned_after_a_lost_insert_owns_nothing() {
        let mut i = info();
        i.claim(4242, 7, 0, flags::LEARN_INIT);
        assert!(i.owned_by(4242));
        i.unclaim();
        assert_eq!((i.cgroup_id, i.init_exe, i.flags), (0, 0, 0));
        assert!(!i.owned_by(4242));
        // A free slot is not owned by the (broken-chain) cgroup id 0 either.
        assert!(!i.owned_by(0));
    }

    #[test]
    fn a_reused_slot_is_not_its_old_owners() {
        let mut i = info();
        i.claim(10, 1, 0, 0);
        i.claim(11, 2, 0, 0);
        assert!(!i.owned_by(10));
        assert!(i.owned_by(11));
    }

    #[test]
    fn the_invalid_row_is_never_allowed() {
        let mut i = info();
        i.allowed = [u64::MAX; BITMAP_WORDS];
        assert!(!i.forbids(0));
        assert!(!i.forbids(ROW_INVALID - 1));
        assert!(i.forbids(ROW_INVALID));
        assert!(i.forbids(crate::counters::row_of(0, 0x4000_0000 | 1)), "x32 write");
        assert!(i.forbids(crate::counters::row_of(0, 5000)));
        assert!(i.forbids(u32::MAX));
        i.allowed = [0; BITMAP_WORDS];
        i.allowed[1] = 1 << 2;
        assert!(i.forbids(0));
        assert!(!i.forbids(66));
    }

    #[test]
    fn only_an_unfiltered_task_in_a_filtered_container_teaches_its_init() {
        let mut i = info();
        i.claim(5, NO_INIT, 0, flags::LEARN_INIT);
        assert!(!i.learns_init_from(77, 2), "the container's own, filtered processes");
        assert!(i.learns_init_from(77, 0), "a runtime's init before its filter");
        i.init_exe = 77;
        assert!(!i.learns_init_from(78, 0), "learned once");
        // Without the flag (the container's processes may be unfiltered): never.
        i.claim(5, NO_INIT, 0, 0);
        assert!(!i.learns_init_from(77, 0));
        // A cgroup whose start was seen has its init already.
        i.claim(5, 9, 0, flags::LEARN_INIT);
        assert!(!i.learns_init_from(77, 0));
    }

    #[test]
    fn an_inode_address_reused_by_another_file_is_not_the_init() {
        let mut i = info();
        let runc = exe_tag(4711, 0x9e37_79b9);
        i.claim(5, 0xffff_8880_1234_5600, runc, 0);
        assert!(i.is_init(0xffff_8880_1234_5600, || runc), "the init's own binary");
        assert!(!i.is_init(0xffff_8880_1234_5600, || exe_tag(4712, 0x9e37_79b9)), "another file, same address");
        assert!(!i.is_init(0xffff_8880_1234_5600, || exe_tag(4711, 0x9e37_79ba)), "a reused number, next generation");
        assert!(!i.is_init(0xffff_8880_1234_5700, || runc), "another address");
        // The tag is read only when the address matches (it costs loads).
        assert!(!i.is_init(0xffff_8880_1234_5700, || unreachable!()));
        // No init: nothing matches, not even a task whose chain reads as NO_INIT.
        i.claim(5, NO_INIT, 0, 0);
        assert!(!i.is_init(NO_INIT, || 0));
    }

    #[test]
    fn exe_tags_differ_in_number_and_generation() {
        assert_ne!(exe_tag(1, 0), exe_tag(2, 0));
        assert_ne!(exe_tag(1, 1), exe_tag(1, 2));
        // Both halves of a 64-bit number count (overlayfs's xino puts a layer in the high bits).
        assert_ne!(exe_tag(1, 0), exe_tag(1 | 1 << 40, 0));
    }

    #[test]
    fn cgroups_older_than_the_attach_have_no_init_phase() {
        assert_eq!(init_exe_for(100, 200, 7), NO_INIT);
        assert_eq!(init_exe_for(200, 200, 7), 7);
        assert_eq!(init_exe_for(300, 200, 7), 7);
        // Not set (trace, explicit mode): every cgroup is new.
        assert_eq!(init_exe_for(1, 0, 7), 7);
        // Ids carry the kernfs generation in their high half: a later generation is newer.
        assert_eq!(init_exe_for(1 << 32 | 5, 1 << 32 | 9, 7), NO_INIT);
        assert_eq!(init_exe_for(2 << 32 | 5, 1 << 32 | 9, 7), 7);
    }
}
