//! Smaller defects a review found (issue 10): outputs that never block, a
//! Docker answer that cannot crash the agent, files and directories with the
//! right modes, the agent's own tgid as the kernel sees it, and names printed
//! safely. As root, with real processes and real containers.

use std::{
    ffi::CString,
    os::unix::{
        ffi::OsStrExt as _,
        fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _},
    },
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use observer_tests::{
    agent::{CgroupNs, TestAgent},
    churn::v2_root,
    docker::{Cleanup, name, require_docker, run},
    observer_bin, require_root, unique,
};

/// `profile show` prints the `comm` a container's process gave itself with its
/// control characters escaped: the terminal gets no escape sequence.
#[test]
fn profile_show_escapes_a_comm_the_container_chose() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("comm");
    let _cleanup = Cleanup(vec![n.clone()]);
    // busybox sh renames itself, then makes `times` (nothing else in the container does).
    let o = run(&["-d", "--name", &n], &["sh", "-c", "printf 'x\\033[2Jy' > /proc/self/comm; times; sleep 30"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("times in the profile", || {
        let p = agent.try_profile(&n)?;
        p["syscalls"].as_array()?.iter().any(|r| r["name"] == "times" && r["comm"] == "x\u{1b}[2Jy").then_some(())
    });
    let o = agent.cli(&["profile", "show", &n]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(!table.contains('\u{1b}'), "an escape sequence reached the terminal: {table:?}");
    let times = table.lines().find(|l| l.starts_with("times ")).expect("a times row");
    assert!(times.ends_with(" x\\u{1b}[2Jy"), "{times:?}");
}

/// Runs `observer ARGS` with stdout to `stdout`; None when it did not end within 10 s (then it is killed).
fn observer_within(args: &[&str], stdout: Stdio) -> Option<Output> {
    let mut child =
        Command::new(observer_bin()).args(args).stdout(stdout).stderr(Stdio::piped()).spawn().expect("observer");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child.wait_with_output().expect("output"))
}

fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("observer-{what}-{}", unique()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// Puts `/dev/stdout` back if a run replaced it with a file (what the defect did).
struct DevStdoutGuard;

impl Drop for DevStdoutGuard {
    fn drop(&mut self) {
        if !std::fs::symlink_metadata("/dev/stdout").is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = std::fs::remove_file("/dev/stdout");
            let _ = std::os::unix::fs::symlink("/proc/self/fd/1", "/dev/stdout");
        }
    }
}

/// `trace -o` and `--profile-out` to a FIFO nobody reads (directly or through a
/// symlink) fail at once naming it; with a reader, and to `/dev/null`,
/// `/dev/stdout` and `>(...)`, they work and leave the target what it was.
#[test]
fn trace_outputs_never_block_and_never_replace_what_they_write_to() {
    require_root();
    let dir = scratch_dir("outputs");
    let fifo = dir.join("report.fifo");
    mkfifo(&fifo);
    let link = dir.join("report.json");
    std::os::unix::fs::symlink(&fifo, &link).expect("symlink");
    for (flag, path) in [("-o", &fifo), ("-o", &link), ("--profile-out", &link)] {
        let target = path.to_str().expect("utf-8");
        let o = observer_within(&["trace", flag, target, "--", "true"], Stdio::null());
        // Release a writer stuck in open(), as the defect left it.
        let _unblock = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo);
        let o = o.unwrap_or_else(|| panic!("observer trace {flag} {target} hung: nobody reads the FIFO"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{flag} {target}: {err}");
        assert!(err.contains(target) && err.contains("nobody is reading"), "{flag} {target}: {err}");
    }
    assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink());

    // A reader: the whole JSON report arrives.
    let reader_fifo = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read_to_string(&reader_fifo).expect("read the FIFO"));
    let o = observer_within(&["trace", "--json", "-o", fifo.to_str().expect("utf-8"), "--", "true"], Stdio::null())
        .expect("no hang with a reader");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&reader.join().expect("reader")).expect("the report is JSON");
    assert_eq!(report["exit_code"], 0);
    assert!(std::fs::metadata(&fifo).expect("fifo").file_type().is_fifo());

    // /dev/null stays a device.
    let o = observer_within(&["trace", "-o", "/dev/null", "--", "true"], Stdio::null()).expect("/dev/null");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::metadata("/dev/null").expect("/dev/null").file_type().is_char_device());

    // /dev/stdout redirected to a file: the report goes into that file, /dev/stdout stays a link.
    let _guard = DevStdoutGuard;
    let out = dir.join("stdout.txt");
    let file = std::fs::File::create(&out).expect("stdout file");
    let o = observer_within(&["trace", "--json", "-o", "/dev/stdout", "--", "echo", "hello"], Stdio::from(file))
        .expect("/dev/stdout");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::symlink_metadata("/dev/stdout").expect("/dev/stdout").file_type().is_symlink(),
        "/dev/stdout was replaced"
    );
    let text = std::fs::read_to_string(&out).expect("stdout file");
    let (hello, report) = text.split_once('\n').expect("two parts");
    assert_eq!(hello, "hello", "the command's own output comes first: {text}");
    let report: serde_json::Value = serde_json::from_str(report).expect("then the report");
    assert_eq!(report["exit_code"], 0);

    // A shell's process substitution.
    let sub = dir.join("sub.json");
    let script = format!("{} trace --json -o >(cat > {}) -- true; wait", observer_bin().display(), sub.display());
    let o = Command::new("bash").args(["-c", &script]).output().expect("bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let start = Instant::now();
    let report = loop {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&sub).unwrap_or_default()) {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no report through >(cat)");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(report["exit_code"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// An agent with its API socket at `socket`; `prepare` sees the state directory before the start.
fn agent_with_socket(socket: &Path, prepare: impl FnOnce(&Path)) -> TestAgent {
    let mut agent = TestAgent {
        child: None,
        socket: socket.to_path_buf(),
        pin_dir: PathBuf::from(format!("/sys/fs/bpf/observer-test-{}", unique())),
        dir: scratch_dir("agent"),
        args: Vec::new(),
        cgroup: None,
        cgroup_ns: CgroupNs::Host,
        own_cgroup: None,
    };
    prepare(&agent.state_dir());
    agent.spawn();
    agent
}

/// `--socket DIR/x.sock` in a directory that is not the agent's own leaves its
/// mode alone (it was `/run` turned 0700); a directory the agent creates is 0700.
#[test]
fn the_socket_option_restricts_only_a_directory_of_the_agents_own() {
    require_root();
    let parent = scratch_dir("socket-parent");
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let socket = parent.join("x.sock");
    {
        let agent = agent_with_socket(&socket, |_| {});
        assert_eq!(mode(&parent), 0o1777, "the agent changed the mode of {}", parent.display());
        assert_eq!(mode(&socket), 0o600);
        assert!(agent.cli(&["status"]).status.success(), "{}", agent.stderr());
    }
    let own = parent.join("observer/api");
    {
        let agent = agent_with_socket(&own.join("x.sock"), |_| {});
        assert_eq!(mode(&own), 0o700, "a directory the agent made is root-only");
        assert_eq!(mode(&parent.join("observer")), 0o700);
        assert_eq!(mode(&parent), 0o1777);
        assert!(agent.cli(&["status"]).status.success(), "{}", agent.stderr());
    }
    let _ = std::fs::remove_dir_all(&parent);
}

/// `alerts.jsonl` and `agent.lock` are 0600, also when an older agent left them world-readable.
#[test]
fn alert_log_and_lock_are_root_only() {
    require_root();
    let dir = scratch_dir("modes");
    let agent = agent_with_socket(&dir.join("api.sock"), |state| {
        std::fs::create_dir_all(state).expect("state dir");
        for name in ["alerts.jsonl", "agent.lock"] {
            std::fs::write(state.join(name), b"").expect("seed");
            std::fs::set_permissions(state.join(name), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    });
    assert_eq!(mode(&agent.state_dir().join("agent.lock")), 0o600);
    assert_eq!(mode(&agent.state_dir().join("alerts.jsonl")), 0o600);
    drop(agent);

    // Created fresh: 0600 from the start.
    let agent = agent_with_socket(&dir.join("api.sock"), |_| {});
    assert_eq!(mode(&agent.state_dir().join("agent.lock")), 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removes a scratch cgroup tree (children first) and kills what is left in it.
struct ScratchCgroup(PathBuf);

impl Drop for ScratchCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        std::thread::sleep(Duration::from_millis(100));
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut stack = vec![self.0.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
            dirs.push(d);
        }
        for d in dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// A dockerd stand-in that answers every request with a chunked body whose
/// first chunk claims `ffffffffffffffff` bytes. Counts the requests.
fn hostile_dockerd(socket: &Path) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use std::io::{Read as _, Write as _};
    let listener = std::os::unix::net::UnixListener::bind(socket).expect("bind the fake docker socket");
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{}\r\n0\r\n\r\n");
        }
    });
    asked
}

/// A hostile chunk size from "dockerd" is an error the agent logs, and the
/// agent keeps running (it once killed the event reader, and the agent exited 0).
#[test]
fn a_hostile_docker_chunk_size_is_an_error_not_a_dead_agent() {
    require_root();
    let dir = scratch_dir("fake-docker");
    let docker_sock = dir.join("docker.sock");
    let asked = hostile_dockerd(&docker_sock);

    let mut agent = TestAgent {
        child: None,
        socket: dir.join("api.sock"),
        pin_dir: PathBuf::from(format!("/sys/fs/bpf/observer-test-{}", unique())),
        dir: dir.clone(),
        args: Vec::new(),
        cgroup: None,
        cgroup_ns: CgroupNs::Host,
        own_cgroup: None,
    };
    let child = Command::new(observer_bin())
        .args(["agent", "--state-dir"])
        .arg(agent.state_dir())
        .arg("--socket")
        .arg(&agent.socket)
        .arg("--pin-dir")
        .arg(&agent.pin_dir)
        .env("DOCKER_HOST", format!("unix://{}", docker_sock.display()))
        .stdout(Stdio::from(std::fs::File::create(dir.join("stdout")).expect("stdout")))
        .stderr(Stdio::from(std::fs::File::create(dir.join("stderr")).expect("stderr")))
        .spawn()
        .expect("observer agent");
    agent.child = Some(child);
    agent.wait_for("the API socket", || agent.socket.exists().then_some(()));

    // A container-shaped cgroup with a process in it: the agent asks "dockerd" about it.
    let id: String = format!("{:064x}", unique()).chars().rev().collect();
    let scratch = ScratchCgroup(v2_root().join(format!("observer-test-{}", unique())));
    let cgroup = scratch.0.join(format!("docker-{id}.scope"));
    std::fs::create_dir_all(&cgroup).expect("mkdir the cgroup");
    let script = format!("echo $$ > {}/cgroup.procs && exec sleep 5", cgroup.display());
    let mut sleeper = Command::new("sh").args(["-c", &script]).spawn().expect("sh");
    agent.wait_for("the agent to ask dockerd", || (asked.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(()));
    std::thread::sleep(Duration::from_secs(2));

    let status = agent.child.as_mut().expect("child").try_wait().expect("try_wait");
    assert!(status.is_none(), "the agent stopped ({status:?}) after dockerd's answer: {}", agent.stderr());
    assert!(agent.cli(&["status"]).status.success(), "the API still answers: {}", agent.stderr());
    // The chunk claims more than the connection brings before it closes.
    assert!(
        agent.stderr().contains("bad HTTP exchange with dockerd")
            && agent.stderr().contains("end of file before message length"),
        "the error says what went wrong: {}",
        agent.stderr()
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// Stops an agent that runs under `unshare --fork` (which blocks SIGTERM while
/// it waits): SIGTERM to the agent itself, then unshare ends with it.
struct UnsharedAgent {
    unshare: std::process::Child,
    cgroup: PathBuf,
}

impl UnsharedAgent {
    /// The agent's pid on the host: the process in the cgroup that is not unshare.
    fn agent_pid(&self) -> Option<i32> {
        let procs = std::fs::read_to_string(self.cgroup.join("cgroup.procs")).ok()?;
        procs.lines().filter_map(|l| l.parse().ok()).find(|&p: &i32| p != self.unshare.id() as i32)
    }
}

impl Drop for UnsharedAgent {
    fn drop(&mut self) {
        if let Some(pid) = self.agent_pid() {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let start = Instant::now();
        while self.unshare.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// An agent in a pid namespace of its own (as in a pod without hostPID) exempts
/// itself, not the process that has its namespace pid on the host (it was pid 1
/// there: the host's init was exempted and the agent's own calls were recorded).
#[test]
fn an_agent_in_its_own_pid_namespace_does_not_record_itself() {
    require_root();
    let dir = scratch_dir("pidns");
    // The agent alone in a cgroup of its own (with unshare, which only waits).
    let name = format!("observer-test-pidns-{}", unique());
    let scratch = ScratchCgroup(v2_root().join(&name));
    std::fs::create_dir_all(&scratch.0).expect("mkdir the cgroup");
    // Its child stays None: the agent is stopped through `UnsharedAgent`.
    let agent = TestAgent {
        child: None,
        socket: dir.join("api.sock"),
        pin_dir: PathBuf::from(format!("/sys/fs/bpf/observer-test-{}", unique())),
        dir: dir.clone(),
        args: Vec::new(),
        cgroup: None,
        cgroup_ns: CgroupNs::Host,
        own_cgroup: None,
    };
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec unshare --pid --kill-child=SIGTERM --mount-proc {} agent --watch all --state-dir {} --socket {} --pin-dir {}",
        scratch.0.display(),
        observer_bin().display(),
        agent.state_dir().display(),
        agent.socket.display(),
        agent.pin_dir.display()
    );
    let unshare = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::from(std::fs::File::create(dir.join("stdout")).expect("stdout")))
        .stderr(Stdio::from(std::fs::File::create(dir.join("stderr")).expect("stderr")))
        .spawn()
        .expect("unshare observer agent");
    let mut running = UnsharedAgent { unshare, cgroup: scratch.0.clone() };
    agent.wait_for("the API socket", || agent.socket.exists().then_some(()));
    let agent_pid = running.agent_pid().expect("the agent in its cgroup");
    let status = std::fs::read_to_string(format!("/proc/{agent_pid}/status")).expect("status");
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).expect("NSpid");
    assert!(nspid.split_whitespace().count() == 3, "the agent runs in a pid namespace of its own: {nspid}");

    // The agent works for a while (its background read, these API calls), in that cgroup.
    let path = format!("/{name}");
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(500));
        let calls: u64 = agent
            .ps()
            .iter()
            .filter(|c| c["cgroup_path"] == path.as_str())
            .map(|c| c["calls"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(calls, 0, "the agent recorded its own syscalls in {path}: {}", agent.stderr());
    }
    assert!(running.unshare.try_wait().expect("wait").is_none(), "the agent stopped: {}", agent.stderr());
    assert!(!agent.stderr().contains("could not ask the kernel"), "{}", agent.stderr());

    // The cgroup is recorded: another process's calls there do count.
    let script = format!("echo $$ > {}/cgroup.procs && exec ls /", scratch.0.display());
    assert!(Command::new("sh").args(["-c", &script]).output().expect("sh").status.success());
    agent.wait_for("the other process's calls", || {
        let calls: u64 = agent
            .ps()
            .iter()
            .filter(|c| c["cgroup_path"] == path.as_str())
            .map(|c| c["calls"].as_u64().unwrap_or(0))
            .sum();
        (calls > 0).then_some(())
    });
}
