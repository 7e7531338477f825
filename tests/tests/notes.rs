//! The enter note in the agent's default mode (no `--count-errors`): a task
//! under a seccomp filter leaves one only for the calls its filter decides on
//! (issue 30), and a note an allowed call left never passes for a denied
//! call's enter. Real agent, real cgroup, real filter, as root.

use std::{path::Path, process::Command};

use observer_tests::{
    agent::{TestAgent, rows},
    churn::v2_root,
    require_root, testprog, unique,
};

/// Runs `script` in the cgroup `dir` (the shell joins it, then execs).
fn run_in(dir: &Path, script: &str) {
    let script = format!("echo $$ > {}/cgroup.procs && {script}", dir.display());
    let o = Command::new("sh").args(["-c", &script]).output().expect("sh");
    assert!(o.status.success(), "{script}: {o:?}");
}

#[test]
fn a_denied_call_after_an_allowed_call_of_the_same_number_is_a_denial() {
    require_root();
    let agent = TestAgent::start(&["--watch", "all"]);
    let name = format!("observer-notes-{}", unique() % 1_000_000_000);
    let dir = v2_root().join(&name);
    std::fs::create_dir(&dir).expect("mkdir cgroup");
    // chmod 0600 allowed, 0777 denied by one filter, in turn: 3 calls enter,
    // 2 are denied, one of them right after an allowed chmod (whose note its
    // success leaves live), one after getppid (which leaves no note).
    for _ in 0..3 {
        run_in(&dir, &format!("exec {} deny-chmod-777", testprog().display()));
    }
    let key = format!("/{name}");
    let chmod = |p: &serde_json::Value| -> (u64, u64) {
        rows(p).iter().filter(|r| r.0 == "chmod" && r.1 == "x86_64").fold((0, 0), |(c, d), r| (c + r.3, d + r.4))
    };
    let profile = agent.wait_for("three runs' chmod calls", || {
        let p = agent.try_profile(&key)?;
        (chmod(&p).0 >= 9).then_some(p)
    });
    // The denials' events may come a moment after the counts: read again.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let profile = agent.try_profile(&key).unwrap_or(profile);
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(chmod(&profile), (9, 6), "3 runs of 3 entered and 2 denied chmod calls: {profile}");
}
