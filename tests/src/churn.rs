//! Plain cgroups v2 made and removed by tests, each with a real process in it
//! that makes syscalls: what the fault tests and the soak churn through.

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The cgroup v2 mount (hybrid hosts have it at /sys/fs/cgroup/unified).
pub fn v2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo");
    mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .expect("no cgroup2 mount in /proc/self/mountinfo")
}

/// A cgroup directory under the v2 mount; its processes are killed and the
/// directory removed on drop.
pub struct Cgroup {
    pub dir: PathBuf,
}

impl Cgroup {
    /// Makes `rel` (relative to the v2 mount; parents are made too).
    pub fn create(rel: &str) -> Self {
        let dir = v2_root().join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
        Cgroup { dir }
    }

    /// The cgroup id the kernel programs see (the directory's inode).
    pub fn id(&self) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&self.dir).expect("cgroup dir"))
    }

    /// The path as the agent names it: relative to the v2 mount, with a leading `/`.
    pub fn rel(&self) -> String {
        format!("/{}", self.dir.strip_prefix(v2_root()).expect("under the v2 mount").display())
    }

    /// Starts `cmd` inside this cgroup: the child joins it before it execs,
    /// so every syscall of the command is the cgroup's.
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<Child> {
        join_before_exec(cmd, &self.dir);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
    }

    /// Kills what runs in it and removes it (retrying while the kernel still
    /// counts exiting tasks).
    pub fn remove(&self) -> bool {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let start = Instant::now();
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
                Err(_) if start.elapsed() < Duration::from_secs(5) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => return false,
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Makes `cmd`'s child write itself into `dir`'s cgroup.procs before exec.
pub fn join_before_exec(cmd: &mut Command, dir: &Path) {
    let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).expect("no NUL in a cgroup path");
    // SAFETY: the closure only calls async-signal-safe functions (open, write,
    // close) on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writing process itself.
            let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            if ok { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
}

/// Makes `rel`, runs `argv` in it to the end, and removes it: one short-lived
/// cgroup with real syscalls in it.
pub fn run_in_new_cgroup(rel: &str, argv: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    let cg = Cgroup::create(rel);
    let status = cg.spawn(Command::new(argv[0]).args(&argv[1..]))?.wait();
    drop(cg);
    status
}

/// The agent's open file descriptors and resident memory (KiB), from /proc.
pub fn fds_and_rss_kib(pid: u32) -> Option<(usize, u64)> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some((fds, rss))
}
