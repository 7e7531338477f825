//! Issues 15 and 16 on the real kernel program: the deciding arguments a
//! container used are recorded in its slot (and only in the phases a filter
//! sees), and a container with more distinct syscalls than a slot has counter
//! cells is still counted exactly. As root.

use std::{path::Path, process::Command};

use observer_profile::{syscall_table, types::Arch};
use observer_tests::{
    agent::{CgroupNs, TestAgent},
    churn::v2_root,
    require_root, row, testprog, trace_json, unique,
};
use serde_json::Value;

/// The values of one kind in a profile's `args`, and whether its set overflowed.
fn values(profile: &Value, kind: &str) -> (Vec<u64>, bool) {
    let set = &profile["args"][kind];
    let values = set["values"].as_array().map(|v| v.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
    (values, set["overflowed"].as_bool().unwrap_or(false))
}

/// Runs `sh -c SCRIPT` moved into `dir` first: sh is the cgroup's first task,
/// so it is the "runtime's init" of a plain cgroup and its own calls (before
/// the exec) are in the init phase, before any filter.
fn run_in(dir: &Path, script: &str) {
    let script = format!("echo $$ > {}/cgroup.procs && {script}", dir.display());
    let o = Command::new("sh").args(["-c", &script]).output().expect("sh");
    assert!(o.status.success(), "{script}: {o:?}");
}

#[test]
fn the_deciding_arguments_a_container_used_are_recorded() {
    require_root();
    let agent = TestAgent::start(&["--watch", "all"]);
    let name = format!("observer-args-{}", unique() % 1_000_000_000);
    let dir = v2_root().join(&name);
    std::fs::create_dir(&dir).expect("mkdir cgroup");
    // SIGCONT from the shell (before its exec, in the init phase): no filter
    // sees it, so it stays out. testprog's own kill uses signal 0.
    run_in(&dir, &format!("kill -CONT $$ && exec {} arg-calls", testprog().display()));
    let key = format!("/{name}");
    let profile = agent.wait_for("the testprog's socket values", || {
        let p = agent.try_profile(&key)?;
        (values(&p, "socket").0.len() == 2 && values(&p, "socketcall").0 == [1]).then_some(p)
    });
    let _ = std::fs::remove_dir(&dir);

    let pair = |a: u64, b: u64| a << 32 | b;
    assert_eq!(
        values(&profile, "socket"),
        (vec![pair(1, 1), pair(2, 2)], false),
        "AF_UNIX/SOCK_STREAM (CLOEXEC dropped) and AF_INET/SOCK_DGRAM: {}",
        profile["args"]
    );
    assert_eq!(values(&profile, "setsockopt"), (vec![pair(1, 16)], false), "SOL_SOCKET, SO_PASSCRED");
    assert_eq!(values(&profile, "kill"), (vec![0], false), "signal 0 only: the shell's SIGCONT came before the exec");
    assert_eq!(values(&profile, "personality"), (vec![0xffff_ffff], false));
    assert_eq!(values(&profile, "socketcall"), (vec![1], false), "i386 socketcall(SYS_SOCKET)");
    let (prctl, _) = values(&profile, "prctl");
    assert!(prctl.contains(&3), "PR_GET_DUMPABLE in {prctl:?}");
    let (fcntl, _) = values(&profile, "fcntl");
    assert!(fcntl.contains(&1) && fcntl.contains(&1030), "F_GETFD and F_DUPFD_CLOEXEC in {fcntl:?}");
    let (ioctl, overflowed) = values(&profile, "ioctl");
    assert!(overflowed, "20 distinct requests overflow a set of 16: {ioctl:?}");
    assert_eq!(ioctl.len(), 16, "{ioctl:?}");
    assert!(values(&profile, "mmap").0.contains(&4), "an mmap with PROT_EXEC: {}", profile["args"]);
    assert!(values(&profile, "mprotect").0.contains(&0), "an mprotect without: {}", profile["args"]);
    assert_eq!(values(&profile, "clone3"), (vec![0], false), "a thread's clone3, flags read from memory");
    assert!(profile["args"].get("unshare").is_none() && profile["args"].get("setns").is_none(), "{}", profile["args"]);
}

#[test]
fn more_distinct_syscalls_than_cells_are_counted_exactly() {
    require_root();
    let prog = testprog();
    let prog = prog.to_str().expect("utf-8 path");
    // The same program with each syscall made 0 and 7 times: every listed
    // row must differ by exactly 7 calls and 7 errors, spilled or not.
    let (code0, base) = trace_json(&[prog, "distinct-many", "0"]);
    let (code7, seven) = trace_json(&[prog, "distinct-many", "7"]);
    assert_eq!((code0, code7), (0, 0), "testprog exit codes");
    let rows = seven["syscalls"].as_array().expect("rows").len();
    assert!(rows > 128, "{rows} rows: more than a slot's 127 cells, so some spilled");
    let mut checked = 0;
    for nr in harmless() {
        let name = syscall_table::name(Arch::X86_64, nr as u32).expect("a known x86_64 syscall");
        let before = row(&base, name, "x86_64").unwrap_or((0, 0, 0));
        let after = row(&seven, name, "x86_64").unwrap_or_else(|| panic!("{name} missing from the report"));
        assert_eq!(after.0 - before.0, 7, "{name}: calls {before:?} -> {after:?}");
        // A few of them succeed (getpid, sched_yield, alarm, umask...): errors
        // are exact for those that fail, never more than the calls.
        assert!(after.1 - before.1 == 7 || after.1 == before.1, "{name}: errors {before:?} -> {after:?}");
        checked += 1;
    }
    assert!(checked > 140, "{checked} syscalls checked");
}

/// The numbers `observer-testprog distinct-many` calls (tests/src/testprog/argcalls.rs).
fn harmless() -> Vec<i64> {
    let o = Command::new(testprog()).arg("list-distinct-many").output().expect("testprog");
    assert!(o.status.success(), "observer-testprog list-distinct-many: {o:?}");
    String::from_utf8_lossy(&o.stdout).split_whitespace().map(|n| n.parse().expect("a number")).collect()
}

#[test]
fn the_agents_own_calls_are_not_recorded_but_its_neighbours_are() {
    the_agents_own_calls_are_not_recorded_in(CgroupNs::Host);
}

/// As a pod on a cgroup-v2 node: the agent sees its own cgroup as `/`, and
/// must still find its id in the host's tree.
#[test]
fn the_agents_own_calls_are_not_recorded_in_a_private_cgroup_namespace() {
    the_agents_own_calls_are_not_recorded_in(CgroupNs::Private);
}

fn the_agents_own_calls_are_not_recorded_in(ns: CgroupNs) {
    require_root();
    let name = format!("observer-self-{}", unique() % 1_000_000_000);
    let dir = v2_root().join(&name);
    std::fs::create_dir(&dir).expect("mkdir cgroup");
    let agent = TestAgent::start_in_cgroup_with(&["--watch", "all"], dir.clone(), ns);
    // A neighbour in the agent's cgroup: its calls are recorded.
    run_in(&dir, &format!("exec {} calls 500", testprog().display()));
    let key = format!("/{name}");
    let profile = agent.wait_for("the neighbour's getppid calls", || {
        let p = agent.try_profile(&key)?;
        let calls = observer_tests::agent::rows(&p).into_iter().find(|r| r.0 == "getppid").map(|r| r.3);
        (calls == Some(500)).then_some(p)
    });
    // The agent waits in epoll_wait and reads files every second; none of it
    // may be in its cgroup's record (testprog and sh never call epoll_wait).
    std::thread::sleep(std::time::Duration::from_secs(2));
    let profile = agent.try_profile(&key).unwrap_or(profile);
    let own: Vec<String> = observer_tests::agent::rows(&profile)
        .into_iter()
        .filter(|r| r.0.starts_with("epoll") || r.0 == "bpf")
        .map(|r| format!("{} {}", r.0, r.3))
        .collect();
    assert!(own.is_empty(), "the agent's own calls were recorded: {own:?}");
    drop(agent);
    let _ = std::fs::remove_dir(&dir);
}
