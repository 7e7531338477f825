//! The agent's state machine: kernel events in, container records, alerts and
//! API answers out. All of it runs under one lock; nothing here blocks long.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
};

use observer_common::{
    counters::{BITMAP_WORDS, ROW_INVALID},
    event::{Event, EventKind},
    slot::{enforce, phase},
};

use crate::views::{Armed, EnforceAction};

use super::{
    alerts::Alert,
    identity::IdentityJob,
    model::{CgroupRecord, ContainerRecord, FirstUse, State},
    store::{PendingWrite, Store},
};
use crate::{
    api::Target,
    container::{ContainerRef, Resolver, confirm::Confirmation},
    probe::{Probe, split_row},
    trace::report::{abi_arch, abi_name},
};

/// What happens to a container an enforcement rule names when the kernel has
/// no slot to record (and so enforce) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OverflowAction {
    /// An `overflow` alert.
    Alert,
    /// The alert, and the container is killed.
    Kill,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    Containers,
    All,
}

/// A baseline given up front, by container name or image.
#[derive(Clone, Debug)]
pub struct BaselineRule {
    pub target: Target,
    pub rows: BTreeSet<u32>,
    pub source: String,
}

/// An enforcement the agent keeps applying (also to containers yet to start).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnforceRule {
    pub target: Target,
    pub action: EnforceAction,
    pub allowed_rows: Vec<u32>,
    pub profile: String,
}

pub struct Agent {
    pub probe: Probe,
    pub resolver: std::sync::Arc<Resolver>,
    pub store: Store,
    pub watch: Watch,
    pub started_at: String,
    pub learn_for: Option<std::time::Duration>,
    pub retention: std::time::Duration,
    pub containers: BTreeMap<String, ContainerRecord>,
    /// slot -> (container key, cgroup id)
    pub slot_owner: HashMap<u32, (String, u64)>,
    pub baselines: Vec<BaselineRule>,
    pub enforcements: Vec<EnforceRule>,
    /// `enforce.json` as last written: it is written only when the rules change.
    pub enforcements_saved: String,
    pub on_overflow: OverflowAction,
    /// Overflowed cgroups already alerted (forgotten when they are gone).
    pub overflow_alerted: std::collections::HashSet<u64>,
    /// Overflowed container cgroups waiting for the runtime to confirm them.
    pub overflow_pending: HashMap<u64, String>,
    pub alerts_total: u64,
    pub dirty: BTreeSet<String>,
    /// cgroup id -> path, filled as cgroups appear (they may vanish before we look).
    pub known_paths: HashMap<u64, String>,
    /// Paths of cgroups as they were created (inotify), for those that end too fast to look up.
    pub fresh_paths: super::cgroup_watch::FreshPaths,
    /// Records whose counts changed since they were last saved.
    pub counts_dirty: BTreeSet<String>,
    pub counts_saved_at: std::time::Instant,
    /// Where the round-robin read of live slots goes on.
    pub next_slot_to_read: u32,
    /// Nanoseconds from a first use in the kernel to the agent knowing it (recent events).
    pub first_seen_latency_ns: std::collections::VecDeque<u64>,
    /// The same, for calls made while a container starts (the runtime's init phases).
    pub first_seen_at_start_latency_ns: std::collections::VecDeque<u64>,
}

/// How often records whose counts alone changed are saved.
pub const COUNTS_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// CLOCK_BOOTTIME, the clock `bpf_ktime_get_boot_ns` reads.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The wall-clock time (RFC 3339) of a kernel timestamp taken with
/// `bpf_ktime_get_boot_ns`: now, minus how long ago that was on CLOCK_BOOTTIME.
/// Right also for events read long after they happened (the agent was down).
pub fn wall_time_of(ktime_ns: u64) -> String {
    let ago = boottime_ns().saturating_sub(ktime_ns);
    let t = time::OffsetDateTime::now_utc() - std::time::Duration::from_nanos(ago);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn comm_of(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(16);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

impl Agent {
    fn mount(&self) -> PathBuf {
        self.resolver.mount().to_path_buf()
    }

    /// Where a cgroup id lives, from what we saw or what inotify caught. No
    /// tree walk here, under the lock: the event reader walks before it locks
    /// (see `unknown_paths`).
    pub(super) fn path_of(&mut self, cgroup_id: u64) -> Option<String> {
        if !self.known_paths.contains_key(&cgroup_id)
            && let Some(p) = self.fresh_paths.lock().ok().and_then(|mut f| f.remove(&cgroup_id))
        {
            self.known_paths.insert(cgroup_id, p);
        }
        self.known_paths.get(&cgroup_id).cloned()
    }

    /// Whether any of these new cgroups has no known path yet (a tree walk,
    /// done by the caller without the lock, names them).
    pub fn unknown_paths(&self, ids: impl IntoIterator<Item = u64>) -> bool {
        let fresh = self.fresh_paths.lock().map(|f| f.clone()).unwrap_or_default();
        ids.into_iter().any(|id| !self.known_paths.contains_key(&id) && !fresh.contains_key(&id))
    }

    /// Handles one kernel event; a new container cgroup returns the job that
    /// asks its runtime (run it without the lock, see `identity`).
    pub fn on_event(&mut self, e: &Event) -> Option<IdentityJob> {
        match EventKind::from_u32(e.kind) {
            Some(EventKind::NewCgroup) => return self.on_new_cgroup(e.cgroup_id, e.slot, e.tgid, &comm_of(&e.comm)),
            Some(EventKind::FirstSeen) => self.on_first_seen(e, false),
            Some(EventKind::FirstDenied) => self.on_first_seen(e, true),
            Some(EventKind::Enforce) => self.on_enforce(e),
            None => tracing::warn!("unknown event kind {} from the kernel", e.kind),
        }
        None
    }

    /// Attaches a slot to a container record (creating the record if needed).
    pub(super) fn adopt(&mut self, key: &str, cgroup_id: u64, slot: u32, path: String, cref: Option<&ContainerRef>, confirmation: Confirmation) {
        let now = now();
        let started_at = self.started_at.clone();
        let record = self.containers.entry(key.to_owned()).or_insert_with(|| {
            let runtime = cref.map(|c| format!("{:?}", c.runtime).to_lowercase()).unwrap_or_else(|| "plain".into());
            ContainerRecord::new(key, runtime, cref.map_or_else(|| path.clone(), |c| c.cgroup.clone()), cgroup_id, now.clone())
        });
        if record.state != State::Running {
            // A restarted container (same id, new cgroup) runs again.
            record.state = State::Running;
            record.ended_at = None;
        }
        let nested = cref.is_some_and(|c| c.cgroup != path);
        if nested {
            // Nested cgroups share the container's notion of "the runtime's init".
            if let Some(main_slot) = record.cgroups.get(&record.cgroup_id).and_then(|c| c.slot) {
                let main = self.probe.counters().info(main_slot);
                self.probe.counters().with_info(slot, |i| {
                    i.init_exe = main.init_exe;
                    // And whether a `docker exec`'s init may still be learned.
                    i.flags |= main.flags & observer_common::slot::flags::LEARN_INIT;
                });
            }
        } else {
            record.cgroup_id = cgroup_id;
        }
        let cg = record.cgroups.entry(cgroup_id).or_insert_with(|| CgroupRecord {
            path,
            slot: None,
            rows: BTreeMap::new(),
            confirmation,
        });
        cg.slot = Some(slot);
        cg.confirmation = confirmation;
        self.slot_owner.insert(slot, (key.to_owned(), cgroup_id));
        let _ = started_at;
        self.dirty.insert(key.to_owned());
    }

    fn on_first_seen(&mut self, e: &Event, denied: bool) {
        let latency = boottime_ns().saturating_sub(e.ktime_ns);
        push_bounded(&mut self.first_seen_latency_ns, latency);
        if e.phase != phase::CONTAINER {
            // The runtime's init phases are the container's start.
            push_bounded(&mut self.first_seen_at_start_latency_ns, latency);
        }
        let Some(key) = self.owner_of(e) else {
            return;
        };
        if e.row >= ROW_INVALID {
            return;
        }
        let Some(record) = self.containers.get_mut(&key) else {
            return;
        };
        let entry = record.first_use.entry(e.row).or_insert_with(|| FirstUse {
            phases: BTreeSet::new(),
            denied_phases: BTreeSet::new(),
            // The kernel's time of the call, not when the agent read it.
            first_seen: wall_time_of(e.ktime_ns),
            pid: e.tgid,
            comm: comm_of(&e.comm),
            denied_seen: false,
        });
        if denied {
            entry.denied_seen = true;
            entry.denied_phases.insert(e.phase);
        } else {
            entry.phases.insert(e.phase);
        }
        if e.phase == phase::CONTAINER {
            // What the kernel saw at the container's own call: right also for a
            // process gone before /proc could be read. A mode never goes back down.
            record.seccomp_mode = Some(record.seccomp_mode.unwrap_or(0).max(e.seccomp_mode));
        }
        record.last_seen = now();
        self.dirty.insert(key.clone());
        if denied {
            self.alert(&key, "denied", e);
        } else if e.phase == phase::CONTAINER
            && let Some(baseline) = &record.baseline
            && !baseline.contains(&e.row)
        {
            self.alert(&key, "outside_baseline", e);
        }
    }

    /// The record an event belongs to: by slot and cgroup together, so that an
    /// event left unread when a slot changed hands never lands on its next owner.
    fn owner_of(&self, e: &Event) -> Option<String> {
        self.slot_owner.get(&e.slot).filter(|(_, cgroup_id)| *cgroup_id == e.cgroup_id).map(|(key, _)| key.clone())
    }

    fn on_enforce(&mut self, e: &Event) {
        let Some(key) = self.owner_of(e) else { return };
        self.alert(&key, "enforce", e);
        // The kernel already killed the caller; in kill mode the container goes too
        // (its cgroups, nothing else), so that a forking shell cannot carry on.
        if self.probe.counters().info(e.slot).enforce == enforce::KILL
            && let Some(record) = self.containers.get(&key)
        {
            let mount = self.mount();
            // Only cgroups the runtime confirmed: never one a user made to look like it.
            for cg in record.cgroups.values().filter(|c| c.slot.is_some() && c.confirmation == Confirmation::Confirmed) {
                let kill = mount.join(cg.path.trim_start_matches('/')).join("cgroup.kill");
                if let Err(err) = std::fs::write(&kill, "1") {
                    tracing::warn!("killing {}: {err}", kill.display());
                }
            }
            tracing::warn!(container = %record.name, syscall = e.nr, "killed: a syscall outside its enforced profile");
        }
    }

    /// Writes one alert line (stdout and alerts.jsonl), once per container, kind and syscall.
    fn alert(&mut self, key: &str, kind: &str, e: &Event) {
        let Some(record) = self.containers.get_mut(key) else {
            return;
        };
        if !record.alerted.insert((kind.to_owned(), e.row)) {
            return;
        }
        record.alerts += 1;
        self.alerts_total += 1;
        let (syscall, abi) = match split_row(e.row) {
            Some((abi, nr)) => (observer_profile::syscall_table::display_name(abi_arch(abi), nr), abi_name(abi)),
            None => ("invalid".to_owned(), "any"),
        };
        let alert = Alert {
            time: now(),
            kind: kind.to_owned(),
            id: record.id.clone(),
            name: record.name.clone(),
            image: record.image.clone(),
            pid: e.tgid,
            comm: comm_of(&e.comm),
            syscall,
            abi: abi.to_owned(),
            detail: None,
        };
        self.write_alert(&alert);
        self.dirty.insert(key.to_owned());
    }

    /// An alert about a cgroup rather than a syscall, once per record and kind.
    pub(super) fn alert_cgroup(&mut self, key: &str, kind: &str, pid: u32, comm: &str, detail: String) {
        let Some(record) = self.containers.get_mut(key) else { return };
        if !record.alerted.insert((kind.to_owned(), ROW_INVALID)) {
            return;
        }
        record.alerts += 1;
        self.alerts_total += 1;
        let alert = Alert {
            time: now(),
            kind: kind.to_owned(),
            id: record.id.clone(),
            name: record.name.clone(),
            image: record.image.clone(),
            pid,
            comm: comm.to_owned(),
            syscall: String::new(),
            abi: String::new(),
            detail: Some(detail),
        };
        self.write_alert(&alert);
        self.dirty.insert(key.to_owned());
    }

    pub(super) fn write_alert(&mut self, alert: &Alert) {
        let line = serde_json::to_string(alert).unwrap_or_default();
        println!("{line}");
        if let Err(err) = self.store.append_alert(&line) {
            tracing::warn!("writing alerts.jsonl: {err:#}");
        }
    }

    /// Reads every live slot (non-destructively), notices ended cgroups,
    /// applies learning windows and retention.
    pub fn tick(&mut self) {
        self.read_slots(usize::MAX);
        self.refresh();
    }

    /// Reads live slots, at most `budget` of them, round-robin: with thousands of
    /// cgroups each tick reads a share, so a tick's cost stays bounded.
    pub fn read_slots(&mut self, budget: usize) {
        let mount = self.mount();
        let mut ended: Vec<(String, u64, u32)> = Vec::new();
        let mut slots: Vec<u32> = self.slot_owner.keys().copied().collect();
        slots.sort_unstable();
        let start = slots.partition_point(|s| *s < self.next_slot_to_read);
        let take = budget.min(slots.len());
        let chosen: Vec<u32> = slots.iter().cycle().skip(start).take(take).copied().collect();
        self.next_slot_to_read = chosen.last().map_or(0, |s| s + 1);
        let owners: Vec<(u32, (String, u64))> =
            chosen.iter().filter_map(|s| self.slot_owner.get(s).map(|o| (*s, o.clone()))).collect();
        for (slot, (key, cgroup_id)) in owners {
            let rows = self.probe.counters().rows(slot);
            let Some(record) = self.containers.get_mut(&key) else { continue };
            let Some(cg) = record.cgroups.get_mut(&cgroup_id) else { continue };
            let mut changed = false;
            for r in &rows {
                let t = cg.rows.entry(r.row).or_default();
                if t.last != (r.calls, r.errors, r.denied) {
                    t.update(r);
                    changed = true;
                }
            }
            let dir = mount.join(cg.path.trim_start_matches('/'));
            // Same path, other inode: the cgroup was removed and made again
            // (docker restart); the old one ended.
            let alive = std::fs::metadata(&dir).is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == cgroup_id);
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
        let overflowed: Vec<u64> = self
            .probe
            .maps
            .cgroups
            .iter()
            .filter_map(Result::ok)
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
        self.known_paths.retain(|id, _| alive.contains_key(id));
        self.known_paths.extend(alive);
        jobs
    }

    /// Pids, seccomp modes, learning windows and retention (cheap, per tick).
    pub fn refresh(&mut self) {
        self.refresh_runtime_facts();
        self.apply_learning();
        self.apply_retention();
    }

    /// The final read of an ended cgroup, then its slot goes back to the kernel.
    fn end_cgroup(&mut self, key: &str, cgroup_id: u64, slot: u32) {
        let rows = self.probe.counters().rows(slot);
        if let Some(record) = self.containers.get_mut(key) {
            if let Some(cg) = record.cgroups.get_mut(&cgroup_id) {
                for r in &rows {
                    cg.rows.entry(r.row).or_default().update(r);
                }
                cg.slot = None;
            }
            if record.cgroups.values().all(|c| c.slot.is_none()) {
                let own = record
                    .first_use
                    .values()
                    .any(|f| f.phases.contains(&phase::CONTAINER) || f.denied_phases.contains(&phase::CONTAINER));
                record.state = if own || record.observed_since.is_some() { State::Exited } else { State::FailedToStart };
                record.ended_at = Some(now());
                record.pids.clear();
                tracing::info!(container = %record.name, state = ?record.state, "container ended");
            }
            self.dirty.insert(key.to_owned());
        }
        self.slot_owner.remove(&slot);
        self.known_paths.remove(&cgroup_id);
        if let Err(e) = self.probe.release_slot(cgroup_id, slot) {
            tracing::warn!("releasing slot {slot}: {e:#}");
        }
    }

    fn refresh_runtime_facts(&mut self) {
        let mount = self.mount();
        for record in self.containers.values_mut().filter(|r| r.state == State::Running) {
            let mut pids = Vec::new();
            for cg in record.cgroups.values().filter(|c| c.slot.is_some()) {
                if let Ok(text) = std::fs::read_to_string(mount.join(cg.path.trim_start_matches('/')).join("cgroup.procs")) {
                    pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
                }
            }
            pids.sort_unstable();
            if let Some(pid) = pids.last()
                && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(mode) = status.lines().find_map(|l| l.strip_prefix("Seccomp:")).and_then(|v| v.trim().parse::<u32>().ok())
            {
                record.seccomp_mode = Some(record.seccomp_mode.unwrap_or(0).max(mode));
            }
            record.pids = pids;
        }
    }

    fn apply_learning(&mut self) {
        let Some(window) = self.learn_for else { return };
        let now_t = time::OffsetDateTime::now_utc();
        for record in self.containers.values_mut() {
            if record.baseline.is_some() || record.state != State::Running {
                continue;
            }
            let Ok(first) = time::OffsetDateTime::parse(&record.first_seen, &time::format_description::well_known::Rfc3339) else {
                continue;
            };
            if now_t - first >= window {
                record.baseline = Some(record.own_rows());
                record.baseline_source = Some(format!("learned over {}", humantime::format_duration(window)));
                self.dirty.insert(record.id.clone());
            }
        }
    }

    fn apply_retention(&mut self) {
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

    /// Baselines and enforcements that name this container (by name or image).
    pub fn apply_rules(&mut self, key: &str) {
        let Some(record) = self.containers.get(key) else { return };
        let subject = record.subject();
        let matches = |t: &Target| t.matches(&subject);
        let baseline = self.baselines.iter().find(|b| matches(&b.target)).cloned();
        let rule = self.enforcements.iter().rev().find(|r| matches(&r.target)).cloned();
        if let Some(b) = baseline
            && let Some(r) = self.containers.get_mut(key)
            && r.baseline.is_none()
        {
            r.baseline = Some(b.rows);
            r.baseline_source = Some(b.source);
        }
        if let Some(rule) = rule {
            self.enforce_on(key, Some(&rule));
        }
    }

    /// Sets (or clears) enforcement on every live slot of a container, and says
    /// what it armed.
    pub fn enforce_on(&mut self, key: &str, rule: Option<&EnforceRule>) -> Armed {
        let mut armed = Armed::default();
        let Some(record) = self.containers.get(key) else { return armed };
        let mut allowed = [0u64; BITMAP_WORDS];
        let mode = match rule {
            Some(r) => {
                for row in &r.allowed_rows {
                    if *row < ROW_INVALID {
                        allowed[(*row / 64) as usize] |= 1 << (row % 64);
                    }
                }
                match r.action {
                    EnforceAction::Kill => enforce::KILL,
                    EnforceAction::Alert => enforce::ALERT,
                }
            }
            None => enforce::OFF,
        };
        for cg in record.cgroups.values() {
            if let Some(slot) = cg.slot {
                // A cgroup the runtime has not confirmed is watched, never killed.
                let mode = if mode == enforce::KILL && cg.confirmation != Confirmation::Confirmed {
                    armed.alert_only_until_confirmed.push(cg.path.clone());
                    enforce::ALERT
                } else {
                    mode
                };
                armed.slots.push(slot);
                armed.cgroups.push(cg.path.clone());
                self.probe.counters().with_info(slot, |info| {
                    info.allowed = allowed;
                    info.violated = [0; BITMAP_WORDS];
                    // New rules: an invalid-row violation is reported again.
                    info.flags &= !observer_common::slot::flags::INVALID_VIOLATED;
                    // Written last, so the kernel never enforces a half-written set.
                    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                    info.enforce = mode;
                });
            }
        }
        armed
    }

    /// Finds a container by id, unique id prefix or name.
    pub fn find(&self, what: &str) -> Result<String, String> {
        if self.containers.contains_key(what) {
            return Ok(what.to_owned());
        }
        let by_name: Vec<&ContainerRecord> = self.containers.values().filter(|r| r.name == what).collect();
        if !by_name.is_empty() {
            // A reused name: the running one, else the newest that ended.
            let best = by_name
                .iter()
                .find(|r| r.state == State::Running)
                .or_else(|| by_name.iter().max_by(|a, b| a.first_seen.cmp(&b.first_seen)))
                .map(|r| r.id.clone());
            return best.ok_or_else(|| format!("no container {what:?}"));
        }
        let prefixed: Vec<&String> = self.containers.keys().filter(|k| k.starts_with(what)).collect();
        match prefixed.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!("no container matches {what:?} (see `observer ps`)")),
            many => Err(format!(
                "{what:?} is ambiguous: it matches {}",
                many.iter().map(|k| short(k)).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// Writes every record whose syscalls, alerts or state changed; records whose
    /// counts alone changed only every `COUNTS_SAVE_INTERVAL` (or when `all`).
    /// Here, under the lock: for shutdown and API requests. The background round
    /// uses `take_writes` and writes outside the lock.
    pub fn flush(&mut self, all: bool) {
        let writes = self.take_writes(all);
        let failed = write_all(&writes);
        self.writes_failed(failed);
    }

    /// The writes `flush` would do, encoded now; the records count as saved
    /// unless `writes_failed` says otherwise.
    pub fn take_writes(&mut self, all: bool) -> Vec<PendingWrite> {
        if all || self.counts_saved_at.elapsed() >= COUNTS_SAVE_INTERVAL {
            let counts = std::mem::take(&mut self.counts_dirty);
            self.dirty.extend(counts);
            self.counts_saved_at = std::time::Instant::now();
        }
        let mut writes = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            if let Some(r) = self.containers.get(&key) {
                match self.store.encode(r) {
                    Ok(w) => writes.push(w),
                    Err(e) => tracing::warn!("encoding {key}: {e:#}"),
                }
            }
        }
        let rules = serde_json::to_string(&self.enforcements).unwrap_or_default();
        if rules != self.enforcements_saved {
            match self.store.encode_json("enforce.json", &serde_json::to_value(&self.enforcements).unwrap_or_default()) {
                Ok(w) => {
                    writes.push(w);
                    // Optimistic: a failed write clears it again (`writes_failed`).
                    self.enforcements_saved = rules;
                }
                Err(e) => tracing::warn!("encoding enforce.json: {e:#}"),
            }
        }
        writes
    }

    /// Writes that failed are tried again at the next flush.
    pub fn writes_failed(&mut self, failed: Vec<Option<String>>) {
        for key in failed {
            match key {
                Some(key) => {
                    self.dirty.insert(key);
                }
                None => self.enforcements_saved.clear(),
            }
        }
    }
}

/// Does the writes (each atomic, fsynced); returns the keys of those that failed.
pub fn write_all(writes: &[PendingWrite]) -> Vec<Option<String>> {
    let mut failed = Vec::new();
    for w in writes {
        if let Err(e) = w.write() {
            tracing::warn!("{e:#}");
            failed.push(w.key.clone());
        }
    }
    failed
}

/// Whether the cgroup has processes and every one is under a seccomp filter.
pub(super) fn all_under_seccomp_filter(dir: &std::path::Path) -> bool {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else { return false };
    let pids: Vec<&str> = procs.lines().collect();
    !pids.is_empty()
        && pids.iter().all(|pid| {
            std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))
                .ok()
                .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Seccomp:")).map(|v| v.trim() == "2"))
                .unwrap_or(false)
        })
}

/// Keeps the latest 4096 figures.
fn push_bounded(d: &mut std::collections::VecDeque<u64>, v: u64) {
    if d.len() >= 4096 {
        d.pop_front();
    }
    d.push_back(v);
}

pub fn short(id: &str) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) { id[..12].to_owned() } else { id.to_owned() }
}
