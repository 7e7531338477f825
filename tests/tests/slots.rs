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

/// The tests of this file make hundreds of cgroups each, and every agent's
/// table sees every cgroup on the host: run side by side, one test's cgroups
/// take the slots another test is counting. One at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed while holding it poisons it; the next one still runs.
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

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
fn slot_owners_consistent(pin_dir: &Path) -> Result<usize, (String, u64)> {
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
            return Err((
                format!("slot {slot} names cgroup {cgroup_id}, which CGROUPS maps to {:?}", cgroups.get(&cgroup_id)),
                cgroup_id,
            ));
        }
    }
    Ok(owned)
}

/// Where a cgroup id is under the v2 tree (for a failure's message).
fn path_of(root: &Path, cgroup_id: u64) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if std::fs::metadata(&dir).is_ok_and(|m| m.ino() == cgroup_id) {
            return dir.display().to_string();
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
        }
    }
    "(gone)".into()
}

/// Detaches the pinned programs (their links' pins are their last
/// references) so that nothing changes the maps any more; the maps stay
/// pinned until the agent's uninstall. Two reads of SLOTS and CGROUPS are not
/// one atomic snapshot: while the programs run, every new cgroup on the host
/// (another test's, another container's) may be claimed between them.
fn freeze(pin_dir: &Path) {
    for link in ["link_sys_enter", "link_sys_exit"] {
        std::fs::remove_file(pin_dir.join(link)).unwrap_or_else(|e| panic!("unpinning {link}: {e}"));
    }
    // A program that was running when its link went finishes within microseconds.
    std::thread::sleep(Duration::from_millis(200));
}

/// The race this test is about: two threads of one process make their first
/// calls in a fresh cgroup on two CPUs; both miss `CGROUPS`, both pop and
/// claim a slot, one insert wins, and the loser must unclaim its slot before
/// it pushes it back on `FREE_SLOTS`. A loser that forgot would leave a free
/// slot naming a cgroup that `CGROUPS` maps elsewhere.
///
/// `FREE_SLOTS` is a FIFO queue. With more slots than cgroups are opened
/// while the test runs, a slot that went back to the queue is never popped
/// (and claimed again) before the end: every leaked claim of the 300 moves is
/// still there when the maps are read, not only the last few.
#[test]
fn a_slot_lost_in_a_race_owns_no_cgroup() {
    require_root();
    let _serial = one_at_a_time();
    const MOVES: usize = 300;
    const SLOTS: usize = 4096;
    let mut agent = TestAgent::start(&["--slots", &SLOTS.to_string()]);
    let mut spinner = Command::new(testprog()).args(["spin", "2"]).stdout(Stdio::null()).spawn().expect("testprog");
    let root = v2_root();
    let tag = format!("observer-race-{}", unique());
    let mut dirs = Vec::new();
    for i in 0..MOVES {
        let dir = root.join(format!("{tag}-{i}"));
        std::fs::create_dir(&dir).expect("mkdir cgroup");
        std::fs::write(dir.join("cgroup.procs"), spinner.id().to_string()).expect("move the spinner");
        dirs.push(dir);
        std::thread::sleep(Duration::from_millis(3));
    }
    std::fs::write(root.join("cgroup.procs"), spinner.id().to_string()).expect("move back");
    let _ = spinner.kill();
    let _ = spinner.wait();
    // The agent ignores these plain cgroups; give it time, then stop it
    // between two of its operations (SIGTERM: an agent killed between
    // removing a cgroup's CGROUPS entry and clearing its slot would leave
    // that half-released slot for its next start to find), and detach the
    // programs so that the maps hold still while they are read.
    std::thread::sleep(Duration::from_secs(1));
    agent.terminate();
    freeze(&agent.pin_dir);
    let result = slot_owners_consistent(&agent.pin_dir);
    let result = result.map_err(|(e, cgroup_id)| format!("{e} ({})", path_of(&root, cgroup_id)));
    for d in &dirs {
        let _ = std::fs::remove_dir(d);
    }
    result.unwrap_or_else(|e| panic!("{e}"));
    // The queue's head is the next slot to pop: with no slot popped twice,
    // its index is how many were popped. Far from the end of the table, so no
    // claim was overwritten by a later one; and most moves opened a slot (a
    // move the spinner slept through under load opens none).
    let popped = free_slots_head(&agent.pin_dir);
    assert!(
        ((MOVES / 2) as u32..(SLOTS - MOVES) as u32).contains(&popped),
        "{popped} slots were popped for {MOVES} moves: the moves did not open their slots, or slots were popped twice"
    );
}

/// The slot at the head of the pinned `FREE_SLOTS` queue.
fn free_slots_head(pin_dir: &Path) -> u32 {
    let o = Command::new("bpftool")
        .args(["-j", "map", "peek", "pinned"])
        .arg(pin_dir.join("FREE_SLOTS"))
        .output()
        .expect("bpftool is needed");
    assert!(o.status.success(), "bpftool map peek: {}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("bpftool JSON");
    let bytes: Vec<u8> = v["value"]
        .as_array()
        .expect("hex bytes")
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().expect("hex").trim_start_matches("0x"), 16).expect("hex"))
        .collect();
    u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))
}

#[test]
fn ignored_cgroups_leave_the_table_to_containers() {
    require_root();
    let _serial = one_at_a_time();
    require_docker();
    // Eight slots: CGROUPS holds 74 entries. A hundred plain cgroups, each
    // ignored by the agent, must not fill it. (Not fewer slots: containers
    // other tests run meanwhile, in this file or beside it, take slots too.)
    let agent = TestAgent::start(&["--slots", "8"]);
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

/// The uid a delegated subtree is given to in these tests: `nobody`.
const USER: u32 = 65534;

/// A cgroup v2 subtree delegated to `USER` as systemd delegates
/// `user@UID.service`: the directory and its `cgroup.procs`,
/// `cgroup.threads` and `cgroup.subtree_control` are the user's. Removed
/// (deepest first) on drop.
struct Delegated {
    dir: std::path::PathBuf,
}

impl Delegated {
    fn new() -> Self {
        let dir = v2_root().join(format!("observer-delegated-{}", unique()));
        std::fs::create_dir(&dir).expect("mkdir the delegated cgroup");
        for p in [dir.clone(), dir.join("cgroup.procs"), dir.join("cgroup.threads"), dir.join("cgroup.subtree_control")]
        {
            std::os::unix::fs::chown(&p, Some(USER), Some(USER))
                .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        }
        Self { dir }
    }

    /// `n` container-shaped cgroups (`<subtree>/docker/<64 hex>`), each made
    /// by a process of `USER`, and entered by one that makes its syscalls
    /// there and exits: every one of them opens a slot in the kernel.
    fn make_container_shaped(&self, n: usize) {
        // The user's processes start in a cgroup of the subtree: moving one
        // takes write access to the common ancestor's cgroup.procs, which the
        // user has only inside its subtree.
        let script = format!(
            "mkdir {d}/init && echo $$ > {d}/init/cgroup.procs && exec setpriv --reuid {USER} --regid {USER} --clear-groups sh -c '\
             for i in $(seq 1 {n}); do c={d}/docker/$(printf %064x $i); mkdir -p $c && sh -c \"echo \\$\\$ > $c/cgroup.procs && exec true\" || exit 1; done'",
            d = self.dir.display()
        );
        let o = Command::new("sh").args(["-c", &script]).output().expect("sh");
        assert!(o.status.success(), "the user's cgroups: {}", String::from_utf8_lossy(&o.stderr));
        std::os::unix::fs::chown(self.dir.join("init"), Some(USER), Some(USER)).expect("chown init");
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let mut dirs = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            if let Ok(entries) = std::fs::read_dir(&d) {
                stack.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
            }
            dirs.push(d);
        }
        for d in dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn alive(n: &str) -> bool {
    let o = observer_tests::docker::docker(&["inspect", "-f", "{{.State.Running}}", n]);
    String::from_utf8_lossy(&o.stdout).trim() == "true"
}

/// Issue 26: a user with a delegated subtree makes twice the table's size of
/// container-shaped cgroups; a Docker container started afterwards must still
/// be recorded, and its kill rule must work. `extra`: agent options.
/// Returns how many slots the user's cgroups held before the container started.
fn a_users_cgroups_leave_room_for(extra: &[&str]) -> (TestAgent, usize) {
    require_root();
    let _serial = one_at_a_time();
    require_docker();
    let mut args = vec!["--slots", "32"];
    args.extend_from_slice(extra);
    let agent = TestAgent::start(&args);
    let user = Delegated::new();
    user.make_container_shaped(64);
    // Time for the agent to take in the user's cgroups.
    std::thread::sleep(Duration::from_secs(2));
    let held = agent
        .ps()
        .iter()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.contains("/observer-delegated-")) && c["state"] == "running")
        .count();
    let n = name("after-user");
    let _cleanup = Cleanup(vec![n.clone()]);
    let no_chmod = observer_tests::docker::moby_default_without(&["chmod"]);
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
    // Told to chmod through a host directory, not `docker exec`: a slot
    // given after the container's start has no init phase, so an exec's
    // runtime init would be enforced as the container's own.
    let go = std::env::temp_dir().join(format!("observer-go-{}", unique()));
    std::fs::create_dir_all(&go).expect("mkdir");
    let volume = format!("{}:/w", go.display());
    let script = "while [ ! -e /w/go ]; do sleep 0.2; done; chmod 600 /w/go; sleep 30";
    let o = run(&["-d", "--name", &n, "-v", &volume], &["sh", "-c", script]);
    assert!(o.status.success(), "{}\nAGENT LOG:\n{}", String::from_utf8_lossy(&o.stderr), agent.stderr());
    agent.wait_for("the container to be recorded, running", || agent.container(&n).filter(|c| c["state"] == "running"));
    // Confirmed by its runtime (the kill rule is armed only then).
    std::thread::sleep(Duration::from_secs(2));
    assert!(alive(&n), "not killed before its chmod");
    std::fs::write(go.join("go"), "").expect("touch go");
    agent.wait_for("the container to be killed for its chmod", || (!alive(&n)).then_some(()));
    let alerts = agent.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == n.as_str() && a["syscall"] == "chmod"),
        "killed for its chmod: {alerts:?}"
    );
    assert!(
        alerts.iter().any(|a| a["kind"] == "overflow" && a["name"] == format!("uid {USER}")),
        "an overflow alert names the user: {alerts:?}"
    );
    let _ = std::fs::remove_file(&no_chmod);
    let _ = std::fs::remove_dir_all(&go);
    drop(user);
    (agent, held)
}

/// With the default share (an eighth of the table), the user holds at most 4
/// of the 32 slots: the container finds one free.
#[test]
fn a_users_cgroups_hold_at_most_their_share() {
    let (_agent, held) = a_users_cgroups_leave_room_for(&[]);
    assert!((1..=4).contains(&held), "the user's cgroups held {held} slots");
}

/// With a share as large as the table, the user's cgroups take every slot:
/// the container, which root's runtime made, takes one of theirs back.
#[test]
fn a_container_takes_a_slot_back_from_a_user() {
    let (agent, held) = a_users_cgroups_leave_room_for(&["--slots-per-owner", "64"]);
    assert!(held > 16, "the user's cgroups held only {held} slots");
    assert!(
        agent.stderr().contains("goes to a container"),
        "the user's cgroups filled the table, and the container took a slot back: {}",
        agent.stderr()
    );
}

/// Issue 26: a container with a writable cgroupfs makes, enters and removes
/// nested cgroups in a loop. Each one gets a slot and joins the container's
/// record; once ended, each is retired into one entry, so the record (and its
/// state file, re-written on every change) stays bounded.
#[test]
fn a_container_making_cgroups_keeps_a_bounded_record() {
    require_root();
    let _serial = one_at_a_time();
    require_docker();
    const LOOPS: usize = 200;
    let agent = TestAgent::start(&[]);
    let n = name("cgroup-loop");
    let _cleanup = Cleanup(vec![n.clone()]);
    let volume = format!("{}:/cgv2", v2_root().display());
    let script = format!(
        "cg=/cgv2$(sed -n 's/^0:://p' /proc/self/cgroup); for i in $(seq 1 {LOOPS}); do \
         mkdir $cg/n$i && echo $$ > $cg/n$i/cgroup.procs && echo $$ > $cg/cgroup.procs && rmdir $cg/n$i || exit 1; \
         done; touch /tmp/done; sleep 60"
    );
    let o = run(&["-d", "--name", &n, "-v", &volume], &["sh", "-c", &script]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = agent.wait_for("the container", || agent.container(&n).and_then(|c| c["id"].as_str().map(str::to_owned)));
    agent.wait_for("the loop to end", || {
        observer_tests::docker::docker(&["exec", &n, "test", "-e", "/tmp/done"]).status.success().then_some(())
    });
    // The state file, once the agent has read every nested cgroup's end.
    let file = agent.state_dir().join("containers").join(format!("{id}.json"));
    let read = || -> Option<serde_json::Map<String, serde_json::Value>> {
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
        record["cgroups"].as_object().cloned()
    };
    let start = std::time::Instant::now();
    let cgroups = loop {
        let cgroups = read();
        if let Some(c) = cgroups.as_ref().filter(|c| c.len() <= 3 && c.contains_key("0")) {
            break c.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the record's ended cgroups were not retired: {:?} cgroups: {:?}\nps: {:?}",
            cgroups.as_ref().map(|c| c.len()),
            cgroups.map(|c| c
                .values()
                .take(4)
                .map(|v| format!("{} {} {}", v["path"], v["slot"], v["confirmation"]))
                .collect::<Vec<_>>()),
            agent.ps().iter().map(|c| (c["name"].clone(), c["state"].clone())).take(10).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(cgroups["0"]["path"], "(ended cgroups)", "{cgroups:?}");
    // What the nested cgroups did is still counted: each ran `echo` there
    // (a write) at least.
    let write_calls =
        cgroups["0"]["rows"].as_object().expect("rows").values().map(|r| r["calls"].as_u64().unwrap_or(0)).sum::<u64>();
    assert!(write_calls > 0, "{cgroups:?}");
}

/// Issue 26: once the kernel's `CGROUPS` map itself is full (slots + a
/// quarter + 64 entries), an insert fails in the kernel with no event: the
/// agent must say so, once, naming the table and who holds it, not go
/// silent. Eight slots (74 entries) under `--watch all`, filled with 90 real
/// cgroups of root, each with a process that calls every 0.2 s (so that an
/// entry another cgroup frees is taken again at once and the table stays full).
#[test]
fn a_full_cgroup_table_is_one_alert_naming_it() {
    require_root();
    let _serial = one_at_a_time();
    let agent = TestAgent::start(&["--slots", "8", "--watch", "all"]);
    let full = |a: &serde_json::Value| {
        a["kind"] == "overflow" && a["detail"].as_str().is_some_and(|d| d.contains("cgroup table (CGROUPS) is full"))
    };
    let tag = format!("observer-full-{}", unique() % 1_000_000_000);
    let cgroups: Vec<observer_tests::churn::Cgroup> =
        (0..90).map(|i| observer_tests::churn::Cgroup::create(&format!("{tag}/c{i}"))).collect();
    let mut children = Vec::new();
    for cg in &cgroups {
        let child = cg
            .spawn(Command::new("sh").args(["-c", "while true; do sleep 0.2; done"]))
            .expect("a busy process in the cgroup");
        children.push(child);
    }
    let alert = agent.wait_for("the full-table alert", || agent.alerts().into_iter().find(full));
    let detail = alert["detail"].as_str().expect("detail");
    assert!(detail.contains("of 74 entries"), "the table's size: {alert}");
    assert!(detail.contains("uid 0 holds"), "who holds it: {alert}");
    // Still full, and still one alert over two more checks (one every 10 s).
    std::thread::sleep(Duration::from_secs(21));
    let fulls: Vec<serde_json::Value> = agent.alerts().into_iter().filter(full).collect();
    assert_eq!(fulls.len(), 1, "one alert while the table stays full: {fulls:?}");
    let status = agent.status();
    assert!(status["cgroups_overflow"].as_u64() > Some(0), "{status}");
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(cgroups);
    let _ = std::fs::remove_dir(v2_root().join(&tag));
}
