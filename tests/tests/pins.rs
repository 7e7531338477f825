//! The pin directory: one agent per pin directory, and pinned programs of
//! another layout replaced, never reused. As root, with the real programs.

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use observer_tests::{agent::TestAgent, observer_bin, require_root, unique};

#[test]
fn a_second_agent_on_the_same_pin_dir_is_refused() {
    require_root();
    let agent = TestAgent::start(&[]);
    let dir = std::env::temp_dir().join(format!("observer-second-{}", unique()));
    std::fs::create_dir_all(&dir).expect("dir");
    // Another state directory and socket: only the pin directory is shared.
    let mut second = Command::new(observer_bin())
        .arg("agent")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(dir.join("api.sock"))
        .arg("--pin-dir")
        .arg(&agent.pin_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("observer agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    let _ = second.stderr.take().expect("stderr").read_to_string(&mut err);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.is_some_and(|s| !s.success()), "a second agent ran on {}: {err}", agent.pin_dir.display());
    assert!(err.contains("another observer agent") && err.contains("pin directory"), "{err}");
    let pid = agent.child.as_ref().expect("child").id();
    assert!(err.contains(&format!("pid {pid}")), "names the holder: {err}");
    // The first one is untouched.
    assert!(agent.cli(&["ps"]).status.success(), "{}", agent.stderr());
}

#[test]
fn pinned_programs_of_another_layout_are_replaced() {
    require_root();
    let mut agent = TestAgent::start(&[]);
    // A crash leaves the programs pinned; then the layout value is not this build's.
    agent.kill();
    let layout = agent.pin_dir.join("LAYOUT");
    let o = Command::new("bpftool")
        .args(["map", "update", "pinned"])
        .arg(&layout)
        .args(["key", "0", "0", "0", "0", "value", "1", "2", "3", "4", "5", "6", "7", "8"])
        .output()
        .expect("bpftool is needed");
    assert!(o.status.success(), "the pinned LAYOUT map: {}", String::from_utf8_lossy(&o.stderr));
    agent.spawn();
    assert_eq!(reused(&agent), Some(false), "fresh programs, not the old ones");
    let log = agent.stderr();
    assert!(log.contains("another layout") && log.contains("replacing"), "{log}");
    // An older build pinned no layout at all: replaced too.
    agent.kill();
    std::fs::remove_file(&layout).expect("unpin LAYOUT");
    agent.spawn();
    assert_eq!(reused(&agent), Some(false), "no layout: fresh programs");
    assert!(agent.stderr().contains("no readable layout"), "{}", agent.stderr());
    // And the agent works on the fresh ones.
    agent.kill();
    agent.spawn();
    assert_eq!(reused(&agent), Some(true), "same layout: reused");
}

/// `reused_pinned_programs` from `observer status` (pretty JSON).
fn reused(agent: &TestAgent) -> Option<bool> {
    let o = agent.cli(&["status"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v["reused_pinned_programs"].as_bool()
}
