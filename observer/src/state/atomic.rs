//! Atomic file replacement: write a temporary file in the same directory,
//! fsync it, rename it over the target, fsync the directory so the rename
//! itself survives a crash. Files are mode 0600: profiles and state describe
//! what containers do and are not for other users.
//!
//! Targets that are not files (`/dev/null`, a terminal, a FIFO, `/dev/stdout`,
//! a shell's `>(jq .)`) are written in place, and never wait: a FIFO nobody
//! reads is an error at once, not a hang.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::{
        fd::AsRawFd as _,
        unix::fs::{FileTypeExt as _, OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

/// Replaces `path` with `bytes` atomically, mode 0600.
///
/// A path that exists and is not a regular file (`/dev/null`, `/dev/stdout`, a
/// FIFO) is written in place: renaming over it would replace the device itself.
/// So is a file reached through `/proc` (`/dev/stdout`, `/dev/fd/N` when the
/// shell redirected to a file): it is the file an fd has open, and renaming
/// over the link would replace `/dev/stdout` itself. Block devices and sockets
/// are refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if written_in_place(path)? {
        return write_in_place(path, bytes);
    }
    let (dir, tmp) = temp_beside(path)?;
    let result = write_temp(&tmp, bytes).and_then(|file| {
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The directory `path` is in, and a fresh temporary name beside it there
/// (rename is only atomic within one filesystem).
pub(super) fn temp_beside(path: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display())))?;
    let tmp = temp_path(&dir, &name.to_string_lossy());
    Ok((dir, tmp))
}

/// Creates `tmp` (mode 0600, a new file) holding `bytes`, not yet synced.
/// The caller removes it if anything after fails.
pub(super) fn write_temp(tmp: &Path, bytes: &[u8]) -> io::Result<File> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp)?;
    // The umask can only clear bits, but be explicit about the final mode.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    Ok(file)
}

/// Whether `path` is written in place rather than replaced; errors for what
/// must not be written at all.
pub(super) fn written_in_place(path: &Path) -> io::Result<bool> {
    // Missing: created. A dangling symlink: replaced, as before.
    let (Ok(own), Ok(target)) = (fs::symlink_metadata(path), fs::metadata(path)) else {
        return Ok(false);
    };
    let kind = target.file_type();
    let refuse = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is {what}", path.display())));
    if kind.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{} is a directory", path.display())));
    }
    if kind.is_block_device() {
        return refuse("a block device; refusing to write over it");
    }
    if kind.is_socket() {
        return refuse("a socket, not a file");
    }
    if !kind.is_file() {
        return Ok(true);
    }
    Ok(own.file_type().is_symlink() && through_procfs(path))
}

/// Whether following `path`'s symlinks passes through a link in procfs, such as
/// `/proc/self/fd/1` (which `/dev/stdout` and `/dev/fd/1` lead to).
fn through_procfs(path: &Path) -> bool {
    let mut p = path.to_path_buf();
    // The kernel's own limit on links followed (MAXSYMLINKS).
    for _ in 0..40 {
        if !fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return false;
        }
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if is_procfs(&dir) {
            return true;
        }
        let Ok(next) = fs::read_link(&p) else { return false };
        p = dir.join(next);
    }
    false
}

fn is_procfs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs is plain old data; all zeroes is a valid value, and statfs fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a statfs buffer of the right type.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::PROC_SUPER_MAGIC }
}

/// Opens without waiting (a FIFO with no reader fails with ENXIO instead of
/// blocking in open), then writes blocking: a slow reader must not get EAGAIN.
/// Appends, so that `-o /dev/stdout` into a file follows what the command wrote.
pub(super) fn write_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().append(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).map_err(
        |e| match e.raw_os_error() {
            Some(libc::ENXIO) => io::Error::new(
                e.kind(),
                format!(
                    "nobody is reading the FIFO {}; start its reader first (observer does not wait)",
                    path.display()
                ),
            ),
            _ => e,
        },
    )?;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on an fd this function owns.
    let cleared = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !cleared {
        return Err(io::Error::last_os_error());
    }
    file.write_all(bytes)
}

/// Unique per process and call, hidden, in the target's directory (rename is
/// only atomic within one filesystem).
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

/// For a file name `temp_path` makes (`.<name>.tmp.<pid>.<n>`, what a process
/// killed between writing and renaming leaves behind), the name of the file it
/// was to replace; `None` for any other name.
pub fn target_of_temp(file: &str) -> Option<&str> {
    let rest = file.strip_prefix('.')?;
    let mut parts = rest.rsplitn(4, '.');
    let (Some(n), Some(pid), Some("tmp"), Some(name)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let numbers = [n, pid].iter().all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    (!name.is_empty() && numbers).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_no_temp_files() {
        let dir = std::env::temp_dir().join(format!("observer-atomic-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("profile.json");

        write_atomic(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        // An existing file with wider permissions is replaced by a 0600 one.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("profile.json")]);

        let temp = temp_path(&dir, "profile.json");
        assert_eq!(target_of_temp(&temp.file_name().unwrap().to_string_lossy()), Some("profile.json"));
        for not_temp in ["profile.json", ".tmp.1.2", ".a.json.tmp.x.2"] {
            assert_eq!(target_of_temp(not_temp), None, "{not_temp}");
        }

        // A missing directory is an error and leaves nothing behind.
        assert!(write_atomic(&dir.join("missing/x"), b"x").is_err());
        assert!(write_atomic(Path::new("/"), b"x").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod device_tests {
    use std::{
        ffi::CString,
        io::Read as _,
        os::unix::{ffi::OsStrExt as _, fs::FileTypeExt as _},
        sync::mpsc,
        time::Duration,
    };

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("observer-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
    }

    /// `write_atomic` in a thread; None when it did not return within 5 s.
    fn write_within(path: &Path, bytes: &'static [u8]) -> Option<io::Result<()>> {
        let (tx, rx) = mpsc::channel();
        let p = path.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(write_atomic(&p, bytes));
        });
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }

    #[test]
    fn a_fifo_nobody_reads_fails_at_once_and_names_itself() {
        let dir = scratch("fifo");
        let fifo = dir.join("report.fifo");
        mkfifo(&fifo);
        let link = dir.join("report.json");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        for path in [&fifo, &link] {
            let result = write_within(path, b"report");
            // Unblock a writer stuck in open() (the behaviour this test guards against).
            let _unblock = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo);
            let err = result.unwrap_or_else(|| panic!("writing {} blocked: nobody reads the FIFO", path.display()));
            let err = err.expect_err("nobody reads: an error");
            let shown = err.to_string();
            assert!(shown.contains(&path.display().to_string()) && shown.contains("nobody is reading"), "{shown}");
        }
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is left as it was");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_with_a_slow_reader_gets_everything() {
        let dir = scratch("reader");
        let fifo = dir.join("out");
        mkfifo(&fifo);
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut f = fs::File::open(&reader_path).unwrap();
            // Slower than the writer: a writer left in O_NONBLOCK would get EAGAIN.
            std::thread::sleep(Duration::from_millis(300));
            let mut all = Vec::new();
            f.read_to_end(&mut all).unwrap();
            all
        });
        // Wait until the reader has the FIFO open.
        std::thread::sleep(Duration::from_millis(100));
        static BIG: [u8; 1 << 20] = [b'x'; 1 << 20];
        let result = write_within(&fifo, &BIG).expect("a FIFO with a reader must not block for long");
        result.expect("writing to a FIFO with a reader");
        assert_eq!(reader.join().unwrap().len(), BIG.len());
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO stays a FIFO");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_named_through_proc_self_fd_is_appended_to_not_replaced() {
        use std::os::fd::AsRawFd as _;
        let dir = scratch("fd");
        let out = dir.join("out.txt");
        let mut file = OpenOptions::new().create(true).append(true).open(&out).unwrap();
        file.write_all(b"the command's own output\n").unwrap();
        // What `-o /dev/stdout` or `-o /dev/fd/N` reaches when the shell redirected to a file.
        for path in [format!("/proc/self/fd/{}", file.as_raw_fd()), format!("/dev/fd/{}", file.as_raw_fd())] {
            write_within(Path::new(&path), b"report\n").expect("no block").unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        assert_eq!(fs::read_to_string(&out).unwrap(), "the command's own output\nreport\nreport\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn block_devices_and_sockets_are_refused() {
        let dir = scratch("refused");
        let sock = dir.join("api.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err = write_atomic(&sock, b"x").expect_err("a socket");
        assert!(err.to_string().contains("socket"), "{err}");
        if let Some(disk) = fs::read_dir("/dev")
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device()))
        {
            let link = dir.join("report.json");
            std::os::unix::fs::symlink(&disk, &link).unwrap();
            let err = write_atomic(&link, b"x").expect_err("a block device");
            assert!(err.to_string().contains("block device"), "{err}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_device_is_written_in_place_not_replaced() {
        write_atomic(Path::new("/dev/null"), b"report").expect("write to /dev/null");
        let meta = fs::metadata("/dev/null").expect("/dev/null");
        assert!(!meta.file_type().is_file(), "/dev/null must stay a device");
    }
}
