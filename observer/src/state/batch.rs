//! Many atomic replacements at the cost of a few flushes. Under churn the
//! agent saves hundreds of records a second; one fsync of each file and of its
//! directory per record put saving seconds behind on a busy disk, and a record
//! still waiting when the agent is SIGKILLed is lost (the soak saw containers
//! that ran just before a kill vanish that way). Here every temporary file of a
//! round is written first, one `syncfs` makes them all durable, then each is
//! renamed over its target and each directory is fsynced once: a crash still
//! leaves each file old or new, never torn.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File},
    io,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use super::atomic::{temp_beside, write_in_place, write_temp, written_in_place};

/// A file written under its temporary name: not durable, not in place yet.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
}

/// Writes `bytes` for `path` under a temporary name, mode 0600. `None`: the
/// target is not a regular file (`/dev/null`, a FIFO) and was written in place,
/// as `write_atomic` does.
pub fn stage(path: &Path, bytes: &[u8]) -> io::Result<Option<Staged>> {
    if written_in_place(path)? {
        return write_in_place(path, bytes).map(|()| None);
    }
    let (dir, tmp) = temp_beside(path)?;
    match write_temp(&tmp, bytes) {
        Ok(_) => Ok(Some(Staged { tmp, path: path.to_path_buf(), dir })),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

impl Staged {
    /// The file it is to replace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops it unplaced (a newer version is already in place).
    pub fn discard(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Makes staged files durable and puts them in place: one `syncfs` per
/// directory's filesystem, the renames, one fsync per directory. One result per
/// staged file, in order; a file that failed leaves no temporary behind.
pub fn commit<S: std::borrow::Borrow<Staged>>(staged: &[S]) -> Vec<io::Result<()>> {
    let staged: Vec<&Staged> = staged.iter().map(std::borrow::Borrow::borrow).collect();
    // The data first: a rename must never be durable before what it points at.
    let dirs: BTreeSet<&Path> = staged.iter().map(|s| s.dir.as_path()).collect();
    let flushed: BTreeMap<&Path, io::Result<()>> = dirs.into_iter().map(|d| (d, syncfs(d))).collect();
    let mut results: Vec<io::Result<()>> = staged
        .iter()
        .map(|s| match &flushed[s.dir.as_path()] {
            Err(e) => Err(io::Error::new(e.kind(), format!("flushing {}: {e}", s.dir.display()))),
            Ok(()) => fs::rename(&s.tmp, &s.path),
        })
        .collect();
    for (s, r) in staged.iter().zip(&results) {
        if r.is_err() {
            let _ = fs::remove_file(&s.tmp);
        }
    }
    // Then the renames themselves.
    for dir in flushed.keys() {
        if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
            for (s, r) in staged.iter().zip(results.iter_mut()) {
                if s.dir == *dir && r.is_ok() {
                    *r = Err(io::Error::new(e.kind(), format!("syncing {}: {e}", dir.display())));
                }
            }
        }
    }
    results
}

/// Flushes the filesystem `dir` is on (and reports a writeback error there).
fn syncfs(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    // SAFETY: syncfs on an fd this function owns.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("observer-batch-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        n.sort();
        n
    }

    #[test]
    fn a_batch_replaces_every_file_and_leaves_no_temporaries() {
        let dir = temp_dir("replace");
        fs::write(dir.join("a.json"), b"old").unwrap();
        let staged: Vec<Staged> = ["a.json", "b.json", "c.json"]
            .iter()
            .map(|n| stage(&dir.join(n), n.as_bytes()).unwrap().expect("a regular file is staged"))
            .collect();
        // Staged, not in place: the old content is still what readers see.
        assert_eq!(fs::read(dir.join("a.json")).unwrap(), b"old");
        assert!(commit(&staged).iter().all(Result::is_ok));
        assert_eq!(names(&dir), ["a.json", "b.json", "c.json"]);
        assert_eq!(fs::read(dir.join("b.json")).unwrap(), b"b.json");
        let mode = fs::metadata(dir.join("c.json")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_rename_is_reported_for_that_file_only() {
        let dir = temp_dir("fail");
        let ok = stage(&dir.join("ok.json"), b"1").unwrap().unwrap();
        let bad = stage(&dir.join("bad.json"), b"2").unwrap().unwrap();
        // A directory where the file should go: the rename fails.
        fs::create_dir(dir.join("bad.json")).unwrap();
        fs::write(dir.join("bad.json/x"), b"").unwrap();
        let results = commit(&[ok, bad]);
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
        assert_eq!(names(&dir), ["bad.json", "ok.json"], "no temporary file is left behind");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_device_is_written_in_place_not_staged() {
        assert!(stage(Path::new("/dev/null"), b"x").unwrap().is_none());
    }
}
