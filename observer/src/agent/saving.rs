//! Saving records to the state directory: encoded under the agent's lock,
//! written (atomically, fsynced) outside it.

use super::{
    core::{Agent, COUNTS_SAVE_INTERVAL},
    store::PendingWrite,
};
use crate::state::batch::{self, Staged};

impl Agent {
    /// Writes every record whose syscalls, alerts or state changed; records whose
    /// counts alone changed only every `COUNTS_SAVE_INTERVAL` (or when `all`).
    /// Here, under the lock: for shutdown and API requests. The background round
    /// uses `take_writes` and writes outside the lock.
    pub fn flush(&mut self, all: bool) {
        let writes = self.take_writes(all);
        let report = write_all(&writes);
        self.writes_done(report);
    }

    /// The writes `flush` would do, encoded now; the records count as saved
    /// unless `writes_done` says otherwise.
    pub fn take_writes(&mut self, all: bool) -> Vec<PendingWrite> {
        if all || self.counts_saved_at.elapsed() >= COUNTS_SAVE_INTERVAL {
            let counts = std::mem::take(&mut self.counts_dirty);
            self.dirty.extend(counts);
            self.counts_saved_at = std::time::Instant::now();
        }
        let mut writes = Vec::new();
        // Containers' records first: under churn of plain cgroups (`--watch
        // all`) they are the fewer and the ones a user asks for by name.
        let (plain, containers): (Vec<String>, Vec<String>) = std::mem::take(&mut self.dirty)
            .into_iter()
            .partition(|k| self.containers.get(k).is_some_and(|r| r.runtime == "plain"));
        for key in containers.into_iter().chain(plain) {
            // Saved whole now, counts included: not again at the next counts
            // round (under churn nearly every record would be, ~2,000 files at
            // once every 30 s, holding up the saving of newer records).
            self.counts_dirty.remove(&key);
            if let Some(r) = self.containers.get(&key) {
                match self.store.encode(r) {
                    Ok(w) => writes.push(w),
                    Err(e) => tracing::warn!("encoding {key}: {e:#}"),
                }
            }
        }
        let rules = serde_json::to_string(&self.enforcements).unwrap_or_default();
        if rules != self.enforcements_saved {
            match self.store.encode_json("enforce.json", &serde_json::to_value(&self.enforcements).unwrap_or_default())
            {
                Ok(w) => {
                    writes.push(w);
                    // Optimistic: a failed write clears it again (`writes_done`).
                    self.enforcements_saved = rules;
                }
                Err(e) => tracing::warn!("encoding enforce.json: {e:#}"),
            }
        }
        writes
    }

    /// Writes that failed are tried again at the next flush, and reported
    /// (log, `status`, one `state_write_failed` alert per episode).
    pub fn writes_done(&mut self, report: WriteReport) {
        self.report_writes(&report);
        for (key, _) in report.failed {
            match key {
                Some(key) => {
                    self.dirty.insert(key);
                }
                None => self.enforcements_saved.clear(),
            }
        }
    }
}

/// What a round of writes did.
#[derive(Debug, Default)]
pub struct WriteReport {
    pub written: usize,
    /// The key of each write that failed (None: enforce.json), and why.
    pub failed: Vec<(Option<String>, String)>,
}

/// Does the writes, each atomic, as one batch: `stage` then `commit`.
pub fn write_all(writes: &[PendingWrite]) -> WriteReport {
    commit(vec![stage(writes)])
}

/// A round of writes staged (written under temporary names: safe from a
/// SIGKILL, see `Store::settle_temps`), waiting for `commit`.
#[derive(Debug, Default)]
pub struct StagedRound {
    /// What failed already, and what was written in place (not a regular file).
    report: WriteReport,
    /// Each with the record it saves (None: enforce.json).
    staged: Vec<(Option<String>, Staged)>,
}

/// Writes each file under its temporary name. Once one fails for want of space
/// or a writable directory, the rest would too: they are marked failed without
/// being tried, so that a full disk costs one attempt per round, not thousands.
pub fn stage(writes: &[PendingWrite]) -> StagedRound {
    let mut round = StagedRound::default();
    let mut blocked: Option<String> = None;
    for w in writes {
        if let Some(why) = &blocked {
            round.report.failed.push((w.key.clone(), why.clone()));
            continue;
        }
        match batch::stage(&w.path, &w.bytes) {
            Ok(Some(s)) => round.staged.push((w.key.clone(), s)),
            Ok(None) => round.report.written += 1,
            Err(e) => {
                let why = format!("saving {}: {e}", w.path.display());
                if blocks_the_rest(&e) {
                    blocked = Some(why.clone());
                }
                round.report.failed.push((w.key.clone(), why));
            }
        }
    }
    round
}

/// Puts staged rounds in place, oldest first, with one flush for them all
/// (`state::batch`: a few flushes, not two per file).
pub fn commit(rounds: Vec<StagedRound>) -> WriteReport {
    // One commit at a time: the final flush at shutdown must not be overtaken
    // by the committer's renames of older versions still in flight.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = std::time::Instant::now();
    let mut report = WriteReport::default();
    let mut staged = Vec::new();
    for round in rounds {
        report.written += round.report.written;
        report.failed.extend(round.report.failed);
        staged.extend(round.staged);
    }
    let files = staged.len();
    let (keys, staged): (Vec<Option<String>>, Vec<Staged>) = staged.into_iter().unzip();
    for ((key, s), result) in keys.into_iter().zip(&staged).zip(batch::commit(&staged)) {
        match result {
            Ok(()) => report.written += 1,
            Err(e) => report.failed.push((key, format!("saving {}: {e}", s.path().display()))),
        }
    }
    let took = started.elapsed();
    if took > SLOW_COMMIT {
        tracing::warn!(files, "putting staged state files in place took {:.1} s (a slow disk)", took.as_secs_f64());
    }
    report
}

/// A commit slower than this is worth a warning.
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Errors after which every other write of the round would fail too.
fn blocks_the_rest(e: &std::io::Error) -> bool {
    e.raw_os_error().is_some_and(|n| matches!(n, libc::ENOSPC | libc::EROFS | libc::EDQUOT | libc::EIO))
}
