//! Saving records to the state directory: encoded under the agent's lock,
//! written (atomically, fsynced) outside it.

use super::{
    core::{Agent, COUNTS_SAVE_INTERVAL},
    store::PendingWrite,
    write_order,
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
        encode_all(self.take_unencoded(all))
    }

    /// What changed, copied out to be encoded without the lock (`encode_all`):
    /// encoding a record (pretty JSON of every row) takes far longer than
    /// copying it, and the event reader waits for the lock meanwhile. The
    /// records count as saved unless `writes_done` says otherwise.
    pub fn take_unencoded(&mut self, all: bool) -> Vec<Unencoded> {
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
                writes.push(Unencoded::Record(self.store.file_of(&r.id), Box::new(r.clone())));
            }
        }
        let rules = serde_json::to_string(&self.enforcements).unwrap_or_default();
        if rules != self.enforcements_saved {
            match self.store.encode_json("enforce.json", &serde_json::to_value(&self.enforcements).unwrap_or_default())
            {
                Ok(w) => {
                    writes.push(Unencoded::Ready(w));
                    // Optimistic: a failed write clears it again (`writes_done`).
                    self.enforcements_saved = rules;
                }
                Err(e) => tracing::warn!("encoding enforce.json: {e:#}"),
            }
        }
        // The round's number, taken here under the lock: versions land in
        // the order they were taken (`write_order`).
        if !writes.is_empty() {
            let round = write_order::begin();
            for w in &mut writes {
                if let Unencoded::Ready(w) = w {
                    w.round = round;
                }
            }
            writes.push(Unencoded::Round(round));
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

/// A write taken under the lock, to be encoded outside it.
pub enum Unencoded {
    /// A record's file and a copy of the record.
    Record(std::path::PathBuf, Box<super::model::ContainerRecord>),
    /// A file encoded already.
    Ready(PendingWrite),
    /// The round the writes belong to (`write_order`), last.
    Round(u64),
}

/// Encodes a round's writes; a record that cannot be encoded is left out
/// (and said so), as before.
pub fn encode_all(taken: Vec<Unencoded>) -> Vec<PendingWrite> {
    let round = taken.iter().find_map(|u| if let Unencoded::Round(r) = u { Some(*r) } else { None }).unwrap_or(0);
    taken
        .into_iter()
        .filter_map(|u| match u {
            Unencoded::Record(path, r) => match serde_json::to_vec_pretty(&r) {
                Ok(bytes) => Some(PendingWrite { key: Some(r.id.clone()), path, bytes, round }),
                Err(e) => {
                    tracing::warn!("encoding {}: {e:#}", r.id);
                    None
                }
            },
            Unencoded::Ready(w) => Some(w),
            Unencoded::Round(_) => None,
        })
        .collect()
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
    /// `write_order`'s number for it (0: nothing was taken).
    round: u64,
    /// What failed already, and what was written in place (not a regular file).
    report: WriteReport,
    /// Each with the record it saves (None: enforce.json).
    staged: Vec<(Option<String>, Staged)>,
}

/// Writes each file under its temporary name. Once one fails for want of space
/// or a writable directory, the rest would too: they are marked failed without
/// being tried, so that a full disk costs one attempt per round, not thousands.
pub fn stage(writes: &[PendingWrite]) -> StagedRound {
    let mut round = StagedRound { round: writes.first().map_or(0, |w| w.round), ..StagedRound::default() };
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
/// (`state::batch`: a few flushes, not two per file). A file of which a newer
/// version is already in place (a flush overtook this round) is dropped, not
/// renamed over it (`write_order`); it counts as written.
pub fn commit(rounds: Vec<StagedRound>) -> WriteReport {
    // One commit at a time, and in the order the versions were taken.
    let mut order = write_order::lock();
    let started = std::time::Instant::now();
    let mut report = WriteReport::default();
    let mut staged = Vec::new();
    let mut numbers = Vec::new();
    for round in rounds {
        report.written += round.report.written;
        report.failed.extend(round.report.failed);
        for (key, s) in round.staged {
            if round.round != 0 && !order.may_land(s.path(), round.round) {
                s.discard();
                report.written += 1;
                continue;
            }
            staged.push((key, s, round.round));
        }
        numbers.push(round.round);
    }
    let files = staged.len();
    let results = batch::commit(&staged.iter().map(|(_, s, _)| s).collect::<Vec<_>>());
    for ((key, s, round), result) in staged.into_iter().zip(results) {
        match result {
            Ok(()) => {
                report.written += 1;
                order.landed(s.path(), round);
            }
            Err(e) => report.failed.push((key, format!("saving {}: {e}", s.path().display()))),
        }
    }
    for round in numbers {
        order.done(round);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &std::path::Path, text: &str, round: u64) -> PendingWrite {
        PendingWrite { key: Some("r".into()), path: path.to_path_buf(), bytes: text.as_bytes().to_vec(), round }
    }

    /// The committer holds version 1 staged; a flush (an API request) takes,
    /// stages and commits version 2 meanwhile; then the committer's commit
    /// comes. Version 2 stays.
    #[test]
    fn an_older_round_never_lands_over_a_newer_flush() {
        let dir = std::env::temp_dir().join(format!("observer-order-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        let older = stage(&[write(&path, "v1", write_order::begin())]);
        let report = write_all(&[write(&path, "v2", write_order::begin())]);
        assert_eq!((report.written, report.failed.len()), (1, 0));
        let report = commit(vec![older]);
        assert_eq!((report.written, report.failed.len()), (1, 0), "superseded counts as written");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "v2");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["r.json"], "the superseded temporary is removed");
        // In order, the newer one lands as before.
        let a = stage(&[write(&path, "v3", write_order::begin())]);
        let b = stage(&[write(&path, "v4", write_order::begin())]);
        commit(vec![a, b]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "v4");
        // A removal is newer than what was staged before it.
        let stale = stage(&[write(&path, "v5", write_order::begin())]);
        std::fs::remove_file(&path).unwrap();
        write_order::removed(&path);
        commit(vec![stale]);
        assert!(!path.exists(), "a removed record came back");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
