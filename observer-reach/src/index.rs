//! What the last analysis of a root saw, keyed by each file's identity and
//! change stamps (path, dev, ino, size, mtime, ctime): a file whose stamps
//! are unchanged is not read or hashed again (its facts come from the cache
//! by the digest remembered here), and a root where nothing at all changed
//! (the same paths, symlinks and stamps) gets its last result back.
//!
//! Safe because the stamps cannot all stay while the content changes:
//! writing a file moves its ctime (which no user can set back) and
//! replacing it moves its inode; a file is only taken from the index when
//! the stamps of the very descriptor that would be read match.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::file_id::{FileId, Stamp};

/// One regular file's identity and change stamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileKey {
    pub fn new(id: FileId, stamp: Stamp) -> Self {
        Self { dev: id.dev, ino: id.ino, size: stamp.size, mtime_ns: stamp.mtime_ns, ctime_ns: stamp.ctime_ns }
    }
}

/// What the index knows of one path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: FileKey,
    /// Starts with the ELF magic.
    pub elf: bool,
    /// The content's SHA-256, once the file was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// path → what was seen there, plus the fingerprint of the whole walk.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatIndex {
    pub files: HashMap<String, Entry>,
}

impl StatIndex {
    /// The entry of `path` when its stamps are still `key`.
    pub fn unchanged(&self, path: &str, key: &FileKey) -> Option<&Entry> {
        self.files.get(path).filter(|e| e.key == *key)
    }
}

/// The fingerprint of a walked tree: every path with its kind and, for a
/// regular file its stamps, for a symlink its target. Equal fingerprints
/// mean that nothing the analysis reads (file contents, the loader's
/// configuration, the links it resolves) changed.
#[derive(Clone)]
pub struct Fingerprint(Sha256);

impl Default for Fingerprint {
    fn default() -> Self {
        Self(Sha256::new())
    }
}

impl Fingerprint {
    pub fn dir(&mut self, path: &str) {
        self.add(&["d", path]);
    }

    pub fn link(&mut self, path: &str, target: &[u8]) {
        self.add(&["l", path]);
        self.0.update(target);
        self.0.update([0]);
    }

    pub fn file(&mut self, path: &str, key: &FileKey) {
        let k = format!("{} {} {} {} {}", key.dev, key.ino, key.size, key.mtime_ns, key.ctime_ns);
        self.add(&["f", path, &k]);
    }

    /// Something the walk could not read (an error, a bound): part of the result too.
    pub fn other(&mut self, what: &str) {
        self.add(&["e", what]);
    }

    fn add(&mut self, parts: &[&str]) {
        for p in parts {
            self.0.update(p.as_bytes());
            self.0.update([0]);
        }
        self.0.update([b'\n']);
    }

    pub fn finish(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}
