//! Which file is which inside a root, and whether it changed: what the
//! walk of a root (`root.rs`) and the stat index (`index.rs`) both key by.

/// Identity of a file inside the root: two paths (a symlink, a hard link)
/// naming one file are one object, as for the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// Stat data that tells whether a file changed since it was last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
}
