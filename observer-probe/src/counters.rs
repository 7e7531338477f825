//! A live, read-mostly view of the `SLOTS` map through mmap: reading a
//! container's profile costs no syscall and drains nothing. The kernel writes
//! the same memory at the same time, so every access here is atomic.

use std::{
    io,
    mem::offset_of,
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use observer_common::{
    args::{ARG_BIT_WORDS, ARG_VALUES, ArgSets},
    counters::{BITMAP_WORDS, CELL_INVALID, CELL_NONE, CELL_SPILLED, CELLS_PER_SLOT, ROW_INVALID},
    slot::{Slot, SlotInfo, enforce, phase},
};

/// Counts of one row of a slot: exact totals, once `Probe::rows` has added
/// each cell's wraps (`WRAPS`); the mmap alone gives the low 32 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub row: u32,
    pub calls: u64,
    pub errors: u64,
    pub denied: u64,
}

pub struct CounterView {
    base: NonNull<Slot>,
    len: usize,
    slots: u32,
}

// SAFETY: the view owns its mapping (unmapped once, on drop) and hands out no
// references into it: every access goes through an atomic, so the view can be
// moved to and shared with other threads.
unsafe impl Send for CounterView {}
// SAFETY: as above: concurrent accesses are atomic (and the kernel's own are
// atomic instructions or word-sized stores).
unsafe impl Sync for CounterView {}

impl CounterView {
    pub fn map(fd: i32, slots: u32) -> io::Result<Self> {
        // Array maps round each value up to 8 bytes; Slot is already a multiple of 8.
        let len = (std::mem::size_of::<Slot>() * slots as usize).next_multiple_of(page_size());
        // SAFETY: a new shared mapping chosen by the kernel (no address given), of
        // an mmap-able array map's fd; nothing else in this process is at that address.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<Slot>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { base, len, slots })
    }

    /// The `index`th u32 from byte `offset` (an `offset_of!(Slot, ..)`) of a slot,
    /// as an atomic. The kernel writes the same cells with atomic instructions
    /// (`lock add`, `atomic_fetch_or`) or word-sized stores.
    fn u32_at(&self, slot: u32, offset: usize, index: usize) -> &AtomicU32 {
        let p = self.field(slot, offset + index * 4);
        // SAFETY: `field` checked that the u32 lies inside the slot, inside the
        // mapping; it is 4-aligned (offsets of u32 fields, from an 8-aligned slot
        // start) and valid while `self` lives.
        unsafe { AtomicU32::from_ptr(p) }
    }

    /// As `u32_at`, for u64 fields.
    fn u64_at(&self, slot: u32, offset: usize, index: usize) -> &AtomicU64 {
        let p = self.field(slot, offset + index * 8);
        // SAFETY: as in `u32_at`; u64 fields are 8-aligned in `Slot` (`repr(C)`,
        // no implicit padding) and every slot starts 8-aligned.
        unsafe { AtomicU64::from_ptr(p) }
    }

    /// A pointer to the `T` at byte `at` of a slot, checked to lie inside it.
    fn field<T>(&self, slot: u32, at: usize) -> *mut T {
        assert!(slot < self.slots, "slot {slot} out of range");
        assert!(at + std::mem::size_of::<T>() <= std::mem::size_of::<Slot>(), "offset {at} outside a slot");
        self.base.as_ptr().wrapping_add(slot as usize).cast::<u8>().wrapping_add(at).cast()
    }

    /// Rows of a slot with any count, in row order (the invalid row last): the
    /// cells' 32 bits only (`Probe::rows` adds the wraps and the spilled rows).
    /// Counters are read `Relaxed`: each is a number on its own, and nothing
    /// else is read through it.
    pub(super) fn cells(&self, slot: u32) -> Vec<RowCounts> {
        let cell =
            |offset: usize, cell: u32| u64::from(self.u32_at(slot, offset, cell as usize).load(Ordering::Relaxed));
        let counts = |row: u32, c: u32| RowCounts {
            row,
            calls: cell(offset_of!(Slot, calls), c),
            errors: cell(offset_of!(Slot, errors), c),
            // In `WRAPS` (`Probe::rows` adds them).
            denied: 0,
        };
        let mut out = Vec::new();
        for word_index in 0..ROW_INVALID / 4 {
            // The kernel sets a row's byte with a compare-and-swap of this word.
            let word = self.u32_at(slot, offset_of!(Slot, cell_of), word_index as usize).load(Ordering::Acquire);
            if word == 0 {
                continue;
            }
            for (i, byte) in word.to_le_bytes().into_iter().enumerate() {
                if byte == CELL_NONE || byte == CELL_SPILLED || u32::from(byte) >= CELLS_PER_SLOT {
                    continue;
                }
                let c = counts(word_index * 4 + i as u32, u32::from(byte));
                if c.calls | c.errors != 0 {
                    out.push(c);
                }
            }
        }
        let invalid = counts(ROW_INVALID, CELL_INVALID);
        if invalid.calls | invalid.errors != 0 {
            out.push(invalid);
        }
        out
    }

    /// The sum of a slot's counter cells (calls and errors of the cells handed
    /// out): cells only grow, so a sum equal to an earlier one means no cell changed.
    pub fn cells_sum(&self, slot: u32) -> u64 {
        let used = self.u32_at(slot, offset_of!(Slot, info.cells_used), 0).load(Ordering::Acquire);
        let cells = (used as usize + 1).min(CELLS_PER_SLOT as usize);
        (0..cells)
            .map(|c| {
                u64::from(self.u32_at(slot, offset_of!(Slot, calls), c).load(Ordering::Relaxed))
                    + u64::from(self.u32_at(slot, offset_of!(Slot, errors), c).load(Ordering::Relaxed))
            })
            .sum()
    }

    /// A copy of a slot's argument value sets, each word read atomically.
    pub fn args(&self, slot: u32) -> ArgSets {
        let word = |offset: usize, i: usize| self.u64_at(slot, offset, i).load(Ordering::Acquire);
        ArgSets {
            bits: std::array::from_fn(|i| word(offset_of!(Slot, args.bits), i)),
            values: std::array::from_fn(|i| word(offset_of!(Slot, args.values), i)),
            overflow: word(offset_of!(Slot, args.overflow), 0),
        }
    }

    /// A copy of a slot's settings and bitmaps, each word read atomically
    /// (`Acquire`: what the writer published before it is seen too).
    pub fn info(&self, slot: u32) -> SlotInfo {
        let word = |offset: usize, i: usize| self.u64_at(slot, offset, i).load(Ordering::Acquire);
        let bitmap = |offset: usize| -> [u64; BITMAP_WORDS] { std::array::from_fn(|i| word(offset, i)) };
        SlotInfo {
            cgroup_id: word(offset_of!(Slot, info.cgroup_id), 0),
            init_exe: word(offset_of!(Slot, info.init_exe), 0),
            enforce: self.u32_at(slot, offset_of!(Slot, info.enforce), 0).load(Ordering::Acquire),
            flags: self.u32_at(slot, offset_of!(Slot, info.flags), 0).load(Ordering::Acquire),
            cells_used: self.u32_at(slot, offset_of!(Slot, info.cells_used), 0).load(Ordering::Acquire),
            init_tag: self.u32_at(slot, offset_of!(Slot, info.init_tag), 0).load(Ordering::Acquire),
            seen: std::array::from_fn(|phase| bitmap(offset_of!(Slot, info.seen) + phase * BITMAP_WORDS * 8)),
            allowed: bitmap(offset_of!(Slot, info.allowed)),
            violated: bitmap(offset_of!(Slot, info.violated)),
            denied_seen: bitmap(offset_of!(Slot, info.denied_seen)),
        }
    }

    /// Zeroes a slot and sets who it records. The owner is cleared first (the
    /// kernel counts nothing in a slot it does not own) and set last, with
    /// `Release`: a kernel that finds the new owner finds the rest zeroed.
    pub fn reset(&self, slot: u32, cgroup_id: u64, init_exe: u64) {
        let owner = self.u64_at(slot, offset_of!(Slot, info.cgroup_id), 0);
        owner.store(0, Ordering::Release);
        let zero64 = |offset: usize, words: usize| {
            for i in 0..words {
                self.u64_at(slot, offset, i).store(0, Ordering::Relaxed);
            }
        };
        zero64(offset_of!(Slot, info.seen), BITMAP_WORDS * phase::COUNT);
        zero64(offset_of!(Slot, info.allowed), BITMAP_WORDS);
        zero64(offset_of!(Slot, info.violated), BITMAP_WORDS);
        zero64(offset_of!(Slot, info.denied_seen), BITMAP_WORDS);
        self.u32_at(slot, offset_of!(Slot, info.enforce), 0).store(enforce::OFF, Ordering::Relaxed);
        self.u32_at(slot, offset_of!(Slot, info.flags), 0).store(0, Ordering::Relaxed);
        for cells in [offset_of!(Slot, calls), offset_of!(Slot, errors)] {
            for cell in 0..CELLS_PER_SLOT as usize {
                self.u32_at(slot, cells, cell).store(0, Ordering::Relaxed);
            }
        }
        for word in 0..ROW_INVALID as usize / 4 {
            self.u32_at(slot, offset_of!(Slot, cell_of), word).store(0, Ordering::Relaxed);
        }
        self.u32_at(slot, offset_of!(Slot, info.cells_used), 0).store(0, Ordering::Relaxed);
        zero64(offset_of!(Slot, args.bits), ARG_BIT_WORDS);
        zero64(offset_of!(Slot, args.values), ARG_VALUES);
        zero64(offset_of!(Slot, args.overflow), 1);
        // Set only with an address the kernel gave (`with_info` copies both).
        self.u32_at(slot, offset_of!(Slot, info.init_tag), 0).store(0, Ordering::Relaxed);
        self.u64_at(slot, offset_of!(Slot, info.init_exe), 0).store(init_exe, Ordering::Relaxed);
        owner.store(cgroup_id, Ordering::Release);
    }

    /// Changes a slot's settings: `f` edits a copy (`info`), and what it
    /// changed is written back atomically, `enforce` last with `Release`, so
    /// the kernel never enforces a half-written profile. Bitmap words and
    /// `flags` change bit by bit (`fetch_or` / `fetch_and` of the bits `f`
    /// set or cleared): a bit the kernel sets meanwhile in the same word is kept.
    pub fn with_info<R>(&self, slot: u32, f: impl FnOnce(&mut SlotInfo) -> R) -> R {
        let before = self.info(slot);
        let mut after = before;
        let result = f(&mut after);
        // The tag before the address it belongs to: a kernel that reads the
        // new address compares it with the new tag.
        if after.init_tag != before.init_tag {
            self.u32_at(slot, offset_of!(Slot, info.init_tag), 0).store(after.init_tag, Ordering::Release);
        }
        for (offset, old, new) in [
            (offset_of!(Slot, info.cgroup_id), before.cgroup_id, after.cgroup_id),
            (offset_of!(Slot, info.init_exe), before.init_exe, after.init_exe),
        ] {
            if new != old {
                self.u64_at(slot, offset, 0).store(new, Ordering::Release);
            }
        }
        let bits = |offset: usize, old: &[u64; BITMAP_WORDS], new: &[u64; BITMAP_WORDS]| {
            for (i, (&old, &new)) in old.iter().zip(new).enumerate() {
                let word = self.u64_at(slot, offset, i);
                if new & !old != 0 {
                    word.fetch_or(new & !old, Ordering::Release);
                }
                if old & !new != 0 {
                    word.fetch_and(!(old & !new), Ordering::Release);
                }
            }
        };
        for phase in 0..phase::COUNT {
            bits(offset_of!(Slot, info.seen) + phase * BITMAP_WORDS * 8, &before.seen[phase], &after.seen[phase]);
        }
        bits(offset_of!(Slot, info.allowed), &before.allowed, &after.allowed);
        bits(offset_of!(Slot, info.violated), &before.violated, &after.violated);
        bits(offset_of!(Slot, info.denied_seen), &before.denied_seen, &after.denied_seen);
        let flags = self.u32_at(slot, offset_of!(Slot, info.flags), 0);
        let (old, new) = (before.flags, after.flags);
        if new & !old != 0 {
            flags.fetch_or(new & !old, Ordering::Release);
        }
        if old & !new != 0 {
            flags.fetch_and(!(old & !new), Ordering::Release);
        }
        if after.enforce != before.enforce {
            self.u32_at(slot, offset_of!(Slot, info.enforce), 0).store(after.enforce, Ordering::Release);
        }
        result
    }
}

impl Drop for CounterView {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, of `len` bytes; nothing borrows into
        // it past this point (no references are handed out).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

    use super::*;

    /// A view over plain shared memory shaped like the `SLOTS` map (no kernel needed).
    fn view(slots: u32) -> (CounterView, OwnedFd) {
        // SAFETY: a valid C string and no flags; the fd is checked below.
        let fd = unsafe { libc::memfd_create(c"slots".as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
        // SAFETY: the kernel just returned this fd; the OwnedFd closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let len = std::mem::size_of::<Slot>() * slots as usize;
        // SAFETY: ftruncate on an fd we own.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) }, 0);
        (CounterView::map(fd.as_raw_fd(), slots).expect("mmap"), fd)
    }

    #[test]
    fn reset_zeroes_and_sets_the_owner() {
        let (v, _fd) = view(2);
        v.with_info(1, |i| {
            i.allowed[3] = 7;
            i.enforce = enforce::KILL;
            i.flags = 3;
        });
        // Row 90 got cell 3 (byte 2 of cell_of's word 22).
        v.u32_at(1, offset_of!(Slot, cell_of), 90 / 4).store(3 << 16, Ordering::Relaxed);
        v.u32_at(1, offset_of!(Slot, calls), 3).store(5, Ordering::Relaxed);
        v.u32_at(1, offset_of!(Slot, errors), CELL_INVALID as usize).store(2, Ordering::Relaxed);
        v.u64_at(1, offset_of!(Slot, args.values), 0).store(observer_common::args::VALUE_TAG | 7, Ordering::Relaxed);
        assert_eq!(
            v.cells(1),
            vec![
                RowCounts { row: 90, calls: 5, errors: 0, denied: 0 },
                RowCounts { row: ROW_INVALID, calls: 0, errors: 2, denied: 0 },
            ]
        );
        assert_eq!(v.args(1).values[0], observer_common::args::VALUE_TAG | 7);
        assert_eq!(v.cells_sum(1), 2, "cells past cells_used are not handed out yet");
        v.u32_at(1, offset_of!(Slot, info.cells_used), 0).store(3, Ordering::Relaxed);
        assert_eq!(v.cells_sum(1), 7);
        v.reset(1, 4242, 9);
        assert_eq!(v.args(1).values[0], 0);
        let info = v.info(1);
        assert_eq!((info.cgroup_id, info.init_exe, info.enforce, info.flags), (4242, 9, 0, 0));
        assert_eq!(info.allowed, [0; BITMAP_WORDS]);
        assert!(v.cells(1).is_empty());
        assert_eq!(v.info(0).cgroup_id, 0, "the other slot is untouched");
    }

    #[test]
    fn with_info_writes_back_only_what_changed_and_keeps_concurrent_bits() {
        let (v, _fd) = view(1);
        v.reset(0, 10, 1);
        v.with_info(0, |i| {
            i.violated[0] = 0b0101;
            i.flags = 2;
        });
        // The closure works on a copy; a bit set by "the kernel" in the
        // meantime (here, between the copy and the write-back) survives.
        v.with_info(0, |i| {
            v.u64_at(0, offset_of!(Slot, info.violated), 0).fetch_or(0b1000, Ordering::Relaxed);
            v.u32_at(0, offset_of!(Slot, info.flags), 0).fetch_or(1, Ordering::Relaxed);
            i.violated = [0; BITMAP_WORDS];
            i.flags &= !2;
            i.allowed[1] = 1 << 2;
            i.enforce = enforce::ALERT;
        });
        let info = v.info(0);
        assert_eq!(info.violated[0], 0b1000);
        assert_eq!(info.flags, 1);
        assert_eq!(info.allowed[1], 1 << 2);
        assert_eq!(info.enforce, enforce::ALERT);
        assert_eq!((info.cgroup_id, info.init_exe), (10, 1));
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn slots_past_the_end_are_refused() {
        let (v, _fd) = view(1);
        let _ = v.info(1);
    }
}
