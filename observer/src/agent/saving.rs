//! Saving records to the state directory: encoded under the agent's lock,
//! written (atomically, fsynced) outside it.

use super::{
    core::{Agent, COUNTS_SAVE_INTERVAL},
    store::PendingWrite,
};

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

/// Does the writes (each atomic, fsynced). Once one fails for want of space or
/// a writable directory, the rest would too: they are marked failed without
/// being tried, so that a full disk costs one attempt per round, not thousands.
pub fn write_all(writes: &[PendingWrite]) -> WriteReport {
    let mut report = WriteReport::default();
    let mut blocked: Option<String> = None;
    for w in writes {
        if let Some(why) = &blocked {
            report.failed.push((w.key.clone(), why.clone()));
            continue;
        }
        match w.write() {
            Ok(()) => report.written += 1,
            Err(e) => {
                let why = format!("{e:#}");
                if e.chain().any(|c| {
                    c.downcast_ref::<std::io::Error>()
                        .and_then(std::io::Error::raw_os_error)
                        .is_some_and(|n| matches!(n, libc::ENOSPC | libc::EROFS | libc::EDQUOT | libc::EIO))
                }) {
                    blocked = Some(why.clone());
                }
                report.failed.push((w.key.clone(), why));
            }
        }
    }
    report
}
