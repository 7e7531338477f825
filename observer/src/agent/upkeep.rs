//! The background upkeep of records: live reads of the slots, cgroups that
//! ended, pids and seccomp modes, learning windows and retention, and the
//! periodic sweep of the kernel's tables.

use std::collections::HashMap;

use observer_common::slot::phase;
use observer_contract::views::State;
use observer_probe::RowCounts;

use super::{
    core::{Agent, all_under_seccomp_filter},
    identity::IdentityJob,
    model::CgroupRecord,
};
use crate::clock::now;

impl Agent {
    /// Reads every live slot (non-destructively), notices ended cgroups,
    /// applies learning windows and retention.
    pub fn tick(&mut self) {
        self.read_slots(usize::MAX);
        self.refresh();
    }

    /// Reads live slots, at most `budget` of them, round-robin: with thousands of
    /// cgroups each tick reads a share, so a tick's cost stays bounded.
    pub fn read_slots(&mut self, budget: usize) {
        let chosen = round_robin(self.slot_owner.keys().copied().collect(), self.next_slot_to_read, budget);
        self.next_slot_to_read = chosen.last().map_or(0, |s| s + 1);
        self.read_these_slots(&chosen, Reading::WHOLE);
    }

    /// Fresh counts of every live slot, for an answer that lists counts (`ps`,
    /// the live feed): memory reads only, and no argument sets (the background
    /// read folds those, and notices cgroups that ended).
    pub fn read_counts(&mut self) {
        let all: Vec<u32> = self.slot_owner.keys().copied().collect();
        self.read_these_slots(&all, Reading::COUNTS);
    }

    /// Fresh counts and facts of one record only (`observer profile show`):
    /// an answer about one container costs the same with 10,000 others.
    pub fn refresh_record(&mut self, key: &str) {
        let slots: Vec<u32> =
            self.containers.get(key).map(|r| r.cgroups.values().filter_map(|c| c.slot).collect()).unwrap_or_default();
        self.read_these_slots(&slots, Reading::WHOLE);
        let mount = self.mount();
        if let Some(record) = self.containers.get_mut(key)
            && record.state == State::Running
        {
            runtime_facts(&mount, record);
        }
    }

    /// Reads `chosen` slots into their records; with `check_alive`, a slot
    /// whose cgroup is gone gets its final read and goes back to the kernel.
    fn read_these_slots(&mut self, chosen: &[u32], reading: Reading) {
        let Reading { check_alive, args } = reading;
        let mount = self.mount();
        let mut ended: Vec<(String, u64, u32)> = Vec::new();
        let wraps = self.probe.wraps();
        for &slot in chosen {
            let Some((key, cgroup_id)) = self.slot_owner.get(&slot) else { continue };
            let cgroup_id = *cgroup_id;
            // Cells only grow, so their sum changes whenever one does: a slot
            // whose sum is the last reading's, with nothing in `WRAPS`, has
            // nothing new (most slots, most of the time, on a busy node).
            let sum = self.probe.counters().cells_sum(slot);
            let last = self.last_reads.entry((slot, cgroup_id)).or_default();
            let unchanged = !wraps.has_slot(slot) && last.cells_sum.replace(sum) == Some(sum);
            if unchanged && !check_alive && !args {
                // Nothing else to look at: an answer over 10,000 quiet slots
                // costs 10,000 sums.
                continue;
            }
            let key = key.clone();
            let rows = if unchanged { Vec::new() } else { self.probe.rows(slot, &wraps) };
            // The value sets only grow, and rarely: decoded only when their
            // words changed since this slot's last reading.
            let raw = args.then(|| self.probe.counters().args(slot));
            let args_changed = raw.as_ref().is_some_and(|raw| {
                let fingerprint = args_fingerprint(raw);
                last.args.replace(fingerprint) != Some(fingerprint)
            });
            let Some(record) = self.containers.get_mut(&key) else { continue };
            let new_args = args_changed
                && raw.as_ref().is_some_and(|raw| record.fold_args(&observer_profile::args::SeenArgs::from_sets(raw)));
            let Some(cg) = record.cgroups.get_mut(&cgroup_id) else { continue };
            let changed = fold_rows(cg, &rows) | new_args;
            // Same path, other inode: the cgroup was removed and made again
            // (docker restart); the old one ended.
            let alive = !check_alive || {
                let dir = mount.join(cg.path.trim_start_matches('/'));
                std::fs::metadata(&dir).is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == cgroup_id)
            };
            if changed {
                record.last_seen = now();
                // Counts alone are saved rarely: the kernel's counters are cumulative,
                // so a restart still adds up what happened since the last save.
                self.counts_dirty.insert(key.clone());
            }
            if !alive {
                ended.push((key.clone(), cgroup_id, slot));
            }
        }
        for (key, cgroup_id, slot) in ended {
            self.end_cgroup(&key, cgroup_id, slot);
        }
    }

    /// Forgets ignored cgroups that are gone, and lets cgroups that found every
    /// slot taken try again (the kernel gives them a slot on their next call).
    /// `alive` is a walk of the v2 tree, taken by the caller without the lock.
    /// Returns the jobs that ask the runtimes about cgroups given a slot here.
    pub fn sweep(&mut self, alive: HashMap<u64, String>) -> Vec<IdentityJob> {
        let mut jobs = Vec::new();
        self.probe.sweep_ignored(|id| alive.contains_key(&id));
        // Cgroups that came when every slot was taken: a slot now, if one is free.
        // Their start went unseen, so the slot has no init phase: everything in
        // them is the container's own (and enforced as such).
        let entries: Vec<(u64, u32)> = self.probe.maps.cgroups.iter().filter_map(Result::ok).collect();
        self.check_cgroups_room(entries.len());
        let overflowed: Vec<u64> = entries
            .into_iter()
            .filter(|(_, slot)| *slot == observer_common::slot::SLOT_OVERFLOW)
            .map(|(id, _)| id)
            .collect();
        for id in overflowed {
            if !alive.contains_key(&id) {
                let _ = self.probe.maps.cgroups.remove(&id);
                self.probe.forget_cached(id);
                continue;
            }
            // Every process there under a filter (Docker's default): a `docker
            // exec`'s init, the one task without one, can then be told apart.
            let all_filtered = all_under_seccomp_filter(&self.mount().join(alive[&id].trim_start_matches('/')));
            match self.probe.give_slot_without_init(id, all_filtered) {
                Ok(Some(slot)) => {
                    self.known_paths.insert(id, alive[&id].clone());
                    jobs.extend(self.on_new_cgroup(id, slot, 0, ""));
                }
                // No slot free (or the kernel gave it one meanwhile).
                Ok(None) => {}
                Err(e) => tracing::warn!("giving overflowed cgroup {id} a slot: {e:#}"),
            }
        }
        self.overflow_alerted.retain(|id| alive.contains_key(id));
        self.forget_fresh_paths(&alive);
        self.known_paths.retain(|id, _| alive.contains_key(id));
        self.known_paths.extend(alive);
        jobs
    }

    /// Pids, seccomp modes, learning windows and retention (cheap, per tick).
    pub fn refresh(&mut self) {
        self.refresh_runtime_facts();
        self.refresh_rules();
    }

    /// Learning windows, retention and the record cap: no file reads.
    pub fn refresh_rules(&mut self) {
        self.apply_learning();
        self.apply_retention();
        self.cap_records();
    }

    /// The next `budget` running records whose pids and seccomp mode the
    /// background read refreshes, round-robin, as the cgroup directories to
    /// read: the reading itself happens without the lock (`read_facts`), so a
    /// node with 10,000 containers neither holds the lock for the file reads
    /// nor reads them all every second.
    pub fn facts_round(&mut self, budget: usize) -> Vec<FactsJob> {
        let mount = self.mount();
        let after = std::mem::take(&mut self.next_facts_key);
        type Entry<'a> = (&'a String, &'a super::model::ContainerRecord);
        let running = |(_, r): &Entry| r.state == State::Running;
        let mut chosen: Vec<Entry> = self
            .containers
            .range::<String, _>((std::ops::Bound::Excluded(&after), std::ops::Bound::Unbounded))
            .filter(running)
            .take(budget)
            .collect();
        if chosen.len() < budget {
            // Wrapped around: the rest from the start.
            let more = budget - chosen.len();
            chosen.extend(self.containers.range(..=after).filter(running).take(more));
        }
        self.next_facts_key = chosen.last().map(|(k, _)| (*k).clone()).unwrap_or_default();
        chosen
            .into_iter()
            .map(|(key, r)| FactsJob {
                key: key.clone(),
                dirs: r
                    .cgroups
                    .values()
                    .filter(|c| c.slot.is_some())
                    .map(|c| mount.join(c.path.trim_start_matches('/')))
                    .collect(),
            })
            .collect()
    }

    /// What `read_facts` found, into the records still running.
    pub fn apply_facts(&mut self, facts: Vec<Facts>) {
        for f in facts {
            if let Some(record) = self.containers.get_mut(&f.key)
                && record.state == State::Running
            {
                if let Some(mode) = f.seccomp_mode {
                    record.seccomp_mode = Some(record.seccomp_mode.unwrap_or(0).max(mode));
                }
                record.pids = f.pids;
                record.facts_read = true;
            }
        }
    }

    /// The final read of an ended cgroup, then its slot goes back to the kernel.
    pub(super) fn end_cgroup(&mut self, key: &str, cgroup_id: u64, slot: u32) {
        self.final_read(key, cgroup_id, slot);
        if let Err(e) = self.probe.release_slot(cgroup_id, slot) {
            tracing::warn!("releasing slot {slot}: {e:#}");
        }
    }

    /// As `end_cgroup`, for a cgroup that lives on but loses its slot (taken
    /// back for a container, see `slot_share`): it goes to the kernel's
    /// `IGNORED` map, so that it never opens a slot again.
    pub(super) fn end_cgroup_ignored(&mut self, key: &str, cgroup_id: u64, slot: u32) {
        self.final_read(key, cgroup_id, slot);
        if let Err(e) = self.probe.ignore(cgroup_id, Some(slot)) {
            tracing::warn!("giving slot {slot} back: {e:#}");
        }
    }

    /// A cgroup's last reading into its record, which forgets its slot.
    fn final_read(&mut self, key: &str, cgroup_id: u64, slot: u32) {
        let rows = self.probe.rows(slot, &self.probe.wraps());
        let args = self.probe.args(slot);
        self.last_reads.remove(&(slot, cgroup_id));
        if let Some(record) = self.containers.get_mut(key) {
            record.fold_args(&args);
            if let Some(cg) = record.cgroups.get_mut(&cgroup_id) {
                for r in &rows {
                    cg.rows.update(r);
                }
                cg.slot = None;
            }
            record.retire_ended_cgroups();
            if record.cgroups.values().all(|c| c.slot.is_none()) {
                let own = record
                    .first_use
                    .values()
                    .any(|f| f.phases.contains(phase::CONTAINER) || f.denied_phases.contains(phase::CONTAINER));
                record.state =
                    if own || record.observed_since.is_some() { State::Exited } else { State::FailedToStart };
                record.ended_at = Some(now());
                record.pids.clear();
                tracing::info!(container = %record.name, state = ?record.state, "container ended");
                // Its runtime's answer is not needed again (a restart asks anew):
                // the cache holds running containers only, not every one that ran.
                self.resolver.forget(key);
            }
            self.dirty.insert(key.to_owned());
        }
        self.slot_owner.remove(&slot);
        self.known_paths.remove(&cgroup_id);
    }

    /// Pids and seccomp modes of running records never read yet (new
    /// containers), for `ps`: the others come from the background read.
    pub fn refresh_new_facts(&mut self) {
        let mount = self.mount();
        for record in self.containers.values_mut() {
            if record.state == State::Running && !record.facts_read {
                runtime_facts(&mount, record);
            }
        }
    }

    pub(super) fn refresh_runtime_facts(&mut self) {
        let mount = self.mount();
        for record in self.containers.values_mut().filter(|r| r.state == State::Running) {
            runtime_facts(&mount, record);
        }
    }

    pub(super) fn apply_learning(&mut self) {
        let Some(window) = self.learn_for else { return };
        let now_t = time::OffsetDateTime::now_utc();
        for record in self.containers.values_mut() {
            if record.baseline.is_some() || record.state != State::Running {
                continue;
            }
            let Ok(first) =
                time::OffsetDateTime::parse(&record.first_seen, &time::format_description::well_known::Rfc3339)
            else {
                continue;
            };
            if now_t - first >= window {
                record.baseline = Some(record.own_rows());
                record.baseline_source = Some(format!("learned over {}", humantime::format_duration(window)));
                self.dirty.insert(record.id.clone());
            }
        }
    }

    pub(super) fn apply_retention(&mut self) {
        let now_t = time::OffsetDateTime::now_utc();
        let expired: Vec<String> = self
            .containers
            .values()
            .filter(|r| r.state != State::Running)
            .filter(|r| {
                r.ended_at
                    .as_deref()
                    .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
                    .is_some_and(|t| now_t - t > self.retention)
            })
            .map(|r| r.id.clone())
            .collect();
        for key in expired {
            self.containers.remove(&key);
            self.store.remove(&key);
        }
    }
}

/// What a read of slots takes besides the counts.
#[derive(Clone, Copy)]
struct Reading {
    /// Whether each slot's cgroup is checked to still be there (a stat each).
    check_alive: bool,
    /// Whether the argument value sets are read and folded.
    args: bool,
}

impl Reading {
    const WHOLE: Reading = Reading { check_alive: true, args: true };
    const COUNTS: Reading = Reading { check_alive: false, args: false };
}

/// The slots one round reads: at most `budget`, in slot order, starting at
/// `next` and wrapping, so that with thousands of cgroups each round reads a
/// share and every slot comes in turn.
pub(super) fn round_robin(mut slots: Vec<u32>, next: u32, budget: usize) -> Vec<u32> {
    slots.sort_unstable();
    let start = slots.partition_point(|s| *s < next);
    let take = budget.min(slots.len());
    slots.iter().cycle().skip(start).take(take).copied().collect()
}

/// The cgroup directories of one record whose facts to read.
pub struct FactsJob {
    key: String,
    dirs: Vec<std::path::PathBuf>,
}

/// A record's pids and seccomp mode as read.
pub struct Facts {
    key: String,
    pids: Vec<u32>,
    seccomp_mode: Option<u32>,
}

/// Reads the facts of `jobs` (file reads: call without the agent's lock).
pub fn read_facts(jobs: Vec<FactsJob>) -> Vec<Facts> {
    jobs.into_iter()
        .map(|job| {
            let (pids, seccomp_mode) = facts_of(&job.dirs);
            Facts { key: job.key, pids, seccomp_mode }
        })
        .collect()
}

/// Pids in these cgroup directories, and the seccomp mode of the newest.
fn facts_of(dirs: &[std::path::PathBuf]) -> (Vec<u32>, Option<u32>) {
    let mut pids = Vec::new();
    for dir in dirs {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
    }
    pids.sort_unstable();
    let mode = pids.last().and_then(|pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("Seccomp:")).and_then(|v| v.trim().parse::<u32>().ok())
    });
    (pids, mode)
}

/// A running record's pids and seccomp mode, from its cgroups and /proc.
fn runtime_facts(mount: &std::path::Path, record: &mut super::model::ContainerRecord) {
    let dirs: Vec<std::path::PathBuf> = record
        .cgroups
        .values()
        .filter(|c| c.slot.is_some())
        .map(|c| mount.join(c.path.trim_start_matches('/')))
        .collect();
    let (pids, mode) = facts_of(&dirs);
    if let Some(mode) = mode {
        record.seccomp_mode = Some(record.seccomp_mode.unwrap_or(0).max(mode));
    }
    record.pids = pids;
    record.facts_read = true;
}

/// FNV-1a over a slot's value set words: whether they changed since the last read.
fn args_fingerprint(sets: &observer_common::args::ArgSets) -> u64 {
    sets.bits
        .iter()
        .chain(&sets.values)
        .chain([&sets.overflow])
        .fold(0xcbf2_9ce4_8422_2325u64, |h, w| (h ^ w).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Adds a live reading of a slot's counters to a cgroup's totals; whether
/// anything changed. The kernel's counters are cumulative u32s: each total
/// grows by the difference since the last reading, wraps included.
pub(super) fn fold_rows(cg: &mut CgroupRecord, rows: &[RowCounts]) -> bool {
    rows.iter().fold(false, |changed, r| cg.rows.update(r) | changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_take_turns_over_the_slots() {
        let slots = vec![7, 1, 3, 9];
        assert_eq!(round_robin(slots.clone(), 0, 2), [1, 3]);
        assert_eq!(round_robin(slots.clone(), 4, 2), [7, 9]);
        assert_eq!(round_robin(slots.clone(), 10, 3), [1, 3, 7], "wraps");
        assert_eq!(round_robin(slots, 0, 100), [1, 3, 7, 9], "never a slot twice");
    }

    #[test]
    fn readings_add_up_past_2_pow_32_and_report_change() {
        let mut cg = CgroupRecord::default();
        let reading = |calls: u64| [RowCounts { row: 90, calls, errors: 0, denied: 0 }];
        assert!(fold_rows(&mut cg, &reading(u64::from(u32::MAX) - 1)));
        assert!(!fold_rows(&mut cg, &reading(u64::from(u32::MAX) - 1)), "the same reading changes nothing");
        // Exact readings (cell plus wraps): three wraps since the last one.
        assert!(fold_rows(&mut cg, &reading((3 << 32) + 3)));
        assert_eq!(cg.rows.get(90).map(|t| t.calls), Some((3 << 32) + 3));
    }
}
