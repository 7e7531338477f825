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
            match self.store.encode_json("enforce.json", &serde_json::to_value(&self.enforcements).unwrap_or_default())
            {
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
