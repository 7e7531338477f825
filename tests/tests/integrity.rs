//! A node other people share: what a local user can do must not turn observer
//! against a container. As root, with real Docker and a real unprivileged user.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use observer_tests::{
    agent::{CgroupNs, TestAgent, rows},
    churn::v2_root,
    docker::{Cleanup, docker, moby_default_without, name, require_docker, run},
    require_root, unique,
};

const USER: &str = "observer-itest";

/// Runs a scenario twice: with the agent in the host's cgroup namespace, and
/// in a private one rooted at a cgroup of its own (a pod's, on a cgroup-v2
/// node). Containers must be confirmed, named, enforced and killed the same.
macro_rules! in_both_cgroup_namespaces {
    ($scenario:ident) => {
        mod $scenario {
            #[test]
            fn host() {
                super::$scenario(observer_tests::agent::CgroupNs::Host);
            }

            #[test]
            fn private_cgroupns() {
                super::$scenario(observer_tests::agent::CgroupNs::Private);
            }
        }
    };
}

/// The tests here start agents with few slots and count what they see: one
/// at a time, so that one test's containers do not take another's slots.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// An unprivileged user of this machine (created once), as (uid, gid).
fn unprivileged_user() -> (u32, u32) {
    let id = |flag: &str| Command::new("id").args([flag, USER]).output().expect("id");
    if !id("-u").status.success() {
        let o = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/bin/sh", USER])
            .output()
            .expect("useradd");
        assert!(o.status.success(), "useradd {USER}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let num = |flag: &str| String::from_utf8_lossy(&id(flag).stdout).trim().parse::<u32>().expect("numeric id");
    (num("-u"), num("-g"))
}

/// What systemd's `Delegate=` does, by hand (this machine has no systemd): a
/// subtree of the v2 hierarchy owned by the user. Removed on drop.
struct Delegated {
    top: PathBuf,
    dir: PathBuf,
}

impl Delegated {
    fn new(uid: u32, gid: u32) -> Self {
        let top = v2_root().join(format!("observer-itest-{}.slice", unique() % 1_000_000_000));
        let dir = top.join(format!("user@{uid}.service"));
        std::fs::create_dir_all(&dir).expect("delegated cgroup");
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the subtree");
        for f in ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
            std::os::unix::fs::chown(dir.join(f), Some(uid), Some(gid)).expect("chown the subtree's files");
        }
        Delegated { top, dir }
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Children first; each is empty once its processes have exited.
        for _ in 0..50 {
            if let Ok(entries) = std::fs::read_dir(&self.dir) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&self.dir);
            if std::fs::remove_dir(&self.top).is_ok() || !self.top.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Slots that cgroups already on this machine take as soon as an agent starts
/// (containers left running by someone else): a test that means to fill every
/// slot itself adds its own to these.
fn slots_taken_by_others() -> u64 {
    let agent = TestAgent::start(&[]);
    std::thread::sleep(Duration::from_millis(1500));
    let o = agent.cli(&["status"]);
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status is JSON");
    status["slots_used"].as_u64().expect("slots_used")
}

fn running(container: &str) -> bool {
    let o = docker(&["inspect", "-f", "{{.State.Running}}", container]);
    String::from_utf8_lossy(&o.stdout).trim() == "true"
}

/// How long the overflow tests wait for what they wait on: they start several
/// containers at once, which a loaded machine (other tests, builds) makes
/// slow; every wait still ends as soon as its condition holds.
const UNDER_LOAD: Duration = Duration::from_secs(120);

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

in_both_cgroup_namespaces!(a_users_cgroup_named_like_a_container_is_an_impostor);

/// A user with a delegated subtree names a cgroup after a running, enforced
/// container and runs chmod there: the container keeps running, its profile
/// has no chmod, and the impostor is alerted as such.
fn a_users_cgroup_named_like_a_container_is_an_impostor(ns: CgroupNs) {
    require_root();
    let _serial = one_at_a_time();
    require_docker();
    let (uid, gid) = unprivileged_user();
    let victim = name("victim");
    let _cleanup = Cleanup(vec![victim.clone()]);
    let o = run(&["-d", "--name", &victim], &["sh", "-c", "while true; do sleep 0.5; done"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&docker(&["inspect", "-f", "{{.Id}}", &victim]).stdout).trim().to_owned();
    assert_eq!(id.len(), 64, "container id: {id:?}");

    let agent = TestAgent::start_in(&[], ns);
    agent.wait_for("the victim in ps", || agent.container(&victim).filter(|c| c["image"] == "observer-busybox:latest"));
    let no_chmod = moby_default_without(&["chmod"]);
    let o = agent.cli(&["enforce", &victim, "--profile", no_chmod.to_str().expect("utf-8"), "--action", "kill"]);
    assert!(o.status.success(), "enforce: {}", String::from_utf8_lossy(&o.stderr));

    let delegated = Delegated::new(uid, gid);
    let scope = delegated.dir.join(format!("docker-{id}.scope"));
    let go = std::env::temp_dir().join(format!("observer-itest-go-{}", unique()));
    let target = std::env::temp_dir().join(format!("observer-itest-file-{}", unique()));
    std::fs::write(&target, "x").expect("file");
    std::os::unix::fs::chown(&target, Some(uid), Some(gid)).expect("chown file");
    // As the user: wait to be moved into the delegated subtree, make the
    // container-shaped cgroup there, move in, and call chmod.
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.1; done; mkdir {scope} && echo $$ > {scope}/cgroup.procs && chmod 600 {target} && chmod 644 {target}; sleep 1",
        go = go.display(),
        scope = scope.display(),
        target = target.display()
    );
    let user_shell = Command::new("setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into(), "--".into()])
        .args(["sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv");
    // Root moves the user's shell into the subtree (a process may only be moved
    // by someone who can write the common ancestor's cgroup.procs).
    std::fs::write(delegated.dir.join("cgroup.procs"), user_shell.id().to_string()).expect("move the user's shell");
    std::fs::write(&go, "").expect("go");
    let out = user_shell.wait_with_output().expect("user shell");
    assert!(
        out.status.success(),
        "the user's script (mkdir, move, chmod) failed: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // Give a wrong agent time to act on it, then look.
    std::thread::sleep(Duration::from_secs(3));
    assert!(running(&victim), "the real container must keep running; agent: {}", agent.stderr());
    let profile = agent.profile(&victim);
    assert!(
        !rows(&profile).iter().any(|r| r.0 == "chmod" || r.0 == "fchmodat"),
        "the impostor's chmod must not pollute the container's profile: {profile}"
    );
    // This one's: other tests on the machine may make impostors of their own.
    let alert = agent.wait_for("the impostor alert", || {
        agent.alerts().into_iter().find(|a| {
            a["kind"] == "impostor_cgroup"
                && a["id"].as_str().is_some_and(|p| p.contains(&format!("docker-{id}.scope")))
        })
    });
    assert_ne!(alert["name"], victim.as_str(), "an impostor never takes the container's name: {alert}");
    assert_eq!(profile["id"], id.as_str(), "profile show NAME resolves to the real container");
    let impostor =
        agent.ps().into_iter().find(|c| c["id"].as_str().is_some_and(|p| p.ends_with(&format!("docker-{id}.scope"))));
    let impostor = impostor.unwrap_or_else(|| panic!("the impostor is a record of its own: {:?}", agent.ps()));
    assert_eq!(impostor["runtime"], "plain", "{impostor}");
    assert!(
        !agent.alerts().iter().any(|a| a["kind"] == "enforce" && a["name"] == victim.as_str()),
        "no enforcement fired for the container: {:?}",
        agent.alerts()
    );
    wait_until("the user's cgroup to empty", Duration::from_secs(10), || {
        std::fs::read_to_string(scope.join("cgroup.procs")).map_or(true, |p| p.trim().is_empty())
    });
    let _ = std::fs::remove_file(&go);
    let _ = std::fs::remove_file(&target);
}

/// A cgroup named like a Docker container that dockerd never made (made by
/// root here, so nothing marks it before dockerd is asked): recorded as
/// pending under the container id it claims, then split off as an impostor
/// when dockerd disowns it. Nothing stays behind under that id: no record
/// in `ps`, no state file, and what it did is in the impostor's record.
#[test]
fn a_cgroup_dockerd_disowns_leaves_no_record_under_the_id_it_claimed() {
    require_root();
    let _serial = one_at_a_time();
    require_docker();
    let agent = TestAgent::start(&[]);
    let fake = format!("{:064x}", unique());
    let cg = observer_tests::churn::Cgroup::create(&format!("docker/{fake}"));
    let mut child = cg
        .spawn(Command::new("sh").args(["-c", "cat /etc/hostname > /dev/null; exec sleep 60"]))
        .expect("start sh in the cgroup");
    let path = cg.rel();
    let alert = agent.wait_for("the impostor alert", || {
        agent.alerts().into_iter().find(|a| a["kind"] == "impostor_cgroup" && a["id"] == path.as_str())
    });
    assert!(alert["detail"].as_str().is_some_and(|d| d.contains(&fake)), "{alert}");
    // Saved once a second: a record left behind would be on disk by then.
    std::thread::sleep(Duration::from_secs(2));
    let ps = agent.ps();
    assert!(
        !ps.iter().any(|c| c["id"] == fake.as_str()),
        "a record under the id the impostor claimed stayed behind: {ps:?}"
    );
    let files: Vec<String> = std::fs::read_dir(agent.state_dir().join("containers"))
        .expect("containers/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // (The impostor's own record is saved under its path, `_docker_<id>.json`.)
    assert!(!files.contains(&format!("{fake}.json")), "its state file stayed behind: {files:?}");
    let impostor = ps.iter().find(|c| c["id"] == path.as_str());
    let impostor = impostor.unwrap_or_else(|| panic!("the impostor is a record of its own: {ps:?}"));
    assert_eq!(impostor["runtime"], "plain", "{impostor}");
    let profile = agent.profile(&path);
    assert!(
        rows(&profile).iter().any(|r| r.0 == "execve" || r.0 == "nanosleep" || r.0 == "clock_nanosleep"),
        "what it did is in the impostor's record: {profile}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

in_both_cgroup_namespaces!(records_without_a_live_slot_end_and_enforce_reports_what_it_armed);

/// After the kernel's slots are gone (an uninstall, a reboot), a record that
/// held one is not "running" on paper, and `enforce` says what it armed.
fn records_without_a_live_slot_end_and_enforce_reports_what_it_armed(ns: CgroupNs) {
    require_root();
    let _serial = one_at_a_time();
    require_docker();
    let (gone, alive) = (name("gone"), name("alive"));
    let _cleanup = Cleanup(vec![gone.clone(), alive.clone()]);
    let mut agent = TestAgent::start_in(&[], ns);
    for n in [&gone, &alive] {
        let o = run(&["-d", "--name", n], &["sh", "-c", "while true; do sleep 0.3; done"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for n in [&gone, &alive] {
        agent.wait_for("both containers running", || {
            agent.container(n).filter(|c| c["state"] == "running" && c["image"] != "")
        });
    }
    // Records are saved once a second.
    std::thread::sleep(Duration::from_secs(2));
    agent.kill();
    let o = Command::new(observer_tests::observer_bin())
        .args(["agent", "--uninstall", "--pin-dir"])
        .arg(&agent.pin_dir)
        .output()
        .expect("uninstall");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(docker(&["rm", "-f", &gone]).status.success());
    agent.spawn();
    let c =
        agent.wait_for("the removed container, ended", || agent.container(&gone).filter(|c| c["state"] != "running"));
    assert_eq!(c["state"], "exited", "{c}");
    agent.wait_for("the live one, running again", || agent.container(&alive).filter(|c| c["state"] == "running"));

    let no_chmod = moby_default_without(&["chmod"]);
    let profile = no_chmod.to_str().expect("utf-8");
    let o = agent.cli(&["enforce", &gone, "--profile", profile, "--action", "kill"]);
    assert!(
        !o.status.success(),
        "enforcing a container with no live slot must fail: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing armed"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = agent.cli(&["enforce", &alive, "--profile", profile, "--action", "alert"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON answer");
    assert!(!answer["armed"]["slots"].as_array().expect("armed slots").is_empty(), "{answer}");
    // A name rule may wait for a container yet to start.
    let o = agent.cli(&["enforce", "--match", &format!("name:{}", name("later")), "--profile", profile]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A corrupt enforce.json is set aside and the agent refuses to start until
/// the operator decides: rules are never dropped without a word.
#[test]
fn a_corrupt_enforce_json_stops_the_agent_until_someone_decides() {
    require_root();
    let _serial = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("observer-itest-enforce-{}", unique()));
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(state.join("enforce.json"), b"[{\"target\": ").expect("write");
    let pin_dir = format!("/sys/fs/bpf/observer-itest-{}", unique());
    let start = || {
        let mut child = Command::new(observer_tests::observer_bin())
            .arg("agent")
            .arg("--state-dir")
            .arg(&state)
            .arg("--socket")
            .arg(dir.join("api.sock"))
            .arg("--pin-dir")
            .arg(&pin_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("observer agent");
        // An agent that starts anyway is stopped and reported.
        let start = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = Command::new(observer_tests::observer_bin())
                    .args(["agent", "--uninstall", "--pin-dir", &pin_dir])
                    .output();
                panic!("the agent started with a corrupt enforce.json");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("agent output")
    };
    for attempt in ["first", "second"] {
        let o = start();
        assert!(!o.status.success(), "the {attempt} start must refuse");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("enforce.json") && err.contains("corrupt") || err.contains("could not be read"),
            "{attempt}: {err}"
        );
        assert!(state.join("enforce.json.corrupt").exists(), "set aside, not overwritten");
        assert!(!state.join("enforce.json").exists(), "{attempt}: no empty rule set written in its place");
        assert!(!std::path::Path::new(&pin_dir).exists(), "{attempt}: a refused agent leaves no programs pinned");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

in_both_cgroup_namespaces!(every_overflow_is_an_alert_and_kill_takes_an_enforced_container);

/// With every slot taken, a new container is neither recorded nor enforced
/// in the kernel: each overflow is an alert and a metric, and `--on-overflow
/// kill` kills a container an enforcement rule names instead of letting it run.
fn every_overflow_is_an_alert_and_kill_takes_an_enforced_container(ns: CgroupNs) {
    require_root();
    let _serial = one_at_a_time();
    require_docker();
    let fillers: Vec<String> = (0..3).map(|i| name(&format!("fill{i}"))).collect();
    let (enforced, plain) = (name("overenforced"), name("overplain"));
    let mut all = fillers.clone();
    all.extend([enforced.clone(), plain.clone()]);
    let _cleanup = Cleanup(all);
    let slots = (slots_taken_by_others() + 3).to_string();
    let agent = TestAgent::start_in(&["--slots", &slots, "--on-overflow", "kill"], ns);
    for n in &fillers {
        let o = run(&["-d", "--name", n], &["sh", "-c", "while true; do sleep 0.3; done"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for n in &fillers {
        agent.wait_for_within(UNDER_LOAD, "the fillers recorded", || {
            agent.container(n).filter(|c| c["state"] == "running")
        });
    }
    let no_chmod = moby_default_without(&["chmod"]);
    let o = agent.cli(&[
        "enforce",
        "--match",
        &format!("name:{enforced}"),
        "--profile",
        no_chmod.to_str().expect("utf-8"),
        "--action",
        "alert",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for n in [&enforced, &plain] {
        let o = run(&["-d", "--name", n], &["sh", "-c", "while true; do sleep 0.3; done"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let overflow = |n: &str| agent.alerts().into_iter().find(|a| a["kind"] == "overflow" && a["name"] == n);
    let a = agent.wait_for_within(UNDER_LOAD, "the enforced container's overflow alert", || overflow(&enforced));
    assert!(a["detail"].as_str().is_some_and(|d| d.contains("killed")), "{a}");
    let a = agent.wait_for_within(UNDER_LOAD, "the other container's overflow alert", || overflow(&plain));
    assert!(a["detail"].as_str().is_some_and(|d| d.contains("not recorded")), "{a}");
    wait_until("the enforced container to be killed", UNDER_LOAD, || !running(&enforced));
    std::thread::sleep(Duration::from_secs(1));
    assert!(running(&plain), "only the enforced container is killed");
    for n in &fillers {
        assert!(running(n), "{n} untouched");
    }
    let o = agent.cli(&["status"]);
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status is JSON");
    assert!(status["cgroups_overflow"].as_u64().unwrap_or(0) >= 2, "{status}");
}

in_both_cgroup_namespaces!(an_overflowed_container_is_enforced_once_a_slot_frees);

/// A container that overflowed gets a slot once one is free; its start went
/// unseen, so all of it is the container's own and its rule is enforced.
fn an_overflowed_container_is_enforced_once_a_slot_frees(ns: CgroupNs) {
    require_root();
    let _serial = one_at_a_time();
    require_docker();
    let fillers: Vec<String> = (0..2).map(|i| name(&format!("slotfill{i}"))).collect();
    let late = name("late");
    let mut all = fillers.clone();
    all.push(late.clone());
    let _cleanup = Cleanup(all);
    let slots = (slots_taken_by_others() + 2).to_string();
    let agent = TestAgent::start_in(&["--slots", &slots], ns);
    for n in &fillers {
        let o = run(&["-d", "--name", n], &["sh", "-c", "while true; do sleep 0.3; done"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        agent.wait_for_within(UNDER_LOAD, "the filler recorded", || {
            agent.container(n).filter(|c| c["state"] == "running")
        });
    }
    let no_chmod = moby_default_without(&["chmod"]);
    let o = agent.cli(&[
        "enforce",
        "--match",
        &format!("name:{late}"),
        "--profile",
        no_chmod.to_str().expect("utf-8"),
        "--action",
        "kill",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        &["-d", "--name", &late],
        &["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; sleep 30"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for_within(UNDER_LOAD, "the overflow alert", || {
        agent.alerts().into_iter().find(|a| a["kind"] == "overflow" && a["name"] == late.as_str())
    });
    // A slot frees; the agent's periodic sweep hands it to the waiting container.
    assert!(docker(&["rm", "-f", &fillers[0]]).status.success());
    agent.wait_for_within(UNDER_LOAD, "the late container recorded", || {
        agent.container(&late).filter(|c| c["state"] == "running")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(docker(&["exec", &late, "touch", "/tmp/go"]).status.success());
    wait_until("the late container to be killed for its chmod", UNDER_LOAD, || !running(&late));
}
