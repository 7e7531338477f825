//! Finds the cgroup v2 mount and maps cgroup ids to paths in it.
//!
//! `bpf_get_current_cgroup_id()` returns the kernfs node id of the task's v2
//! cgroup, which is the inode number of that cgroup's directory in the v2 mount
//! (64-bit kernels: `kernfs_ino()` == `kn->id`, see
//! <https://github.com/torvalds/linux/blob/v6.18/include/linux/kernfs.h>).
//! On hybrid hosts v2 is not at `/sys/fs/cgroup`, so the mount is always looked
//! up in mountinfo.

use std::{
    collections::HashMap,
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

pub const MOUNTINFO: &str = "/proc/self/mountinfo";

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("reading {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no cgroup2 mount in {file}: cgroup v2 is needed to tell containers apart")]
    NoV2Mount { file: PathBuf },
}

/// The first `cgroup2` mount point in mountinfo text (proc(5) format:
/// fields before ` - `, then fstype, source, super options).
pub fn parse_mountinfo(text: &str) -> Option<PathBuf> {
    v2_mount_points(text).next()
}

/// Every `cgroup2` mount point in mountinfo text, in order.
fn v2_mount_points(text: &str) -> impl Iterator<Item = PathBuf> + '_ {
    text.lines().filter_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        let mount_point = left.split(' ').nth(4)?;
        Some(PathBuf::from(unescape_octal(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 mount point of this process's mount namespace.
pub fn find_v2_mount() -> Result<PathBuf, MountError> {
    find_v2_mount_in(Path::new(MOUNTINFO))
}

/// As [`find_v2_mount`], from another mountinfo file (`/proc/PID/mountinfo`).
/// Of several cgroup2 mounts, the first that shows the host's whole tree (a
/// pod may have its namespace's own at `/sys/fs/cgroup` and the host's bound
/// elsewhere), else the first.
pub fn find_v2_mount_in(file: &Path) -> Result<PathBuf, MountError> {
    let text = fs::read_to_string(file).map_err(|source| MountError::Read { file: file.to_owned(), source })?;
    v2_mount_points(&text)
        .find(|m| shows_whole_tree(m).unwrap_or(false))
        .or_else(|| parse_mountinfo(&text))
        .ok_or_else(|| MountError::NoV2Mount { file: file.to_owned() })
}

/// The id of the root of the cgroup v2 hierarchy (`cgrp_dfl_root`'s cgroup,
/// the first kernfs node of its root; `stat -c %i` of a host v2 mount shows 1).
pub const ROOT_CGROUP_ID: u64 = 1;

/// Whether the mount shows the host's whole v2 tree. A cgroup2 mount made
/// inside a cgroup namespace shows only that namespace's subtree, and the
/// cgroups of containers outside it cannot be named from there; a bind of the
/// host's mount (the DaemonSet's hostPath `/sys/fs/cgroup`) shows all of it.
pub fn shows_whole_tree(mount: &Path) -> io::Result<bool> {
    Ok(path_to_id(mount)? == ROOT_CGROUP_ID)
}

/// The root field of the cgroup2 mount at `mount` in this process's
/// mountinfo: the cgroup the mount shows at its top, written relative to the
/// process's cgroup namespace (`/` for its root; `/..` above it).
pub fn mount_root(mount: &Path) -> io::Result<String> {
    let text = fs::read_to_string(MOUNTINFO)?;
    parse_mount_root(&text, mount).ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("no cgroup2 mount at {} in {MOUNTINFO}", mount.display()))
    })
}

/// [`mount_root`] from mountinfo text. Of several mounts at one point, the
/// last is the one on top.
pub fn parse_mount_root(text: &str, mount: &Path) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        let mut fields = left.split(' ');
        let root = fields.nth(3)?;
        let point = fields.next()?;
        (Path::new(&unescape_octal(point)) == mount).then(|| unescape_octal(root))
    })
}

/// The cgroup id of the cgroup directory at `path` (an absolute filesystem path).
pub fn path_to_id(path: &Path) -> io::Result<u64> {
    Ok(fs::metadata(path)?.ino())
}

/// The cgroup id of a cgroup given relative to the v2 mount (`/docker/<id>`).
pub fn cgroup_id(mount: &Path, cgroup: &str) -> io::Result<u64> {
    path_to_id(&mount.join(cgroup.trim_start_matches('/')))
}

/// Walks the whole v2 tree and maps each cgroup id to its path relative to the
/// mount (`/` for the root). Cgroups come and go during the walk: one that
/// vanishes is left out, not an error. Only a missing or unreadable mount
/// itself is an error. Blocking; run it with `spawn_blocking` from async code.
pub fn walk_ids(mount: &Path) -> io::Result<HashMap<u64, String>> {
    let mut ids = HashMap::new();
    ids.insert(path_to_id(mount)?, "/".to_owned());
    let mut stack = vec![(mount.to_owned(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Some(children) = subdirs(&dir)? else {
            continue;
        };
        for name in children {
            let path = dir.join(&name);
            let child_rel = format!("{rel}/{name}");
            match path_to_id(&path) {
                Ok(id) => {
                    ids.insert(id, child_rel.clone());
                    stack.push((path, child_rel));
                }
                Err(e) if vanished(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(ids)
}

/// The names of the subdirectories of `dir`, or `None` if `dir` vanished.
fn subdirs(dir: &Path) -> io::Result<Option<Vec<String>>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if vanished(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if vanished(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match entry.file_type() {
            Ok(t) if t.is_dir() => names.push(entry.file_name().to_string_lossy().into_owned()),
            Ok(_) => {}
            Err(e) if vanished(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(names))
}

/// A removed cgroup gives ENOENT; a directory removed between `readdir` and
/// `stat` can also give ENODEV on kernfs.
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup rw,xattr,name=systemd
41 30 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 30 0:39 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory
";

    #[test]
    fn finds_v2_on_a_hybrid_host() {
        assert_eq!(parse_mountinfo(HYBRID), Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn finds_v2_on_a_unified_host_with_optional_fields() {
        let text = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 master:1 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(parse_mountinfo(text), Some(PathBuf::from("/sys/fs/cgroup")));
    }

    #[test]
    fn the_mount_root_is_read_relative_to_the_namespace() {
        let mount = Path::new("/sys/fs/cgroup/unified");
        assert_eq!(parse_mount_root(HYBRID, mount).as_deref(), Some("/"));
        // The host's mount seen from a private cgroup namespace two levels down.
        let inside = HYBRID.replace("41 30 0:38 / /sys/fs/cgroup/unified", "41 30 0:38 /../.. /sys/fs/cgroup/unified");
        assert_eq!(parse_mount_root(&inside, mount).as_deref(), Some("/../.."));
        // A pod's own mount, covered by the host's at the same point: the last wins.
        let covered = "35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n36 35 0:30 /.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(parse_mount_root(covered, Path::new("/sys/fs/cgroup")).as_deref(), Some("/.."));
        assert_eq!(parse_mount_root(HYBRID, Path::new("/sys/fs/cgroup")), None);
    }

    /// A namespace's own cgroup2 mount listed first, the host's second: the
    /// host's, which shows every container, is the one used.
    #[test]
    fn the_mount_showing_the_whole_tree_is_preferred() {
        let host = find_v2_mount().expect("this machine has a cgroup v2 mount");
        let dir = test_dir("prefer");
        let file = dir.join("mountinfo");
        let text = format!(
            "35 24 0:30 / {} rw - cgroup2 cgroup2 rw\n36 24 0:30 /.. {} rw - cgroup2 cgroup2 rw\n",
            dir.display(),
            host.display()
        );
        fs::write(&file, text).unwrap();
        assert_eq!(find_v2_mount_in(&file).unwrap(), host);
        fs::remove_dir_all(dir).unwrap();
    }

    /// This machine's v2 mount is the host's, seen from the host.
    #[test]
    fn the_real_mount_shows_the_whole_tree() {
        let mount = find_v2_mount().expect("this machine has a cgroup v2 mount");
        assert!(shows_whole_tree(&mount).unwrap());
        assert!(!shows_whole_tree(&mount.join("docker")).unwrap_or(false));
        assert_eq!(mount_root(&mount).unwrap(), "/");
    }

    #[test]
    fn unescapes_mount_points() {
        let text = "50 22 0:40 / /mnt/my\\040cgroup\\134v2 rw - cgroup2 none rw\n";
        assert_eq!(parse_mountinfo(text), Some(PathBuf::from("/mnt/my cgroup\\v2")));
    }

    #[test]
    fn no_v2_is_none_and_an_error_naming_the_file() {
        let v1_only: String = HYBRID.lines().filter(|l| !l.contains("cgroup2")).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse_mountinfo(&v1_only), None);
        assert_eq!(parse_mountinfo("garbage\n\n - \n"), None);

        let dir = test_dir("nov2");
        let file = dir.join("mountinfo");
        fs::write(&file, v1_only).unwrap();
        let err = find_v2_mount_in(&file).unwrap_err();
        assert!(err.to_string().contains(file.to_str().unwrap()), "{err}");
        let err = find_v2_mount_in(&dir.join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn walk_maps_inodes_to_relative_paths() {
        let dir = test_dir("walk");
        fs::create_dir_all(dir.join("a/b/c")).unwrap();
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::write(dir.join("a/cgroup.procs"), "").unwrap();
        let ids = walk_ids(&dir).unwrap();
        assert_eq!(ids.len(), 5, "{ids:?}");
        for rel in ["/", "/a", "/a/b", "/a/b/c", "/d"] {
            let id = cgroup_id(&dir, rel).unwrap();
            assert_eq!(ids.get(&id).map(String::as_str), Some(rel));
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_vanished_directory_is_skipped() {
        let dir = test_dir("vanish");
        assert!(subdirs(&dir.join("gone")).unwrap().is_none());
        // The mount itself missing is an error.
        assert!(walk_ids(&dir.join("gone")).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    /// Against this machine's real v2 mount: our own cgroup is in the map.
    #[test]
    fn walk_finds_own_cgroup_in_the_real_v2_mount() {
        let mount = find_v2_mount().expect("this machine has a cgroup v2 mount");
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        let rel = own.lines().find_map(|l| l.strip_prefix("0::")).expect("a 0:: line in /proc/self/cgroup");
        let id = cgroup_id(&mount, rel).unwrap();
        let ids = walk_ids(&mount).unwrap();
        assert_eq!(ids.get(&id).map(String::as_str), Some(rel));
        assert_eq!(walk_ids(&mount).unwrap().remove(&id).as_deref(), Some(rel));
    }

    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("observer-v2-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
