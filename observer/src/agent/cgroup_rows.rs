//! One cgroup's totals per row, with their sums over every row kept beside
//! them. `ps` lists every record's calls and denials: with 10,000 records,
//! summing each one's rows on every answer (800,000 map entries scattered over
//! the heap) took most of the answer's time. The sums change only where the
//! rows do, inside this type, so they cannot drift from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

use super::model::RowTotals;
use crate::probe::RowCounts;

/// Persisted as the plain map (`{"ROW": RowTotals}`): state files are the same
/// as before the sums; they are computed again when a record is read back.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "BTreeMap<u32, RowTotals>")]
pub struct CgroupRows {
    by_row: BTreeMap<u32, RowTotals>,
    calls: u64,
    denied: u64,
}

impl From<BTreeMap<u32, RowTotals>> for CgroupRows {
    fn from(by_row: BTreeMap<u32, RowTotals>) -> Self {
        // Saturating, like the totals themselves: a state file may hold any count.
        let sum = |f: fn(&RowTotals) -> u64| by_row.values().fold(0u64, |s, t| s.saturating_add(f(t)));
        let (calls, denied) = (sum(|t| t.calls), sum(|t| t.denied));
        Self { by_row, calls, denied }
    }
}

impl Serialize for CgroupRows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.by_row.serialize(s)
    }
}

impl CgroupRows {
    /// Adds a live reading of one row (`RowTotals::update`); whether it changed
    /// anything.
    pub fn update(&mut self, now: &RowCounts) -> bool {
        let t = self.by_row.entry(now.row).or_default();
        if t.last == (now.calls, now.errors, now.denied) {
            return false;
        }
        let before = (t.calls, t.denied);
        t.update(now);
        // Totals only grow (`RowTotals::update`), so the sums grow by the same steps.
        self.calls = self.calls.saturating_add(t.calls - before.0);
        self.denied = self.denied.saturating_add(t.denied - before.1);
        true
    }

    /// Forgets the last readings: another slot counts from zero (agent/core.rs).
    pub fn restart_readings(&mut self) {
        for t in self.by_row.values_mut() {
            t.last = (0, 0, 0);
        }
    }

    /// Adds another cgroup's totals to these (a cgroup that ended, retired
    /// into its container's `ENDED_CGROUPS` entry). Its readings mean nothing
    /// here: no slot counts for either any more.
    pub fn absorb(&mut self, other: &CgroupRows) {
        for (row, t) in &other.by_row {
            let mine = self.by_row.entry(*row).or_default();
            mine.calls = mine.calls.saturating_add(t.calls);
            mine.errors = mine.errors.saturating_add(t.errors);
            mine.denied = mine.denied.saturating_add(t.denied);
        }
        self.calls = self.calls.saturating_add(other.calls);
        self.denied = self.denied.saturating_add(other.denied);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u32, &RowTotals)> {
        self.by_row.iter()
    }

    pub fn get(&self, row: u32) -> Option<&RowTotals> {
        self.by_row.get(&row)
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
        let fresh = CgroupRows::from(rows.by_row.clone());
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
