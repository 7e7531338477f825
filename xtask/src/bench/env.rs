//! The bench's surroundings: where the binaries and the v2 mount are, that nothing else
//! sits on the raw syscall tracepoints, and small helpers the sections share.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub struct Env {
    pub observer: PathBuf,
    pub testprog: PathBuf,
    pub v2: PathBuf,
    pub pin_dir: PathBuf,
    pub work: PathBuf,
}

impl Env {
    pub fn new(root: &Path) -> anyhow::Result<Env> {
        let bin = bin_dir(root);
        let env = Env {
            observer: bin.join("observer"),
            testprog: bin.join("observer-testprog"),
            v2: v2_mount()?,
            pin_dir: PathBuf::from("/sys/fs/bpf/observer-bench"),
            work: std::env::temp_dir().join("observer-bench"),
        };
        std::fs::create_dir_all(&env.work)?;
        // One run's agents write one log (`running::agent_keeping_state`).
        let _ = std::fs::remove_file(env.work.join("agent.log"));
        Ok(env)
    }

    pub fn socket(&self) -> PathBuf {
        self.work.join("agent.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.work.join("state")
    }
}

/// Where the binaries under test are: `OBSERVER_BENCH_BIN` when set (a
/// directory holding `observer` and `observer-testprog`, to compare two builds
/// on one machine), else the release build.
pub fn bin_dir(root: &Path) -> PathBuf {
    std::env::var_os(BIN_DIR_VAR).map(PathBuf::from).unwrap_or_else(|| root.join("target/release"))
}

/// The variable `bin_dir` reads.
pub const BIN_DIR_VAR: &str = "OBSERVER_BENCH_BIN";

pub fn wait_for(f: impl FnMut() -> bool, what: &str) -> anyhow::Result<()> {
    wait_for_within(f, what, Duration::from_secs(30))
}

pub fn wait_for_within(mut f: impl FnMut() -> bool, what: &str, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn v2_mount() -> anyhow::Result<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo")?;
    mi.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .context("no cgroup2 mount")
}

pub fn ensure_tracefs() -> anyhow::Result<()> {
    if Path::new("/sys/kernel/tracing/events").exists() {
        return Ok(());
    }
    eprintln!("[bench] mounting tracefs at /sys/kernel/tracing (bpftrace's tracepoints need it)");
    let st = Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]).status()?;
    if !st.success() {
        bail!("could not mount tracefs");
    }
    Ok(())
}

/// Links on the raw syscall tracepoints: the bare numbers are only bare without them.
pub fn attached_count() -> anyhow::Result<usize> {
    let out = Command::new("bpftool")
        .args(["link", "show"])
        .output()
        .context("bpftool is needed (cargo xtask setup test installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().filter(|l| l.contains("tp 'sys_enter'") || l.contains("tp 'sys_exit'")).count())
}

/// No program of observer's (or anyone's) may sit on the raw syscall tracepoints:
/// the bare numbers would not be bare.
pub fn check_nothing_attached() -> anyhow::Result<()> {
    let attached = attached_count()?;
    if attached > 0 {
        bail!(
            "programs are still attached to the raw syscall tracepoints ({attached}): the bare numbers would be wrong. \
             Stop running agents and `observer agent --uninstall` (bpftool link show lists them)"
        );
    }
    Ok(())
}

/// A process's user + system CPU time in clock ticks (100 per second).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the comm.
    Ok(f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
}

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux x86_64).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// A process's resident memory in bytes (VmRSS in /proc/PID/status).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no VmRSS")
}

pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

/// Removes a cgroup directory and the cgroups under it (children first: a cgroup
/// with children cannot go). Their processes must have ended.
pub fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    // Its last process may take a moment to leave after exiting.
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    eprintln!("[bench] could not remove the cgroup {}", dir.display());
}
