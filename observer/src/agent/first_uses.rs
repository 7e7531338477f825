//! A record's first uses, one per row it made, in a dense table. A node holds
//! thousands of records of about 80 rows each, and a map of `FirstUse` values
//! (a B-tree node per ~8 entries, a 24-byte command name in each) took about
//! 7 KiB of every record. Here an entry is 36 bytes in one sorted vector; the
//! command names are kept once per record (a container's first uses come from
//! a handful of processes), and the container's own first call, which only
//! rows also made by the runtime's init have, sits in a side table. The JSON is
//! the map it replaced (`{"ROW": FirstUse}`), byte for byte.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};

use super::first_use::{Caller, FirstUse, PhaseSet, Stamp};

/// No container call kept apart for the entry (`Entry::container_use`).
const NONE: u32 = u32::MAX;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "BTreeMap<u32, FirstUse>")]
pub struct FirstUses {
    /// Sorted by row, one per row.
    entries: Vec<Entry>,
    /// The container's own first calls kept apart (`FirstUse::container_use`).
    callers: Vec<PackedCaller>,
    /// Every command name the entries and callers name, each once.
    comms: Vec<CompactString>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    first_seen: Stamp,
    row: u32,
    pid: u32,
    /// Index in `comms`.
    comm: u32,
    /// Index in `callers`, or `NONE`.
    container_use: u32,
    phases: PhaseSet,
    denied_phases: PhaseSet,
    denied_seen: bool,
}

#[derive(Clone, Copy, Debug)]
struct PackedCaller {
    first_seen: Stamp,
    pid: u32,
    comm: u32,
}

impl FirstUses {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The rows, in increasing order.
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|e| e.row)
    }

    pub fn get(&self, row: &u32) -> Option<FirstUse> {
        self.find(*row).ok().map(|i| self.unpack(&self.entries[i]))
    }

    /// Every entry, by row.
    pub fn iter(&self) -> impl Iterator<Item = (u32, FirstUse)> + '_ {
        self.entries.iter().map(|e| (e.row, self.unpack(e)))
    }

    pub fn values(&self) -> impl Iterator<Item = FirstUse> + '_ {
        self.entries.iter().map(|e| self.unpack(e))
    }

    /// The time of every first use (without building whole entries).
    pub fn times(&self) -> impl Iterator<Item = Stamp> + '_ {
        self.entries.iter().map(|e| e.first_seen)
    }

    /// Whether a row was seen in a start phase (entered or denied).
    pub fn seen_in(&self, row: u32, phase: u32) -> bool {
        self.find(row).is_ok_and(|i| self.entries[i].phases.contains(phase))
    }

    /// Sets a row's entry, replacing what it had.
    pub fn insert(&mut self, row: u32, first: FirstUse) {
        let slot = self.find(row);
        let kept = slot.ok().map(|i| self.entries[i].container_use).unwrap_or(NONE);
        let entry = self.pack(row, &first, kept);
        match slot {
            Ok(i) => self.entries[i] = entry,
            Err(i) => {
                grow_gently(&mut self.entries);
                self.entries.insert(i, entry);
            }
        }
    }

    /// `FirstUse::add_phase` on the row's entry, made by `by`'s call when
    /// the row has none yet; whether the phase is new.
    pub fn add_phase(&mut self, row: u32, phase: u32, denied: bool, by: impl Fn() -> Caller) -> bool {
        let mut first = self.get(&row).unwrap_or_else(|| FirstUse::new(by()));
        let new = first.add_phase(phase, denied, by);
        self.insert(row, first);
        new
    }

    fn find(&self, row: u32) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&row, |e| e.row)
    }

    fn unpack(&self, e: &Entry) -> FirstUse {
        FirstUse {
            phases: e.phases,
            denied_phases: e.denied_phases,
            first_seen: e.first_seen,
            pid: e.pid,
            comm: self.comm(e.comm),
            denied_seen: e.denied_seen,
            container_use: (e.container_use != NONE).then(|| {
                let c = self.callers[e.container_use as usize];
                Box::new(Caller { first_seen: c.first_seen, pid: c.pid, comm: self.comm(c.comm) })
            }),
        }
    }

    /// An entry for `first`; `kept`: the row's slot in `callers`, if it has one.
    fn pack(&mut self, row: u32, first: &FirstUse, kept: u32) -> Entry {
        let container_use = match &first.container_use {
            None => NONE,
            Some(c) => {
                let packed = PackedCaller { first_seen: c.first_seen, pid: c.pid, comm: self.comm_index(&c.comm) };
                if kept == NONE {
                    grow_gently(&mut self.callers);
                    self.callers.push(packed);
                    index(self.callers.len() - 1)
                } else {
                    self.callers[kept as usize] = packed;
                    kept
                }
            }
        };
        Entry {
            first_seen: first.first_seen,
            row,
            pid: first.pid,
            comm: self.comm_index(&first.comm),
            container_use,
            phases: first.phases,
            denied_phases: first.denied_phases,
            denied_seen: first.denied_seen,
        }
    }

    fn comm(&self, i: u32) -> CompactString {
        self.comms.get(i as usize).cloned().unwrap_or_default()
    }

    fn comm_index(&mut self, comm: &CompactString) -> u32 {
        if let Some(i) = self.comms.iter().position(|c| c == comm) {
            return index(i);
        }
        grow_gently(&mut self.comms);
        self.comms.push(comm.clone());
        index(self.comms.len() - 1)
    }
}

/// A table's index as stored: at most two per entry, and entries are far
/// fewer than `u32::MAX` (a row is a `u32`).
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(NONE - 1)
}

/// Room for a few more, not twice as many: records grow by a row at a time,
/// and thousands of them stay at about their size for good.
pub(super) fn grow_gently<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 8 + 4);
    }
}

impl From<BTreeMap<u32, FirstUse>> for FirstUses {
    fn from(map: BTreeMap<u32, FirstUse>) -> Self {
        let mut out = FirstUses { entries: Vec::with_capacity(map.len()), ..FirstUses::default() };
        for (row, first) in &map {
            // Sorted already: appended in place.
            let entry = out.pack(*row, first, NONE);
            out.entries.push(entry);
        }
        out.callers.shrink_to_fit();
        out.comms.shrink_to_fit();
        out
    }
}

impl Serialize for FirstUses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for e in &self.entries {
            map.serialize_entry(&e.row, &self.unpack(e))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use observer_common::slot::phase::{CONTAINER, INIT_BEFORE_FILTER};

    use super::*;

    fn by(comm: &str, pid: u32) -> Caller {
        Caller { first_seen: Stamp::now(), pid, comm: comm.into() }
    }

    /// The table answers as the map of entries it replaced would, after any
    /// run of additions.
    #[test]
    fn the_table_holds_what_a_map_of_entries_would() {
        let mut table = FirstUses::default();
        let mut map: BTreeMap<u32, FirstUse> = BTreeMap::new();
        let steps = [
            (59, INIT_BEFORE_FILTER, false, "runc:[2:INIT]", 10),
            (1, CONTAINER, false, "sh", 20),
            (59, CONTAINER, false, "sh", 20),
            (1000, CONTAINER, true, "unshare", 21),
            (3, INIT_BEFORE_FILTER, false, "runc:[2:INIT]", 10),
            (3, CONTAINER, true, "sh", 22),
            (59, CONTAINER, false, "cat", 23),
        ];
        for (row, phase, denied, comm, pid) in steps {
            let caller = by(comm, pid);
            let want = {
                let e = map.entry(row).or_insert_with(|| FirstUse::new(caller.clone()));
                e.add_phase(phase, denied, || caller.clone())
            };
            assert_eq!(table.add_phase(row, phase, denied, || caller.clone()), want, "row {row}");
        }
        assert_eq!(table.len(), map.len());
        assert_eq!(table.keys().collect::<Vec<_>>(), map.keys().copied().collect::<Vec<_>>());
        assert_eq!(serde_json::to_string(&table).unwrap(), serde_json::to_string(&map).unwrap());
        assert_eq!(table.get(&59).and_then(|f| f.container_caller()).map(|c| c.pid), Some(20));
        assert!(table.seen_in(59, CONTAINER) && !table.seen_in(3, CONTAINER), "a denial is not an entry");
        assert_eq!(table.comms.len(), 3, "each command name once (cat's call was not kept)");
    }

    #[test]
    fn an_entry_is_small() {
        assert!(std::mem::size_of::<Entry>() <= 36, "{} bytes", std::mem::size_of::<Entry>());
    }
}
