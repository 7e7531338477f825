//! The agent's state machine: kernel events in, container records, alerts and
//! API answers out. All of it runs under one lock; nothing here blocks long.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
};

use observer_common::{
    counters::ROW_INVALID,
    event::{Event, EventKind},
    slot::{enforce, phase},
};
use observer_contract::{
    alerts::AlertKind,
    rules::{EnforceRule, Target},
    views::State,
};
use observer_probe::Probe;

use crate::clock::{boottime_ns, now, time_of};

use super::{
    identity::IdentityJob,
    model::{Caller, CgroupRecord, ContainerRecord, Stamp},
    store::Store,
};
use crate::container::{ContainerRef, Resolver, confirm::Confirmation};

/// What happens to a container an enforcement rule names when the kernel has
/// no slot to record (and so enforce) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OverflowAction {
    /// An `overflow` alert.
    Alert,
    /// The alert, and the container is killed.
    Kill,
}

/// What the agent records (`--watch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Watch {
    /// Containers only (their runtimes name them).
    Containers,
    /// Every cgroup, containers or not.
    All,
}

/// A baseline given up front, by container name or image.
#[derive(Clone, Debug)]
pub struct BaselineRule {
    pub target: Target,
    pub rows: BTreeSet<u32>,
    pub source: String,
}

/// A live slot at its last read, to tell what changed since.
#[derive(Clone, Copy, Debug, Default)]
pub struct LastRead {
    /// The sum of its counter cells (None: not read yet): cells only grow,
    /// so an unchanged sum means no row changed.
    pub cells_sum: Option<u64>,
    /// A fingerprint of its argument value sets (None: not read yet):
    /// unchanged sets are not decoded again.
    pub args: Option<u64>,
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
    /// `--profiles DIR`: containers bound to their image's profile.
    pub bound: Option<super::bound_profiles::BoundProfiles>,
    pub enforcements: Vec<EnforceRule>,
    /// `enforce.json` as last written: it is written only when the rules change.
    pub enforcements_saved: String,
    pub on_overflow: OverflowAction,
    /// Slots held by unprivileged owners' cgroups, each bounded (`slot_share`).
    pub shares: super::slot_share::SlotShares,
    /// Overflowed cgroups already alerted (forgotten when they are gone).
    pub overflow_alerted: std::collections::HashSet<u64>,
    /// Overflowed container cgroups waiting for the runtime to confirm them.
    pub overflow_pending: HashMap<u64, String>,
    pub alerts_total: u64,
    /// Syslog and the webhook, when asked for: queued, never waited for.
    pub alert_outputs: super::delivery::AlertOutputs,
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
    /// The record after which the background read refreshes pids and modes next.
    pub next_facts_key: String,
    /// What each live (slot, cgroup) looked like at its last read.
    pub last_reads: std::collections::HashMap<(u32, u64), LastRead>,
    /// Nanoseconds from a first use in the kernel to the agent knowing it (recent events).
    pub first_seen_latency_ns: std::collections::VecDeque<u64>,
    /// The same, for calls made while a container starts (the runtime's init phases).
    pub first_seen_at_start_latency_ns: std::collections::VecDeque<u64>,
    /// The agent's own faults: failed writes, dropped events (see `health`).
    pub health: super::health::Health,
    /// At most this many records are kept (`--max-records`).
    pub max_records: usize,
    /// Containers dockerd announced (its `create` event), for their cgroup's first call.
    pub announced: super::announced::Announced,
    /// What each image's binaries can reach (`reachable`), by image digest.
    pub reach: super::reachable::ReachSets,
}

/// How often records whose counts alone changed are saved.
pub const COUNTS_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) fn comm_of(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(16);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

impl Agent {
    pub(super) fn mount(&self) -> PathBuf {
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
        let kind = EventKind::from_u32(e.kind);
        if kind == Some(EventKind::NewCgroup) {
            return self.on_new_cgroup(e.cgroup_id, e.slot, e.tgid, &comm_of(&e.comm));
        }
        // An event of a slot nobody owns yet, which the kernel gave this very
        // cgroup: its `NewCgroup` event was dropped (a full ring buffer) or is
        // still behind this one (another CPU). Named now, not at the next slot
        // scan, when a short-lived container would be gone already; a
        // `NewCgroup` that comes later finds the slot owned and does nothing.
        let job =
            if self.is_orphan(e) { self.on_new_cgroup(e.cgroup_id, e.slot, e.tgid, &comm_of(&e.comm)) } else { None };
        match kind {
            Some(EventKind::FirstSeen) => self.on_first_seen(e, false),
            Some(EventKind::FirstDenied) => self.on_first_seen(e, true),
            Some(EventKind::Enforce) => self.on_enforce(e),
            Some(EventKind::NewCgroup) => {}
            None => tracing::warn!("unknown event kind {} from the kernel", e.kind),
        }
        job
    }

    /// Whether an event comes from a slot the kernel gave its cgroup that the
    /// agent does not know as that cgroup's (see `on_event`).
    pub(super) fn is_orphan(&self, e: &Event) -> bool {
        e.slot < observer_common::slot::SLOT_FIRST_MARKER
            && e.slot < self.probe.slots()
            && !self.slot_owner.contains_key(&e.slot)
            && self.probe.counters().info(e.slot).cgroup_id == e.cgroup_id
    }

    /// Attaches a slot to a container record (creating the record if needed).
    pub(super) fn adopt(
        &mut self,
        key: &str,
        cgroup_id: u64,
        slot: u32,
        path: String,
        cref: Option<&ContainerRef>,
        confirmation: Confirmation,
    ) {
        let now = now();
        let started_at = self.started_at.clone();
        if !self.containers.contains_key(key) {
            self.make_room_for_record();
        }
        let record = self.containers.entry(key.to_owned()).or_insert_with(|| {
            let runtime = cref.map(|c| format!("{:?}", c.runtime).to_lowercase()).unwrap_or_else(|| "plain".into());
            ContainerRecord::new(
                key,
                runtime,
                cref.map_or_else(|| path.clone(), |c| c.cgroup.clone()),
                cgroup_id,
                now.clone(),
            )
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
                    i.init_tag = main.init_tag;
                    // And whether a `docker exec`'s init may still be learned.
                    i.flags |= main.flags & observer_common::slot::flags::LEARN_INIT;
                });
            }
        } else {
            record.cgroup_id = cgroup_id;
            // A restarted container's cgroup before this one is an ended one now.
            record.retire_ended_cgroups();
        }
        let cg = record.cgroups.entry(cgroup_id).or_insert_with(|| CgroupRecord {
            path,
            slot: None,
            rows: Default::default(),
            confirmation,
        });
        if cg.slot != Some(slot) {
            // Another slot counts from zero: readings of the one before mean nothing here.
            cg.rows.restart_readings();
        }
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
        // The kernel's time of the call, not when the agent read it.
        let caller =
            || Caller { first_seen: Stamp::at(time_of(e.ktime_ns)), pid: e.tgid, comm: comm_of(&e.comm).into() };
        record.first_use.add_phase(e.row, e.phase, denied, caller);
        if e.phase == phase::CONTAINER {
            // What the kernel saw at the container's own call: right also for a
            // process gone before /proc could be read. A mode never goes back down.
            record.seccomp_mode = Some(record.seccomp_mode.unwrap_or(0).max(e.seccomp_mode));
        }
        record.last_seen = now();
        self.dirty.insert(key.clone());
        if denied {
            self.alert(&key, AlertKind::Denied, e);
        } else if e.phase == phase::CONTAINER
            && let Some(baseline) = &record.baseline
            && !baseline.contains(&e.row)
        {
            self.alert(&key, AlertKind::OutsideBaseline, e);
        }
        self.judge_reach(&key, e);
    }

    /// The record an event belongs to: by slot and cgroup together, so that an
    /// event left unread when a slot changed hands never lands on its next owner.
    fn owner_of(&self, e: &Event) -> Option<String> {
        self.slot_owner.get(&e.slot).filter(|(_, cgroup_id)| *cgroup_id == e.cgroup_id).map(|(key, _)| key.clone())
    }

    pub(super) fn on_enforce(&mut self, e: &Event) {
        let Some(key) = self.owner_of(e) else { return };
        self.alert(&key, AlertKind::Enforce, e);
        // The kernel already killed the caller; in kill mode the container goes too
        // (its cgroups, nothing else), so that a forking shell cannot carry on.
        if self.probe.counters().info(e.slot).enforce == enforce::KILL {
            self.kill_confirmed(&key, &format!("syscall {} outside its enforced profile", e.nr));
        }
    }
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
