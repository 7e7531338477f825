//! Names new cgroups the moment they are created. A container that fails to
//! start (the seed lab's deny.json) lives a few milliseconds: by the time its
//! first event is read its cgroup may be gone, and with it the only way to learn
//! its path from its id. inotify on the v2 tree records (id, path) as each
//! directory appears.

use std::{
    collections::HashMap,
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// cgroup id -> path relative to the v2 mount, shared with the agent.
pub type FreshPaths = Arc<Mutex<HashMap<u64, String>>>;

/// How deep below the mount new directories are watched (kubepods nests 4 deep).
const MAX_DEPTH: usize = 6;

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

fn add_watch(fd: i32, dir: &Path) -> Option<i32> {
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_CREATE | libc::IN_ONLYDIR) };
    (wd >= 0).then_some(wd)
}

fn watch(mount: &Path, out: &FreshPaths) -> std::io::Result<()> {
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut dirs: HashMap<i32, (PathBuf, usize)> = HashMap::new();
    // Watch the existing tree (directories only) down to MAX_DEPTH.
    let mut stack = vec![(mount.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if let Some(wd) = add_watch(fd, &dir) {
            dirs.insert(wd, (dir.clone(), depth));
        }
        if depth + 1 >= MAX_DEPTH {
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((e.path(), depth + 1));
                }
            }
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let mut off = 0usize;
        while off + std::mem::size_of::<libc::inotify_event>() <= n as usize {
            // SAFETY: the kernel wrote a whole inotify_event (and its name) here.
            let ev = unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast::<libc::inotify_event>()) };
            let name_start = off + std::mem::size_of::<libc::inotify_event>();
            let name_bytes = &buf[name_start..name_start + ev.len as usize];
            off = name_start + ev.len as usize;
            let name_end = name_bytes.iter().position(|b| *b == 0).unwrap_or(name_bytes.len());
            let name = std::ffi::OsStr::from_bytes(&name_bytes[..name_end]);
            let Some((parent, depth)) = dirs.get(&ev.wd).cloned() else { continue };
            if ev.mask & libc::IN_ISDIR == 0 {
                continue;
            }
            let path = parent.join(name);
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if let Ok(rel) = path.strip_prefix(mount) {
                let rel = format!("/{}", rel.display());
                if let Ok(mut fresh) = out.lock() {
                    if fresh.len() > 100_000 {
                        fresh.clear();
                    }
                    fresh.insert(meta.ino(), rel);
                }
            }
            if depth + 1 < MAX_DEPTH
                && let Some(wd) = add_watch(fd, &path)
            {
                dirs.insert(wd, (path, depth + 1));
            }
        }
    }
}
