//! The first use of a row in a container's record: when, by whom, in which
//! start phases. A record holds one per syscall it made (about 80 for a
//! typical container), and a node holds thousands of records, so the entry is
//! kept small and free of heap allocations: phase sets are bitmasks, the time
//! is a value, the command name is stored inline. The persisted JSON is the
//! same as when these were a set, a string and a string.

use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _, ser::SerializeSeq};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// First use of a row, from the kernel's first-seen events.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FirstUse {
    /// Phases in which the call entered the kernel: the seccomp filter of that
    /// moment (if any) let it through.
    pub phases: PhaseSet,
    /// Phases in which seccomp denied it. Kept apart from `phases`: a call the
    /// runtime's init made before its filter and the container's own processes
    /// then had denied must not read as "the container could make it".
    #[serde(default)]
    pub denied_phases: PhaseSet,
    pub first_seen: Stamp,
    pub pid: u32,
    /// A task's command name (at most 15 bytes from the kernel): inline.
    pub comm: CompactString,
    pub denied_seen: bool,
}

/// A set of start phases (`observer_common::slot::phase`, 0 to 7), as a
/// bitmask; in JSON a sorted array of phase numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseSet(u8);

impl PhaseSet {
    /// The largest phase a set can hold.
    pub const MAX: u32 = 7;

    /// Adds `phase`; whether it was new. A phase past `MAX` is never added
    /// (the kernel has three).
    pub fn insert(&mut self, phase: u32) -> bool {
        if phase > Self::MAX || self.contains(phase) {
            return false;
        }
        self.0 |= 1 << phase;
        true
    }

    pub fn contains(&self, phase: u32) -> bool {
        phase <= Self::MAX && self.0 & (1 << phase) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The phases, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..=Self::MAX).filter(|p| self.contains(*p))
    }
}

impl Serialize for PhaseSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.count_ones() as usize))?;
        for p in self.iter() {
            seq.serialize_element(&p)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for PhaseSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let phases = Vec::<u32>::deserialize(d)?;
        let mut set = PhaseSet::default();
        for p in phases {
            if p > Self::MAX {
                return Err(D::Error::custom(format!("phase {p} is out of range (0 to {})", Self::MAX)));
            }
            set.insert(p);
        }
        Ok(set)
    }
}

/// A point in time, shown and saved as RFC 3339 (what records kept as text
/// before). `None`: not known (an empty string).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp(Option<OffsetDateTime>);

impl Stamp {
    pub fn now() -> Self {
        Stamp(Some(OffsetDateTime::now_utc()))
    }

    pub fn at(t: OffsetDateTime) -> Self {
        Stamp(Some(t))
    }

    pub fn time(&self) -> Option<OffsetDateTime> {
        self.0
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.and_then(|t| t.format(&Rfc3339).ok()) {
            Some(text) => f.write_str(&text),
            None => Ok(()),
        }
    }
}

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text.is_empty() {
            return Ok(Stamp(None));
        }
        OffsetDateTime::parse(&text, &Rfc3339)
            .map(Stamp::at)
            .map_err(|e| D::Error::custom(format!("{text:?} is not an RFC 3339 time: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_json_is_what_sets_and_strings_gave() {
        let saved = json!({"phases": [0, 2], "denied_phases": [], "first_seen": "2026-12-01T10:35:33.123456789Z",
                           "pid": 7, "comm": "sh", "denied_seen": false});
        let f: FirstUse = serde_json::from_value(saved.clone()).unwrap();
        assert_eq!(f.phases.iter().collect::<Vec<_>>(), [0, 2]);
        assert!(f.denied_phases.is_empty());
        assert_eq!(f.first_seen.to_string(), "2026-12-01T10:35:33.123456789Z");
        assert_eq!(serde_json::to_value(&f).unwrap(), saved);
    }

    #[test]
    fn an_old_record_without_denied_phases_or_time_loads() {
        let f: FirstUse =
            serde_json::from_value(json!({"phases": [2], "first_seen": "", "pid": 1, "comm": "", "denied_seen": true}))
                .unwrap();
        assert!(f.phases.contains(2) && !f.phases.contains(0));
        assert_eq!(f.first_seen, Stamp::default());
        assert_eq!(serde_json::to_value(f.first_seen).unwrap(), json!(""));
    }

    #[test]
    fn bad_phases_and_times_are_named() {
        let e = serde_json::from_value::<PhaseSet>(json!([1, 9])).unwrap_err().to_string();
        assert!(e.contains("phase 9 is out of range"), "{e}");
        let e = serde_json::from_value::<Stamp>(json!("yesterday")).unwrap_err().to_string();
        assert!(e.contains("\"yesterday\" is not an RFC 3339 time"), "{e}");
    }

    #[test]
    fn a_phase_set_adds_each_phase_once() {
        let mut s = PhaseSet::default();
        assert!(s.insert(2));
        assert!(!s.insert(2));
        assert!(!s.insert(8), "past MAX: never held");
        assert_eq!(s.iter().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn an_entry_needs_no_heap() {
        let f = FirstUse { comm: "observer-testpr".into(), first_seen: Stamp::now(), ..FirstUse::default() };
        assert!(!f.comm.is_heap_allocated(), "a 15-byte command name is kept inline");
        assert!(std::mem::size_of::<FirstUse>() <= 64, "{} bytes", std::mem::size_of::<FirstUse>());
    }
}
