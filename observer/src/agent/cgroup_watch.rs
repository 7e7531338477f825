//! Names new cgroups the moment they are created. A container that fails to
//! start (the seed lab's deny.json) lives a few milliseconds: by the time its
//! first event is read its cgroup may be gone, and with it the only way to learn
//! its path from its id. inotify on the v2 tree records (id, path) as each
//! directory appears.
//!
//! Bounded for months of churn: a watch is forgotten when its directory goes
//! (the kernel sends `IN_IGNORED`), and the id→path map is capped. Bounded
//! against users too: the watches count against root's inotify limit
//! (`fs.inotify.max_user_watches`, shared with every other process of root),
//! and a user with a delegated subtree can make directories by the
//! thousand. So at most `MAX_WATCHES` in all, and at most
//! `MAX_WATCHES_PER_OWNER` for the directories of one owner other than root.
//! A directory left unwatched only loses the naming of cgroups that end
//! before the agent walks the tree.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// cgroup id -> path relative to the v2 mount, shared with the agent.
pub type FreshPaths = Arc<Mutex<HashMap<u64, String>>>;

/// Directories watched now (one watcher per agent), for `status`.
static WATCHED: AtomicUsize = AtomicUsize::new(0);

pub fn watched_dirs() -> usize {
    WATCHED.load(Ordering::Relaxed)
}

/// How deep below the mount new directories are watched (kubepods nests 4 deep).
const MAX_DEPTH: usize = 6;

/// At most this many directories are watched (a node's container cgroups
/// and their parents are far fewer).
const MAX_WATCHES: usize = 16_384;

/// At most this many directories of one owner other than root (the uid of
/// the directory: a user's delegated subtree).
const MAX_WATCHES_PER_OWNER: usize = 256;

/// Paths kept for the agent to pick up; the agent takes them as it names
/// cgroups, so this only fills when it is far behind.
const MAX_FRESH: usize = 100_000;

pub fn spawn(mount: PathBuf) -> FreshPaths {
    let fresh: FreshPaths = Arc::default();
    let out = fresh.clone();
    std::thread::Builder::new()
        .name("cgroup-watch".into())
        .spawn(move || {
            if let Err(e) = watch(&mount, &out) {
                tracing::warn!("watching {} for new cgroups: {e}; short-lived cgroups may go unnamed", mount.display());
            }
        })
        .ok();
    fresh
}

/// The directories watched, by watch descriptor: (path, depth below the
/// mount, owner uid).
struct Watches {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, (PathBuf, usize, u32)>,
    /// Watched directories per owner other than root.
    by_owner: HashMap<u32, usize>,
    /// Directories left unwatched because of a cap (logged at the first).
    refused: usize,
    max_watches: usize,
    max_per_owner: usize,
}

impl Watches {
    fn new(inotify: Inotify) -> Self {
        Self {
            inotify,
            dirs: HashMap::new(),
            by_owner: HashMap::new(),
            refused: 0,
            max_watches: MAX_WATCHES,
            max_per_owner: MAX_WATCHES_PER_OWNER,
        }
    }

    fn add(&mut self, dir: PathBuf, depth: usize) {
        let Ok(owner) = std::fs::metadata(&dir).map(|m| m.uid()) else { return };
        let owned = if owner == 0 { 0 } else { self.by_owner.get(&owner).copied().unwrap_or(0) };
        if self.dirs.len() >= self.max_watches || owned >= self.max_per_owner {
            if self.refused == 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    owner,
                    "cgroup directories past the watch cap (at most {} in all, {} per owner other than root) are not watched: cgroups made below them that end at once may go unnamed",
                    self.max_watches,
                    self.max_per_owner
                );
            }
            self.refused += 1;
            return;
        }
        let mask = WatchMask::CREATE | WatchMask::ONLYDIR;
        if let Ok(wd) = self.inotify.watches().add(&dir, mask) {
            // Adding a watch of a directory watched already gives its descriptor again.
            if let Some((_, _, before)) = self.dirs.insert(wd, (dir, depth, owner)) {
                self.forget_owner(before);
            }
            if owner != 0 {
                *self.by_owner.entry(owner).or_insert(0) += 1;
            }
        }
    }

    /// Forgets a watch the kernel dropped (its directory went).
    fn forget(&mut self, wd: &WatchDescriptor) {
        if let Some((_, _, owner)) = self.dirs.remove(wd) {
            self.forget_owner(owner);
        }
    }

    fn forget_owner(&mut self, owner: u32) {
        if let Some(n) = self.by_owner.get_mut(&owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_owner.remove(&owner);
            }
        }
    }

    /// Drops the watches of directories that are gone.
    fn prune(&mut self) {
        let gone: Vec<WatchDescriptor> =
            self.dirs.iter().filter(|(_, (dir, _, _))| !dir.exists()).map(|(wd, _)| wd.clone()).collect();
        for wd in gone {
            let _ = self.inotify.watches().remove(wd.clone());
            self.forget(&wd);
        }
    }

    /// Watches the existing tree (directories only) down to `MAX_DEPTH`.
    fn add_tree(&mut self, root: PathBuf, depth: usize) {
        let mut stack = vec![(root, depth)];
        while let Some((dir, depth)) = stack.pop() {
            if depth + 1 < MAX_DEPTH
                && let Ok(entries) = std::fs::read_dir(&dir)
            {
                stack.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| (e.path(), depth + 1)),
                );
            }
            self.add(dir, depth);
        }
    }
}

fn watch(mount: &Path, out: &FreshPaths) -> std::io::Result<()> {
    let mut watches = Watches::new(Inotify::init()?);
    watches.add_tree(mount.to_path_buf(), 0);
    WATCHED.store(watches.dirs.len(), Ordering::Relaxed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut pruned_at = std::time::Instant::now();
    loop {
        // cgroupfs (kernfs) sends no IN_IGNORED when a cgroup is removed: a
        // watch of a removed cgroup stays until it is removed here, else the
        // watches (the kernel's and this map) grow with every cgroup ever made.
        if pruned_at.elapsed() >= std::time::Duration::from_secs(5) {
            pruned_at = std::time::Instant::now();
            watches.prune();
            WATCHED.store(watches.dirs.len(), Ordering::Relaxed);
        }
        let events: Vec<(WatchDescriptor, EventMask, Option<std::ffi::OsString>)> = watches
            .inotify
            .read_events_blocking(&mut buf)?
            .map(|e| (e.wd, e.mask, e.name.map(|n| n.to_owned())))
            .collect();
        for (wd, mask, name) in events {
            if mask.contains(EventMask::IGNORED) {
                // The directory went (or the watch was dropped): forget it.
                watches.forget(&wd);
                WATCHED.store(watches.dirs.len(), Ordering::Relaxed);
                continue;
            }
            if mask.contains(EventMask::Q_OVERFLOW) {
                tracing::warn!("the cgroup watch queue overflowed: some short-lived cgroups may go unnamed");
                continue;
            }
            let (Some(name), true) = (name, mask.contains(EventMask::ISDIR)) else { continue };
            let Some((parent, depth, _)) = watches.dirs.get(&wd).cloned() else { continue };
            let path = parent.join(name);
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if let Ok(rel) = path.strip_prefix(mount)
                && let Ok(mut fresh) = out.lock()
            {
                if fresh.len() >= MAX_FRESH {
                    fresh.clear();
                }
                fresh.insert(meta.ino(), format!("/{}", rel.display()));
            }
            if depth + 1 < MAX_DEPTH {
                watches.add(path, depth + 1);
                WATCHED.store(watches.dirs.len(), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Watches follow directories as they come and go (a plain directory tree
    /// stands in for cgroupfs: inotify behaves the same).
    #[test]
    fn watches_are_forgotten_when_directories_go() {
        let root = std::env::temp_dir().join(format!("observer-cgroup-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("a")).unwrap();
        let mut w = Watches::new(Inotify::init().unwrap());
        w.add_tree(root.clone(), 0);
        assert_eq!(w.dirs.len(), 2);
        std::fs::remove_dir(root.join("a")).unwrap();
        let mut buf = vec![0u8; 4096];
        let ignored: Vec<WatchDescriptor> = w
            .inotify
            .read_events_blocking(&mut buf)
            .unwrap()
            .filter(|e| e.mask.contains(EventMask::IGNORED))
            .map(|e| e.wd)
            .collect();
        for wd in ignored {
            w.forget(&wd);
        }
        assert_eq!(w.dirs.len(), 1, "the removed directory's watch is forgotten");
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A user's directories take at most their share of the watches, and
    /// all of them at most the cap; root's go on being watched.
    #[test]
    fn watches_are_capped_in_all_and_per_owner() {
        let root = std::env::temp_dir().join(format!("observer-cgroup-watch-cap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("user")).unwrap();
        std::os::unix::fs::chown(root.join("user"), Some(65534), Some(65534)).unwrap();
        let mut w = Watches::new(Inotify::init().unwrap());
        w.max_per_owner = 3;
        w.max_watches = 8;
        w.add(root.clone(), 0);
        w.add(root.join("user"), 1);
        for i in 0..10 {
            let d = root.join("user").join(format!("c{i}"));
            std::fs::create_dir(&d).unwrap();
            std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
            w.add(d, 2);
        }
        assert_eq!(w.by_owner.get(&65534), Some(&3), "the user's share");
        assert_eq!(w.dirs.len(), 4);
        for i in 0..10 {
            let d = root.join(format!("r{i}"));
            std::fs::create_dir(&d).unwrap();
            w.add(d, 1);
        }
        assert_eq!(w.dirs.len(), 8, "the cap in all");
        assert_eq!(w.refused, 8 + 6, "c2..c9, r4..r9");
        // A watch the kernel dropped gives its owner's share back.
        let wd = w.dirs.iter().find(|(_, (_, _, o))| *o == 65534).map(|(wd, _)| wd.clone()).unwrap();
        w.forget(&wd);
        assert_eq!(w.by_owner.get(&65534), Some(&2));
        let _ = std::fs::remove_dir_all(&root);
    }
}
