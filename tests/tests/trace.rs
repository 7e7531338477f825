//! `observer trace` with the real kernel programs, as root.

use std::{collections::BTreeSet, process::Command, time::Duration};

use observer_tests::{observer_bin, require_root, row, testprog, trace_json, trace_json_with, v2_children};

fn tp() -> String {
    testprog().to_str().expect("utf-8").to_owned()
}

#[test]
fn counts_are_exact() {
    require_root();
    for n in [1u64, 1000, 12345] {
        let (code, r) = trace_json(&[&tp(), "calls", &n.to_string()]);
        assert_eq!(code, 0);
        assert_eq!(row(&r, "getppid", "x86_64"), Some((n, 0, 0)), "getppid x{n}: {r}");
    }
}

#[test]
fn threads_and_forked_children_are_counted() {
    require_root();
    let (_, r) = trace_json(&[&tp(), "threads", "250"]);
    assert_eq!(row(&r, "getppid", "x86_64"), Some((1000, 0, 0)));
    let (_, r) = trace_json(&[&tp(), "fork", "20"]);
    assert_eq!(row(&r, "getppid", "x86_64"), Some((20, 0, 0)));
    // A forked and exec'd child: 1 call in the parent, 7 in the child.
    let (code, r) = trace_json(&[&tp(), "exec", "7"]);
    assert_eq!(code, 0);
    assert_eq!(row(&r, "getppid", "x86_64"), Some((8, 0, 0)));
    assert_eq!(row(&r, "execve", "x86_64").map(|r| r.0), Some(2), "launcher's execve plus the child's: {r}");
}

#[test]
fn two_traces_at_once_do_not_mix() {
    require_root();
    let a = std::thread::spawn(|| trace_json(&[&tp(), "calls", "3000"]));
    let b = std::thread::spawn(|| trace_json(&[&tp(), "calls", "5000"]));
    let (a, b) = (a.join().expect("a").1, b.join().expect("b").1);
    assert_eq!(row(&a, "getppid", "x86_64"), Some((3000, 0, 0)));
    assert_eq!(row(&b, "getppid", "x86_64"), Some((5000, 0, 0)));
}

#[test]
fn int80_lands_under_i386() {
    require_root();
    let (code, r) = trace_json(&[&tp(), "int80"]);
    assert_eq!(code, 0, "int 0x80 getppid failed: {r}");
    assert_eq!(row(&r, "getppid", "i386"), Some((1, 0, 0)), "{r}");
    // i386's getppid is 64, which is x86_64's semget: nothing may land there.
    assert_eq!(row(&r, "semget", "x86_64"), None, "{r}");
    assert_eq!(row(&r, "getppid", "x86_64"), None, "{r}");
}

#[test]
fn out_of_range_numbers_land_in_invalid() {
    require_root();
    let (code, r) = trace_json(&[&tp(), "invalid"]);
    assert_eq!(code, 0);
    assert_eq!(row(&r, "invalid", "any"), Some((2, 2, 0)), "{r}");
    // Nothing else is odd: every other row has a real name.
    for s in r["syscalls"].as_array().expect("rows") {
        let name = s["name"].as_str().expect("name");
        assert!(!name.starts_with("syscall_"), "unexpected row {s}");
    }
}

#[test]
fn a_seccomp_denied_call_is_counted_as_denied() {
    require_root();
    let (code, r) = trace_json(&[&tp(), "deny-chmod"]);
    assert_eq!(code, 0, "{r}");
    let (calls, _, denied) = row(&r, "chmod", "x86_64").expect("chmod row");
    assert_eq!((calls, denied), (0, 2), "denied calls never reach sys_enter: {r}");
}

#[test]
fn a_denied_call_after_an_allowed_call_of_the_same_number_is_a_denial() {
    require_root();
    // chmod 0600 is allowed and 0777 denied by the same filter: the allowed
    // call's note (left live by its success) must not pass for the denied
    // call's enter, right after it or after other calls.
    for _ in 0..3 {
        let (code, r) = trace_json(&[&tp(), "deny-chmod-777"]);
        assert_eq!(code, 0, "{r}");
        let (calls, _, denied) = row(&r, "chmod", "x86_64").expect("chmod row");
        assert_eq!((calls, denied), (3, 2), "3 chmod calls ran, 2 were denied: {r}");
    }
}

#[test]
fn a_blocking_call_failing_after_other_calls_on_its_cpu_is_no_denial() {
    require_root();
    for _ in 0..3 {
        let (code, r) = trace_json(&[&tp(), "accept-shutdown"]);
        assert_eq!(code, 0, "accept must fail with EINVAL: {r}");
        assert_eq!(row(&r, "accept", "x86_64"), Some((1, 1, 0)), "one call, one error, no denial: {r}");
        let denied: u64 =
            r["syscalls"].as_array().expect("rows").iter().map(|s| s["denied"].as_u64().unwrap_or(0)).sum();
        assert_eq!(denied, 0, "{r}");
    }
}

#[test]
fn fork_heavy_without_filter_shows_no_denial() {
    require_root();
    let (_, r) = trace_json(&[&tp(), "fork", "300"]);
    let denied: u64 = r["syscalls"].as_array().expect("rows").iter().map(|s| s["denied"].as_u64().unwrap_or(0)).sum();
    assert_eq!(denied, 0, "{r}");
    let (_, r) = trace_json(&["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done"]);
    let denied: u64 = r["syscalls"].as_array().expect("rows").iter().map(|s| s["denied"].as_u64().unwrap_or(0)).sum();
    assert_eq!(denied, 0, "{r}");
}

#[test]
fn exit_status_and_missing_command() {
    require_root();
    let (code, _) = trace_json(&["sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    let (code, _) = trace_json(&["sh", "-c", "kill -TERM $$"]);
    assert_eq!(code, 128 + 15);
    let o = Command::new(observer_bin()).args(["trace", "--", "/no/such/program"]).output().expect("run");
    assert_eq!(o.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
    let o = Command::new(observer_bin()).args(["trace", "--"]).output().expect("run");
    assert_ne!(o.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}

#[test]
fn the_cgroup_is_removed_also_after_sigint() {
    require_root();
    let before: BTreeSet<_> = v2_children("observer-trace-").into_iter().collect();
    let (_, _) = trace_json(&["true"]);
    let mut child = Command::new(observer_bin())
        .args(["trace", "--", "sh", "-c", "sleep 30 & sleep 30; wait"])
        .spawn()
        .expect("spawn");
    let mine = format!("observer-trace-{}-", child.id());
    // Loading the programs (BTF parsing, verification) takes a while on a busy
    // machine, and this file's other tests load theirs at the same time: wait
    // for the cgroup for as long as the trace itself may take to start.
    for _ in 0..600 {
        if !v2_children(&mine).is_empty() || child.try_wait().expect("try_wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(v2_children(&mine).len() == 1, "the trace's cgroup exists while it runs (none after 30 s)");
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "sh killed by SIGINT gives 128+2");
    assert!(v2_children(&mine).is_empty(), "cgroup left behind after SIGINT");
    let after: BTreeSet<_> = v2_children("observer-trace-").into_iter().collect();
    assert!(after.is_subset(&before), "cgroups left behind: {:?}", after.difference(&before));
}

/// The set of syscall names strace -f -c reports for a command.
fn strace_names(cmd: &[&str]) -> BTreeSet<String> {
    let file = std::env::temp_dir().join(format!("observer-strace-{}", observer_tests::unique()));
    let out = Command::new("strace").args(["-f", "-c", "-S", "name", "-o"]).arg(&file).args(cmd).output();
    out.expect("strace is needed for this test (cargo xtask test installs it)");
    let text = std::fs::read_to_string(&file).expect("strace's summary");
    let _ = std::fs::remove_file(&file);
    text.lines()
        .filter(|l| !l.starts_with('%') && !l.starts_with('-') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .filter(|n| n != "total")
        .collect()
}

#[test]
fn agrees_with_strace() {
    require_root();
    let tp = tp();
    let commands: Vec<Vec<&str>> = vec![
        vec!["ls", "-l", "/"],
        vec!["sh", "-c", "echo hello | cat | wc -c > /dev/null"],
        vec![&tp, "threads", "10"],
        vec!["id"],
    ];
    for cmd in commands {
        let (_, r) = trace_json(&cmd);
        let ours: BTreeSet<String> = r["syscalls"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|s| s["name"].as_str().expect("name").to_owned())
            .collect();
        let theirs = strace_names(&cmd);
        // strace -c leaves out calls that never return (exit, exit_group).
        let never_return: BTreeSet<String> = ["exit", "exit_group"].iter().map(|s| s.to_string()).collect();
        let only_ours: BTreeSet<_> = ours.difference(&theirs).filter(|n| !never_return.contains(*n)).collect();
        let only_theirs: BTreeSet<_> = theirs.difference(&ours).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "{cmd:?}: only observer: {only_ours:?}, only strace: {only_theirs:?}"
        );
    }
}

/// `--time`: strace -c -w's columns, from the kernel. Two sleeps of 0.2 s take
/// 0.4 s in clock_nanosleep and about 200,000 usecs per call; the counts stay exact.
#[test]
fn time_columns_measure_time_in_calls() {
    require_root();
    let (code, r) = trace_json_with(&["--time"], &["/bin/sh", "-c", "sleep 0.2; sleep 0.2"]);
    assert_eq!(code, 0, "{r}");
    let rows = r["syscalls"].as_array().expect("rows");
    let sleep = rows
        .iter()
        .find(|r| r["name"] == "clock_nanosleep" && r["abi"] == "x86_64")
        .unwrap_or_else(|| panic!("no clock_nanosleep row: {r}"));
    assert_eq!(sleep["calls"], 2, "{sleep}");
    let ns = sleep["time_ns"].as_u64().expect("time_ns");
    assert!((400_000_000..800_000_000).contains(&ns), "two 0.2 s sleeps took {ns} ns in the kernel: {sleep}");
    let per_call = sleep["usecs_per_call"].as_u64().expect("usecs_per_call");
    assert!((200_000..400_000).contains(&per_call), "{sleep}");
    // Like strace -c -w, the shell's wait4 for each sleep takes as long again.
    let pct = |name: &str| {
        rows.iter().filter(|r| r["name"] == name).map(|r| r["percent_time"].as_f64().unwrap_or(0.0)).sum::<f64>()
    };
    assert!(pct("clock_nanosleep") + pct("wait4") > 95.0, "sleeping and waiting dominate: {r}");
    let total: f64 = rows.iter().map(|r| r["percent_time"].as_f64().unwrap_or(0.0)).sum();
    assert!((99.0..101.0).contains(&total), "percentages add up to {total}");
    // Every row has a time, and fast calls take far less than the sleeps.
    for row in rows {
        assert!(row["time_ns"].as_u64().is_some(), "{row}");
    }
    let (_, r) = trace_json_with(&["--time"], &[&tp(), "calls", "12345"]);
    assert_eq!(row(&r, "getppid", "x86_64"), Some((12345, 0, 0)), "timing keeps counts exact: {r}");
    let getppid = r["syscalls"].as_array().unwrap().iter().find(|r| r["name"] == "getppid").unwrap().clone();
    let per_call_ns = getppid["time_ns"].as_u64().unwrap() / 12345;
    assert!(per_call_ns > 0 && per_call_ns < 100_000, "getppid took {per_call_ns} ns a call");
    // Without --time, no time fields.
    let (_, r) = trace_json(&[&tp(), "calls", "10"]);
    assert!(r["syscalls"][0].get("time_ns").is_none(), "{r}");
}

/// The table has strace's header when timed.
#[test]
fn time_table_has_straces_columns() {
    require_root();
    let o = Command::new(observer_bin()).args(["trace", "-w", "--", "/bin/sleep", "0.1"]).output().expect("run");
    assert!(o.status.success(), "{o:?}");
    let text = String::from_utf8_lossy(&o.stderr);
    let header = text.lines().next().unwrap_or_default();
    let cells: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(cells, ["%", "time", "seconds", "usecs/call", "calls", "errors", "denied", "syscall", "abi"], "{text}");
    let line = text.lines().find(|l| l.contains("clock_nanosleep")).unwrap_or_else(|| panic!("{text}"));
    let secs: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((0.1..0.5).contains(&secs), "{line}");
}
