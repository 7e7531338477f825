//! Facts of analysed files, kept by the SHA-256 of the file's content: an
//! unchanged file is never decoded twice. Entries are written atomically
//! (temporary name, then rename) and the directory is bounded in bytes: the
//! least recently used entries go first.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest as _, Sha256};

use crate::{error::ReachError, facts::FileFacts, index::StatIndex, report::Reach};

/// Bytes the cache keeps at most by default.
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;
/// Bumped whenever the facts' meaning changes, so old entries are not read.
const FORMAT: &str = "v1";

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

pub fn digest(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    pub fn new(dir: &Path, max_bytes: u64) -> Result<Self, ReachError> {
        let dir = dir.join(FORMAT);
        std::fs::create_dir_all(&dir).map_err(|e| ReachError::Cache { path: dir.clone(), source: e })?;
        Ok(Self { dir, max_bytes })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// The facts of a content digest, if cached and readable (a damaged
    /// entry is a miss).
    pub fn get(&self, digest: &str) -> Option<FileFacts> {
        self.get_json(digest)
    }

    pub fn put(&self, digest: &str, facts: &FileFacts) {
        self.put_json(digest, facts);
    }

    /// What the last analysis of the root `root` saw of its files (empty when none).
    pub fn index(&self, root: &str) -> StatIndex {
        self.get_json(&format!("stat-{}", digest(root.as_bytes()))).unwrap_or_default()
    }

    pub fn put_index(&self, root: &str, index: &StatIndex) {
        self.put_json(&format!("stat-{}", digest(root.as_bytes())), index);
    }

    /// The result of an analysis of a tree with this fingerprint (and options).
    pub fn result(&self, key: &str) -> Option<Reach> {
        self.get_json(&format!("result-{key}"))
    }

    pub fn put_result(&self, key: &str, reach: &Reach) {
        self.put_json(&format!("result-{key}"), reach);
    }

    fn get_json<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let path = self.path(name);
        let data = std::fs::read(&path).ok()?;
        let value = serde_json::from_slice(&data).ok();
        if value.is_some() {
            // The entry's mtime is its last use, for eviction.
            let _ = std::fs::File::options().append(true).open(&path).and_then(|f| f.set_modified(SystemTime::now()));
        }
        value
    }

    /// Written atomically: a temporary name, then rename.
    fn put_json<T: Serialize>(&self, name: &str, value: &T) {
        let Ok(data) = serde_json::to_vec(value) else { return };
        let tmp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, data).is_err() || std::fs::rename(&tmp, self.path(name)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Removes the least recently used entries until the cache fits its bound.
    pub fn prune(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = dir
            .filter_map(Result::ok)
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), 1).unwrap();
        let facts = FileFacts { needed: vec!["libc.so.6".into()], ..FileFacts::default() };
        cache.put("aa", &facts);
        assert_eq!(cache.get("aa").unwrap().needed, facts.needed);
        assert!(cache.get("bb").is_none());
        cache.prune();
        assert!(cache.get("aa").is_none(), "a 1-byte cache keeps nothing");
    }
}
