//! Enforcement: `observer run` under real seccomp filters (compared with
//! Docker's, both dumped from the kernel) and `observer enforce` on live
//! containers, as root.

use std::{process::Command, time::Duration};

use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, docker, moby_default_without, name, profile_path, require_docker, run},
    filters::{filter_json, unexpected_differences},
    observer, observer_bin, require_root, testprog,
};

/// Docker's default capability set, as `observer run --caps` takes it.
fn docker_caps() -> String {
    observer_profile::resolve::DOCKER_DEFAULT_CAPS.join(",")
}

#[test]
fn the_seed_lab_without_docker() {
    require_root();
    let deny = profile_path("docker-labs/deny.json");
    let o = observer(&["run", "--profile", &deny, "--", "sh", "-c", "echo hi"]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("denies execve") && err.contains("cannot start"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("hi"));

    let file = std::env::temp_dir().join(format!("observer-chmod-{}", observer_tests::unique()));
    std::fs::write(&file, "x").expect("file");
    let f = file.to_str().expect("utf-8");
    let o =
        observer(&["run", "--profile", &profile_path("docker-labs/default-no-chmod.json"), "--", "chmod", "777", f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"));
    let o = observer(&["run", "--profile", &profile_path("docker-labs/default.json"), "--", "chmod", "777", f]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // --trace lists the denied attempt.
    let o = observer(&[
        "run",
        "--trace",
        "--profile",
        &profile_path("docker-labs/default-no-chmod.json"),
        "--",
        "chmod",
        "777",
        f,
    ]);
    let report = String::from_utf8_lossy(&o.stderr);
    let row = report
        .lines()
        .find(|l| l.starts_with("fchmodat ") || l.starts_with("chmod "))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(row.split_whitespace().last() == Some("1"), "one denied attempt: {row}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn an_int80_call_cannot_slip_past_the_filter() {
    require_root();
    // Docker's default without getppid, on both ABIs.
    let file = moby_default_without(&["getppid"]);
    let tp = testprog();
    let o = observer(&["run", "--profile", file.to_str().expect("utf-8"), "--", tp.to_str().expect("utf-8"), "int80"]);
    assert_eq!(o.status.code(), Some(3), "the i386 getppid must fail: {}", String::from_utf8_lossy(&o.stderr));
    // And without the filter it works (the helper can fail only through the filter).
    let o = Command::new(&tp).arg("int80").output().expect("testprog");
    assert!(o.status.success());
    let _ = std::fs::remove_file(file);
}

/// The pid of `sleep` started by `observer run` (it writes $$ first, then execs).
fn observer_run_sleep(profile: &str, pidfile: &std::path::Path) -> std::process::Child {
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    Command::new(observer_bin())
        .args(["run", "--caps", &docker_caps(), "--profile", profile, "--", "sh", "-c", &script])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("observer run")
}

#[test]
fn observer_run_installs_what_docker_installs() {
    require_root();
    require_docker();
    for profile in ["moby/default.json", "docker-labs/default.json", "docker-labs/default-no-chmod.json"] {
        let file = profile_path(profile);
        let n = name("equiv");
        let _cleanup = Cleanup(vec![n.clone()]);
        let opt = format!("seccomp={file}");
        let o = run(&["-d", "--security-opt", &opt, "--name", &n], &["sleep", "30"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let pid = String::from_utf8_lossy(&docker(&["inspect", "-f", "{{.State.Pid}}", &n]).stdout).trim().to_owned();
        let docker_table = filter_json(&["--pid", &pid]);

        let pidfile = std::env::temp_dir().join(format!("observer-run-{}", observer_tests::unique()));
        let mut child = observer_run_sleep(&file, &pidfile);
        let mut ours = None;
        for _ in 0..100 {
            if let Ok(p) = std::fs::read_to_string(&pidfile)
                && !p.trim().is_empty()
            {
                std::thread::sleep(Duration::from_millis(100));
                ours = Some(p.trim().to_owned());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let ours = ours.expect("observer run started sleep");
        let our_table = filter_json(&["--pid", &ours]);
        let _ = child.kill();
        let _ = child.wait();
        let _ = Command::new("kill").arg(&ours).status();
        let _ = std::fs::remove_file(&pidfile);

        // Both are filters in the kernel: compare every syscall of both ABIs.
        let mut differences = Vec::new();
        for abi in ["x86_64", "i386"] {
            let d = docker_table["abis"][abi].as_object().expect("docker table");
            let o = our_table["abis"][abi].as_object().expect("our table");
            for (name, want) in d {
                let got = &o[name];
                if want != got {
                    differences.push(format!("{abi} {name}: Docker {want}, observer run {got}"));
                }
            }
        }
        assert!(
            differences.is_empty(),
            "{profile}: observer run's filter differs from Docker's:\n{}",
            differences.join("\n")
        );
    }
    // deny.json cannot start anything: the model's table and the compiled filter agree.
    let deny = profile_path("docker-labs/deny.json");
    let model = filter_json(&["--profile", &deny]);
    let compiled = filter_json(&["--profile", &deny, "--compiled"]);
    let unexpected = unexpected_differences(&model, &compiled, "errno(1)");
    assert!(unexpected.is_empty(), "deny.json: {}", unexpected.join("\n"));
}

fn alive(n: &str) -> bool {
    let o = docker(&["inspect", "-f", "{{.State.Running}}", n]);
    String::from_utf8_lossy(&o.stdout).trim() == "true"
}

#[test]
fn enforce_kills_only_the_container_that_leaves_its_profile() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let (victim, neighbour, watched) = (name("victim"), name("neighbour"), name("alertonly"));
    let _cleanup = Cleanup(vec![victim.clone(), neighbour.clone(), watched.clone()]);
    // Each waits for a file, then makes chmod, which default-no-chmod.json leaves out.
    let script = "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; echo done > /tmp/done; sleep 30";
    for n in [&victim, &neighbour, &watched] {
        let o = run(&["-d", "--name", n], &["sh", "-c", script]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for n in [&victim, &neighbour, &watched] {
        agent.wait_for("the containers", || agent.container(n).filter(|c| c["state"] == "running"));
    }
    // moby's default allows chmod; default-no-chmod.json (old format) also lacks newer
    // calls busybox makes, so use moby's default without chmod.
    let no_chmod = moby_default_without(&["chmod"]);
    let nc = no_chmod.to_str().expect("utf-8");
    let o = agent.cli(&["enforce", &victim, "--profile", nc, "--action", "kill"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = agent.cli(&["enforce", &watched, "--profile", nc, "--action", "alert"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A host process making the same syscall is untouched.
    let host_file = std::env::temp_dir().join(format!("observer-host-{}", observer_tests::unique()));
    std::fs::write(&host_file, "x").expect("file");
    for n in [&victim, &neighbour, &watched] {
        let o = docker(&["exec", n, "touch", "/tmp/go"]);
        assert!(
            o.status.success(),
            "the container's own start and a docker exec are not killed: {n}: {}\nalerts: {:?}\nprofile: {}",
            String::from_utf8_lossy(&o.stderr),
            agent.alerts(),
            agent.try_profile(n).map(|p| p.to_string()).unwrap_or_default()
        );
    }
    let o = Command::new("chmod").arg("600").arg(&host_file).status().expect("chmod");
    assert!(o.success());
    agent.wait_for("the victim to die", || (!alive(&victim)).then_some(()));
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(&neighbour), "the neighbour made the same syscall without enforcement");
    assert!(alive(&watched), "alert only alerts");
    let done = docker(&["exec", &watched, "cat", "/tmp/done"]);
    assert_eq!(String::from_utf8_lossy(&done.stdout).trim(), "done");
    let alerts = agent.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == victim.as_str() && a["syscall"] == "chmod"),
        "{alerts:?}"
    );
    assert!(
        alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == watched.as_str() && a["syscall"] == "chmod"),
        "{alerts:?}"
    );
    assert!(!alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == neighbour.as_str()), "{alerts:?}");
    // Off again: a new violation is not acted on.
    let o = agent.cli(&["enforce", &watched, "--off"]);
    assert!(o.status.success());
    let _ = std::fs::remove_file(&host_file);
    let _ = std::fs::remove_file(&no_chmod);
}

#[test]
fn enforce_by_name_survives_a_restart_of_the_container() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("restarted");
    let _cleanup = Cleanup(vec![n.clone()]);
    let no_chmod = moby_default_without(&["chmod"]);
    let matcher = format!("name:{n}");
    let o = agent.cli(&[
        "enforce",
        "--match",
        &matcher,
        "--profile",
        no_chmod.to_str().expect("utf-8"),
        "--action",
        "kill",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; sleep 30";
    let o = run(&["-d", "--name", &n], &["sh", "-c", script]);
    assert!(o.status.success());
    agent.wait_for("the container", || agent.container(&n).filter(|c| c["state"] == "running"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(&n), "its own start is not killed");
    assert!(docker(&["restart", "-t", "0", &n]).status.success());
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(&n), "restarted");
    agent.wait_for("the restarted container's new cgroup", || agent.container(&n).filter(|c| c["state"] == "running"));
    std::thread::sleep(Duration::from_millis(500));
    let o = docker(&["exec", &n, "touch", "/tmp/go"]);
    assert!(
        o.status.success(),
        "docker exec after the restart: {}\nalerts: {:?}\nagent: {}",
        String::from_utf8_lossy(&o.stderr),
        agent.alerts(),
        agent.stderr()
    );
    agent.wait_for("the restarted container to be killed", || (!alive(&n)).then_some(()));
    let _ = std::fs::remove_file(&no_chmod);
}

/// `-v` options that run the host's testprog inside a busybox container.
fn testprog_mounts() -> Vec<String> {
    let tp = testprog();
    vec![
        "-v".into(),
        "/lib:/lib:ro".into(),
        "-v".into(),
        "/lib64:/lib64:ro".into(),
        "-v".into(),
        format!("{}:/tp:ro", tp.display()),
    ]
}

#[test]
fn x32_and_out_of_range_numbers_are_outside_every_profile() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let (x32, invalid) = (name("x32"), name("invalid"));
    let _cleanup = Cleanup(vec![x32.clone(), invalid.clone()]);
    // Unconfined: under Docker's filter these numbers never reach the tracepoint
    // (seccomp denies them first); without one, enforcement is all there is.
    let mounts = testprog_mounts();
    for (n, mode) in [(&x32, "x32"), (&invalid, "invalid")] {
        let script = format!("while [ ! -e /tmp/go ]; do sleep 0.2; done; /tp {mode}; echo done > /tmp/done; sleep 30");
        let mut extra: Vec<&str> = vec!["-d", "--name", n, "--security-opt", "seccomp=unconfined"];
        extra.extend(mounts.iter().map(String::as_str));
        let o = run(&extra, &["sh", "-c", &script]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for n in [&x32, &invalid] {
        agent.wait_for("the containers", || agent.container(n).filter(|c| c["state"] == "running"));
    }
    // Docker's whole default profile: everything the container does otherwise is allowed.
    let everything = moby_default_without(&[]);
    let p = everything.to_str().expect("utf-8");
    let o = agent.cli(&["enforce", &x32, "--profile", p, "--action", "kill"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = agent.cli(&["enforce", &invalid, "--profile", p, "--action", "alert"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for n in [&x32, &invalid] {
        let o = docker(&["exec", n, "touch", "/tmp/go"]);
        assert!(o.status.success(), "{n}: {}\nalerts: {:?}", String::from_utf8_lossy(&o.stderr), agent.alerts());
    }
    agent.wait_for("the x32 caller to be killed", || (!alive(&x32)).then_some(()));
    agent.wait_for("the out-of-range caller to finish", || {
        let done = docker(&["exec", &invalid, "cat", "/tmp/done"]);
        (String::from_utf8_lossy(&done.stdout).trim() == "done").then_some(())
    });
    assert!(alive(&invalid), "alert only alerts");
    let alerts = agent.alerts();
    for n in [&x32, &invalid] {
        assert!(
            alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == n.as_str() && a["syscall"] == "invalid"),
            "{n}: {alerts:?}"
        );
    }
    let _ = std::fs::remove_file(&everything);
}

#[test]
fn a_container_running_before_the_agent_has_no_init_phase() {
    require_root();
    require_docker();
    let n = name("before");
    let _cleanup = Cleanup(vec![n.clone()]);
    // Busy from before the programs attach: its first call after the attach is
    // its own process's, which must not be taken for the runtime's init.
    let script = "while true; do if [ -e /tmp/go ]; then chmod 600 /tmp/go; fi; done";
    let o = run(&["-d", "--name", &n], &["sh", "-c", script]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(500));
    let agent = TestAgent::start(&[]);
    agent.wait_for("the container", || agent.container(&n).filter(|c| c["state"] == "running"));
    let no_chmod = moby_default_without(&["chmod"]);
    let o = agent.cli(&["enforce", &n, "--profile", no_chmod.to_str().expect("utf-8"), "--action", "kill"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = docker(&["exec", &n, "touch", "/tmp/go"]);
    agent.wait_for("the container to be killed", || (!alive(&n)).then_some(()));
    let alerts = agent.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == n.as_str() && a["syscall"] == "chmod"),
        "killed for its chmod: {alerts:?}"
    );
    // The docker exec's runc init (unfiltered, from outside) was not taken for the container's own.
    // (This container's alerts: others' may come from other tests' containers.)
    assert!(
        !alerts.iter().any(|a| a["name"] == n.as_str() && a["comm"].as_str().is_some_and(|c| c.starts_with("runc"))),
        "{alerts:?}"
    );
    let _ = std::fs::remove_file(&no_chmod);
}
