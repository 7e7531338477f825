//! Issue 15, part 3: profiles exported with `observer profile export --args`, on real
//! containers, under each runtime (runc, crun). As root.
//!
//! - Round trip: workloads that make sockets and fork (busybox httpd + wget, a busybox
//!   pipeline, and python3 and socat from observer-realsoft) run once while an agent
//!   learns, are exported with `--args`, and run again under that profile with the same
//!   runtime: same output, exit 0.
//! - A socket family (and type) never used is denied with the profile's errno, while the
//!   ones used still work; under the name-level export of the same run it goes through.
//! - A container that never made a user namespace cannot clone one under its `--args`
//!   profile, even with `--cap-add SYS_ADMIN` (with which Docker's default, and so the
//!   name-level export, allows it): the argument condition is what denies it.
//!
//! Every `docker run` is bounded (tests/src/timed_run.rs) and its container removed.

use std::{collections::BTreeSet, path::Path, sync::Mutex, time::Duration};

use observer_profile::resolve::DOCKER_DEFAULT_CAPS;
use observer_tests::{
    agent::{TestAgent, rows},
    docker::{self, Cleanup},
    observer,
    reach::unreachable_observed,
    realsoft::{export_docker as export, in_container_phase},
    require_root,
    scratch::{Dir, text},
    timed_run::TimedRun,
};
use serde_json::Value;

const BUSYBOX: &str = docker::IMAGE;
const REALSOFT: &str = "observer-realsoft:latest";
/// The `observer.realsoft` label of the image this test was written against
/// (the stamp in xtask/scripts/realsoft-image.sh).
const REALSOFT_STAMP: &str = "1";
/// Longest one container may take (they take a few seconds here).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// clone's namespace flags, as Docker's default and `--args` mask them.
const CLONE_NS_MASK: u64 = 0x7E02_0000;
const AF_UNIX: u64 = 1;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const EPERM: u64 = 1;

/// The containers share two cores; `cargo test` would run these tests in parallel.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A workload of the round trip: a `sh -c` script in an image.
struct Workload {
    label: &'static str,
    image: &'static str,
    script: &'static str,
    /// stdout's last line when it worked.
    ok: &'static str,
    /// Argument kinds the agent must have recorded for it (`socket`, `clone`).
    kinds: &'static [&'static str],
}

/// httpd binds before it daemonizes (a fork), so the wget after `&&` finds it listening.
const SERVER: Workload = Workload {
    label: "server",
    image: BUSYBOX,
    script: "httpd -p 127.0.0.1:8080 -h /etc && wget -qO- http://127.0.0.1:8080/group | head -n 1",
    ok: "root:x:0:",
    kinds: &["socket", "clone"],
};
const PIPELINE: Workload = Workload {
    label: "pipeline",
    image: BUSYBOX,
    script: "ls / | grep -c bin; echo pipeline: OK",
    ok: "pipeline: OK",
    kinds: &["clone"],
};
/// Threads, subprocess (pipes), a threading TCP server and its clients.
const PYTHON: Workload = Workload {
    label: "python",
    image: REALSOFT,
    script: "workload-python",
    ok: "python: OK",
    kinds: &["socket", "clone"],
};
/// `socat TCP-LISTEN,fork`: a child per connection, each exec'ing tr; socat clients.
const SOCAT: Workload = Workload {
    label: "socat",
    image: REALSOFT,
    script: "workload-socat",
    ok: "socat: OK",
    kinds: &["socket", "clone"],
};

/// Only AF_UNIX sockets (stream and datagram) when learning; the probe adds calls
/// never made: an AF_INET socket and an AF_UNIX SOCK_SEQPACKET one. Run as
/// `python3 -c SCRIPT learn|probe`.
const UNIX_ONLY: &str = r#"
import socket, sys
def attempt(family, kind):
    try:
        socket.socket(family, kind).close()
        return "ok"
    except OSError as e:
        return "errno=%d" % e.errno
a, b = socket.socketpair()
a.sendall(b"ping")
print("socketpair:", b.recv(4).decode())
print("unix stream:", attempt(socket.AF_UNIX, socket.SOCK_STREAM))
print("unix dgram:", attempt(socket.AF_UNIX, socket.SOCK_DGRAM))
if sys.argv[1] == "probe":
    print("inet stream:", attempt(socket.AF_INET, socket.SOCK_STREAM))
    print("unix seqpacket:", attempt(socket.AF_UNIX, socket.SOCK_SEQPACKET))
"#;

/// A fork and a raw clone(SIGCHLD) when learning (clone with no namespace flag); the
/// probe adds a raw clone(CLONE_NEWUSER | SIGCHLD), the issue's example. Each child
/// exits at once. Run as `python3 -c SCRIPT learn|probe`.
const FORKS: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_clone, SIGCHLD, CLONE_NEWUSER = 56, 17, 0x10000000
def reaped(pid):
    return "ok" if os.waitpid(pid, 0)[1] == 0 else "the child failed"
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return reaped(pid)
def raw_clone(flags):
    args = [ctypes.c_long(v) for v in (SYS_clone, flags, 0, 0, 0, 0)]
    pid = libc.syscall(*args)
    if pid == 0:
        os._exit(0)
    if pid < 0:
        return "errno=%d" % ctypes.get_errno()
    return reaped(pid)
print("fork:", fork())
print("clone:", raw_clone(SIGCHLD))
if sys.argv[1] == "probe":
    print("clone newuser:", raw_clone(CLONE_NEWUSER | SIGCHLD))
"#;

/// Threads (glibc makes them with clone3 where the filter allows it, as Docker's
/// default does with CAP_SYS_ADMIN) and a fork; the probe adds a raw
/// clone3(CLONE_NEWUSER), whose flags no seccomp condition can see (they are in
/// memory). Run as `python3 -c SCRIPT learn|probe`.
const THREADS: &str = r#"
import ctypes, os, struct, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_clone3, SIGCHLD, CLONE_NEWUSER = 435, 17, 0x10000000
def reaped(pid):
    return "ok" if os.waitpid(pid, 0)[1] == 0 else "the child failed"
def thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    return "ok"
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return reaped(pid)
def clone3(flags):
    # struct clone_args, version 0: flags, pidfd, child_tid, parent_tid,
    # exit_signal, stack, stack_size, tls.
    args = ctypes.create_string_buffer(struct.pack("<8Q", flags, 0, 0, 0, SIGCHLD, 0, 0, 0), 64)
    pid = libc.syscall(ctypes.c_long(SYS_clone3), args, ctypes.c_long(64))
    if pid == 0:
        os._exit(0)
    if pid < 0:
        return "errno=%d" % ctypes.get_errno()
    return reaped(pid)
print("thread:", thread())
print("fork:", fork())
if sys.argv[1] == "probe":
    print("clone3 newuser:", clone3(CLONE_NEWUSER))
"#;

/// `sh -c SCRIPT` with its exit code kept and the container kept a moment: the closing
/// sleep tells that the agent has read the end of the run.
fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), format!("{script}; rc=$?; sleep 1; exit $rc")]
}

/// `python3 -c SCRIPT MODE`, wrapped as `sh` wraps scripts.
fn python(script: &str, mode: &str) -> Vec<String> {
    let mut cmd = sh(r#"python3 -c "$1" "$2""#);
    cmd.extend(["sh".into(), script.into(), mode.into()]);
    cmd
}

fn run(dir: &Dir, cleanup: &mut Cleanup, label: &str, options: &[&str], image: &str, cmd: &[String]) -> TimedRun {
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    TimedRun::docker(dir.path(), cleanup, label, options, image, &cmd, RUN_TIMEOUT)
}

/// The images and the runtime are there; a missing one fails with what to do.
fn require(runtime: &str) {
    require_root();
    docker::require_docker();
    let o =
        docker::docker(&["image", "inspect", "--format", "{{ index .Config.Labels \"observer.realsoft\" }}", REALSOFT]);
    assert!(
        o.status.success(),
        "the image {REALSOFT} is missing: build it with `bash xtask/scripts/realsoft-image.sh` (cargo xtask setup test does): {}",
        String::from_utf8_lossy(&o.stderr).trim()
    );
    let stamp = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert_eq!(
        stamp, REALSOFT_STAMP,
        "{REALSOFT} has stamp {stamp:?}, this test needs {REALSOFT_STAMP:?}: rebuild it with `bash xtask/scripts/realsoft-image.sh`"
    );
    let o = docker::docker(&["info", "--format", "{{json .Runtimes}}"]);
    assert!(o.status.success(), "docker info failed (is dockerd running?): {}", String::from_utf8_lossy(&o.stderr));
    let runtimes = String::from_utf8_lossy(&o.stdout);
    assert!(
        runtimes.contains(&format!("\"{runtime}\"")),
        "dockerd has no {runtime} runtime (cargo xtask setup test registers crun): {runtimes}"
    );
}

/// The values recorded for one kind (`profile show --json`'s `args`), and whether
/// its set overflowed.
fn recorded(profile: &Value, kind: &str) -> (BTreeSet<u64>, bool) {
    let set = &profile["args"][kind];
    let values = set["values"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
    (values, set["overflowed"].as_bool().unwrap_or(false))
}

/// The agent's profile of the ended container, once it has the closing sleep and a
/// value for each of `kinds`.
fn learned_profile(agent: &TestAgent, n: &str, kinds: &[&str]) -> Value {
    agent.wait_for(&format!("{n}: ended, with the closing sleep and argument values for {kinds:?}"), || {
        let c = agent.container(n)?;
        if c["state"] != "exited" {
            return None;
        }
        let p = agent.try_profile(n)?;
        let have_args = kinds.iter().all(|k| !recorded(&p, k).0.is_empty());
        (in_container_phase(&p, &["nanosleep", "clock_nanosleep"]) && have_args).then_some(p)
    })
}

/// `observer profile check FILE`: no errors in what export wrote.
fn check(file: &Path) {
    let o = observer(&["profile", "check", text(file), "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "observer profile check {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Distinct syscall names across the SCMP_ACT_ALLOW rules of a Docker profile.
fn allowed(profile: &Value) -> BTreeSet<String> {
    profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// The SCMP_ACT_ALLOW rules naming `syscall`, and every rule naming it (for messages).
fn allow_rules<'a>(profile: &'a Value, syscall: &str) -> (Vec<&'a Value>, String) {
    let named: Vec<&Value> = profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["names"].as_array().is_some_and(|l| l.iter().any(|n| n == syscall)))
        .collect();
    let shown = named
        .iter()
        .map(|r| {
            let mut r = (*r).clone();
            if let Some(o) = r.as_object_mut() {
                o.remove("names");
            }
            format!("  {syscall}: {r}")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let shown = if shown.is_empty() { format!("  no rule names {syscall}") } else { shown };
    (named.into_iter().filter(|r| r["action"] == "SCMP_ACT_ALLOW").collect(), shown)
}

fn conditions(rule: &Value) -> Vec<&Value> {
    rule["args"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

/// The condition of `rule` on argument `index` with `op`: (value, valueTwo).
fn condition(rule: &Value, index: u64, op: &str) -> Option<(u64, u64)> {
    conditions(rule)
        .into_iter()
        .find(|c| c["index"] == index && c["op"] == op)
        .map(|c| (c["value"].as_u64().unwrap_or(u64::MAX), c["valueTwo"].as_u64().unwrap_or(0)))
}

/// socket is allowed only for the (family, type) pairs recorded: one rule each,
/// `arg0 == family && arg1 & 0xf == type`.
fn assert_socket_narrowed(label: &str, profile: &Value, seen: &BTreeSet<u64>) {
    let (rules, shown) = allow_rules(profile, "socket");
    let mut pairs = BTreeSet::new();
    for r in &rules {
        let family = condition(r, 0, "SCMP_CMP_EQ");
        let kind = condition(r, 1, "SCMP_CMP_MASKED_EQ");
        let (Some((family, _)), Some((0xf, kind))) = (family, kind) else {
            panic!("{label}: a socket rule without a family and a type condition:\n{shown}");
        };
        pairs.insert(family << 32 | kind);
    }
    assert_eq!(&pairs, seen, "{label}: the socket rules allow other (family, type) pairs than were used:\n{shown}");
}

/// clone is allowed only without namespace flags: every allowing rule has
/// `arg0 & 0x7e020000 == 0`.
fn assert_clone_without_namespaces(label: &str, profile: &Value) {
    let (rules, shown) = allow_rules(profile, "clone");
    assert!(!rules.is_empty(), "{label}: clone is not allowed:\n{shown}");
    for r in &rules {
        assert_eq!(
            condition(r, 0, "SCMP_CMP_MASKED_EQ"),
            Some((CLONE_NS_MASK, 0)),
            "{label}: clone allowed without the no-namespace condition:\n{shown}"
        );
    }
}

/// `value: ` lines of a probe's stdout.
fn said<'a>(stdout: &'a str, what: &str) -> Option<&'a str> {
    stdout.lines().find_map(|l| l.strip_prefix(what)?.strip_prefix(": ")).map(str::trim)
}

/// A probe's answer for a call that fails with any errno (EPERM from the profile's
/// default, or ENOSYS as Docker's default answers clone3).
const DENIED: &str = "denied (any errno)";

/// Runs the probe and checks each line's answer; `expect` lists (line, answer).
fn probe(
    dir: &Dir,
    cleanup: &mut Cleanup,
    label: &str,
    options: &[&str],
    cmd: &[String],
    expect: &[(&str, &str)],
    under: &str,
) {
    let r = run(dir, cleanup, label, options, REALSOFT, cmd);
    assert_eq!(r.code, Some(0), "{label} under {under}: {}", r.describe());
    for (what, answer) in expect {
        let got = said(&r.stdout, what);
        let matches =
            if *answer == DENIED { got.is_some_and(|g| g.starts_with("errno=")) } else { got == Some(answer) };
        assert!(matches, "{label} under {under}: {what} should be {answer}, is {got:?}: {}", r.describe());
    }
}

fn errno_of(label: &str, profile: &Value) -> u64 {
    let errno = profile["defaultErrnoRet"].as_u64().unwrap_or(EPERM);
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO", "{label}: {profile}");
    assert_eq!(errno, EPERM, "{label}: the exported profile denies with errno {errno}, not EPERM");
    errno
}

fn round_trip(runtime: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    require(runtime);
    let agent = TestAgent::start(&[]);
    let dir = Dir::new("args-roundtrip", runtime);
    let mut cleanup = Cleanup(Vec::new());
    for w in [&SERVER, &PIPELINE, &PYTHON, &SOCAT] {
        let label = format!("{} under {runtime}", w.label);
        let options = ["--runtime", runtime];
        let learned = run(&dir, &mut cleanup, w.label, &options, w.image, &sh(w.script));
        assert!(
            learned.code == Some(0) && learned.stdout.lines().last() == Some(w.ok),
            "{label}, learning run (Docker's default profile): {}",
            learned.describe()
        );
        let seen = learned_profile(&agent, &learned.name, w.kinds);
        let unsound = unreachable_observed(&seen, w.image);
        assert!(unsound.is_empty(), "{label}: observed but not reachable:\n{}", unsound.join("\n"));

        let file = dir.file(&format!("{}-args.json", w.label));
        let (profile, export_said) = export(&agent, &learned.name, &file, &["--args"]);
        check(&file);
        errno_of(&label, &profile);
        // --args narrows rules, it never adds or removes a name.
        let plain_file = dir.file(&format!("{}.json", w.label));
        let (plain, _) = export(&agent, &learned.name, &plain_file, &[]);
        assert_eq!(allowed(&profile), allowed(&plain), "{label}: --args changed the names allowed");
        for kind in w.kinds {
            let (values, overflowed) = recorded(&seen, kind);
            assert!(!overflowed, "{label}: the {kind} set overflowed: {}", seen["args"]);
            match *kind {
                "socket" => assert_socket_narrowed(&label, &profile, &values),
                _ => {
                    assert_eq!(values, BTreeSet::from([0]), "{label}: clone made a namespace? {}", seen["args"]);
                    assert_clone_without_namespaces(&label, &profile);
                }
            }
        }

        let opt = format!("seccomp={}", text(&file));
        let replay =
            run(&dir, &mut cleanup, w.label, &["--runtime", runtime, "--security-opt", &opt], w.image, &sh(w.script));
        assert_eq!(
            replay.outcome(),
            learned.outcome(),
            "{label}: not the same under its profile exported with --args\n--- learned: {}\n--- replay: {}\n--- export said:\n{export_said}",
            learned.describe(),
            replay.describe()
        );
        let with_args =
            profile["syscalls"].as_array().into_iter().flatten().filter(|r| r.get("args").is_some()).count();
        eprintln!(
            "{label}: {} syscalls allowed, {with_args} rules with argument conditions; same output, exit 0 \
             ({:.1} s learning, {:.1} s replay); recorded {}",
            allowed(&profile).len(),
            learned.took.as_secs_f64(),
            replay.took.as_secs_f64(),
            seen["args"]
        );
    }
}

#[test]
fn runc_args_profiles_round_trip() {
    round_trip("runc");
}

#[test]
fn crun_args_profiles_round_trip() {
    round_trip("crun");
}

fn socket_family_never_used(runtime: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    require(runtime);
    let agent = TestAgent::start(&[]);
    let dir = Dir::new("args-roundtrip", &format!("unix-{runtime}"));
    let mut cleanup = Cleanup(Vec::new());
    let label = format!("AF_UNIX only, under {runtime}");
    let options = ["--runtime", runtime];

    let learned = run(&dir, &mut cleanup, "unix", &options, REALSOFT, &python(UNIX_ONLY, "learn"));
    assert_eq!(learned.code, Some(0), "{label}, learning run: {}", learned.describe());
    let seen = learned_profile(&agent, &learned.name, &["socket"]);
    let unix = BTreeSet::from([AF_UNIX << 32 | SOCK_STREAM, AF_UNIX << 32 | SOCK_DGRAM]);
    assert_eq!(recorded(&seen, "socket"), (unix.clone(), false), "{label}: {}", seen["args"]);

    let args_file = dir.file("unix-args.json");
    let (args_profile, _) = export(&agent, &learned.name, &args_file, &["--args"]);
    check(&args_file);
    assert_socket_narrowed(&label, &args_profile, &unix);
    let errno = errno_of(&label, &args_profile);
    let plain_file = dir.file("unix.json");
    let (plain, _) = export(&agent, &learned.name, &plain_file, &[]);
    errno_of(&label, &plain);

    let cmd = python(UNIX_ONLY, "probe");
    let denied = format!("errno={errno}");
    let opt = format!("seccomp={}", text(&args_file));
    probe(
        &dir,
        &mut cleanup,
        "unix",
        &["--runtime", runtime, "--security-opt", &opt],
        &cmd,
        &[
            ("socketpair", "ping"),
            ("unix stream", "ok"),
            ("unix dgram", "ok"),
            ("inet stream", &denied),
            ("unix seqpacket", &denied),
        ],
        "the profile exported with --args",
    );
    // The name-level export of the same run: the argument condition is what denied them.
    let opt = format!("seccomp={}", text(&plain_file));
    probe(
        &dir,
        &mut cleanup,
        "unix",
        &["--runtime", runtime, "--security-opt", &opt],
        &cmd,
        &[("unix stream", "ok"), ("inet stream", "ok"), ("unix seqpacket", "ok")],
        "the name-level export (without --args)",
    );
    eprintln!(
        "{label}: under --args, AF_INET/SOCK_STREAM and AF_UNIX/SOCK_SEQPACKET fail with errno {errno}, \
         AF_UNIX stream and dgram work; under the name-level export all work"
    );
}

#[test]
fn runc_a_socket_family_never_used_is_denied() {
    socket_family_never_used("runc");
}

#[test]
fn crun_a_socket_family_never_used_is_denied() {
    socket_family_never_used("crun");
}

fn user_namespace_never_made(runtime: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    require(runtime);
    let agent = TestAgent::start(&[]);
    let dir = Dir::new("args-roundtrip", &format!("userns-{runtime}"));
    let mut cleanup = Cleanup(Vec::new());
    let label = format!("forks with CAP_SYS_ADMIN, under {runtime}");
    let options = ["--runtime", runtime, "--cap-add", "SYS_ADMIN"];
    let caps = caps_with_sys_admin();

    let learned = run(&dir, &mut cleanup, "forks", &options, REALSOFT, &python(FORKS, "learn"));
    assert_eq!(learned.code, Some(0), "{label}, learning run: {}", learned.describe());
    assert_eq!(said(&learned.stdout, "clone"), Some("ok"), "{label}, learning run: {}", learned.describe());
    let seen = learned_profile(&agent, &learned.name, &["clone"]);
    assert_eq!(recorded(&seen, "clone"), (BTreeSet::from([0]), false), "{label}: {}", seen["args"]);

    let args_file = dir.file("forks-args.json");
    let (args_profile, _) = export(&agent, &learned.name, &args_file, &["--args", "--caps", &caps]);
    check(&args_file);
    assert_clone_without_namespaces(&label, &args_profile);
    let errno = errno_of(&label, &args_profile);
    let plain_file = dir.file("forks.json");
    let (plain, _) = export(&agent, &learned.name, &plain_file, &["--caps", &caps]);
    let (plain_clone, shown) = allow_rules(&plain, "clone");
    assert!(
        plain_clone.iter().any(|r| conditions(r).is_empty()),
        "{label}: the name-level export with {caps} should allow clone whatever its flags, as Docker's default does:\n{shown}"
    );

    let cmd = python(FORKS, "probe");
    let denied = format!("errno={errno}");
    let opt = format!("seccomp={}", text(&args_file));
    let mut with_args = options.to_vec();
    with_args.extend(["--security-opt", &opt]);
    probe(
        &dir,
        &mut cleanup,
        "forks",
        &with_args,
        &cmd,
        &[("fork", "ok"), ("clone", "ok"), ("clone newuser", &denied)],
        "the profile exported with --args, with --cap-add SYS_ADMIN",
    );
    // The name-level export of the same run: the clone goes through, so the kernel and
    // the capabilities allow it, and the argument condition is what denied it.
    let opt = format!("seccomp={}", text(&plain_file));
    let mut name_level = options.to_vec();
    name_level.extend(["--security-opt", &opt]);
    probe(
        &dir,
        &mut cleanup,
        "forks",
        &name_level,
        &cmd,
        &[("fork", "ok"), ("clone", "ok"), ("clone newuser", "ok")],
        "the name-level export (without --args), with --cap-add SYS_ADMIN",
    );
    eprintln!(
        "{label}: under --args clone(CLONE_NEWUSER) fails with errno {errno}, fork and clone(SIGCHLD) work; \
         under the name-level export it works"
    );
}

#[test]
fn runc_a_user_namespace_never_made_cannot_be_cloned() {
    user_namespace_never_made("runc");
}

#[test]
fn crun_a_user_namespace_never_made_cannot_be_cloned() {
    user_namespace_never_made("crun");
}

/// Docker's default capabilities and SYS_ADMIN, as `profile export --caps` takes them:
/// with SYS_ADMIN Docker's default allows clone, clone3 and unshare whatever their flags.
fn caps_with_sys_admin() -> String {
    format!("{},CAP_SYS_ADMIN", DOCKER_DEFAULT_CAPS.join(","))
}

/// A threaded workload run with SYS_ADMIN makes its threads with clone3, whose
/// flags a seccomp filter cannot test: its `--args` profile must still not let a
/// clone3(CLONE_NEWUSER) through (Docker's answer without SYS_ADMIN is ENOSYS, so
/// that glibc falls back to clone, where the namespace condition applies).
fn threads_never_made_a_user_namespace(runtime: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    require(runtime);
    let agent = TestAgent::start(&[]);
    let dir = Dir::new("args-roundtrip", &format!("clone3-{runtime}"));
    let mut cleanup = Cleanup(Vec::new());
    let label = format!("threads with CAP_SYS_ADMIN, under {runtime}");
    let options = ["--runtime", runtime, "--cap-add", "SYS_ADMIN"];
    let caps = caps_with_sys_admin();

    let learned = run(&dir, &mut cleanup, "threads", &options, REALSOFT, &python(THREADS, "learn"));
    assert_eq!(learned.code, Some(0), "{label}, learning run: {}", learned.describe());
    let seen = learned_profile(&agent, &learned.name, &["clone"]);
    // Without clone3 in the container's own calls this test would prove nothing.
    assert!(
        in_container_phase(&seen, &["clone3"]),
        "{label}: the threads were not made with clone3 (glibc uses it where allowed): {:?}",
        rows(&seen).iter().filter(|r| r.0.starts_with("clone")).collect::<Vec<_>>()
    );
    assert_eq!(recorded(&seen, "clone"), (BTreeSet::from([0]), false), "{label}: {}", seen["args"]);

    let args_file = dir.file("threads-args.json");
    let (args_profile, export_said) = export(&agent, &learned.name, &args_file, &["--args", "--caps", &caps]);
    check(&args_file);
    assert_clone_without_namespaces(&label, &args_profile);
    let plain_file = dir.file("threads.json");
    export(&agent, &learned.name, &plain_file, &["--caps", &caps]);

    let cmd = python(THREADS, "probe");
    // The name-level export first: the kernel and the capabilities allow the clone3.
    let opt = format!("seccomp={}", text(&plain_file));
    let mut name_level = options.to_vec();
    name_level.extend(["--security-opt", &opt]);
    probe(
        &dir,
        &mut cleanup,
        "threads",
        &name_level,
        &cmd,
        &[("thread", "ok"), ("fork", "ok"), ("clone3 newuser", "ok")],
        "the name-level export (without --args), with --cap-add SYS_ADMIN",
    );
    let opt = format!("seccomp={}", text(&args_file));
    let mut with_args = options.to_vec();
    with_args.extend(["--security-opt", &opt]);
    let (clone3_rules, shown) = allow_rules(&args_profile, "clone3");
    probe(
        &dir,
        &mut cleanup,
        "threads",
        &with_args,
        &cmd,
        &[("thread", "ok"), ("fork", "ok"), ("clone3 newuser", DENIED)],
        &format!(
            "the profile exported with --args, with --cap-add SYS_ADMIN ({} clone3 allow rules:\n{shown}\nexport said:\n{export_said})",
            clone3_rules.len()
        ),
    );
    eprintln!(
        "{label}: under --args clone3(CLONE_NEWUSER) is denied, threads and fork work; under the name-level export it works"
    );
}

#[test]
fn runc_threads_cannot_clone3_a_user_namespace() {
    threads_never_made_a_user_namespace("runc");
}

#[test]
fn crun_threads_cannot_clone3_a_user_namespace() {
    threads_never_made_a_user_namespace("crun");
}
