//! Slot ownership in the kernel programs, with the real agent and real cgroups, as root.

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use observer_tests::{
    agent::TestAgent,
    churn::v2_root,
    docker::{Cleanup, name, require_docker, run},
    require_root, testprog, unique,
};

/// (key, value) bytes of every entry of a pinned map, through bpftool.
fn dump(pin: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let o = Command::new("bpftool").args(["-j", "map", "dump", "pinned"]).arg(pin).output().expect("bpftool is needed");
    assert!(o.status.success(), "bpftool {}: {}", pin.display(), String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("bpftool JSON");
    let bytes = |x: &serde_json::Value| -> Vec<u8> {
        x.as_array()
            .expect("hex bytes")
            .iter()
            .map(|b| u8::from_str_radix(b.as_str().expect("hex").trim_start_matches("0x"), 16).expect("hex"))
            .collect()
    };
    v.as_array().expect("entries").iter().map(|e| (bytes(&e["key"]), bytes(&e["value"]))).collect()
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Every slot that names a cgroup is that cgroup's slot in CGROUPS: a slot the
/// kernel took and gave back (a lost insert) owns nothing.
fn slot_owners_consistent(pin_dir: &Path) -> Result<usize, String> {
    let cgroups: HashMap<u64, u32> = dump(&pin_dir.join("CGROUPS"))
        .into_iter()
        .map(|(k, v)| (u64_at(&k, 0), u32::from_le_bytes(v[..4].try_into().expect("4 bytes"))))
        .collect();
    let mut owned = 0;
    for (k, v) in dump(&pin_dir.join("SLOTS")) {
        let slot = u32::from_le_bytes(k[..4].try_into().expect("4 bytes"));
        let cgroup_id = u64_at(&v, 0);
        if cgroup_id == 0 {
            continue;
        }
        owned += 1;
        if cgroups.get(&cgroup_id) != Some(&slot) {
            return Err(format!(
                "slot {slot} names cgroup {cgroup_id}, which CGROUPS maps to {:?}",
                cgroups.get(&cgroup_id)
            ));
        }
    }
    Ok(owned)
}

#[test]
fn a_slot_lost_in_a_race_owns_no_cgroup() {
    require_root();
    let mut agent = TestAgent::start(&["--slots", "8"]);
    // Two threads spinning on two CPUs; each move of the process into a fresh
    // cgroup makes both threads' next calls race to open its slot: the loser's
    // insert fails and its slot goes back to the free list.
    let mut spinner = Command::new(testprog()).args(["spin", "2"]).stdout(Stdio::null()).spawn().expect("testprog");
    let root = v2_root();
    let tag = format!("observer-race-{}", unique());
    let mut dirs = Vec::new();
    for i in 0..300 {
        let dir = root.join(format!("{tag}-{i}"));
        std::fs::create_dir(&dir).expect("mkdir cgroup");
        std::fs::write(dir.join("cgroup.procs"), spinner.id().to_string()).expect("move the spinner");
        dirs.push(dir);
        std::thread::sleep(Duration::from_millis(3));
    }
    std::fs::write(root.join("cgroup.procs"), spinner.id().to_string()).expect("move back");
    let _ = spinner.kill();
    let _ = spinner.wait();
    // The agent ignores these plain cgroups; give it time, then stop it so that
    // nothing changes the maps while they are read (the programs stay pinned).
    std::thread::sleep(Duration::from_secs(1));
    agent.kill();
    let result = slot_owners_consistent(&agent.pin_dir);
    for d in &dirs {
        let _ = std::fs::remove_dir(d);
    }
    result.unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn ignored_cgroups_leave_the_table_to_containers() {
    require_root();
    require_docker();
    // Two slots: CGROUPS holds 64 entries. A hundred plain cgroups, each ignored
    // by the agent, must not fill it.
    let agent = TestAgent::start(&["--slots", "2"]);
    let root = v2_root();
    let tag = format!("observer-plain-{}", unique());
    let mut dirs = Vec::new();
    for i in 0..100 {
        let dir = root.join(format!("{tag}-{i}"));
        std::fs::create_dir(&dir).expect("mkdir cgroup");
        let script = format!("echo $$ > {}/cgroup.procs && exec /bin/true", dir.display());
        let status = Command::new("sh").args(["-c", &script]).status().expect("sh");
        assert!(status.success());
        dirs.push(dir);
        // Time for the agent to ignore it and free its slot.
        std::thread::sleep(Duration::from_millis(40));
    }
    let n = name("after-plain");
    let _cleanup = Cleanup(vec![n.clone()]);
    let o = run(&["-d", "--name", &n], &["sh", "-c", "while true; do sleep 0.2; done"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recorded = agent.wait_for("the container to be recorded", || {
        let p = agent.try_profile(&n)?;
        (!p["syscalls"].as_array()?.is_empty()).then_some(p)
    });
    assert!(!recorded["syscalls"].as_array().expect("rows").is_empty());
    drop(_cleanup);
    for d in &dirs {
        let _ = std::fs::remove_dir(d);
    }
}
