//! The layout of everything user space and the pinned programs share, as one
//! number: stored in the pinned `LAYOUT` map at load, compared before pinned
//! programs are reused. A build with another layout replaces them instead of
//! reading (or mmapping) their maps wrongly.

use crate::{args, config, counters, event::Event, marker::EnterMarker, slot, stats};

/// Bump on any change of meaning the sizes below do not show: a new map, a
/// new CONFIG index, a marker value, a flag.
pub const VERSION: u64 = 8;

const PARTS: [u64; 15] = [
    VERSION,
    core::mem::size_of::<slot::Slot>() as u64,
    core::mem::size_of::<slot::SlotInfo>() as u64,
    core::mem::size_of::<Event>() as u64,
    core::mem::size_of::<EnterMarker>() as u64,
    counters::ROWS_PER_SLOT as u64,
    counters::SYSCALLS_PER_ABI as u64,
    config::LEN as u64,
    stats::LEN as u64,
    slot::CGROUP_CACHE_ENTRIES as u64,
    slot::SLOT_OVERFLOW as u64,
    counters::WRAPS_ENTRIES as u64,
    counters::CELLS_PER_SLOT as u64,
    core::mem::size_of::<args::ArgSets>() as u64,
    args::ARG_KINDS as u64,
];

/// FNV-1a over the little-endian bytes of `parts`.
pub const fn hash(parts: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let bytes = parts[i].to_le_bytes();
        let mut j = 0;
        while j < 8 {
            h ^= bytes[j] as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            j += 1;
        }
        i += 1;
    }
    h
}

/// This build's layout.
pub const LAYOUT: u64 = hash(&PARTS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_part_changes_the_layout() {
        let mut parts = PARTS;
        assert_eq!(hash(&parts), LAYOUT);
        for i in 0..parts.len() {
            parts[i] += 1;
            assert_ne!(hash(&parts), LAYOUT, "part {i}");
            parts[i] -= 1;
        }
        assert_ne!(LAYOUT, 0, "0 is what an unwritten map holds");
    }
}
