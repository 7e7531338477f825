//! The first use of a row in a container's record: when, by whom, in which
//! start phases, and the container's own first call where the runtime's init
//! made it too. A record holds one per syscall it made (about 80 for a
//! typical container), and a node holds thousands of records, so the entry is
//! kept small and free of heap allocations: phase sets are bitmasks, the time
//! is a value, the command name is stored inline. The persisted JSON is the
//! same as when these were a set, a string and a string.

use std::fmt;

use compact_str::CompactString;
use observer_common::slot::phase::CONTAINER;
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
    /// The container's own first call of the row, kept apart only when the
    /// row was also seen in a runtime's init phase: otherwise the first use
    /// above is the container's (or the container never made the call). Boxed:
    /// a few dozen rows of a record have one, the others pay a null pointer.
    /// Absent in records saved before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_use: Option<Box<Caller>>,
}

/// One call as a first-seen event tells it: when, and by which process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub first_seen: Stamp,
    pub pid: u32,
    pub comm: CompactString,
}

impl FirstUse {
    /// An entry made by its first call.
    pub fn new(by: Caller) -> Self {
        FirstUse { first_seen: by.first_seen, pid: by.pid, comm: by.comm, ..FirstUse::default() }
    }

    /// Adds a phase the row was seen in (the call entered, or seccomp denied
    /// it), `by` making that call; whether the phase is new. The first call of
    /// the container's own phase is kept apart once the row has an init phase
    /// too, whichever came first: the record then tells both first uses.
    pub fn add_phase(&mut self, phase: u32, denied: bool, by: impl FnOnce() -> Caller) -> bool {
        let had_container = self.seen_in_container();
        let had_init = self.seen_in_init();
        let new = if denied {
            self.denied_seen = true;
            self.denied_phases.insert(phase)
        } else {
            self.phases.insert(phase)
        };
        if self.container_use.is_none() {
            if phase == CONTAINER && !had_container && had_init {
                self.container_use = Some(Box::new(by()));
            } else if phase != CONTAINER && had_container && !had_init {
                // The first use so far was the container's: kept before an
                // init phase (a `docker exec`'s) makes it ambiguous.
                self.container_use = Some(Box::new(self.caller()));
            }
        }
        new
    }

    /// The container's own first call: None when it never made the call, or
    /// the record was saved before that was kept apart.
    pub fn container_caller(&self) -> Option<Caller> {
        if let Some(c) = &self.container_use {
            return Some((**c).clone());
        }
        (self.seen_in_container() && !self.seen_in_init()).then(|| self.caller())
    }

    fn caller(&self) -> Caller {
        Caller { first_seen: self.first_seen, pid: self.pid, comm: self.comm.clone() }
    }

    fn seen_in_container(&self) -> bool {
        self.phases.contains(CONTAINER) || self.denied_phases.contains(CONTAINER)
    }

    fn seen_in_init(&self) -> bool {
        (self.phases.iter().chain(self.denied_phases.iter())).any(|p| p != CONTAINER)
    }
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

    fn by(comm: &str, pid: u32) -> Caller {
        Caller { first_seen: Stamp::now(), pid, comm: comm.into() }
    }

    fn made(first: Caller, phase: u32) -> FirstUse {
        let mut f = FirstUse::new(first.clone());
        f.add_phase(phase, false, || first);
        f
    }

    #[test]
    fn the_containers_first_call_after_runcs_is_kept_apart() {
        use observer_common::slot::phase::{INIT_AFTER_FILTER, INIT_BEFORE_FILTER};
        let mut f = made(by("runc", 10), INIT_BEFORE_FILTER);
        assert_eq!(f.container_caller(), None, "the runtime's alone");
        assert!(f.add_phase(INIT_AFTER_FILTER, false, || by("runc:[2:INIT]", 11)));
        assert!(f.add_phase(CONTAINER, false, || by("ls", 321)));
        assert!(!f.add_phase(CONTAINER, false, || by("cat", 322)), "seen in the container already");
        assert_eq!(f.container_caller().map(|c| (c.comm, c.pid)), Some(("ls".into(), 321)));
        assert_eq!((f.comm.as_str(), f.pid), ("runc", 10), "the first call at all is kept as it was");
        // Saved and read back the same.
        let back: FirstUse = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back.container_caller().map(|c| c.pid), Some(321));
    }

    #[test]
    fn a_row_the_container_made_first_keeps_its_caller_when_an_init_comes_later() {
        use observer_common::slot::phase::INIT_BEFORE_FILTER;
        let mut f = made(by("sh", 5), CONTAINER);
        assert!(f.container_use.is_none(), "nothing kept apart: the first use is the container's");
        assert_eq!(f.container_caller().map(|c| c.pid), Some(5));
        // A `docker exec`'s init makes it later: the container's first call stays known.
        f.add_phase(INIT_BEFORE_FILTER, false, || by("runc:[2:INIT]", 99));
        assert_eq!(f.container_caller().map(|c| c.pid), Some(5));
    }

    #[test]
    fn a_denial_in_the_container_is_its_first_call_there() {
        use observer_common::slot::phase::INIT_BEFORE_FILTER;
        let mut f = made(by("runc:[2:INIT]", 10), INIT_BEFORE_FILTER);
        f.add_phase(CONTAINER, true, || by("unshare", 40));
        assert!(f.denied_seen && f.denied_phases.contains(CONTAINER) && !f.phases.contains(CONTAINER));
        assert_eq!(f.container_caller().map(|c| c.pid), Some(40));
    }

    #[test]
    fn an_older_record_does_not_name_runc_as_the_container() {
        // Saved before the container's first call was kept apart: not known.
        let f: FirstUse = serde_json::from_value(json!({"phases": [0, 2], "first_seen": "", "pid": 1,
            "comm": "runc", "denied_seen": false}))
        .unwrap();
        assert_eq!(f.container_caller(), None);
    }

    #[test]
    fn an_entry_needs_no_heap() {
        let f = FirstUse { comm: "observer-testpr".into(), first_seen: Stamp::now(), ..FirstUse::default() };
        assert!(!f.comm.is_heap_allocated(), "a 15-byte command name is kept inline");
        assert!(std::mem::size_of::<FirstUse>() <= 64, "{} bytes", std::mem::size_of::<FirstUse>());
    }
}
