//! Shared helpers for observer's integration tests. These tests need root and a
//! real kernel; a missing prerequisite fails the test with a message, never skips it.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

/// The observer binary under test (built by `cargo xtask test`).
pub fn observer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OBSERVER_BIN") {
        return p.into();
    }
    let p = target_dir().join("observer");
    assert!(p.exists(), "{} does not exist: build it first (cargo xtask test does)", p.display());
    p
}

pub fn testprog() -> PathBuf {
    let p = target_dir().join("observer-testprog");
    assert!(p.exists(), "{} does not exist: cargo builds it with the tests", p.display());
    p
}

/// target/<profile>: a test executable runs from target/<profile>/deps, a
/// binary of this crate (the soak) from target/<profile> itself.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("target dir");
    if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().expect("target dir") } else { dir }.to_path_buf()
}

pub fn require_root() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests load eBPF programs: run them as root (cargo xtask test)");
}

pub fn observer(args: &[&str]) -> Output {
    Command::new(observer_bin()).args(args).output().expect("running observer")
}

/// `observer trace --json -o FILE -- CMD`, returning (exit code, report JSON).
pub fn trace_json(cmd: &[&str]) -> (i32, serde_json::Value) {
    trace_json_with(&[], cmd)
}

/// [`trace_json`] with more options for `observer trace` (e.g. `--time`).
pub fn trace_json_with(options: &[&str], cmd: &[&str]) -> (i32, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!("observer-test-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("report.json");
    let mut args = vec!["trace", "--json", "-o", out.to_str().expect("utf-8")];
    args.extend_from_slice(options);
    args.push("--");
    args.extend_from_slice(cmd);
    let o = observer(&args);
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| {
        panic!("no report at {} ({e}); stderr: {}", out.display(), String::from_utf8_lossy(&o.stderr))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let json: serde_json::Value = serde_json::from_str(&text).expect("report is JSON");
    (o.status.code().unwrap_or(-1), json)
}

/// The (calls, errors, denied) of one row of a trace report.
pub fn row(report: &serde_json::Value, name: &str, abi: &str) -> Option<(u64, u64, u64)> {
    report["syscalls"].as_array()?.iter().find(|r| r["name"] == name && r["abi"] == abi).map(|r| {
        (r["calls"].as_u64().unwrap_or(0), r["errors"].as_u64().unwrap_or(0), r["denied"].as_u64().unwrap_or(0))
    })
}

pub fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Names of cgroups under the v2 mount whose name starts with `prefix`.
pub fn v2_children(prefix: &str) -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let root = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .expect("a cgroup2 mount");
    std::fs::read_dir(root)
        .expect("read v2 root")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

pub mod agent;
pub mod churn;
pub mod cri;
pub mod docker;
pub mod filters;
pub mod reach;
pub mod realsoft;
pub mod registry;
pub mod registry_auth;
pub mod scratch;
pub mod timed_run;
