//! The agent's own faults, reported and repaired: state files it cannot write
//! (disk full, read-only), kernel events the ring buffer dropped (and the
//! slots and first uses they were about), and what months of churn would
//! otherwise pile up in memory (ended records, paths of cgroups long gone).

use std::collections::{HashMap, HashSet};

use observer_common::{counters::BITMAP_WORDS, slot::phase};
use observer_contract::{
    alerts::{Alert, AlertKind},
    views::State,
};

use super::{
    core::Agent,
    identity::IdentityJob,
    model::{Caller, Stamp},
    saving::WriteReport,
};

/// What the agent knows of its own faults.
#[derive(Debug, Default)]
pub struct Health {
    /// State file writes that failed since start.
    pub write_errors: u64,
    /// Why the latest write failed, while writes fail.
    pub write_error: Option<String>,
    /// Whether this episode of failed writes was alerted already.
    write_alerted: bool,
    /// The kernel's count of dropped events, as last looked at.
    events_lost_seen: u64,
    /// Dropped events not yet made up for by a scan of the slot table.
    repair_first_uses: bool,
    /// Slots held by a cgroup the agent does not know, at the previous scan.
    unowned: HashSet<(u32, u64)>,
}

impl Agent {
    /// Reports a round of state file writes: the first failure of an episode
    /// is logged and alerted; a round that writes again ends the episode.
    pub(super) fn report_writes(&mut self, report: &WriteReport) {
        if let Some((_, why)) = report.failed.first() {
            self.health.write_errors += report.failed.len() as u64;
            if self.health.write_error.is_none() {
                tracing::error!(
                    "{} state file(s) could not be written ({why}): kept in memory and written again once {} takes writes",
                    report.failed.len(),
                    self.store.dir().display()
                );
            }
            self.health.write_error = Some(why.clone());
            if !self.health.write_alerted {
                self.health.write_alerted = true;
                let detail = format!(
                    "state files cannot be written ({why}); records are kept in memory and written again once the directory takes writes"
                );
                self.agent_alert(AlertKind::StateWriteFailed, detail);
            }
        } else if report.written > 0 && self.health.write_error.take().is_some() {
            tracing::info!("{} takes writes again: the records held back are written", self.store.dir().display());
            self.health.write_alerted = false;
        }
    }

    /// An alert about the agent itself (not a container): `id` is the state directory.
    fn agent_alert(&mut self, kind: AlertKind, detail: String) {
        self.alerts_total += 1;
        let alert = Alert {
            id: self.store.dir().display().to_string(),
            name: "observer".into(),
            pid: std::process::id(),
            detail: Some(detail),
            ..super::alerting::blank(kind)
        };
        self.write_alert(&alert);
    }

    /// Alerts when the kernel dropped events since the last look (the ring
    /// buffer was full: the agent was stopped, or far behind). At start, any
    /// loss counted since the programs were loaded is alerted once (most
    /// happen while no agent drains the buffer); the start-up scan makes up for them.
    pub(super) fn check_events_lost(&mut self, at_start: bool) {
        let Ok(stats) = self.probe.stats() else { return };
        let lost = stats[observer_common::stats::EVENTS_LOST as usize];
        if lost <= self.health.events_lost_seen {
            return;
        }
        let new = lost - self.health.events_lost_seen;
        self.health.events_lost_seen = lost;
        self.health.repair_first_uses = true;
        let when = if at_start { "some perhaps while no agent ran" } else { "the agent fell behind" };
        tracing::warn!("the kernel's ring buffer was full: {new} event(s) dropped ({lost} in all; {when})");
        self.agent_alert(
            AlertKind::EventsLost,
            format!(
                "the kernel's ring buffer was full: {new} event(s) dropped ({lost} since the programs were loaded; {when}); new cgroups, first uses and enforcement violations among them are taken from the slot table"
            ),
        );
    }

    /// Makes up for dropped events from the slot table: a slot the kernel
    /// gave a cgroup whose `NewCgroup` event was lost is named now (and so
    /// freed when the cgroup goes, not leaked), and rows the kernel marked seen
    /// but whose first-seen event was lost join the record's first uses.
    ///
    /// A slot is taken up only when it was unowned at the previous scan too: a
    /// slot opened a moment ago has its event still on the way.
    pub(super) fn scan_slot_table(&mut self) -> Vec<IdentityJob> {
        let mut unowned = HashSet::new();
        let mut jobs = Vec::new();
        for slot in 0..self.probe.slots() {
            let cgroup_id = self.probe.counters().info(slot).cgroup_id;
            if cgroup_id == 0 || self.slot_owner.contains_key(&slot) {
                continue;
            }
            if self.health.unowned.contains(&(slot, cgroup_id)) {
                tracing::info!(slot, cgroup_id, "a slot whose new-cgroup event was lost: named now");
                jobs.extend(self.on_new_cgroup(cgroup_id, slot, 0, ""));
            } else {
                unowned.insert((slot, cgroup_id));
            }
        }
        self.health.unowned = unowned;
        if std::mem::take(&mut self.health.repair_first_uses) {
            self.repair_first_uses();
            self.replay_lost_violations();
        }
        jobs
    }

    /// Violations the kernel marked in a slot's `violated` bitmap (one event
    /// each) whose `Enforce` event was dropped: alerted now, and in kill mode
    /// the container killed, as the event would have done. The caller itself
    /// was already killed by the kernel; what it ran and when is unknown.
    fn replay_lost_violations(&mut self) {
        use observer_common::{
            counters::{ROW_INVALID, SYSCALLS_PER_ABI},
            event::{Event, EventKind},
            slot::flags,
        };
        let owners: Vec<(u32, String, u64)> =
            self.slot_owner.iter().map(|(slot, (key, cgroup_id))| (*slot, key.clone(), *cgroup_id)).collect();
        let mut replayed = 0usize;
        for (slot, key, cgroup_id) in owners {
            let info = self.probe.counters().info(slot);
            if info.cgroup_id != cgroup_id {
                continue;
            }
            let Some(record) = self.containers.get(&key) else { continue };
            let mut rows: Vec<u32> = rows_of(&info.violated).collect();
            if info.flags & flags::INVALID_VIOLATED != 0 {
                rows.push(ROW_INVALID);
            }
            rows.retain(|row| !record.alerted.contains(&(AlertKind::Enforce.as_str().to_owned(), *row)));
            for row in rows {
                let mut comm = [0u8; 16];
                comm[..12].copy_from_slice(b"(event lost)");
                let e = Event {
                    kind: EventKind::Enforce as u32,
                    slot,
                    row,
                    phase: phase::CONTAINER,
                    tgid: 0,
                    tid: 0,
                    cgroup_id,
                    ktime_ns: crate::clock::boottime_ns(),
                    nr: if row == ROW_INVALID { -1 } else { i64::from(row % SYSCALLS_PER_ABI) },
                    comm,
                    seccomp_mode: 0,
                    _pad: 0,
                };
                self.on_enforce(&e);
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::warn!(replayed, "enforcement violations whose events were lost, taken from the slot table");
        }
    }

    /// Rows each live slot's kernel bitmaps mark as seen, missing from the
    /// record's first uses (their event was dropped): added, with the phase
    /// the kernel saw them in and the time of the repair.
    fn repair_first_uses(&mut self) {
        let owners: Vec<(u32, String)> = self.slot_owner.iter().map(|(slot, (key, _))| (*slot, key.clone())).collect();
        let mut repaired = 0usize;
        for (slot, key) in owners {
            let info = self.probe.counters().info(slot);
            let Some(record) = self.containers.get_mut(&key) else { continue };
            for (p, bitmap) in info.seen.iter().enumerate().take(phase::COUNT) {
                for row in rows_of(bitmap) {
                    let lost = || Caller { first_seen: Stamp::now(), comm: "(event lost)".into(), ..Caller::default() };
                    if record.first_use.add_phase(row, p as u32, false, lost) {
                        repaired += 1;
                        self.dirty.insert(key.clone());
                    }
                }
            }
        }
        if repaired > 0 {
            tracing::info!(repaired, "first uses whose events were lost, taken from the slot table");
        }
    }

    /// Keeps at most `max_records` records in memory (and on disk): past it,
    /// the longest-ended go first, plain cgroups before containers. Retention
    /// bounds them by age; this bounds them under churn (thousands of plain
    /// cgroups a minute under `--watch all`).
    pub(super) fn cap_records(&mut self) {
        if self.containers.len() > self.max_records {
            self.drop_oldest_records();
        }
    }

    /// Called before a new record is made: at the cap, room is made first,
    /// so the cap holds at every moment, not only after the next upkeep.
    pub(super) fn make_room_for_record(&mut self) {
        if self.containers.len() >= self.max_records {
            self.drop_oldest_records();
        }
    }

    fn drop_oldest_records(&mut self) {
        // Down to 99%: this sort then runs once per hundredth of the cap's new
        // records, and no more records go than that (records of containers
        // go only after every ended plain cgroup's).
        let target = self.max_records - (self.max_records / 100).max(1);
        let mut ended: Vec<(bool, String, String)> = self
            .containers
            .values()
            .filter(|r| r.state != State::Running)
            .map(|r| {
                (!r.engine.is_empty() || r.runtime != "plain", r.ended_at.clone().unwrap_or_default(), r.id.clone())
            })
            .collect();
        ended.sort();
        let excess = self.containers.len().saturating_sub(target);
        let mut containers_dropped = Vec::new();
        for (container, _, key) in ended.into_iter().take(excess) {
            self.containers.remove(&key);
            self.store.remove(&key);
            self.dirty.remove(&key);
            self.counts_dirty.remove(&key);
            if container {
                containers_dropped.push(key);
            }
        }
        if !containers_dropped.is_empty() {
            tracing::warn!(
                "records of ended containers dropped (--max-records {}): {}",
                self.max_records,
                containers_dropped.join(", ")
            );
        }
        tracing::info!(
            kept = self.containers.len(),
            max = self.max_records,
            "oldest ended records dropped (--max-records)"
        );
    }

    /// Paths inotify caught for cgroups gone since (never looked up: no
    /// syscall of theirs was seen): dropped, keeping any newer than the walk.
    pub(super) fn forget_fresh_paths(&mut self, alive: &HashMap<u64, String>) {
        let newest = alive.keys().copied().max().unwrap_or(0);
        if let Ok(mut fresh) = self.fresh_paths.lock() {
            fresh.retain(|id, _| *id > newest || alive.contains_key(id));
        }
    }
}

/// The rows set in a first-seen bitmap.
fn rows_of(bitmap: &[u64; BITMAP_WORDS]) -> impl Iterator<Item = u32> + '_ {
    bitmap
        .iter()
        .enumerate()
        .flat_map(|(w, bits)| (0..64u32).filter(move |b| bits & (1u64 << b) != 0).map(move |b| w as u32 * 64 + b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_bitmap() {
        let mut bitmap = [0u64; BITMAP_WORDS];
        bitmap[0] = 0b101;
        bitmap[1] = 1 << 63;
        assert_eq!(rows_of(&bitmap).collect::<Vec<_>>(), [0, 2, 127]);
    }
}
