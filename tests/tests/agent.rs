//! `observer agent` with real Docker containers (busybox, --network none),
//! under runc and under crun, as root.

use std::time::Duration;

use observer_tests::{
    agent::{TestAgent, rows},
    docker::{Cleanup, docker, moby_default_without, name, profile_path, require_docker, run},
    require_root,
};

fn has(profile: &serde_json::Value, syscall: &str, phase: &str) -> bool {
    rows(profile)
        .iter()
        .any(|(n, abi, phases, _, _)| n == syscall && abi == "x86_64" && phases.iter().any(|p| p == phase))
}

fn names_and_profiles(runtime: &str) {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let (a, b) = (name("chmod"), name("quiet"));
    let _cleanup = Cleanup(vec![a.clone(), b.clone()]);
    let o = run(&["-d", "--runtime", runtime, "--name", &a], &["sh", "-c", "touch /tmp/f; chmod 600 /tmp/f; sleep 30"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["-d", "--runtime", runtime, "--name", &b], &["sh", "-c", "cat /etc/passwd > /dev/null; sleep 30"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));

    let c = agent.wait_for("the chmod container in ps", || {
        agent.container(&a).filter(|c| c["image"] != "" && c["syscalls"].as_u64().unwrap_or(0) > 10)
    });
    assert_eq!(c["image"], "observer-busybox:latest");
    assert_eq!(c["runtime"], runtime);
    assert_eq!(c["state"], "running");
    assert_eq!(c["seccomp_mode"], 2, "Docker's default filter");
    assert!(!c["pids"].as_array().expect("pids").is_empty());
    let p = agent.wait_for("chmod in the profile", || {
        let p = agent.try_profile(&a)?;
        has(&p, "chmod", "container").then_some(p)
    });
    // Three phases apart: the runtime's init before and after its filter, the container's own.
    assert!(has(&p, "execve", "init_after_filter"), "the exec happens under the filter: {p}");
    assert!(rows(&p).iter().any(|r| r.2.iter().any(|ph| ph == "init_before_filter")), "init before the filter: {p}");
    assert!(
        has(&p, "nanosleep", "container") || has(&p, "clock_nanosleep", "container"),
        "sleep is the container's own: {p}"
    );

    let q = agent.wait_for("the quiet container", || {
        let p = agent.try_profile(&b)?;
        (has(&p, "read", "container") || has(&p, "sendfile", "container")).then_some(p)
    });
    assert!(!has(&q, "chmod", "container") && !has(&q, "fchmodat", "container"), "the neighbour never ran chmod: {q}");

    // An ended container keeps its profile.
    assert!(docker(&["rm", "-f", &a]).status.success());
    agent.wait_for("the ended state", || agent.container(&a).filter(|c| c["state"] == "exited"));
    assert!(has(&agent.profile(&a), "chmod", "container"));
}

#[test]
fn runc_containers_are_named_and_profiled() {
    names_and_profiles("runc");
}

#[test]
fn crun_containers_are_named_and_profiled() {
    names_and_profiles("crun");
}

#[test]
fn nothing_is_lost_across_an_agent_crash() {
    require_root();
    require_docker();
    let mut agent = TestAgent::start(&[]);
    let n = name("restart");
    let _cleanup = Cleanup(vec![n.clone()]);
    // The container makes a new syscall (chmod) only when told to, through a file.
    let o = run(
        &["-d", "--name", &n],
        &["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; sleep 30"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("the container", || agent.container(&n).filter(|c| c["syscalls"].as_u64().unwrap_or(0) > 5));
    let before = agent.profile(&n);
    assert!(!has(&before, "chmod", "container"));
    agent.kill();
    assert!(docker(&["exec", &n, "touch", "/tmp/go"]).status.success());
    std::thread::sleep(Duration::from_secs(1));
    agent.spawn();
    let after = agent.wait_for("chmod, made while the agent was down", || {
        let p = agent.try_profile(&n)?;
        has(&p, "chmod", "container").then_some(p)
    });
    for (name, abi, _, calls, _) in rows(&before) {
        let now = rows(&after).into_iter().find(|r| r.0 == name && r.1 == abi);
        assert!(now.is_some_and(|r| r.3 >= calls), "{name}/{abi} lost after the restart: {after}");
    }
    // The container itself carries on under the restarted agent, counted on.
    let calls_before = before["calls"].as_u64().unwrap_or(0);
    let c = agent.wait_for("the container's calls to grow", || {
        agent.container(&n).filter(|c| c["state"] == "running" && c["calls"].as_u64().unwrap_or(0) > calls_before)
    });
    assert_eq!(c["image"], "observer-busybox:latest", "{c}");
}

#[test]
fn a_syscall_outside_the_baseline_alerts_once() {
    require_root();
    require_docker();
    let n = name("baseline");
    let _cleanup = Cleanup(vec![n.clone()]);
    // Docker's current default without chmod: everything else the container does is in it.
    let file = moby_default_without(&["chmod"]);
    let baseline = format!("{n}={}", file.display());
    let agent = TestAgent::start(&["--baseline", &baseline]);
    // Docker's default lets chmod through; the baseline does not have it.
    let o =
        run(&["-d", "--name", &n], &["sh", "-c", "sleep 1; chmod 600 /etc/passwd; chmod 600 /etc/passwd; sleep 30"]);
    assert!(o.status.success());
    agent.wait_for("an alert", || {
        let a: Vec<_> = agent.alerts().into_iter().filter(|a| a["name"] == n.as_str()).collect();
        (!a.is_empty()).then_some(a)
    });
    std::thread::sleep(Duration::from_secs(1));
    let alerts: Vec<_> = agent.alerts().into_iter().filter(|a| a["name"] == n.as_str()).collect();
    assert_eq!(alerts.len(), 1, "exactly one alert line: {alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["kind"], "outside_baseline");
    assert_eq!(a["syscall"], "chmod");
    assert_eq!(a["abi"], "x86_64");
    assert_eq!(a["image"], "observer-busybox:latest");
    assert!(a["pid"].as_u64().unwrap_or(0) > 0 && a["comm"] == "chmod", "{a}");
    let log = std::fs::read_to_string(agent.state_dir().join("alerts.jsonl")).expect("alerts.jsonl");
    assert_eq!(log.lines().filter(|l| l.contains(&n)).count(), 1);
    assert_eq!(agent.container(&n).expect("ps")["alerts"], 1);
}

#[test]
fn a_denied_chmod_is_shown_as_denied() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("nochmod");
    let _cleanup = Cleanup(vec![n.clone()]);
    let opt = format!("seccomp={}", profile_path("docker-labs/default-no-chmod.json"));
    let o = run(&["-d", "--security-opt", &opt, "--name", &n], &["sh", "-c", "sleep 1; chmod 777 / ; sleep 30"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = agent.wait_for("a denied chmod", || {
        let p = agent.try_profile(&n)?;
        rows(&p).iter().any(|r| r.0 == "chmod" && r.4 >= 1).then_some(p)
    });
    let chmod = rows(&p).into_iter().find(|r| r.0 == "chmod").expect("chmod row");
    assert_eq!(chmod.3, 0, "a denied call never enters: {p}");
    let c = agent.container(&n).expect("ps");
    assert!(c["denied"].as_u64().unwrap_or(0) >= 1);
    assert!(agent.alerts().iter().any(|a| a["kind"] == "denied" && a["syscall"] == "chmod" && a["name"] == n.as_str()));
}

#[test]
fn a_container_under_deny_json_is_listed_as_failed_to_start() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("deny");
    let _cleanup = Cleanup(vec![n.clone()]);
    let opt = format!("seccomp={}", profile_path("docker-labs/deny.json"));
    let o = run(&["--security-opt", &opt, "--name", &n], &["true"]);
    assert_eq!(o.status.code(), Some(125), "Docker cannot start it: {}", String::from_utf8_lossy(&o.stderr));
    let c = agent.wait_for("the failed container", || {
        agent.ps().into_iter().find(|c| c["name"] == n.as_str() && c["state"] == "failed_to_start")
    });
    assert!(c["denied"].as_u64().unwrap_or(0) >= 1, "{c}");
    let p = agent.profile(&n);
    let denied: Vec<_> = rows(&p).into_iter().filter(|r| r.4 > 0).collect();
    assert!(!denied.is_empty(), "the start-phase syscalls that were denied: {p}");
    assert!(denied.iter().all(|r| !r.2.iter().any(|ph| ph == "container")), "{p}");
}

#[test]
fn a_second_agent_is_refused_and_a_corrupt_state_file_is_set_aside() {
    require_root();
    require_docker();
    let mut agent = TestAgent::start(&[]);
    // A second agent on the same state directory: a clear refusal.
    let o = std::process::Command::new(observer_tests::observer_bin())
        .arg("agent")
        .arg("--state-dir")
        .arg(agent.state_dir())
        .arg("--socket")
        .arg(agent.dir.join("second.sock"))
        .arg("--pin-dir")
        .arg(format!("{}-second", agent.pin_dir.display()))
        .output()
        .expect("second agent");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already running"), "{err}");

    let n = name("corrupt");
    let _cleanup = Cleanup(vec![n.clone()]);
    assert!(run(&["-d", "--name", &n], &["sleep", "30"]).status.success());
    agent.wait_for("the container", || agent.container(&n).filter(|c| c["syscalls"].as_u64().unwrap_or(0) > 3));
    std::thread::sleep(Duration::from_secs(2));
    agent.kill();
    let containers = agent.state_dir().join("containers");
    let bad = containers.join("garbage.json");
    std::fs::write(&bad, b"{ not json").expect("write");
    agent.spawn();
    // The good record loads, the bad one is named and moved aside.
    agent.wait_for("the container after the restart", || agent.container(&n));
    assert!(!bad.exists() && containers.join("garbage.json.corrupt").exists());
    assert!(agent.stderr().contains("garbage.json"), "{}", agent.stderr());
}

#[test]
fn metrics_are_served_only_when_asked() {
    require_root();
    let port = 20000 + (observer_tests::unique() % 20000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let agent = TestAgent::start(&["--metrics", &addr]);
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            use std::io::{Read as _, Write as _};
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: observer\r\nConnection: close\r\n\r\n").expect("write");
            s.read_to_string(&mut body).expect("read");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for metric in [
        "observer_containers_watched",
        "observer_syscalls_recorded_total",
        "observer_events_lost_total",
        "observer_alerts_total",
    ] {
        assert!(body.contains(metric), "{metric} missing: {body}");
    }
    assert!(
        !listening_tcp_sockets(agent.child.as_ref().expect("agent").id()).is_empty(),
        "the agent asked for metrics listens"
    );
    drop(agent);
    // Without --metrics the agent listens on no TCP port at all.
    let quiet = TestAgent::start(&[]);
    std::thread::sleep(Duration::from_millis(500));
    let pid = quiet.child.as_ref().expect("agent").id();
    assert_eq!(listening_tcp_sockets(pid), Vec::<String>::new(), "an agent not asked for metrics listens on TCP");
}

/// The local addresses of the TCP sockets in LISTEN state that process `pid` holds.
fn listening_tcp_sockets(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the agent's fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address st ... inode: state 0A is LISTEN.
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                out.push(f[1].to_owned());
            }
        }
    }
    out
}

#[test]
fn a_learned_baseline_alerts_on_what_comes_after_the_window() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&["--learn-for", "2s"]);
    let n = name("learn");
    let _cleanup = Cleanup(vec![n.clone()]);
    let o = run(
        &["-d", "--name", &n],
        &["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; sleep 30"],
    );
    assert!(o.status.success());
    agent.wait_for("the container", || agent.container(&n));
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        agent.alerts().iter().all(|a| a["name"] != n.as_str()),
        "nothing new during the window: {:?}",
        agent.alerts()
    );
    assert!(docker(&["exec", &n, "touch", "/tmp/go"]).status.success());
    let alert = agent.wait_for("an outside_baseline alert", || {
        agent.alerts().into_iter().find(|a| a["name"] == n.as_str() && a["syscall"] == "chmod")
    });
    assert_eq!(alert["kind"], "outside_baseline");
}

/// A container that lives a few milliseconds is gone before /proc can be read:
/// its seccomp mode is the one the kernel saw at its own calls.
fn short_lived_containers_show_the_kernels_seccomp_mode(runtime: &str) {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let names: Vec<String> = (0..4).map(|i| name(&format!("short{i}"))).collect();
    let unconfined = name("shortfree");
    let mut all = names.clone();
    all.push(unconfined.clone());
    let _cleanup = Cleanup(all);
    for n in &names {
        let o = run(&["--runtime", runtime, "--name", n], &["true"]);
        assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    }
    let o = run(&["--runtime", runtime, "--security-opt", "seccomp=unconfined", "--name", &unconfined], &["true"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    for n in &names {
        let c = agent
            .wait_for("the short-lived container, ended", || agent.container(n).filter(|c| c["state"] == "exited"));
        assert_eq!(c["seccomp_mode"], 2, "Docker's default filter, as the kernel saw it: {c}");
    }
    let c = agent.wait_for("the unconfined container, ended", || {
        agent.container(&unconfined).filter(|c| c["state"] == "exited")
    });
    assert_eq!(c["seccomp_mode"], 0, "no filter: {c}");
}

#[test]
fn short_lived_runc_containers_show_the_kernels_seccomp_mode() {
    short_lived_containers_show_the_kernels_seccomp_mode("runc");
}

#[test]
fn short_lived_crun_containers_show_the_kernels_seccomp_mode() {
    short_lived_containers_show_the_kernels_seccomp_mode("crun");
}

fn rfc3339(t: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(t.as_str().unwrap_or_default(), &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{t} is not RFC 3339: {e}"))
}

fn first_seen(profile: &serde_json::Value, syscall: &str) -> time::OffsetDateTime {
    let row =
        profile["syscalls"].as_array().into_iter().flatten().find(|r| r["name"] == syscall && r["abi"] == "x86_64");
    rfc3339(&row.unwrap_or_else(|| panic!("no {syscall} in {profile}"))["first_seen"])
}

/// A first use is stamped with the kernel's time of the call, also when the
/// agent read it only after a restart.
#[test]
fn first_use_carries_the_kernels_time() {
    require_root();
    require_docker();
    let mut agent = TestAgent::start(&[]);
    let n = name("ktime");
    let _cleanup = Cleanup(vec![n.clone()]);
    // chmod comes a second after the start-up calls.
    let o = run(
        &["-d", "--name", &n],
        &[
            "sh",
            "-c",
            "sleep 1; chmod 600 /etc/passwd; while [ ! -e /tmp/go ]; do sleep 0.2; done; chown 0 /etc/passwd; sleep 30",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = agent.wait_for("chmod", || agent.try_profile(&n).filter(|p| has(p, "chmod", "container")));
    let gap = first_seen(&p, "chmod") - first_seen(&p, "execve");
    assert!(gap >= time::Duration::milliseconds(900), "start-up and chmod a second apart, got {gap}: {p}");

    // Made while the agent is down, read after its restart: the call's time.
    agent.kill();
    let before = time::OffsetDateTime::now_utc();
    assert!(docker(&["exec", &n, "touch", "/tmp/go"]).status.success());
    std::thread::sleep(Duration::from_secs(2));
    let after = time::OffsetDateTime::now_utc();
    agent.spawn();
    let p = agent.wait_for("chown, made while the agent was down", || {
        agent.try_profile(&n).filter(|p| has(p, "chown", "container") || has(p, "fchownat", "container"))
    });
    let syscall = if has(&p, "chown", "container") { "chown" } else { "fchownat" };
    let t = first_seen(&p, syscall);
    assert!(
        t >= before - time::Duration::milliseconds(50) && t <= after - time::Duration::seconds(1),
        "{syscall} at {t}, made between {before} and {after} minus the 2 s wait"
    );
}

/// A container allowed to (CAP_SYS_ADMIN, unconfined) makes cgroups below its own, deeper than the
/// agent's inotify watch reaches, makes calls in each and removes it at
/// once: gone before the agent can name them. What they did is the
/// container's, never a record of its own per cgroup.
#[test]
fn nested_cgroups_gone_before_they_are_named_are_the_containers() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("nested");
    let _cleanup = Cleanup(vec![n.clone()]);
    let shared = std::env::temp_dir().join(format!("observer-nested-{}", observer_tests::unique()));
    std::fs::create_dir_all(&shared).expect("shared dir");
    let volume = format!("{}:/w", shared.display());
    // Seven levels below the container's cgroup (the watch goes six below
    // the mount); the shell moves itself in, writes, moves back, removes it.
    let script = r#"mkdir -p /c && mount -t cgroup2 none /c || exit 3
d=/c$(sed -n 's/^0:://p' /proc/self/cgroup)
deep=$d/a/b/c/d/e
mkdir -p $deep || exit 4
i=0
while [ $i -lt 20 ]; do
  mkdir $deep/n$i
  stat -c %i $deep/n$i >> /w/ids
  echo $$ > $deep/n$i/cgroup.procs
  echo x > /dev/null
  echo $$ > $d/cgroup.procs
  rmdir $deep/n$i
  i=$((i+1))
done
touch /w/done
sleep 60"#;
    let o = run(
        &["-d", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--name", &n, "-v", &volume],
        &["sh", "-c", script],
    );
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    let c = agent.wait_for("the container in ps", || agent.container(&n).filter(|c| c["image"] != ""));
    let id = c["id"].as_str().expect("id").to_owned();
    agent.wait_for("the container's loop to end", || {
        let logs = docker(&["logs", &n]);
        assert!(
            shared.join("done").exists()
                || docker(&["inspect", "-f", "{{.State.Running}}", &n]).stdout.starts_with(b"true"),
            "the container stopped: {}",
            String::from_utf8_lossy(&logs.stderr)
        );
        shared.join("done").exists().then_some(())
    });
    let ids: Vec<u64> = std::fs::read_to_string(shared.join("ids"))
        .expect("the nested cgroups' ids")
        .lines()
        .map(|l| l.trim().parse().expect("an inode number"))
        .collect();
    assert_eq!(ids.len(), 20, "{ids:?}");
    // The container's record takes them in (folded into its ended cgroups'
    // entry once they are read as ended), as saved on disk.
    let state = agent.state_dir().join("containers").join(format!("{id}.json"));
    agent.wait_for("the nested cgroups in the container's record", || {
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).ok()?).ok()?;
        let cgroups = record["cgroups"].as_object()?;
        cgroups.keys().any(|k| k == "0" || ids.iter().any(|i| *k == i.to_string())).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let ps = agent.ps();
    let own: Vec<&serde_json::Value> =
        ps.iter().filter(|r| ids.iter().any(|i| r["id"] == format!("cgroup:{i}").as_str())).collect();
    assert!(
        own.is_empty(),
        "nested cgroups became records of their own: {own:?}\nagent: {}",
        agent.stderr().lines().filter(|l| l.contains("vanished")).collect::<Vec<_>>().join("\n")
    );
    // The levels it made are the container's to leave empty: removed here,
    // deepest first, once it is gone.
    let _ = docker(&["rm", "-f", &n]);
    let mut dir = observer_tests::churn::v2_root().join(format!("docker/{id}/a/b/c/d/e"));
    for _ in 0..5 {
        let _ = std::fs::remove_dir(&dir);
        dir.pop();
    }
    let _ = std::fs::remove_dir_all(&shared);
}
