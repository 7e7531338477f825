//! Faults injected against a real agent (issue 11, part 4): a full disk, a
//! state directory turned read-only, dockerd stopped and restarted, a full
//! ring buffer, SIGKILL during writes, a Docker query that takes seconds.
//! Each test says what is wanted and fails when the agent falls short.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use observer_tests::{
    agent::TestAgent,
    churn::{Cgroup, run_in_new_cgroup},
    docker::{IMAGE, moby_default_without, require_docker},
    require_root, unique,
};

/// One fault at a time: each test's agent watches every cgroup (`--watch all`),
/// so another test's burst (600 cgroups, a full disk's retries) would be part
/// of its figures and its timing.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed still lets the next one run.
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wait_until<T>(what: &str, limit: Duration, agent: &TestAgent, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out ({limit:?}) waiting for {what}; agent: {}", agent.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A tmpfs of `size` mounted at `dir` for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).expect("mount point");
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount");
        assert!(o.status.success(), "mounting a tmpfs at {}: {}", dir.display(), String::from_utf8_lossy(&o.stderr));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Every state file under `containers/`: each must parse (no torn file).
fn state_files(state: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(state.join("containers")).expect("containers/").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(entry.path()).expect("read state file");
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("state file {name} does not parse ({e}): a torn write"));
        out.push(v);
    }
    out
}

fn has_record(state: &Path, rel: &str) -> bool {
    state_files(state).iter().any(|r| r["id"] == rel)
}

fn alerts_of(agent: &TestAgent, kind: &str) -> Vec<serde_json::Value> {
    agent.alerts().into_iter().filter(|a| a["kind"] == kind).collect()
}

/// A plain cgroup with a process that made syscalls and sleeps on.
fn busy_cgroup(rel: &str) -> Cgroup {
    let cg = Cgroup::create(rel);
    let mut child =
        cg.spawn(Command::new("sh").args(["-c", "cat /etc/passwd > /dev/null; exec sleep 120"])).expect("start sh");
    // Reaped when the cgroup is killed at the end.
    std::thread::spawn(move || child.wait());
    cg
}

#[test]
fn a_full_disk_is_reported_corrupts_nothing_and_writing_resumes() {
    require_root();
    let _serial = one_at_a_time();
    let mut agent = TestAgent::prepare(&["--watch", "all"]);
    let state = agent.state_dir();
    let _fs = Tmpfs::mount(&state, "4m");
    agent.spawn();
    let base = format!("observer-faults-full-{}", unique() % 1_000_000_000);
    let first = busy_cgroup(&format!("{base}/before"));
    wait_until("the first record on disk", Duration::from_secs(20), &agent, || {
        has_record(&state, &first.rel()).then_some(())
    });

    // Fill the disk: a file as large as the tmpfs takes.
    let filler = state.join("filler");
    let o = Command::new("dd").arg("if=/dev/zero").arg(format!("of={}", filler.display())).arg("bs=64k").output();
    assert!(o.is_ok(), "dd");
    let second = busy_cgroup(&format!("{base}/during"));
    let status = wait_until("state_write_error in status", Duration::from_secs(20), &agent, || {
        let s = agent.status();
        s["state_write_error"].is_string().then_some(s)
    });
    let why = status["state_write_error"].as_str().unwrap_or_default();
    assert!(why.contains("No space left"), "the error says why: {why}");
    assert!(status["state_write_errors"].as_u64().unwrap_or(0) > 0, "{status}");
    let alert = wait_until("a state_write_failed alert", Duration::from_secs(10), &agent, || {
        alerts_of(&agent, "state_write_failed").into_iter().next()
    });
    assert!(alert["detail"].as_str().unwrap_or_default().contains("No space left"), "{alert}");
    assert!(agent.stderr().contains("could not be written"), "logged: {}", agent.stderr());

    // Nothing corrupted, nothing half-written left, and the agent goes on.
    assert!(has_record(&state, &first.rel()), "the record written before is intact");
    let temps: Vec<_> = std::fs::read_dir(state.join("containers"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(temps.is_empty(), "failed writes leave no temporary files: {temps:?}");
    assert!(agent.ps().iter().any(|c| c["id"] == second.rel()), "the agent still records and answers");
    assert!(agent.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the agent keeps running");

    // Space again: what was held back is written, and the error clears.
    std::fs::remove_file(&filler).unwrap();
    wait_until("the held-back record on disk", Duration::from_secs(20), &agent, || {
        has_record(&state, &second.rel()).then_some(())
    });
    wait_until("state_write_error cleared", Duration::from_secs(10), &agent, || {
        agent.status()["state_write_error"].is_null().then_some(())
    });
    assert!(agent.stderr().contains("takes writes again"), "{}", agent.stderr());
    drop((first, second));
    let _ = std::fs::remove_dir(observer_tests::churn::v2_root().join(&base));
}

#[test]
fn a_state_dir_turned_read_only_is_reported() {
    require_root();
    let _serial = one_at_a_time();
    let mut agent = TestAgent::prepare(&["--watch", "all"]);
    let state = agent.state_dir();
    let _fs = Tmpfs::mount(&state, "16m");
    agent.spawn();
    let base = format!("observer-faults-ro-{}", unique() % 1_000_000_000);
    let remount = |mode: &str| {
        let o = Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(&state).output().unwrap();
        assert!(o.status.success(), "remount {mode}: {}", String::from_utf8_lossy(&o.stderr));
    };
    remount("ro");
    let cg = busy_cgroup(&format!("{base}/c"));
    let status = wait_until("state_write_error in status", Duration::from_secs(20), &agent, || {
        let s = agent.status();
        s["state_write_error"].is_string().then_some(s)
    });
    assert!(status["state_write_error"].as_str().unwrap_or_default().contains("Read-only"), "{status}");
    wait_until("a state_write_failed alert", Duration::from_secs(10), &agent, || {
        alerts_of(&agent, "state_write_failed").into_iter().next()
    });
    assert!(agent.ps().iter().any(|c| c["id"] == cg.rel()), "the agent still records");
    remount("rw");
    wait_until("the record written once writable", Duration::from_secs(20), &agent, || {
        has_record(&state, &cg.rel()).then_some(())
    });
    drop(cg);
    let _ = std::fs::remove_dir(observer_tests::churn::v2_root().join(&base));
}

#[test]
fn sigkill_during_writes_leaves_no_torn_file_and_stale_temps_go_at_start() {
    require_root();
    let _serial = one_at_a_time();
    let mut agent = TestAgent::prepare(&["--watch", "all"]);
    let state = agent.state_dir();
    std::fs::create_dir_all(state.join("containers")).unwrap();
    // What a write interrupted by an earlier crash left.
    let stale = state.join("containers/.abc.json.tmp.999999.3");
    std::fs::write(&stale, "{\"id\": \"ab").unwrap();
    agent.spawn();
    assert!(!stale.exists(), "a stale temporary file is removed at start");

    // Churn, so that the agent writes all the time, and kill it in the middle.
    let stop = Arc::new(AtomicBool::new(false));
    let base = format!("observer-faults-kill-{}", unique() % 1_000_000_000);
    let churn = {
        let (stop, base) = (stop.clone(), base.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = run_in_new_cgroup(&format!("{base}/c{n}"), &["/bin/true"]);
                n += 1;
            }
            n
        })
    };
    let mut killed_with_temps = 0;
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(700 + 300 * round));
        let pid = agent.pid();
        agent.kill();
        let temps: Vec<String> = std::fs::read_dir(state.join("containers"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&format!(".tmp.{pid}.")))
            .collect();
        killed_with_temps += usize::from(!temps.is_empty());
        // Whatever the kill interrupted, every state file parses.
        let files = state_files(&state);
        assert!(!files.is_empty() || round == 0, "records were written");
        agent.spawn();
        let left: Vec<String> = std::fs::read_dir(state.join("containers"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&format!(".tmp.{pid}.")))
            .collect();
        assert!(left.is_empty(), "the killed agent's temporary files are removed at start: {left:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let made = churn.join().unwrap();
    eprintln!("{made} cgroups churned; {killed_with_temps} kill(s) caught a write in the middle");
    assert!(made > 20, "the churn ran ({made} cgroups)");
    let _ = std::fs::remove_dir(observer_tests::churn::v2_root().join(&base));
}

#[test]
fn a_full_ring_buffer_is_counted_alerted_and_its_slots_come_back() {
    require_root();
    let _serial = one_at_a_time();
    // A small ring (the default holds 32,768 events), so that 600 cgroups fill it.
    let agent = TestAgent::start(&["--watch", "all", "--slots", "2048", "--event-ring-kib", "256"]);
    let base = format!("observer-faults-ring-{}", unique() % 1_000_000_000);
    std::thread::sleep(Duration::from_secs(2));
    let baseline = agent.status()["slots_used"].as_u64().unwrap();
    // The agent stops draining (SIGSTOP) while hundreds of cgroups start: the
    // ring buffer fills, and later events (new cgroups among them) are dropped.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGSTOP) };
    let cgroups: Vec<Cgroup> = (0..600)
        .map(|i| {
            let cg = Cgroup::create(&format!("{base}/c{i}"));
            let _ = cg.spawn(Command::new("/bin/ls").arg("/")).and_then(|mut c| c.wait());
            cg
        })
        .collect();
    unsafe { libc::kill(agent.pid() as i32, libc::SIGCONT) };
    let status = wait_until("events_lost in status", Duration::from_secs(20), &agent, || {
        let s = agent.status();
        (s["events_lost"].as_u64().unwrap_or(0) > 0).then_some(s)
    });
    eprintln!("status after the burst: {status}");
    let alert = wait_until("an events_lost alert", Duration::from_secs(20), &agent, || {
        alerts_of(&agent, "events_lost").into_iter().next()
    });
    assert!(alert["detail"].as_str().unwrap_or_default().contains("dropped"), "{alert}");
    // Every one of them is known, those whose event was lost too (slot table scan).
    wait_until("every burst cgroup known", Duration::from_secs(40), &agent, || {
        let ps = agent.ps();
        let known = cgroups.iter().filter(|c| ps.iter().any(|r| r["id"] == c.rel())).count();
        (known == cgroups.len()).then_some(())
    });
    drop(cgroups);
    let _ = std::fs::remove_dir(observer_tests::churn::v2_root().join(&base));
    // Their slots come back: slots_used returns to the baseline (other cgroups
    // on the host may come and go: allow a few).
    wait_until("slots back at the baseline", Duration::from_secs(40), &agent, || {
        let used = agent.status()["slots_used"].as_u64().unwrap();
        (used <= baseline + 5).then_some(())
    });
}

/// A dockerd stand-in that accepts and never answers: a query of it takes
/// as long as the client waits.
fn silent_dockerd(socket: &Path) -> std::thread::JoinHandle<()> {
    let _ = std::fs::remove_file(socket);
    let listener = std::os::unix::net::UnixListener::bind(socket).expect("bind the stand-in socket");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    })
}

#[test]
fn a_slow_docker_query_does_not_stop_events_or_answers() {
    require_root();
    let _serial = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("observer-faults-slow-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("docker.sock");
    let _server = silent_dockerd(&socket);
    let agent = TestAgent::start(&["--watch", "all", "--docker-socket", socket.to_str().unwrap()]);
    // Docker-shaped cgroups (root's, so they are asked about), each asked in vain.
    let fakes: Vec<Cgroup> = (0..6)
        .map(|i| {
            let id = format!("{:016x}{:048x}", unique() as u64, i);
            busy_cgroup(&format!("docker/{id}"))
        })
        .collect();
    let base = format!("observer-faults-slow-{}", unique() % 1_000_000_000);
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    let mut plain = Vec::new();
    while start.elapsed() < Duration::from_secs(8) {
        plain.push(busy_cgroup(&format!("{base}/c{}", plain.len())));
        let t = Instant::now();
        let ps = agent.ps();
        slowest = slowest.max(t.elapsed());
        let t = Instant::now();
        let _ = agent.try_profile(fakes[0].rel().rsplit('/').next().unwrap());
        slowest = slowest.max(t.elapsed());
        assert!(!ps.is_empty());
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("slowest answer while dockerd hung: {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "ps/profile show answer within a second (slowest {slowest:?})");
    // Plain cgroups started meanwhile are recorded, with their syscalls.
    wait_until("every plain cgroup with its syscalls", Duration::from_secs(10), &agent, || {
        let ps = agent.ps();
        plain
            .iter()
            .all(|c| ps.iter().any(|r| r["id"] == c.rel() && r["syscalls"].as_u64().unwrap_or(0) > 5))
            .then_some(())
    });
    let p = agent.profile(&plain[0].rel());
    assert!(p["syscalls"].as_array().is_some_and(|s| s.iter().any(|r| r["name"] == "execve")), "{p}");
    // The docker-shaped ones wait, recorded, for an answer.
    let ps = agent.ps();
    for f in &fakes {
        assert!(ps.iter().any(|r| r["cgroup_path"] == f.rel()), "{} is recorded while its runtime hangs", f.rel());
    }
    drop((fakes, plain));
    let _ = std::fs::remove_dir(observer_tests::churn::v2_root().join(&base));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A dockerd of the test's own: its own socket, data root, exec root (and so
/// its own managed containerd), pid file; no bridge, no iptables; containers
/// survive its restarts (--live-restore). Stopped and its containers removed on drop.
struct OwnDockerd {
    root: PathBuf,
    socket: PathBuf,
    child: Option<std::process::Child>,
}

impl OwnDockerd {
    fn new() -> Self {
        let root = PathBuf::from("/run/observer-faults");
        let _ = std::fs::create_dir_all(&root);
        let mut d = OwnDockerd { socket: root.join("docker.sock"), root, child: None };
        d.start();
        d
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.root.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("-H")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.root.join("data"))
            .arg("--exec-root")
            .arg(self.root.join("exec"))
            .arg("--pidfile")
            .arg(self.root.join("dockerd.pid"))
            .args(["--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip6tables=false", "--live-restore"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd (cargo xtask setup test installs Docker)");
        self.child = Some(child);
        let start = Instant::now();
        while !self.docker(&["version"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the test's dockerd did not come up: {}",
                std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker").arg("-H").arg(self.host()).args(args).output().expect("docker CLI")
    }
}

impl Drop for OwnDockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        self.stop();
    }
}

#[test]
fn identity_comes_back_after_dockerd_restarts_and_name_rules_apply() {
    require_root();
    let _serial = one_at_a_time();
    require_docker();
    let mut dockerd = OwnDockerd::new();
    // The image, into the test's own dockerd.
    let load = Command::new("sh")
        .arg("-c")
        .arg(format!("docker save {IMAGE} | docker -H {} load", dockerd.host()))
        .output()
        .unwrap();
    assert!(load.status.success(), "loading {IMAGE}: {}", String::from_utf8_lossy(&load.stderr));
    let name = format!("obs-faults-{}", unique() % 1_000_000_000);
    // It calls chmod once told to (a file made by `docker exec`), then sleeps.
    let o = dockerd.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 700 /tmp; sleep 600",
    ]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();

    // dockerd goes down (its container lives on); the agent starts meanwhile.
    dockerd.stop();
    let agent = TestAgent::start(&["--docker-socket", dockerd.socket.to_str().unwrap()]);
    let profile = moby_default_without(&["chmod", "fchmodat", "fchmodat2"]);
    let o = agent.cli(&[
        "enforce",
        "--match",
        &format!("name:{name}"),
        "--profile",
        profile.to_str().unwrap(),
        "--action",
        "alert",
    ]);
    assert!(o.status.success(), "enforce: {}", String::from_utf8_lossy(&o.stderr));
    let pending = wait_until("the container, unnamed while dockerd is down", Duration::from_secs(20), &agent, || {
        agent.ps().into_iter().find(|c| c["id"] == id)
    });
    assert_ne!(pending["name"], name, "dockerd is down: nothing can name it yet ({pending})");
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(agent.ps().into_iter().find(|c| c["id"] == id).unwrap()["name"], name);

    // dockerd is back: the agent asks again, and the name rule applies.
    dockerd.start();
    let named = wait_until("the name after dockerd's restart", Duration::from_secs(30), &agent, || {
        agent.ps().into_iter().find(|c| c["id"] == id && c["name"] == name)
    });
    assert_eq!(named["image"], "observer-busybox:latest", "{named}");
    let o = dockerd.docker(&["exec", &name, "touch", "/tmp/go"]);
    assert!(o.status.success(), "docker exec: {}", String::from_utf8_lossy(&o.stderr));
    let alert = wait_until("the enforce alert for chmod", Duration::from_secs(20), &agent, || {
        alerts_of(&agent, "enforce").into_iter().find(|a| a["id"] == id)
    });
    assert!(alert["syscall"].as_str().unwrap_or_default().contains("chmod"), "{alert}");
    assert_eq!(alert["name"], name);
    let _ = std::fs::remove_file(profile);
}

/// An enforcement violation whose `Enforce` event the full ring dropped is
/// rebuilt from the slot's `violated` bitmap once the loss is seen: alerted,
/// said to come from a lost event.
#[test]
fn a_violation_whose_event_was_lost_is_alerted_from_the_slot_table() {
    require_root();
    let _serial = one_at_a_time();
    let agent = TestAgent::start(&["--watch", "all", "--slots", "2048", "--event-ring-kib", "256"]);
    let base = format!("observer-faults-lostviolation-{}", unique() % 1_000_000_000);
    // A plain cgroup whose process changes its mode after a while (what the
    // rule forbids), and is recorded and enforced before that.
    let target = Cgroup::create(&format!("{base}/target"));
    let scratch = std::env::temp_dir().join(format!("{base}-file"));
    std::fs::write(&scratch, b"").expect("scratch file");
    let mut victim = target
        .spawn(Command::new("/bin/sh").arg("-c").arg(format!("sleep 6; chmod 600 {}", scratch.display())))
        .expect("spawn");
    let key = target.rel();
    wait_until("the target recorded", Duration::from_secs(20), &agent, || {
        agent.ps().into_iter().find(|r| r["id"] == key.as_str())
    });
    let profile = moby_default_without(&["chmod", "fchmodat", "fchmodat2"]);
    let o = agent.cli(&["enforce", &key, "--profile", profile.to_str().expect("utf-8"), "--action", "alert"]);
    assert!(o.status.success(), "enforce: {}", String::from_utf8_lossy(&o.stderr));
    // The agent stops draining while hundreds of cgroups start and the target's
    // chmod runs: its event finds the ring full.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGSTOP) };
    let burst: Vec<Cgroup> = (0..600)
        .map(|i| {
            let cg = Cgroup::create(&format!("{base}/c{i}"));
            let _ = cg.spawn(Command::new("/bin/ls").arg("/")).and_then(|mut c| c.wait());
            cg
        })
        .collect();
    let _ = victim.wait();
    unsafe { libc::kill(agent.pid() as i32, libc::SIGCONT) };
    let alert = wait_until("the enforce alert of the target", Duration::from_secs(30), &agent, || {
        agent.alerts().into_iter().find(|a| a["kind"] == "enforce" && a["id"] == key.as_str())
    });
    assert!(!alerts_of(&agent, "events_lost").is_empty(), "the loss itself is alerted");
    assert!(alert["syscall"].as_str().is_some_and(|s| s.contains("chmod")), "{alert}");
    assert_eq!(alert["comm"], "(event lost)", "{alert}");
    drop(burst);
    drop(target);
    let _ = std::fs::remove_file(scratch);
    let _ = std::fs::remove_file(profile);
    let _ = std::fs::remove_dir(observer_tests::churn::v2_root().join(&base));
}
