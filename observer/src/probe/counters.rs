//! A live, read-mostly view of the `SLOTS` map through mmap: reading a
//! container's profile costs no syscall and drains nothing.

use std::{io, ptr::NonNull, sync::atomic::{AtomicU32, Ordering}};

use observer_common::{
    counters::{ABI_COUNT, ROW_INVALID, SYSCALLS_PER_ABI},
    slot::{Slot, SlotInfo},
};

/// Counts of one row of a slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub row: u32,
    pub calls: u32,
    pub errors: u32,
    pub denied: u32,
}

pub struct CounterView {
    base: NonNull<Slot>,
    len: usize,
    slots: u32,
}

// The mapping is shared kernel memory; every access goes through volatile or
// atomic reads, so sharing the view between threads is sound.
unsafe impl Send for CounterView {}
unsafe impl Sync for CounterView {}

impl CounterView {
    pub fn map(fd: i32, slots: u32) -> io::Result<Self> {
        // Array maps round each value up to 8 bytes; Slot is already a multiple of 8.
        let len = (std::mem::size_of::<Slot>() * slots as usize).next_multiple_of(page_size());
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<Slot>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { base, len, slots })
    }

    fn slot_ptr(&self, slot: u32) -> *mut Slot {
        assert!(slot < self.slots, "slot {slot} out of range");
        unsafe { self.base.as_ptr().add(slot as usize) }
    }

    fn cell(&self, cell: *const u32) -> u32 {
        unsafe { AtomicU32::from_ptr(cell as *mut u32) }.load(Ordering::Relaxed)
    }

    /// Rows of a slot with any count, in row order (the invalid row last).
    pub fn rows(&self, slot: u32) -> Vec<RowCounts> {
        let p = self.slot_ptr(slot);
        let mut out = Vec::new();
        for row in 0..=ROW_INVALID {
            let (calls, errors, denied) = unsafe {
                (
                    self.cell(&raw const (*p).calls[row as usize]),
                    self.cell(&raw const (*p).errors[row as usize]),
                    self.cell(&raw const (*p).denied[row as usize]),
                )
            };
            if calls | errors | denied != 0 {
                out.push(RowCounts { row, calls, errors, denied });
            }
        }
        out
    }

    pub fn info(&self, slot: u32) -> SlotInfo {
        unsafe { std::ptr::read_volatile(&raw const (*self.slot_ptr(slot)).info) }
    }

    /// Zeroes a slot and sets who it records, before the kernel sees it.
    pub fn reset(&self, slot: u32, cgroup_id: u64, init_exe: u64) {
        let p = self.slot_ptr(slot);
        unsafe {
            std::ptr::write_bytes(p, 0, 1);
            (*p).info.cgroup_id = cgroup_id;
            (*p).info.init_exe = init_exe;
        }
    }

    /// Mutable access to a slot's settings (enforcement, init exec id).
    pub fn with_info<R>(&self, slot: u32, f: impl FnOnce(&mut SlotInfo) -> R) -> R {
        unsafe { f(&mut (*self.slot_ptr(slot)).info) }
    }
}

impl Drop for CounterView {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

fn page_size() -> usize {
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// ABI index and number of a row, or None for the invalid row.
pub fn split_row(row: u32) -> Option<(u32, u32)> {
    (row < ROW_INVALID).then_some((row / SYSCALLS_PER_ABI, row % SYSCALLS_PER_ABI)).filter(|(abi, _)| *abi < ABI_COUNT)
}
