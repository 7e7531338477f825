//! Every map the programs share with user space, and the small helpers that
//! index them. Sizes given here are defaults: the agent sets the slot capacity
//! at load time (`EbpfLoader::set_max_entries`).

use aya_ebpf::{
    bindings::{
        BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, BPF_LOCAL_STORAGE_GET_F_CREATE, BPF_NOEXIST,
        bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE,
    },
    helpers::generated::bpf_task_storage_get,
    macros::{btf_map, map},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, Queue, RingBuf},
};
use observer_common::{
    config, counters,
    counters::{CELL_INVALID, CELL_NONE, CELL_SPILLED, CELLS_PER_SLOT, ROW_INVALID, counter, wrap_key},
    marker::EnterMarker,
    slot::{CGROUP_CACHE_ENTRIES, SLOT_FIRST_MARKER, SLOT_IGNORED, Slot, cache_entry, cache_index},
    stats,
};

pub const DEFAULT_SLOTS: u32 = 64;

/// cgroup v2 id -> slot index, or `SLOT_OVERFLOW` for a cgroup that came when
/// every slot was taken. Ignored cgroups live in `IGNORED`: they never use up
/// the entries that containers need.
#[map]
pub static CGROUPS: HashMap<u64, u32> = HashMap::with_max_entries(DEFAULT_SLOTS * 4, 0);

/// Cgroups user space decided not to record (value unused). An LRU: a host
/// with more of them than fit only pays a slot opening again for the evicted
/// ones (and user space ignores them again).
#[map]
pub static IGNORED: LruHashMap<u64, u32> = LruHashMap::with_max_entries(DEFAULT_SLOTS * 64, 0);

/// A direct-mapped cache in front of `CGROUPS`: one inlined array load instead
/// of a hash lookup on every syscall. Only a hint: a slot found here is checked
/// against the slot's own record; user space clears entries it makes stale.
#[map]
pub static CGROUP_CACHE: Array<u64> = Array::with_max_entries(CGROUP_CACHE_ENTRIES, 0);

/// Free slot indexes, filled by user space; popped when a new cgroup arrives.
#[map]
pub static FREE_SLOTS: Queue<u32> = Queue::with_max_entries(DEFAULT_SLOTS, 0);

/// Per-cgroup records, mmap-able so the agent reads them live.
#[map]
pub static SLOTS: Array<Slot> = Array::with_max_entries(DEFAULT_SLOTS, BPF_F_MMAPABLE);

/// `layout::LAYOUT` of the build that loaded these programs, written by the
/// loader; the programs never read it.
#[map]
pub static LAYOUT: Array<u64> = Array::with_max_entries(1, 0);

#[map]
pub static CONFIG: Array<u64> = Array::with_max_entries(config::LEN, 0);

/// How many times each counter cell wrapped past 2^32 (`counters::wrap_key`),
/// and the whole counts of spilled rows (`counter::SPILL`). Written only at a
/// wrap or a spilled row's call; the agent adds `wraps << 32` to the cell (or
/// the spill count) and deletes a slot's entries before the slot is reused.
#[map]
pub static WRAPS: HashMap<u64, u64> = HashMap::with_max_entries(counters::WRAPS_ENTRIES, 0);

/// Time spent in the calls of each row, in nanoseconds from enter to exit
/// (strace's `-c -w` columns). Only the timed programs write it, which only
/// `observer trace --time` attaches, for the one cgroup it records (slot 0).
#[map]
pub static TIMES: Array<u64> = Array::with_max_entries(counters::ROWS_PER_SLOT, 0);

#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::LEN, 0);

/// The enter note of each thread (task local storage, freed with the task).
#[btf_map]
pub static NOTES: TaskStorage<EnterMarker> = TaskStorage::new();

/// Thread id -> syscall number of an enter whose note could not be made
/// (`stats::helper::NOTE_CREATE`): `sys_exit` finds it there instead of taking
/// that call's error for a denial. Written only when a note fails, read only
/// on the way to a denial; unallocated until then.
#[map]
pub static NOTELESS: HashMap<u32, u32> = HashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);

/// A `BPF_MAP_TYPE_TASK_STORAGE` map, defined the way aya-ebpf's BTF maps are
/// (its `btf_maps` has inode and cgroup storage, not task storage): the loader
/// reads type, key, value and flags from the BTF of these fields.
#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: placeholder pointers the loader patches; never dereferenced.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        Self {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }

    /// The current value of `task`, created (zeroed) when `create` and missing.
    #[inline(always)]
    #[expect(
        clippy::mut_from_ref,
        reason = "the value is the task's, handed out by the kernel, not part of the map handle (aya-ebpf's maps do the same)"
    )]
    pub fn get(&self, task: *const u8, create: bool) -> Option<&mut T> {
        let flags = if create { u64::from(BPF_LOCAL_STORAGE_GET_F_CREATE) } else { 0 };
        // SAFETY: `self` is the map (the loader relocates its address to the map's
        // fd), `task` a BTF task pointer, and no initial value is passed.
        let p = unsafe {
            bpf_task_storage_get(
                core::ptr::from_ref(self).cast_mut().cast(),
                task.cast_mut().cast(),
                core::ptr::null_mut(),
                flags,
            )
        };
        // SAFETY: null, or the task's own `T` in the map, which lives as long as
        // the task; only the current thread's programs use its note.
        unsafe { p.cast::<T>().as_mut() }
    }
}

/// Rare events only. The loader sets the size (the agent: `--event-ring-kib`,
/// 2 MiB by default, 32,768 events of 64 bytes).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

#[inline(always)]
pub fn config(index: u32) -> u64 {
    CONFIG.get(index).copied().unwrap_or(0)
}

#[inline(always)]
pub fn count_stat(index: u32) {
    if let Some(v) = STATS.get_ptr_mut(index) {
        // SAFETY: a valid per-CPU map element; per-CPU: no other CPU writes this
        // cell, and a program runs to completion without preemption on its CPU.
        unsafe { *v += 1 };
    }
}

/// Which of a slot's counter cells counts `row`: its own, handed out at its
/// first call (`new_cell`), cell 0 for the invalid row, or `CELL_SPILLED`.
#[inline(always)]
pub fn cell_for(record: &mut Slot, row: u32) -> u32 {
    if row >= ROW_INVALID {
        return CELL_INVALID;
    }
    match record.cell_of.get(opaque(row) as usize) {
        // A plain load: a stale CELL_NONE only costs the slow path, which
        // rereads the word atomically.
        Some(&cell) if cell != CELL_NONE => u32::from(cell),
        Some(_) => new_cell(record, row),
        None => u32::from(CELL_SPILLED),
    }
}

/// A row's first call: takes the next free cell and publishes it in
/// `cell_of` with a compare-and-swap of the u32 word that holds the row's
/// byte (the neighbours' bytes may change meanwhile). Two CPUs racing on the
/// same row: one cell wins, the other is left unused. No cell left (or a word
/// that keeps changing): the row spills, still counted exactly.
#[inline(never)]
fn new_cell(record: &mut Slot, row: u32) -> u32 {
    let spilled = u32::from(CELL_SPILLED);
    let shift = (row % 4) * 8;
    let Some(word) = record.cell_of.get_mut(opaque(row & !3) as usize) else {
        return spilled;
    };
    let word: *mut u32 = (word as *mut u8).cast();
    // SAFETY: `cell_of` starts 4-aligned in `Slot` (`repr(C)`, after the
    // 8-aligned `SlotInfo`) and `row & !3 + 4 <= ROW_INVALID`: a valid, aligned
    // u32 inside the array, changed only through `cmpxchg32`.
    let mut current = unsafe { core::ptr::read_volatile(word) };
    let existing = (current >> shift) & 0xff;
    if existing != 0 {
        return existing;
    }
    let n = fetch_add32(&mut record.info.cells_used, 1) + 1;
    let cell = if n < CELLS_PER_SLOT { n } else { spilled };
    for _ in 0..4 {
        let seen = cmpxchg32(word, current, current | (cell << shift));
        if seen == current {
            return cell;
        }
        let existing = (seen >> shift) & 0xff;
        if existing != 0 {
            return existing;
        }
        current = seen;
    }
    spilled
}

/// Adds one to a row's `counter` (`counter::*`): in `cells[cell]`, or, for a
/// spilled row, in its `WRAPS` spill entry. Cells are shared between CPUs,
/// so the add is atomic; a cell that wraps adds one to its `WRAPS` entry, so
/// totals stay exact.
#[inline(always)]
pub fn bump(cells: &mut [u32], cell: u32, slot: u32, counter: u32, row: u32) {
    let Some(cell) = cells.get_mut(opaque(cell) as usize) else {
        add_to_entry(wrap_key(slot, counter::SPILL | counter, row));
        return;
    };
    if fetch_add32(cell, 1) == u32::MAX {
        add_to_entry(wrap_key(slot, counter, row));
    }
}

/// Adds `value` to a u32 atomically; returns the value before.
#[inline(always)]
fn fetch_add32(cell: &mut u32, value: u32) -> u32 {
    let cell: *mut u32 = cell;
    let mut old = u64::from(value);
    // The BPF target has no compare-and-swap in core's atomics, which stop at
    // load and store; the instruction itself (BPF_ATOMIC | BPF_ADD |
    // BPF_FETCH, 32 bits, kernel 5.12+) is what we need. The old value comes
    // back zero-extended. Fixed registers: a 32-bit operand is named `w2`,
    // which no operand class of this target spells without the alu32 feature.
    // SAFETY: `cell` comes from a `&mut u32`, valid and aligned; the
    // instruction touches only those 4 bytes.
    unsafe {
        core::arch::asm!(
            "w2 = atomic_fetch_add((u32 *)(r1 + 0), w2)",
            in("r1") cell,
            inout("r2") old,
            options(nostack),
        )
    };
    old as u32
}

/// Compare-and-swap of a u32 (BPF_ATOMIC | BPF_CMPXCHG, kernel 5.12+): writes
/// `new` when the cell holds `expected`; returns what the cell held.
#[inline(always)]
fn cmpxchg32(cell: *mut u32, expected: u32, new: u32) -> u32 {
    let mut r0 = u64::from(expected);
    // SAFETY: callers pass a valid, aligned u32; the instruction touches only
    // those 4 bytes. The comparand and the result live in r0 by definition.
    unsafe {
        core::arch::asm!(
            "w0 = cmpxchg32_32(r1 + 0, w0, w2)",
            inout("r0") r0,
            in("r1") cell,
            in("r2") u64::from(new),
            options(nostack),
        )
    };
    r0 as u32
}

/// Compare-and-swap of a u64; returns what the cell held.
#[inline(always)]
pub fn cmpxchg64(cell: &mut u64, expected: u64, new: u64) -> u64 {
    let cell: *mut u64 = cell;
    let mut r0 = expected;
    // SAFETY: `cell` comes from a `&mut u64`, valid and aligned; the
    // instruction touches only those 8 bytes.
    unsafe {
        core::arch::asm!(
            "r0 = cmpxchg_64(r1 + 0, r0, r2)",
            inout("r0") r0,
            in("r1") cell,
            in("r2") new,
            options(nostack),
        )
    };
    r0
}

/// Adds one to a `WRAPS` entry: one more 2^32 for a counter cell (once per
/// 2^32 calls of a row), or one more call of a spilled row.
#[inline(never)]
pub fn add_to_entry(key: u64) {
    for _ in 0..2 {
        if let Some(wraps) = WRAPS.get_ptr_mut(key) {
            // SAFETY: a valid, aligned hash map value while the program runs;
            // changed only atomically.
            add_u64(unsafe { &mut *wraps }, 1);
            return;
        }
        // Another CPU may insert the same key meanwhile: then the loop adds to it.
        if WRAPS.insert(key, 1u64, u64::from(BPF_NOEXIST)).is_ok() {
            return;
        }
    }
    count_stat(stats::WRAPS_UNRECORDED);
}

/// Adds `value` to a u64 cell atomically (BPF_ATOMIC | BPF_ADD).
#[inline(always)]
pub fn add_u64(cell: &mut u64, value: u64) {
    let cell: *mut u64 = cell;
    // SAFETY: `cell` comes from a `&mut u64`, valid and aligned; the
    // instruction touches only those 8 bytes.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({cell} + 0) += {value}",
            cell = in(reg) cell,
            value = in(reg) value,
            options(nostack),
        )
    };
}

/// Sets a bit in a bitmap word; returns true when this call set it.
#[inline(always)]
pub fn set_bit(word: &mut u64, bit: u64) -> bool {
    let word: *mut u64 = word;
    let mut old = bit;
    // BPF_ATOMIC | BPF_OR | BPF_FETCH (kernel 5.12+).
    // SAFETY: `word` comes from a `&mut u64`, valid and aligned; the
    // instruction touches only those 8 bytes.
    unsafe {
        core::arch::asm!(
            "{old} = atomic_fetch_or((u64 *)({word} + 0), {old})",
            word = in(reg) word,
            old = inout(reg) old,
            options(nostack),
        )
    };
    old & bit == 0
}

/// Hides a value from the optimiser, so that a bounds check it could prove
/// redundant stays in the program for the verifier, which cannot prove it.
#[inline(always)]
pub fn opaque(value: u32) -> u32 {
    let out: u64;
    // SAFETY: a register move; it touches no memory.
    unsafe {
        core::arch::asm!("{out} = {v}", out = lateout(reg) out, v = in(reg) u64::from(value), options(pure, nomem, nostack))
    };
    out as u32
}

/// The slot (or `SLOT_*` marker) of a cgroup: the cache first, then the hash.
/// `None`: not known yet. A slot from the cache may be stale; callers check it
/// against `SlotInfo::cgroup_id` and call `lookup_slow` when it does not match.
#[inline(always)]
pub fn lookup_cached(cgroup_id: u64) -> Option<u32> {
    let entry = *CGROUP_CACHE.get(cache_index(cgroup_id))?;
    (entry >> 32 == cgroup_id).then_some(entry as u32)
}

/// `CGROUPS`, then `IGNORED`; what is found is remembered in the cache, so an
/// ignored cgroup's later calls stop at the cache like before.
#[inline(never)]
pub fn lookup_slow(cgroup_id: u64) -> Option<u32> {
    // SAFETY: the value is copied out at once; an entry deleted meanwhile leaves
    // a stale slot number, which every user checks against the slot's owner.
    let slot = match unsafe { CGROUPS.get(cgroup_id) } {
        Some(slot) => *slot,
        None => {
            // SAFETY: only whether the key is there is used.
            unsafe { IGNORED.get(cgroup_id) }?;
            SLOT_IGNORED
        }
    };
    remember(cgroup_id, slot);
    Some(slot)
}

#[inline(always)]
pub fn remember(cgroup_id: u64, slot: u32) {
    if cgroup_id >> 32 == 0
        && let Some(entry) = CGROUP_CACHE.get_ptr_mut(cache_index(cgroup_id))
    {
        // SAFETY: a valid, aligned array map element. One 8-byte store: other
        // CPUs read the entry whole, never half of it.
        unsafe { core::ptr::write_volatile(entry, cache_entry(cgroup_id, slot)) };
    }
}

/// Whether `slot` holds a record (not a marker).
#[inline(always)]
pub fn is_slot(slot: u32) -> bool {
    slot < SLOT_FIRST_MARKER
}
