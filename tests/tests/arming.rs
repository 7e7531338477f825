//! When enforcement rules reach the kernel: before a container's first call
//! (from the runtime's own events), and always as the rules on disk say (after
//! `enforce --off` on one of two rules, after an agent restart), as root with
//! real Docker containers.

use std::time::Duration;

use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, docker, moby_default_without, name, require_docker, run},
    require_root,
};

fn alive(n: &str) -> bool {
    let o = docker(&["inspect", "-f", "{{.State.Running}}", n]);
    String::from_utf8_lossy(&o.stdout).trim() == "true"
}

fn enforce(agent: &TestAgent, args: &[&str]) {
    let mut all = vec!["enforce"];
    all.extend_from_slice(args);
    let o = agent.cli(&all);
    assert!(o.status.success(), "observer {all:?}: {}\nagent: {}", String::from_utf8_lossy(&o.stderr), agent.stderr());
}

/// An entrypoint whose very first command is the forbidden call: the rule
/// names the container before it exists, so it must be killed every time.
#[test]
fn a_forbidden_first_call_is_killed_every_time() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("first-call");
    let _cleanup = Cleanup(vec![n.clone()]);
    let no_chmod = moby_default_without(&["chmod"]);
    let matcher = format!("name:{n}");
    enforce(&agent, &["--match", &matcher, "--profile", no_chmod.to_str().expect("utf-8"), "--action", "kill"]);
    let runs = 20;
    let mut survived = Vec::new();
    for i in 0..runs {
        let o = run(&["--rm", "--name", &n], &["sh", "-c", "chmod 600 /etc/hostname; sleep 1"]);
        // 137: SIGKILL (the kernel's, or cgroup.kill's).
        if o.status.code() != Some(137) {
            survived.push((i, o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned()));
        }
        // `--rm` may still be removing it when `docker run` returns.
        let _ = docker(&["rm", "-f", &n]);
    }
    assert!(
        survived.is_empty(),
        "killed {} of {runs}; survivors (run, exit code, stderr): {survived:?}\nalerts: {:?}\nagent: {}",
        runs - survived.len(),
        agent.alerts(),
        agent.stderr()
    );
    let _ = std::fs::remove_file(&no_chmod);
}

/// Two rules name one container; `--off` on the later one leaves the other armed.
#[test]
fn enforce_off_on_one_rule_keeps_the_other_armed() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("two-rules");
    let _cleanup = Cleanup(vec![n.clone()]);
    let no_chmod = moby_default_without(&["chmod"]);
    let profile = no_chmod.to_str().expect("utf-8");
    let script = "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; sleep 30";
    let o = run(&["-d", "--name", &n], &["sh", "-c", script]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("the container", || agent.container(&n).filter(|c| c["state"] == "running"));
    let matcher = format!("name:{n}");
    enforce(&agent, &["--match", &matcher, "--profile", profile, "--action", "kill"]);
    enforce(&agent, &[&n, "--profile", profile, "--action", "alert"]);
    enforce(&agent, &[&n, "--off"]);
    let status = agent.status();
    assert_eq!(status["enforcements"].as_array().map(Vec::len), Some(1), "{status}");
    assert!(docker(&["exec", &n, "touch", "/tmp/go"]).status.success());
    agent.wait_for("the name rule to kill it", || (!alive(&n)).then_some(()));
    let _ = std::fs::remove_file(&no_chmod);
}

/// A restarted agent arms what enforce.json says, and nothing else: its rules
/// deleted while it was down, the kernel must not go on killing.
#[test]
fn a_restart_resyncs_the_kernel_with_enforce_json() {
    require_root();
    require_docker();
    let mut agent = TestAgent::start(&[]);
    let n = name("resync");
    let _cleanup = Cleanup(vec![n.clone()]);
    let no_chmod = moby_default_without(&["chmod"]);
    let script = "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; echo done > /tmp/done; sleep 30";
    let o = run(&["-d", "--name", &n], &["sh", "-c", script]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("the container", || agent.container(&n).filter(|c| c["state"] == "running"));
    let matcher = format!("name:{n}");
    enforce(&agent, &["--match", &matcher, "--profile", no_chmod.to_str().expect("utf-8"), "--action", "kill"]);
    let rules = agent.state_dir().join("enforce.json");
    agent.wait_for("enforce.json", || rules.exists().then_some(()));
    agent.kill();
    std::fs::remove_file(&rules).expect("removing enforce.json");
    agent.spawn();
    let status = agent.status();
    assert_eq!(status["enforcements"].as_array().map(Vec::len), Some(0), "{status}");
    assert!(docker(&["exec", &n, "touch", "/tmp/go"]).status.success());
    // Alive after its chmod (which wrote /tmp/done), and a second later.
    agent.wait_for("the chmod", || {
        assert!(alive(&n), "killed by a rule deleted from enforce.json\nagent: {}", agent.stderr());
        docker(&["exec", &n, "cat", "/tmp/done"]).status.success().then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(&n), "killed by a rule deleted from enforce.json\nagent: {}", agent.stderr());
    let _ = std::fs::remove_file(&no_chmod);
}

/// A call made before any rule named the container is judged when one is
/// armed: a kill rule added after the forbidden call kills it at once.
#[test]
fn a_rule_armed_after_the_call_judges_it() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("judged-late");
    let _cleanup = Cleanup(vec![n.clone()]);
    let no_chmod = moby_default_without(&["chmod"]);
    let o = run(&["-d", "--name", &n], &["sh", "-c", "chmod 600 /etc/hostname; sleep 30"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("its chmod in its profile", || {
        let profile = agent.try_profile(&n)?;
        observer_tests::agent::rows(&profile)
            .iter()
            .any(|(syscall, _, phases, _, _)| syscall == "chmod" && phases.iter().any(|p| p == "container"))
            .then_some(())
    });
    assert!(alive(&n));
    let matcher = format!("name:{n}");
    enforce(&agent, &["--match", &matcher, "--profile", no_chmod.to_str().expect("utf-8"), "--action", "kill"]);
    agent.wait_for("the container to be killed for its earlier chmod", || (!alive(&n)).then_some(()));
    let alerts = agent.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == n.as_str() && a["syscall"] == "chmod"),
        "{alerts:?}"
    );
    let _ = std::fs::remove_file(&no_chmod);
}
