//! Layout of the per-cgroup syscall counters.
//!
//! Each watched cgroup owns a slot (`slot::Slot`). A row is an (ABI, syscall
//! number) pair, plus one `invalid` row for numbers out of range. A container
//! uses a few dozen rows of the 1,024, so counters are not kept per row: each
//! row that is called gets a *cell* (a u32 for calls, errors and denials) on
//! its first call, and `Slot::cell_of` says which. A row that comes when every
//! cell is taken is *spilled*: its counts go to the `WRAPS` hash as whole u64s.
//! A cell that passes 2^32 adds one to its entry in `WRAPS` (`wrap_key`), so a
//! total is always exact: `wraps << 32 | cell`, also after calls made while no
//! agent ran.

/// Syscall numbers per ABI that get their own row. x86_64 and i386 both stay
/// below 512 on Linux 6.x (the highest is in the 460s).
pub const SYSCALLS_PER_ABI: u32 = 512;

/// ABIs kept apart. The numbers are the ABI's index in a slot.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Abi {
    X86_64 = 0,
    I386 = 1,
}

pub const ABI_COUNT: u32 = 2;

impl Abi {
    pub fn from_index(i: u32) -> Option<Abi> {
        match i {
            0 => Some(Abi::X86_64),
            1 => Some(Abi::I386),
            _ => None,
        }
    }

    /// As the kernel's and libseccomp's names spell it.
    pub fn name(self) -> &'static str {
        match self {
            Abi::X86_64 => "x86_64",
            Abi::I386 => "i386",
        }
    }
}

/// A row decoded: one syscall number of one ABI. The invalid row (numbers out
/// of range, x32) decodes to nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Row {
    pub abi: Abi,
    pub nr: u32,
}

impl Row {
    pub fn decode(row: u32) -> Option<Row> {
        if row >= ROW_INVALID {
            return None;
        }
        Some(Row { abi: Abi::from_index(row / SYSCALLS_PER_ABI)?, nr: row % SYSCALLS_PER_ABI })
    }

    pub fn index(self) -> u32 {
        self.abi as u32 * SYSCALLS_PER_ABI + self.nr
    }
}

/// The row that counts syscall numbers out of range (negative or >= 512), of any ABI.
pub const ROW_INVALID: u32 = SYSCALLS_PER_ABI * ABI_COUNT;

/// Rows a slot can count: every row plus the invalid one.
pub const ROWS_PER_SLOT: u32 = ROW_INVALID + 1;

/// Counter cells per slot. Cell 0 is the invalid row's; cells 1.. go to rows
/// in the order of their first call. 127 distinct syscalls cover the software
/// measured here (busybox, nginx, redis, memcached, python: 30 to 100); rows
/// beyond spill to `WRAPS`, still exact.
pub const CELLS_PER_SLOT: u32 = 128;
/// The invalid row's cell.
pub const CELL_INVALID: u32 = 0;
/// `Slot::cell_of` of a row not called yet.
pub const CELL_NONE: u8 = 0;
/// `Slot::cell_of` of a row that came when every cell was taken: its counts
/// are `WRAPS` entries of `counter::SPILL | counter`. Denials are always
/// counted that way (`counter::SPILL | counter::DENIED`): they have no cells.
pub const CELL_SPILLED: u8 = 255;

/// Row of a syscall number, or `ROW_INVALID` when it is out of range.
#[inline(always)]
pub fn row_of(abi: u32, nr: i64) -> u32 {
    if (nr as u64) < SYSCALLS_PER_ABI as u64 { abi * SYSCALLS_PER_ABI + nr as u32 } else { ROW_INVALID }
}

/// Words of a bitmap with one bit per row (the invalid row excluded).
pub const BITMAP_WORDS: usize = (ROW_INVALID / 64) as usize;

/// Growth of a u32 counter between two reads, allowing one wrap.
pub fn wrapping_delta(before: u32, now: u32) -> u32 {
    now.wrapping_sub(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_abis_apart_and_catch_out_of_range() {
        assert_eq!(row_of(0, 90), 90);
        assert_eq!(row_of(1, 90), 512 + 90);
        assert_eq!(row_of(0, -1), ROW_INVALID);
        assert_eq!(row_of(1, 5000), ROW_INVALID);
        assert_eq!(row_of(0, 511), 511);
        assert_eq!(row_of(0, 512), ROW_INVALID);
    }

    #[test]
    fn rows_decode_to_abi_and_number() {
        assert_eq!(Row::decode(90), Some(Row { abi: Abi::X86_64, nr: 90 }));
        assert_eq!(Row::decode(512 + 90).map(|r| r.abi.name()), Some("i386"));
        assert_eq!(Row::decode(ROW_INVALID), None);
        assert_eq!(Row::decode(512 + 7).map(Row::index), Some(512 + 7));
    }

    #[test]
    fn wrapping_delta_unwraps_once() {
        assert_eq!(wrapping_delta(10, 15), 5);
        assert_eq!(wrapping_delta(u32::MAX - 1, 3), 5);
    }
}

/// Which counter of a row a `WRAPS` entry is for.
pub mod counter {
    pub const CALLS: u32 = 0;
    pub const ERRORS: u32 = 1;
    pub const DENIED: u32 = 2;
    /// Or'ed in: the entry is a spilled row's whole count, not a cell's wraps.
    pub const SPILL: u32 = 4;
}

/// Entries of the `WRAPS` hash. A wrap takes 2^32 calls of one row (about 18
/// minutes of one core doing nothing else), a spill a container with more
/// than 127 distinct syscalls, and a denial row a call its filter denies: a
/// slot's entries go when the slot is reused, so this many last a long time;
/// a full map is counted (`stats::WRAPS_UNRECORDED`).
pub const WRAPS_ENTRIES: u32 = 8192;

/// The `WRAPS` key of one counter cell: slot, counter (`counter::*`), row.
#[inline(always)]
pub const fn wrap_key(slot: u32, counter: u32, row: u32) -> u64 {
    ((slot as u64) << 32) | ((counter as u64) << 16) | row as u64
}

/// The parts of a `WRAPS` key: (slot, counter, row).
pub const fn split_wrap_key(key: u64) -> (u32, u32, u32) {
    ((key >> 32) as u32, ((key >> 16) & 0xffff) as u32, (key & 0xffff) as u32)
}

#[cfg(test)]
mod wrap_key_tests {
    use super::*;

    #[test]
    fn wrap_keys_round_trip_and_sort_by_slot() {
        for (slot, c, row) in [(0, counter::CALLS, 0), (65535, counter::DENIED, ROW_INVALID), (7, counter::ERRORS, 110)]
        {
            assert_eq!(split_wrap_key(wrap_key(slot, c, row)), (slot, c, row));
        }
        assert!(
            wrap_key(1, 0, 0) > wrap_key(0, counter::SPILL | counter::DENIED, ROW_INVALID),
            "a slot's keys sort together"
        );
    }
}
