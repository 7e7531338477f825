//! What each container's binaries can reach (observer-reach), for the
//! `unreachable_syscall` and `unlearned_syscall` alerts.
//!
//! A confirmed container's root as mounted (`/proc/PID/root`: its image, its
//! volumes, docker-init) is analysed once per image digest, in a blocking
//! task that never holds the agent's lock; analysed files are cached by
//! content digest under the state dir (bounded, like the agent's other
//! caches). Until its set is known a container's calls are not judged; when
//! it arrives, the calls already seen are judged then. Only the container's
//! own phase is judged: the runtime's init (runc, crun) is not image code.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::Arc,
};

use observer_common::{event::Event, slot::phase};
use observer_reach::{Options, cache::Cache, root::Root};

use super::{
    alerting::about,
    core::{Agent, comm_of},
};
use crate::clock::{now, wall_time_of};
use observer_contract::alerts::{Alert, AlertKind, AlertRule};

/// Image digests whose set is kept at most (the oldest goes first).
const MAX_IMAGES: usize = 256;
/// Analyses of one digest tried at most (a root that cannot be read).
const MAX_ATTEMPTS: u8 = 3;
/// One image's reachable rows.
#[derive(Debug)]
pub struct ReachRows {
    pub rows: BTreeSet<u32>,
    /// False when the analysis listed undecided sites or unread files: a call
    /// judged unreachable may be reachable after all (said in the alert).
    pub complete: bool,
}

enum Known {
    Pending,
    Ready(Arc<ReachRows>),
    Failed(u8),
}

/// The sets by image digest, and where analysed files are cached.
pub struct ReachSets {
    by_digest: HashMap<String, Known>,
    order: VecDeque<String>,
    cache_dir: PathBuf,
    /// `agent --reach`: analysing images costs a thread's CPU per new image,
    /// so a node pays for it only when asked.
    enabled: bool,
}

/// An analysis to run without the lock: a running container of the image.
#[derive(Clone, Debug)]
pub struct ReachJob {
    pub digest: String,
    pub pid: u32,
    pub cache_dir: PathBuf,
    /// Analyses of this digest that failed before.
    pub attempts: u8,
}

impl ReachSets {
    pub fn new(state_dir: &Path, enabled: bool) -> Self {
        Self { by_digest: HashMap::new(), order: VecDeque::new(), cache_dir: state_dir.join("reach-cache"), enabled }
    }

    pub fn ready(&self, digest: &str) -> Option<Arc<ReachRows>> {
        match self.by_digest.get(digest) {
            Some(Known::Ready(set)) => Some(set.clone()),
            _ => None,
        }
    }

    fn wants(&self, digest: &str) -> bool {
        if !self.enabled {
            return false;
        }
        match self.by_digest.get(digest) {
            None => true,
            Some(Known::Failed(n)) => *n < MAX_ATTEMPTS,
            Some(_) => false,
        }
    }

    fn set(&mut self, digest: &str, known: Known) {
        if self.by_digest.insert(digest.to_owned(), known).is_none() {
            self.order.push_back(digest.to_owned());
        }
        while self.order.len() > MAX_IMAGES {
            if let Some(old) = self.order.pop_front() {
                self.by_digest.remove(&old);
            }
        }
    }
}

/// Runs one analysis (blocking: call it from `spawn_blocking`). One thread:
/// it runs beside the node's containers, and waiting costs only alert latency.
pub fn compute(job: &ReachJob) -> Result<ReachRows, String> {
    let root_path = PathBuf::from(format!("/proc/{}/root", job.pid));
    let root = Root::open(&root_path).map_err(|e| format!("{}: {e}", root_path.display()))?;
    let cache = match Cache::new(&job.cache_dir, observer_reach::cache::DEFAULT_MAX_BYTES) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("reach cache {}: {e}; analysing without it", job.cache_dir.display());
            None
        }
    };
    let reach = observer_reach::analyse(&root, &Options { entries: Vec::new(), cache, threads: 1 });
    Ok(ReachRows { rows: crate::reach_rows::rows_of(&reach), complete: reach.complete })
}

/// What a container's own call is, against its image's set and its baseline.
pub fn verdict(set: &ReachRows, baseline: Option<&BTreeSet<u32>>, row: u32) -> Option<AlertKind> {
    if !set.rows.contains(&row) {
        Some(AlertKind::UnreachableSyscall)
    } else if baseline.is_some_and(|b| !b.contains(&row)) {
        Some(AlertKind::UnlearnedSyscall)
    } else {
        None
    }
}

/// Whether a process's root is not the host's (the agent's own): its
/// container's root is mounted there. A process that ended is not.
fn in_own_root(pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(theirs), Ok(ours)) = (std::fs::metadata(format!("/proc/{pid}/root")), std::fs::metadata("/")) else {
        return false;
    };
    (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino())
}

/// Runs `compute` on a thread of its own: unlike a blocking task, it does not
/// hold up the agent's exit while a large root is still being read.
pub async fn compute_detached(job: ReachJob) -> Result<ReachRows, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("reach".into())
        .spawn(move || {
            let _ = tx.send(compute(&job));
        })
        .map_err(|e| format!("starting the analysis: {e}"))?;
    rx.await.unwrap_or_else(|_| Err("the analysis ended without an answer".into()))
}

/// The executable of a live process, as its container sees the path.
fn exe_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "unknown (the process has ended)".to_owned())
}

/// One call to judge: the row and who made it, when.
struct Call {
    row: u32,
    pid: u32,
    comm: String,
    call_time: Option<String>,
}

impl Agent {
    /// Analyses to start: one per image digest of a running container that
    /// has no set yet. Cheap (under the lock); the work is `compute`'s.
    pub fn reach_jobs(&mut self) -> Vec<ReachJob> {
        let mut jobs = Vec::new();
        for r in self.containers.values() {
            // The cheap checks first: this runs on every tick under the lock, and
            // reading /proc for each container's pids is not free at 10,000.
            if r.image_digest.is_empty()
                || r.state != observer_contract::views::State::Running
                || !self.reach.wants(&r.image_digest)
                || jobs.iter().any(|j: &ReachJob| j.digest == r.image_digest)
            {
                continue;
            }
            // A process already in the container's root: runc's init starts in the host's.
            let Some(&pid) = r.pids.iter().find(|p| in_own_root(**p)) else { continue };
            let attempts = match self.reach.by_digest.get(&r.image_digest) {
                Some(Known::Failed(n)) => *n,
                _ => 0,
            };
            jobs.push(ReachJob {
                digest: r.image_digest.clone(),
                pid,
                cache_dir: self.reach.cache_dir.clone(),
                attempts,
            });
        }
        // Pending: the next rounds do not start it again.
        for j in &jobs {
            self.reach.set(&j.digest, Known::Pending);
        }
        jobs
    }

    /// An analysis's answer (under the lock): kept, and the calls the
    /// image's containers made before it are judged now.
    pub fn apply_reach(&mut self, job: &ReachJob, answer: Result<ReachRows, String>) {
        let set = match answer {
            Ok(set) => Arc::new(set),
            Err(e) => {
                tracing::warn!("analysing what image {} can reach: {e}", job.digest);
                self.reach.set(&job.digest, Known::Failed(job.attempts + 1));
                return;
            }
        };
        tracing::info!(
            image_digest = %job.digest,
            syscalls = set.rows.len(),
            complete = set.complete,
            "reachable set ready"
        );
        self.reach.set(&job.digest, Known::Ready(set.clone()));
        let keys: Vec<String> =
            self.containers.iter().filter(|(_, r)| r.image_digest == job.digest).map(|(k, _)| k.clone()).collect();
        for key in keys {
            let Some(record) = self.containers.get(&key) else { continue };
            let calls: Vec<Call> = record
                .first_use
                .iter()
                .filter_map(|(row, first)| {
                    let c = first.container_caller()?;
                    Some(Call {
                        row,
                        pid: c.pid,
                        comm: c.comm.to_string(),
                        call_time: Some(c.first_seen.to_string()).filter(|t| !t.is_empty()),
                    })
                })
                .collect();
            for call in calls {
                self.judge_call(&key, &set, call);
            }
        }
    }

    /// A container's own first use of a row, judged against its image's set
    /// once that is known (called from `on_first_seen`).
    pub(super) fn judge_reach(&mut self, key: &str, e: &Event) {
        if e.phase != phase::CONTAINER {
            return;
        }
        let Some(set) = self.containers.get(key).and_then(|r| self.reach.ready(&r.image_digest)) else { return };
        let call = Call { row: e.row, pid: e.tgid, comm: comm_of(&e.comm), call_time: Some(wall_time_of(e.ktime_ns)) };
        self.judge_call(key, &set, call);
    }

    fn judge_call(&mut self, key: &str, set: &ReachRows, call: Call) {
        let Some(record) = self.containers.get_mut(key) else { return };
        let Some(kind) = verdict(set, record.baseline.as_ref(), call.row) else { return };
        if !record.alerted.insert((kind.as_str().to_owned(), call.row)) {
            return;
        }
        record.alerts += 1;
        self.alerts_total += 1;
        let (syscall, abi) = crate::rows::describe(call.row);
        let exe = exe_of(call.pid);
        let detail = match kind {
            AlertKind::UnreachableSyscall => format!(
                "executable {exe}: none of the binaries the container can execute can make {syscall} ({abi}){}",
                if set.complete { "" } else { "; the analysis was incomplete (undecided sites), see observer reach" }
            ),
            _ => format!("executable {exe}: {syscall} ({abi}) is reachable from the image but not in its baseline"),
        };
        let rule = match kind {
            AlertKind::UnlearnedSyscall => {
                record.baseline_source.clone().map(|profile| AlertRule::Baseline { profile })
            }
            _ => None,
        };
        let alert = Alert {
            time: now(),
            pid: call.pid,
            comm: call.comm,
            syscall,
            abi: abi.to_owned(),
            nr: observer_common::counters::Row::decode(call.row).map(|r| r.nr as i64),
            call_time: call.call_time,
            detail: Some(detail),
            rule,
            ..about(record, kind)
        };
        self.write_alert(&alert);
        self.dirty.insert(key.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rows: &[u32]) -> ReachRows {
        ReachRows { rows: rows.iter().copied().collect(), complete: true }
    }

    #[test]
    fn a_call_outside_the_set_is_unreachable_whatever_the_baseline() {
        let baseline: BTreeSet<u32> = [90].into();
        assert_eq!(verdict(&set(&[1, 2]), Some(&baseline), 90), Some(AlertKind::UnreachableSyscall));
        assert_eq!(verdict(&set(&[1, 2]), None, 90), Some(AlertKind::UnreachableSyscall));
    }

    #[test]
    fn a_reachable_call_outside_the_baseline_is_unlearned_inside_it_nothing() {
        let baseline: BTreeSet<u32> = [1].into();
        assert_eq!(verdict(&set(&[1, 2]), Some(&baseline), 2), Some(AlertKind::UnlearnedSyscall));
        assert_eq!(verdict(&set(&[1, 2]), Some(&baseline), 1), None);
        assert_eq!(verdict(&set(&[1, 2]), None, 2), None);
    }
}
