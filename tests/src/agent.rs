//! A real `observer agent` for a test: its own state directory, socket and
//! bpffs pin directory, stopped and uninstalled on drop.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{churn::v2_root, observer_bin, unique};

/// Which cgroup namespace the agent runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupNs {
    /// The test's own (the host's).
    Host,
    /// A new one, rooted at the agent's cgroup, as containerd and CRI-O give
    /// every non-privileged pod on a cgroup-v2 node: `/proc/PID/cgroup` then
    /// reads relative to it (`0::/../docker/<id>`), while the v2 mount, made
    /// in the host's namespace, still shows the whole tree (as the DaemonSet's
    /// hostPath mount of the host's `/sys/fs/cgroup` does).
    Private,
}

pub struct TestAgent {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub pin_dir: PathBuf,
    pub socket: PathBuf,
    pub args: Vec<String>,
    /// A cgroup (directory under the v2 mount) the agent starts in.
    pub cgroup: Option<PathBuf>,
    pub cgroup_ns: CgroupNs,
    /// A cgroup made for the agent ([`TestAgent::start_in`]), removed on drop.
    pub own_cgroup: Option<PathBuf>,
}

impl TestAgent {
    pub fn start(args: &[&str]) -> Self {
        let mut agent = Self::prepare(args);
        agent.spawn();
        agent
    }

    /// Its directories, not started yet (`spawn` starts it): for a test that
    /// prepares the state directory first (a small tmpfs, a stale file).
    pub fn prepare(args: &[&str]) -> Self {
        let id = unique();
        let dir = std::env::temp_dir().join(format!("observer-agent-{id}"));
        std::fs::create_dir_all(&dir).expect("state dir");
        TestAgent {
            child: None,
            socket: dir.join("api.sock"),
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/observer-test-{id}")),
            dir,
            args: args.iter().map(|s| s.to_string()).collect(),
            cgroup: None,
            cgroup_ns: CgroupNs::Host,
            own_cgroup: None,
        }
    }

    /// As `start`, in the cgroup namespace `ns`. A private namespace gets a
    /// cgroup of its own, under the v2 root, as its root (a pod's namespace is
    /// rooted at the pod's container cgroup).
    pub fn start_in(args: &[&str], ns: CgroupNs) -> Self {
        let mut agent = Self::prepare(args);
        if ns == CgroupNs::Private {
            let dir = v2_root().join(format!("observer-test-ns-{}", unique() % 1_000_000_000));
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("making {}: {e}", dir.display()));
            agent.cgroup = Some(dir.clone());
            agent.own_cgroup = Some(dir);
        }
        agent.cgroup_ns = ns;
        agent.spawn();
        agent
    }

    /// As `start`, the agent's process placed in `cgroup` before it runs.
    pub fn start_in_cgroup(args: &[&str], cgroup: PathBuf) -> Self {
        Self::start_in_cgroup_with(args, cgroup, CgroupNs::Host)
    }

    /// As `start_in_cgroup`, in the cgroup namespace `ns` (rooted at `cgroup`).
    pub fn start_in_cgroup_with(args: &[&str], cgroup: PathBuf, ns: CgroupNs) -> Self {
        let mut agent = Self::prepare(args);
        agent.cgroup = Some(cgroup);
        agent.cgroup_ns = ns;
        agent.spawn();
        agent
    }

    /// The running agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the agent runs").id()
    }

    /// `observer status` (always JSON).
    pub fn status(&self) -> serde_json::Value {
        let o = self.cli(&["status"]);
        assert!(
            o.status.success(),
            "observer status failed: {}\nagent: {}",
            String::from_utf8_lossy(&o.stderr),
            self.stderr()
        );
        serde_json::from_slice(&o.stdout).expect("status is JSON")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn spawn(&mut self) {
        // A killed agent leaves its socket file behind.
        let _ = std::fs::remove_file(&self.socket);
        let mut command = Command::new(observer_bin());
        let procs = self.cgroup.as_ref().map(|cgroup| {
            std::ffi::CString::new(cgroup.join("cgroup.procs").as_os_str().as_encoded_bytes()).expect("cgroup path")
        });
        let new_ns = self.cgroup_ns == CgroupNs::Private;
        // SAFETY: only async-signal-safe calls between fork and exec: one open,
        // write and close of a path prepared before the fork, and unshare.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                if let Some(path) = &procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                // The namespace's root is the cgroup the process is in now.
                if new_ns && libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .arg("agent")
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--socket")
            .arg(&self.socket)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .args(&self.args)
            .stdout(Stdio::from(std::fs::File::create(self.dir.join("stdout")).expect("stdout file")))
            .stderr(Stdio::from(std::fs::File::create(self.dir.join("stderr")).expect("stderr file")))
            .spawn()
            .expect("starting observer agent");
        self.child = Some(child);
        let start = Instant::now();
        while !self.socket.exists() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("observer agent exited ({status}): {}", self.stderr());
            }
            assert!(start.elapsed() < Duration::from_secs(30), "agent socket did not appear: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
        if new_ns {
            let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/cgroup")).expect("a cgroup namespace");
            assert_ne!(ns(&self.pid().to_string()), ns("self"), "the agent runs in a cgroup namespace of its own");
        }
    }

    /// SIGTERM, and waits for the agent to exit: it stops between two of its
    /// operations (never halfway through one) and flushes its records; the
    /// pinned programs keep recording.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// SIGKILL, as a crash would: pinned programs keep recording.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Alert lines the agent wrote to stdout.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("stdout"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The `impostor_cgroup` alerts about these containers' cgroups: those
    /// whose cgroup path (the alert's id) or claim (its detail) names one of
    /// `ids`. Other tests on the host make impostors of their own, which every
    /// agent sees: a test that expects none of its own must not count those.
    pub fn impostor_alerts_about(&self, ids: &[&str]) -> Vec<serde_json::Value> {
        let names = |a: &serde_json::Value, field: &str| {
            a[field].as_str().is_some_and(|text| ids.iter().any(|id| !id.is_empty() && text.contains(id)))
        };
        self.alerts()
            .into_iter()
            .filter(|a| a["kind"] == "impostor_cgroup" && (names(a, "id") || names(a, "detail")))
            .collect()
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(observer_bin()).args(args).arg("--socket").arg(&self.socket).output().expect("observer CLI")
    }

    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let o = self.cli(&all);
        assert!(
            o.status.success(),
            "observer {args:?} failed: {}\nagent: {}",
            String::from_utf8_lossy(&o.stderr),
            self.stderr()
        );
        serde_json::from_slice(&o.stdout).expect("JSON")
    }

    pub fn ps(&self) -> Vec<serde_json::Value> {
        self.cli_json(&["ps"]).as_array().cloned().unwrap_or_default()
    }

    pub fn container(&self, name: &str) -> Option<serde_json::Value> {
        self.ps().into_iter().find(|c| c["name"] == name)
    }

    /// Waits until `f` holds (the agent reads the kernel every 250 ms).
    pub fn wait_for<T>(&self, what: &str, f: impl FnMut() -> Option<T>) -> T {
        self.wait_for_within(Duration::from_secs(20), what, f)
    }

    /// As `wait_for`, with a bound of the caller's: for what takes long on a
    /// loaded machine (many containers started at once).
    pub fn wait_for_within<T>(&self, bound: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(start.elapsed() < bound, "timed out after {bound:?} waiting for {what}; agent: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn profile(&self, name: &str) -> serde_json::Value {
        self.cli_json(&["profile", "show", name])
    }

    /// The profile, or None while the agent does not know the container yet.
    pub fn try_profile(&self, name: &str) -> Option<serde_json::Value> {
        let o = self.cli(&["profile", "show", name, "--json"]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
        let _ = Command::new(observer_bin()).args(["agent", "--uninstall", "--pin-dir"]).arg(&self.pin_dir).output();
        if let Some(dir) = &self.own_cgroup {
            // Empty once the agent has exited; the kernel frees it a moment later.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Syscall rows of a `profile show --json` answer, as (name, abi, phase, calls, denied).
pub fn rows(profile: &serde_json::Value) -> Vec<(String, String, Vec<String>, u64, u64)> {
    profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_owned(),
                r["abi"].as_str().unwrap_or("").to_owned(),
                r["phases"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned)).collect(),
                r["calls"].as_u64().unwrap_or(0),
                r["denied"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}
