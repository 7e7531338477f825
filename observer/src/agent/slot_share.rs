//! What one owner may hold of the kernel's slot table. A user with a
//! delegated cgroup subtree (systemd's `user@UID.service`), or a container
//! with a writable cgroupfs, can make cgroups as fast as it likes, and the
//! kernel gives each one a slot at its first call. Without a bound, such
//! cgroups take every slot, and the containers that start afterwards go
//! unrecorded and unenforced.
//!
//! The owner of a cgroup is the uid of its directory. Root's cgroups (what
//! container runtimes make) are not bounded here; every other owner holds at
//! most `per_owner` slots, and a container the runtime makes gets one of
//! theirs back when the table is full (`Agent::on_overflow`).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
    path::Path,
};

use observer_contract::alerts::{Alert, AlertKind};

use super::{Agent, alerting::blank};

/// The uid that owns a cgroup's directory; None when it is gone.
pub fn owner_of(dir: &Path) -> Option<u32> {
    std::fs::metadata(dir).ok().map(|m| m.uid())
}

/// Slots held by unprivileged owners' cgroups.
#[derive(Debug, Default)]
pub struct SlotShares {
    /// At most this many slots per owner other than root (`--slots-per-owner`).
    pub per_owner: u32,
    /// slot -> (owner uid, cgroup id). An entry is stale once the slot went
    /// to another cgroup (or back to the kernel): `live` tells, and stale
    /// entries are dropped as they are met.
    held: HashMap<u32, (u32, u64)>,
    /// Owners already alerted for reaching their share: once each, until
    /// they hold less again.
    alerted: HashSet<u32>,
    /// Whether the full `CGROUPS` map was alerted (until it has room again).
    cgroups_full_alerted: bool,
}

impl SlotShares {
    pub fn new(per_owner: u32) -> Self {
        Self { per_owner: per_owner.max(1), ..Self::default() }
    }

    /// Notes that `uid`'s cgroup `cgroup_id` holds `slot` now.
    pub fn note(&mut self, slot: u32, uid: u32, cgroup_id: u64) {
        self.held.insert(slot, (uid, cgroup_id));
    }

    /// Drops entries whose slot no longer holds their cgroup.
    fn prune(&mut self, live: impl Fn(u32, u64) -> bool) {
        self.held.retain(|slot, (_, cgroup_id)| live(*slot, *cgroup_id));
    }

    /// Slots held now, by owner.
    pub fn by_owner(&mut self, live: impl Fn(u32, u64) -> bool) -> BTreeMap<u32, u32> {
        self.prune(live);
        let mut out = BTreeMap::new();
        for (uid, _) in self.held.values() {
            *out.entry(*uid).or_insert(0) += 1;
        }
        out
    }

    /// Whether `uid` may take one more slot; an owner below its share again
    /// is alerted again the next time it reaches it.
    pub fn may_take(&mut self, uid: u32, live: impl Fn(u32, u64) -> bool) -> bool {
        let held = self.by_owner(live).get(&uid).copied().unwrap_or(0);
        let ok = held < self.per_owner;
        if ok {
            self.alerted.remove(&uid);
        }
        ok
    }

    /// Whether an owner that reached its share is alerted now (the first time).
    pub fn first_refusal(&mut self, uid: u32) -> bool {
        self.alerted.insert(uid)
    }

    /// A slot to take back for a container the table has no room for: the
    /// newest of the owner holding the most (None: no unprivileged owner
    /// holds any). Removed from the shares.
    pub fn take_back(&mut self, live: impl Fn(u32, u64) -> bool) -> Option<(u32, u64, u32)> {
        let counts = self.by_owner(live);
        let (&uid, _) = counts.iter().max_by_key(|(uid, n)| (**n, std::cmp::Reverse(**uid)))?;
        // Newest: the largest cgroup id (kernfs ids grow) of that owner.
        let (&slot, &(_, cgroup_id)) =
            self.held.iter().filter(|(_, (u, _))| *u == uid).max_by_key(|(_, (_, cgroup_id))| *cgroup_id)?;
        self.held.remove(&slot);
        Some((slot, cgroup_id, uid))
    }
}

impl Agent {
    /// Whether `slot`, which the kernel gave `cgroup_id` at `path`, stays with
    /// it: root's cgroups keep theirs; another owner's only within its share.
    /// Past it, the cgroup goes to the kernel's `IGNORED` map (its calls cost a
    /// lookup, and it never comes back for a slot) and its slot is freed.
    pub(super) fn within_share(&mut self, cgroup_id: u64, slot: u32, path: &str, tgid: u32, comm: &str) -> bool {
        let Some(uid) = owner_of(&self.resolver.mount().join(path.trim_start_matches('/'))).filter(|u| *u != 0) else {
            return true;
        };
        let owners = &self.slot_owner;
        if self.shares.may_take(uid, |s, c| owners.get(&s).is_some_and(|(_, o)| *o == c)) {
            self.shares.note(slot, uid, cgroup_id);
            return true;
        }
        if let Err(e) = self.probe.ignore(cgroup_id, Some(slot)) {
            tracing::warn!("could not ignore cgroup {path}: {e:#}");
        }
        let why =
            format!("uid {uid} holds its share of the slot table ({} slots, --slots-per-owner)", self.shares.per_owner);
        self.refuse(uid, path, tgid, comm, &why);
        false
    }

    /// A cgroup of an unprivileged owner that arrived with every slot taken:
    /// never recorded. It leaves `CGROUPS` for `IGNORED`, so that such
    /// cgroups cannot fill `CGROUPS` itself (where a full map makes the
    /// kernel drop new cgroups without an event).
    pub(super) fn refuse_overflowed(&mut self, cgroup_id: u64, uid: u32, path: &str, tgid: u32, comm: &str) {
        if let Err(e) = self.probe.ignore(cgroup_id, None) {
            tracing::warn!("could not ignore cgroup {path}: {e:#}");
        }
        let why = format!("every slot is taken: {}", self.table_holders());
        self.refuse(uid, path, tgid, comm, &why);
    }

    /// One `overflow` alert per owner (until it holds less again).
    fn refuse(&mut self, uid: u32, path: &str, tgid: u32, comm: &str, why: &str) {
        tracing::debug!(cgroup = %path, uid, "not recorded: {why}");
        if !self.shares.first_refusal(uid) {
            return;
        }
        tracing::warn!(cgroup = %path, uid, "not recorded: {why}; this owner's further cgroups are not recorded either");
        let alert = Alert {
            id: path.to_owned(),
            name: format!("uid {uid}"),
            pid: tgid,
            comm: comm.to_owned(),
            detail: Some(format!(
                "{path}: {why}; this owner's cgroups past it are not recorded (alerted once per owner)"
            )),
            ..blank(AlertKind::Overflow)
        };
        self.alerts_total += 1;
        self.write_alert(&alert);
    }

    /// Who holds the slot table now (for alerts): the largest owners first.
    pub(super) fn table_holders(&mut self) -> String {
        let owners = &self.slot_owner;
        let by_owner = self.shares.by_owner(|s, c| owners.get(&s).is_some_and(|(_, o)| *o == c));
        let unprivileged: u32 = by_owner.values().sum();
        let root_held = (self.slot_owner.len() as u32).saturating_sub(unprivileged);
        holders(root_held, &by_owner, self.probe.slots())
    }

    /// A slot for `cgroup_id`, a container root's runtime made, taken back
    /// from the unprivileged owner holding the most (its newest cgroup: a
    /// final read, then it goes to `IGNORED`). None when no unprivileged
    /// owner holds a slot, or the kernel gave each freed slot to another new
    /// cgroup first.
    pub(super) fn slot_taken_back(&mut self, cgroup_id: u64, path: &str, tgid: u32, comm: &str) -> Option<u32> {
        let dir = self.resolver.mount().join(path.trim_start_matches('/'));
        for _ in 0..4 {
            let owners = &self.slot_owner;
            let (slot, victim, uid) = self.shares.take_back(|s, c| owners.get(&s).is_some_and(|(_, o)| *o == c))?;
            let Some((key, _)) = self.slot_owner.get(&slot).cloned() else { continue };
            tracing::warn!(cgroup = %path, slot, uid, victim, "every slot is taken: a slot of uid {uid}'s cgroup {victim} goes to a container");
            self.end_cgroup_ignored(&key, victim, slot);
            // The slot comes at the cgroup's first call, made by the runtime's
            // init: while that init still runs unfiltered, the kernel learns
            // its executable from its next call (LEARN_INIT), so that the
            // container's start is not judged as the container's own calls.
            let learn_init = super::core::all_under_seccomp_filter(&dir) || runtime_init_unfiltered(tgid, comm);
            match self.probe.give_slot_without_init(cgroup_id, learn_init) {
                Ok(Some(slot)) => return Some(slot),
                // Another new cgroup took the freed slot first.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("giving container cgroup {path} a slot: {e:#}");
                    return None;
                }
            }
        }
        None
    }

    /// A full `CGROUPS` map: the kernel then drops a new cgroup's first call
    /// with no slot, no marker and no event (only `cgroups_overflow` counts
    /// it). One alert, naming who holds the table, until it has room again.
    pub(super) fn check_cgroups_room(&mut self, entries: usize) {
        let capacity = self.probe.cgroups_capacity() as usize;
        if entries < capacity {
            self.shares.cgroups_full_alerted = false;
            return;
        }
        if std::mem::replace(&mut self.shares.cgroups_full_alerted, true) {
            return;
        }
        let holders = self.table_holders();
        tracing::warn!("the kernel's cgroup table is full ({entries} entries): new cgroups go unrecorded; {holders}");
        let alert = Alert {
            detail: Some(format!(
                "the kernel's cgroup table (CGROUPS) is full ({entries} of {capacity} entries): new cgroups are neither recorded nor alerted one by one; {holders}"
            )),
            ..blank(AlertKind::Overflow)
        };
        self.alerts_total += 1;
        self.write_alert(&alert);
    }

    /// After a restart: the shares of the slots the records hold.
    pub(super) fn count_shares(&mut self) {
        let mount = self.resolver.mount().to_path_buf();
        for (slot, (key, cgroup_id)) in &self.slot_owner {
            let Some(cg) = self.containers.get(key).and_then(|r| r.cgroups.get(cgroup_id)) else { continue };
            if let Some(uid) = owner_of(&mount.join(cg.path.trim_start_matches('/'))).filter(|u| *u != 0) {
                self.shares.note(*slot, uid, *cgroup_id);
            }
        }
    }
}

/// Whether `tgid`, which made the cgroup's first call as `comm`, is a
/// container runtime's init (runc's or crun's) that runs without a seccomp
/// filter yet: the one task a slot given without an init may learn its init
/// from. Its executable is often no help here (runc's init runs a copy of
/// runc that /proc shows as `/`), so the kernel's comm at that call counts too.
fn runtime_init_unfiltered(tgid: u32, comm: &str) -> bool {
    let is_runtime = |name: &str| name.starts_with("runc") || name.starts_with("crun");
    let exe = std::fs::read_link(format!("/proc/{tgid}/exe")).unwrap_or_default();
    let exe_name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let runtime = is_runtime(comm) || is_runtime(&exe_name) || exe.to_string_lossy().contains("memfd:runc");
    let unfiltered = std::fs::read_to_string(format!("/proc/{tgid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Seccomp:")).map(|v| v.trim() == "0"))
        .unwrap_or(false);
    runtime && unfiltered
}

/// Who holds the slot table: "uid 65534 holds 4, uid 0 holds 28 (of 32)",
/// the largest holder first.
pub fn holders(root_held: u32, by_owner: &BTreeMap<u32, u32>, slots: u32) -> String {
    let mut all: Vec<(u32, u32)> = by_owner.iter().map(|(u, n)| (*u, *n)).collect();
    if root_held > 0 {
        all.push((0, root_held));
    }
    all.sort_by_key(|(uid, n)| (std::cmp::Reverse(*n), *uid));
    let parts: Vec<String> = all.iter().take(3).map(|(uid, n)| format!("uid {uid} holds {n}")).collect();
    let more = if all.len() > 3 { format!(", {} more owner(s)", all.len() - 3) } else { String::new() };
    format!("{}{more} (of {slots} slots)", if parts.is_empty() { "nobody holds any".into() } else { parts.join(", ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_holds_at_most_its_share() {
        let mut s = SlotShares::new(2);
        let live = |_: u32, _: u64| true;
        assert!(s.may_take(1000, live));
        s.note(1, 1000, 11);
        assert!(s.may_take(1000, live));
        s.note(2, 1000, 12);
        assert!(!s.may_take(1000, live), "two of two");
        assert!(s.may_take(1001, live), "another owner has its own share");
        assert!(s.first_refusal(1000));
        assert!(!s.first_refusal(1000), "alerted once");
    }

    #[test]
    fn a_slot_given_back_or_reused_counts_no_more() {
        let mut s = SlotShares::new(1);
        s.note(1, 1000, 11);
        assert!(!s.may_take(1000, |_, _| true));
        s.first_refusal(1000);
        // Slot 1 went to cgroup 99 since.
        let live = |slot: u32, cgroup_id: u64| (slot, cgroup_id) == (1, 99);
        assert!(s.may_take(1000, live));
        assert!(s.first_refusal(1000), "below its share, then at it again: alerted again");
    }

    #[test]
    fn the_largest_holders_newest_slot_is_taken_back() {
        let mut s = SlotShares::new(8);
        s.note(1, 1000, 10);
        s.note(2, 2000, 20);
        s.note(3, 2000, 30);
        s.note(4, 2000, 25);
        let live = |_: u32, _: u64| true;
        assert_eq!(s.take_back(live), Some((3, 30, 2000)));
        assert_eq!(s.take_back(live), Some((4, 25, 2000)));
        // 1000 and 2000 hold one each now: the lower uid first, for a stable choice.
        assert_eq!(s.take_back(live), Some((1, 10, 1000)));
        assert_eq!(s.take_back(live), Some((2, 20, 2000)));
        assert_eq!(s.take_back(live), None);
    }

    #[test]
    fn holders_name_the_largest_first() {
        let by: BTreeMap<u32, u32> = [(65534, 4), (1000, 1)].into();
        assert_eq!(holders(27, &by, 32), "uid 0 holds 27, uid 65534 holds 4, uid 1000 holds 1 (of 32 slots)");
        assert_eq!(holders(0, &BTreeMap::new(), 32), "nobody holds any (of 32 slots)");
    }
}
