//! One cgroup's totals per row, with their sums over every row kept beside
//! them. `ps` lists every record's calls and denials: with 10,000 records,
//! summing each one's rows on every answer (800,000 map entries scattered over
//! the heap) took most of the answer's time. The sums change only where the
//! rows do, inside this type, so they cannot drift from them.

use std::collections::BTreeMap;

use observer_probe::RowCounts;
use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};

/// Counts of one row accumulated across reads; `last` is the kernel's reading
/// (exact u64 totals: the cell plus its wraps), so a restarted agent adds up
/// what happened while it was down.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RowTotals {
    pub calls: u64,
    pub errors: u64,
    pub denied: u64,
    pub last: (u64, u64, u64),
}

impl RowTotals {
    /// Totals saturate: a record read back from the state directory may hold
    /// any count (found by fuzz/fuzz_targets/state_files.rs). The kernel's
    /// totals only grow; a reading below the last one was taken in the
    /// nanoseconds between a cell's wrap and its `WRAPS` entry's increment,
    /// and is skipped (the next reading has it whole). A new slot resets
    /// `last` (agent/core.rs).
    pub fn update(&mut self, now: &RowCounts) {
        let step = |total: &mut u64, last: &mut u64, now: u64| {
            if now >= *last {
                *total = total.saturating_add(now - *last);
                *last = now;
            }
        };
        step(&mut self.calls, &mut self.last.0, now.calls);
        step(&mut self.errors, &mut self.last.1, now.errors);
        step(&mut self.denied, &mut self.last.2, now.denied);
    }
}

/// Persisted as the plain map (`{"ROW": RowTotals}`): state files are the same
/// as before the sums; they are computed again when a record is read back.
/// Held as a sorted table of rows whose six figures fit in 32 bits (28 bytes
/// each, where a map entry took about 80), with the rare row past that (a busy
/// row of a long-lived container) in a table of its own.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "BTreeMap<u32, RowTotals>")]
pub struct CgroupRows {
    /// Sorted by row; no row is in both tables.
    small: Vec<SmallRow>,
    /// Sorted by row.
    big: Vec<(u32, RowTotals)>,
    calls: u64,
    denied: u64,
}

/// A row's totals and last reading, each below 2^32.
#[derive(Clone, Copy, Debug)]
struct SmallRow {
    row: u32,
    /// calls, errors, denied, then the last reading's three.
    figures: [u32; 6],
}

impl SmallRow {
    fn of(row: u32, t: &RowTotals) -> Option<SmallRow> {
        let f = |v: u64| u32::try_from(v).ok();
        Some(SmallRow {
            row,
            figures: [f(t.calls)?, f(t.errors)?, f(t.denied)?, f(t.last.0)?, f(t.last.1)?, f(t.last.2)?],
        })
    }

    fn totals(&self) -> RowTotals {
        let [calls, errors, denied, l0, l1, l2] = self.figures.map(u64::from);
        RowTotals { calls, errors, denied, last: (l0, l1, l2) }
    }
}

impl From<BTreeMap<u32, RowTotals>> for CgroupRows {
    fn from(by_row: BTreeMap<u32, RowTotals>) -> Self {
        // Saturating, like the totals themselves: a state file may hold any count.
        let sum = |f: fn(&RowTotals) -> u64| by_row.values().fold(0u64, |s, t| s.saturating_add(f(t)));
        let (calls, denied) = (sum(|t| t.calls), sum(|t| t.denied));
        let mut small = Vec::with_capacity(by_row.len());
        let mut big = Vec::new();
        for (row, t) in by_row {
            match SmallRow::of(row, &t) {
                Some(s) => small.push(s),
                None => big.push((row, t)),
            }
        }
        small.shrink_to_fit();
        Self { small, big, calls, denied }
    }
}

impl Serialize for CgroupRows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (row, t) in self.iter() {
            map.serialize_entry(&row, &t)?;
        }
        map.end()
    }
}

impl CgroupRows {
    /// Adds a live reading of one row (`RowTotals::update`); whether it changed
    /// anything.
    pub fn update(&mut self, now: &RowCounts) -> bool {
        let known = self.get(now.row);
        let mut t = known.clone().unwrap_or_default();
        if t.last == (now.calls, now.errors, now.denied) {
            if known.is_none() {
                // A row read at zero is kept, as the map's entry was.
                self.set(now.row, t);
            }
            return false;
        }
        let before = (t.calls, t.denied);
        t.update(now);
        // Totals only grow (`RowTotals::update`), so the sums grow by the same steps.
        self.calls = self.calls.saturating_add(t.calls - before.0);
        self.denied = self.denied.saturating_add(t.denied - before.1);
        self.set(now.row, t);
        true
    }

    /// Forgets the last readings: another slot counts from zero (agent/core.rs).
    pub fn restart_readings(&mut self) {
        for s in &mut self.small {
            s.figures[3..].fill(0);
        }
        for (_, t) in &mut self.big {
            t.last = (0, 0, 0);
        }
    }

    /// Adds another cgroup's totals to these (a cgroup that ended, retired
    /// into its container's `ENDED_CGROUPS` entry). Its readings mean nothing
    /// here: no slot counts for either any more.
    pub fn absorb(&mut self, other: &CgroupRows) {
        for (row, t) in other.iter() {
            let mut mine = self.get(row).unwrap_or_default();
            mine.calls = mine.calls.saturating_add(t.calls);
            mine.errors = mine.errors.saturating_add(t.errors);
            mine.denied = mine.denied.saturating_add(t.denied);
            self.set(row, mine);
        }
        self.calls = self.calls.saturating_add(other.calls);
        self.denied = self.denied.saturating_add(other.denied);
    }

    /// Every row's totals, by row.
    pub fn iter(&self) -> impl Iterator<Item = (u32, RowTotals)> + '_ {
        let mut small = self.small.iter().peekable();
        let mut big = self.big.iter().peekable();
        std::iter::from_fn(move || match (small.peek(), big.peek()) {
            (Some(s), Some((b, _))) if s.row < *b => small.next().map(|s| (s.row, s.totals())),
            (Some(_), Some(_)) | (None, Some(_)) => big.next().map(|(row, t)| (*row, t.clone())),
            (Some(_), None) => small.next().map(|s| (s.row, s.totals())),
            (None, None) => None,
        })
    }

    pub fn len(&self) -> usize {
        self.small.len() + self.big.len()
    }

    pub fn get(&self, row: u32) -> Option<RowTotals> {
        if let Ok(i) = self.small.binary_search_by_key(&row, |s| s.row) {
            return Some(self.small[i].totals());
        }
        self.big.binary_search_by_key(&row, |(r, _)| *r).ok().map(|i| self.big[i].1.clone())
    }

    /// Puts a row's totals in the table they fit.
    fn set(&mut self, row: u32, t: RowTotals) {
        let in_small = self.small.binary_search_by_key(&row, |s| s.row);
        let in_big = self.big.binary_search_by_key(&row, |(r, _)| *r);
        match (SmallRow::of(row, &t), in_small, in_big) {
            (Some(s), Ok(i), _) => self.small[i] = s,
            (Some(s), Err(i), found) => {
                if let Ok(j) = found {
                    self.big.remove(j);
                }
                super::first_uses::grow_gently(&mut self.small);
                self.small.insert(i, s);
            }
            (None, found, Ok(j)) => {
                if let Ok(i) = found {
                    self.small.remove(i);
                }
                self.big[j].1 = t;
            }
            (None, found, Err(j)) => {
                if let Ok(i) = found {
                    self.small.remove(i);
                }
                self.big.insert(j, (row, t));
            }
        }
    }

    /// Calls over every row (saturating).
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Denials over every row (saturating).
    pub fn denied(&self) -> u64 {
        self.denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(row: u32, calls: u64, denied: u64) -> RowCounts {
        RowCounts { row, calls, errors: 0, denied }
    }

    /// The kept sums equal a fresh sum after any run of readings, torn
    /// readings and slot restarts included.
    #[test]
    fn sums_follow_the_rows() {
        let mut rows = CgroupRows::default();
        assert!(rows.update(&reading(1, 10, 0)));
        assert!(rows.update(&reading(2, 5, 1)));
        assert!(!rows.update(&reading(2, 5, 1)), "the same reading changes nothing");
        assert!(rows.update(&reading(1, 15, 0)));
        // A torn reading (below the last) is skipped by `RowTotals::update`.
        rows.update(&reading(1, 3, 0));
        rows.restart_readings();
        assert!(rows.update(&reading(1, 4, 2)));
        let fresh = CgroupRows::from(rows.iter().collect::<BTreeMap<_, _>>());
        assert_eq!((rows.calls(), rows.denied()), (fresh.calls(), fresh.denied()));
        assert_eq!((rows.calls(), rows.denied()), (15 + 5 + 4, 1 + 2));
    }

    #[test]
    fn persisted_as_the_plain_map() {
        let mut rows = CgroupRows::default();
        rows.update(&reading(7, 2, 1));
        let text = serde_json::to_string(&rows).unwrap();
        assert_eq!(text, r#"{"7":{"calls":2,"errors":0,"denied":1,"last":[2,0,1]}}"#);
        let back: CgroupRows = serde_json::from_str(&text).unwrap();
        assert_eq!((back.calls(), back.denied(), back.get(7).map(|t| t.calls)), (2, 1, Some(2)));
    }

    #[test]
    fn huge_counts_saturate() {
        let text = r#"{"1":{"calls":18446744073709551615,"errors":0,"denied":1,"last":[0,0,0]},
                       "2":{"calls":9,"errors":0,"denied":0,"last":[0,0,0]}}"#;
        let mut rows: CgroupRows = serde_json::from_str(text).unwrap();
        assert_eq!(rows.calls(), u64::MAX);
        rows.update(&reading(2, 50, 0));
        assert_eq!(rows.calls(), u64::MAX);
    }
}
