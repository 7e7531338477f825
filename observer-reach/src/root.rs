//! Files of a root filesystem (an exported image, a container's
//! `/proc/PID/root`, a directory), opened the way the container would see
//! them: every path is resolved by the kernel inside the root
//! (`openat2` with `RESOLVE_IN_ROOT`), so `..` and absolute symlinks stay in
//! it and a symlink loop ends in `ELOOP`, never outside the root.

use std::{
    collections::HashMap,
    fs::File,
    io::Read as _,
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};

pub use crate::file_id::{FileId, Stamp};
use crate::{
    error::ReachError,
    index::{Entry, FileKey, Fingerprint, StatIndex},
};

/// Files above this size are not read (listed as incomplete instead).
pub const MAX_FILE_BYTES: u64 = 512 << 20;
/// Directory entries visited by one walk at most.
pub const MAX_WALK_ENTRIES: usize = 2_000_000;
/// ELF files one walk lists at most.
pub const MAX_ELF_FILES: usize = 50_000;
const MAX_DEPTH: usize = 64;

/// A root directory, held open.
/// What [`Root::walk`] found.
#[derive(Debug, Default)]
pub struct Walked {
    /// Paths of the ELF files, sorted.
    pub files: Vec<String>,
    pub errors: Vec<ReachError>,
    /// Of the whole tree: equal when nothing the analysis reads changed.
    pub fingerprint: String,
    /// Every regular file with its stamps (and digest, when the index had it).
    pub seen: HashMap<String, Entry>,
}

#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    path: PathBuf,
}

/// One file opened in the root.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub id: FileId,
    pub stamp: Stamp,
    pub mode: u32,
}

impl Root {
    pub fn open(path: &Path) -> Result<Self, ReachError> {
        let dir = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| ReachError::Root { path: path.to_owned(), source: e.into() })?;
        Ok(Self { dir, path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `path` (absolute or not, always taken from the root) as the
    /// container would, symlinks resolved inside the root.
    pub fn open_file(&self, path: &str) -> Result<Opened, ReachError> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        // NONBLOCK: a FIFO in the image must not block the analysis.
        let fd = rustix::fs::openat2(
            &self.dir,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| ReachError::io(path, e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| ReachError::io(path, e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(ReachError::NotRegular { path: path.to_owned() });
        }
        Ok(Opened {
            file: File::from(fd),
            id: FileId { dev: st.st_dev, ino: st.st_ino },
            stamp: stamp_of(&st),
            mode: st.st_mode,
        })
    }

    /// Every regular file of the root that starts with the ELF magic, by
    /// path, without following symlinks (each file is found by its own
    /// path). Pseudo filesystems (proc, sys, ...) are not entered. Bounded in
    /// entries and files; what the bounds cut off is returned as an error.
    pub fn elf_files(&self) -> (Vec<String>, Vec<ReachError>) {
        let w = self.walk(&StatIndex::default());
        (w.files, w.errors)
    }

    /// [`Self::elf_files`], with every file's stamps (taken without opening
    /// it): a file whose stamps `known` holds is not opened to look for the
    /// magic. Also the fingerprint of the whole tree (paths, kinds, stamps,
    /// symlink targets) and what was seen of each regular file.
    pub fn walk(&self, known: &StatIndex) -> Walked {
        let mut w = Walked::default();
        let mut print = Fingerprint::default();
        let mut entries = 0usize;
        let mut stack: Vec<(String, usize)> = vec![(String::new(), 0)];
        while let Some((dir_path, depth)) = stack.pop() {
            let shown = if dir_path.is_empty() { "/".to_owned() } else { dir_path.clone() };
            print.dir(&shown);
            let fd = match self.open_dir(&dir_path) {
                Ok(fd) => fd,
                Err(e) => {
                    print.other(&format!("{shown}: {e}"));
                    w.errors.push(ReachError::io(&shown, e.into()));
                    continue;
                }
            };
            if is_pseudo_fs(&fd) {
                continue;
            }
            let dir = match Dir::read_from(&fd) {
                Ok(d) => d,
                Err(e) => {
                    print.other(&format!("{shown}: {e}"));
                    w.errors.push(ReachError::io(&shown, e.into()));
                    continue;
                }
            };
            let mut names = Vec::new();
            for entry in dir {
                let Ok(entry) = entry else { break };
                entries += 1;
                if entries > MAX_WALK_ENTRIES {
                    print.other("entries");
                    w.errors.push(ReachError::Limit { what: "directory entries", limit: MAX_WALK_ENTRIES });
                    w.fingerprint = print.finish();
                    w.files.sort();
                    return w;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name == "." || name == ".." {
                    continue;
                }
                names.push((name, entry.file_name().to_owned(), entry.file_type()));
            }
            names.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, raw, kind) in names.into_iter().rev() {
                let child = format!("{dir_path}/{name}");
                match kind {
                    FileType::Directory if depth < MAX_DEPTH => stack.push((child, depth + 1)),
                    FileType::Symlink => {
                        let target = rustix::fs::readlinkat(&fd, raw.as_c_str(), Vec::new())
                            .map(|t| t.into_bytes())
                            .unwrap_or_default();
                        print.link(&child, &target);
                    }
                    FileType::RegularFile | FileType::Unknown => {
                        let Ok(st) = rustix::fs::statat(&fd, raw.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) else {
                            print.other(&child);
                            continue;
                        };
                        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                            print.other(&child);
                            continue;
                        }
                        let key = FileKey::new(FileId { dev: st.st_dev, ino: st.st_ino }, stamp_of(&st));
                        print.file(&child, &key);
                        let entry = match known.unchanged(&child, &key) {
                            Some(e) => e.clone(),
                            None => Entry { key, elf: self.has_elf_magic(&child), digest: None },
                        };
                        if entry.elf {
                            if w.files.len() >= MAX_ELF_FILES {
                                print.other("files");
                                w.errors.push(ReachError::Limit { what: "ELF files", limit: MAX_ELF_FILES });
                                w.fingerprint = print.finish();
                                w.files.sort();
                                return w;
                            }
                            w.files.push(child.clone());
                        }
                        w.seen.insert(child, entry);
                    }
                    _ => print.other(&child),
                }
            }
        }
        w.files.sort();
        w.fingerprint = print.finish();
        w
    }

    pub fn list_dir(&self, path: &str) -> Vec<String> {
        let Ok(fd) = self.open_dir_resolved(path) else { return Vec::new() };
        let Ok(dir) = Dir::read_from(&fd) else { return Vec::new() };
        dir.map_while(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .take(MAX_WALK_ENTRIES)
            .collect()
    }

    fn open_dir_resolved(&self, path: &str) -> rustix::io::Result<OwnedFd> {
        let rel = path.trim_start_matches('/');
        rustix::fs::openat2(
            &self.dir,
            if rel.is_empty() { "." } else { rel },
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    fn open_dir(&self, path: &str) -> rustix::io::Result<OwnedFd> {
        let rel = path.trim_start_matches('/');
        rustix::fs::openat2(
            &self.dir,
            if rel.is_empty() { "." } else { rel },
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
        )
    }

    fn has_elf_magic(&self, path: &str) -> bool {
        let Ok(mut opened) = self.open_file(path) else { return false };
        let mut magic = [0u8; 4];
        opened.file.read_exact(&mut magic).is_ok() && magic == *b"\x7fELF"
    }
}

/// Reads a whole opened file, refusing one larger than [`MAX_FILE_BYTES`].
pub fn read_all(opened: &mut Opened, path: &str) -> Result<Vec<u8>, ReachError> {
    if opened.stamp.size > MAX_FILE_BYTES {
        return Err(ReachError::TooLarge { path: path.to_owned(), size: opened.stamp.size, limit: MAX_FILE_BYTES });
    }
    let mut data = Vec::with_capacity(opened.stamp.size as usize);
    (&mut opened.file).take(MAX_FILE_BYTES + 1).read_to_end(&mut data).map_err(|e| ReachError::io(path, e))?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(ReachError::TooLarge { path: path.to_owned(), size: data.len() as u64, limit: MAX_FILE_BYTES });
    }
    Ok(data)
}

fn stamp_of(st: &rustix::fs::Stat) -> Stamp {
    Stamp {
        size: st.st_size as u64,
        mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
        ctime_ns: i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec),
        ino: st.st_ino,
    }
}

/// Kernel filesystems that hold no image files (a running container's root
/// has them mounted).
fn is_pseudo_fs(fd: &impl AsFd) -> bool {
    const PSEUDO: &[i64] = &[
        0x9fa0,                 // proc
        0x6265_6572,            // sysfs
        0x1cd1,                 // devpts
        0x2796_2792_u32 as i64, // cgroup
        0x6367_7270,            // cgroup2
        0x6462_6720,            // debugfs
        0x7472_6163,            // tracefs
        0x7363_6673,            // securityfs
        0xcafe_4a11_u32 as i64, // bpf
    ];
    rustix::fs::fstatfs(fd).is_ok_and(|s| PSEUDO.contains(&s.f_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/inside"), b"\x7fELFxx").unwrap();
        // An absolute symlink points inside the root, not at the host's file.
        std::os::unix::fs::symlink("/bin/inside", root.join("bin/abs")).unwrap();
        // `..` past the root stays at the root.
        std::os::unix::fs::symlink("../../../../bin/inside", root.join("bin/up")).unwrap();
        // A loop ends in an error, not a hang.
        std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
        // A path to the host's /etc/passwd resolves in the root, where it does not exist.
        std::os::unix::fs::symlink("/etc/passwd", root.join("escape")).unwrap();
        let r = Root::open(root).unwrap();
        let inside = r.open_file("/bin/inside").unwrap().id;
        assert_eq!(r.open_file("bin/abs").unwrap().id, inside);
        assert_eq!(r.open_file("/bin/up").unwrap().id, inside);
        assert_eq!(r.open_file("/../../bin/inside").unwrap().id, inside);
        let err = r.open_file("/loop1").unwrap_err().to_string();
        assert!(err.contains("/loop1"), "{err}");
        assert!(r.open_file("/escape").is_err());
        let (files, errors) = r.elf_files();
        assert_eq!(files, vec!["/bin/inside".to_owned()]);
        assert!(errors.is_empty(), "{errors:?}");
    }
}
