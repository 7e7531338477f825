//! Round trips with real software that was not written for these tests: servers and
//! interpreters from Debian packages (the local image observer-realsoft:latest, built by
//! xtask/scripts/realsoft-image.sh), each driven by its own client or benchmark over
//! loopback inside one container (`--network none`).
//!
//! For every program and for each runtime (runc, crun): run it once while an agent
//! learns, `observer profile export --format docker`, run it again under the exported
//! profile with the same runtime (it must exit 0 with the same output), then remove
//! one syscall the program needs and check that it now fails. As root.
//!
//! Every `docker run` is bounded: the client runs with `--sig-proxy=false`, each
//! container has a name, and a run that outlives its time is stopped with `docker kill`.

use std::{
    collections::BTreeSet,
    process::Command,
    sync::Mutex,
    time::{Duration, Instant},
};

use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, docker},
    observer,
    reach::unreachable_observed,
    realsoft::{IMAGE, STAMP, export_docker, in_container_phase},
    require_root,
    scratch::{Dir, text},
    timed_run::TimedRun,
};
use serde_json::Value;

/// Longest a workload may take, start to end (they take about a second here).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The workloads share two cores; `cargo test` would run these tests in parallel.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Workload {
    label: &'static str,
    /// The driver baked into the image: starts the program, drives it, checks, stops it.
    command: &'static str,
    /// The profile has this in the container phase once the program ran.
    key: &'static [&'static str],
    /// Removed from the exported profile (those present; at least one must be).
    remove: &'static [&'static str],
    /// What the program then says (all of these, in stdout or stderr): it failed at
    /// the removed syscall, not somewhere else.
    fails_with: &'static [&'static str],
    /// The driver's last line when every check passed.
    ok: &'static str,
}

/// Threaded: 4 worker threads plus background threads; memcslap runs 4 client threads.
const MEMCACHED: Workload = Workload {
    label: "memcached",
    command: "workload-memcached",
    key: &["listen"],
    remove: &["listen"],
    fails_with: &["listen(): Operation not permitted"],
    ok: "memcached: OK",
};
/// Threaded: background-job threads at start-up; redis-benchmark and redis-cli.
const REDIS: Workload = Workload {
    label: "redis",
    command: "workload-redis",
    key: &["listen"],
    remove: &["listen"],
    fails_with: &["listen: Operation not permitted"],
    ok: "redis: OK",
};
/// Multi-process: a master and 2 workers; curl, several at once.
const NGINX: Workload = Workload {
    label: "nginx",
    command: "workload-nginx",
    key: &["accept4", "accept"],
    remove: &["listen"],
    fails_with: &["listen() to 127.0.0.1:8080", "failed (1: Operation not permitted)"],
    ok: "nginx: OK",
};
/// Forking: `socat TCP-LISTEN,fork` (a child per connection, each exec'ing tr); socat clients.
const SOCAT: Workload = Workload {
    label: "socat",
    command: "workload-socat",
    key: &["accept4", "accept"],
    remove: &["accept", "accept4"],
    fails_with: &["E accept(", "Operation not permitted"],
    ok: "socat: OK",
};
/// Interpreter: ithreads, fork/exec, backticks, a TCP server thread.
const PERL: Workload = Workload {
    label: "perl",
    command: "workload-perl",
    key: &["accept4", "accept"],
    remove: &["listen"],
    fails_with: &["listen: IO::Socket::INET: Operation not permitted"],
    ok: "perl: OK",
};
/// Interpreter: threading, subprocess (pipes), a threading socketserver.
const PYTHON: Workload = Workload {
    label: "python",
    command: "workload-python",
    key: &["accept4", "accept"],
    remove: &["pipe2", "pipe"],
    fails_with: &["os.pipe()", "PermissionError: [Errno 1] Operation not permitted"],
    ok: "python: OK",
};

/// The driver as run in every container: its exit code kept, the container kept a
/// moment (the closing sleep tells that the agent has read the end of the run).
fn wrapped(command: &str) -> String {
    format!("{command}; rc=$?; sleep 1; exit $rc")
}

/// The line that tells what went wrong: the driver's FAIL line, else stderr's last
/// (where perl's die and python's exception end up).
fn reason(run: &TimedRun) -> String {
    let fail = run.stdout.lines().find(|l| l.starts_with("FAIL"));
    let err = run.stderr.lines().rfind(|l| !l.trim().is_empty());
    fail.or(err).unwrap_or("no message").trim().to_owned()
}

/// `docker run --sig-proxy=false --name NAME --network none --runtime R [extra] IMAGE sh -c CMD`,
/// `docker kill`ed when it outlives `limit` (tests/src/timed_run.rs).
fn docker_run(
    dir: &Dir,
    cleanup: &mut Cleanup,
    runtime: &str,
    extra: &[&str],
    command: &str,
    limit: Duration,
) -> TimedRun {
    let mut options = vec!["--runtime", runtime];
    options.extend_from_slice(extra);
    let script = wrapped(command);
    TimedRun::docker(dir.path(), cleanup, "realsoft", &options, IMAGE, &["sh", "-c", &script], limit)
}

/// Waits until the agent has the ended container with the workload's key syscall and
/// the closing sleep.
fn learned_profile(agent: &TestAgent, n: &str, key: &[&str]) -> Value {
    agent.wait_for(&format!("{n}: ended, with {key:?} and the closing sleep"), || {
        let c = agent.container(n)?;
        if c["state"] != "exited" {
            return None;
        }
        let p = agent.try_profile(n)?;
        (in_container_phase(&p, key) && in_container_phase(&p, &["nanosleep", "clock_nanosleep"])).then_some(p)
    })
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

/// The rules of a profile that name `syscall`, one line each (for failure messages).
fn rules_for(profile: &Value, syscall: &str) -> String {
    let lines: Vec<String> = profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["names"].as_array().is_some_and(|l| l.iter().any(|n| n == syscall)))
        .map(|r| {
            let mut r = r.clone();
            if let Some(o) = r.as_object_mut() {
                o.remove("names");
            }
            format!("{syscall}: {r}")
        })
        .collect();
    if lines.is_empty() {
        format!("{syscall}: no rule (default action {})", profile["defaultAction"])
    } else {
        lines.join("\n")
    }
}

/// The profile without `names` (rules left empty are dropped); returns the names it had.
fn without(profile: &Value, names: &[&str]) -> (Value, Vec<String>) {
    let mut p = profile.clone();
    let mut removed = Vec::new();
    let rules = p["syscalls"].as_array_mut().expect("syscalls");
    for r in rules.iter_mut() {
        if let Some(list) = r["names"].as_array_mut() {
            list.retain(|n| {
                let drop = n.as_str().is_some_and(|s| names.contains(&s));
                if drop {
                    removed.push(n.as_str().unwrap_or_default().to_owned());
                }
                !drop
            });
        }
    }
    rules.retain(|r| r["names"].as_array().is_none_or(|l| !l.is_empty()));
    (p, removed)
}

/// The image is there, with the stamp this test knows, and the runtime is registered.
fn require_image_and_runtime(runtime: &str) {
    let o = Command::new("docker")
        .args(["image", "inspect", "--format", "{{ index .Config.Labels \"observer.realsoft\" }}", IMAGE])
        .output()
        .unwrap_or_else(|e| panic!("the docker CLI is missing (cargo xtask setup test installs it): {e}"));
    assert!(
        o.status.success(),
        "the image {IMAGE} is missing: build it with `bash xtask/scripts/realsoft-image.sh` (cargo xtask setup test does): {}",
        String::from_utf8_lossy(&o.stderr).trim()
    );
    let stamp = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert_eq!(
        stamp, STAMP,
        "{IMAGE} has stamp {stamp:?}, this test needs {STAMP:?}: rebuild it with `bash xtask/scripts/realsoft-image.sh`"
    );
    let o = docker(&["info", "--format", "{{json .Runtimes}}"]);
    assert!(o.status.success(), "docker info failed (is dockerd running?): {}", String::from_utf8_lossy(&o.stderr));
    let runtimes = String::from_utf8_lossy(&o.stdout);
    assert!(
        runtimes.contains(&format!("\"{runtime}\"")),
        "dockerd has no {runtime} runtime (cargo xtask setup test registers crun): {runtimes}"
    );
}

fn round_trip(runtime: &str, w: &Workload) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    require_root();
    require_image_and_runtime(runtime);
    let started = Instant::now();
    let agent = TestAgent::start(&[]);
    let pin_dir = agent.pin_dir.clone();
    let dir = Dir::new("realsoft", &format!("{}-{runtime}", w.label));
    let mut cleanup = Cleanup(Vec::new());
    let label = format!("{} under {runtime}", w.label);

    // 1. Learn: the program under Docker's default profile, the agent watching.
    let learned = docker_run(&dir, &mut cleanup, runtime, &[], w.command, RUN_TIMEOUT);
    assert!(
        learned.code == Some(0) && learned.stdout.lines().last() == Some(w.ok),
        "{label}, learning run (Docker's default profile): {}",
        learned.describe()
    );
    let n = cleanup.0.last().expect("the learning container").clone();
    let seen = learned_profile(&agent, &n, w.key);
    let seen_names: BTreeSet<&str> =
        seen["syscalls"].as_array().into_iter().flatten().filter_map(|r| r["name"].as_str()).collect();

    // 2. Export.
    let file = dir.file(&format!("{}.json", w.label));
    let (profile, said) = export_docker(&agent, &n, &file, &[]);
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO", "{label}: {profile}");
    let check = observer(&["profile", "check", text(&file), "--json"]);
    let mut failures = Vec::new();
    // Soundness of the static analysis: what ran is what the image can reach.
    failures.extend(unreachable_observed(&seen, IMAGE));
    if check.status.code() != Some(0) {
        failures.push(format!(
            "observer profile check of the exported profile: exit {:?}: {}",
            check.status.code(),
            String::from_utf8_lossy(&check.stdout)
        ));
    }

    // 3. Replay under the exported profile, same runtime: exit 0, same output.
    let opt = format!("seccomp={}", text(&file));
    let replay = docker_run(&dir, &mut cleanup, runtime, &["--rm", "--security-opt", &opt], w.command, RUN_TIMEOUT);
    let round_trip_ok = replay.outcome() == learned.outcome();
    if !round_trip_ok {
        failures.push(format!(
            "under its exported profile ({} syscalls allowed) it does not do the same: {}\n\
             (learning run's stdout:\n{})\nexport said: {said}\n{}",
            allowed(&profile).len(),
            replay.describe(),
            learned.stdout,
            rules_for(&profile, "clone3"),
        ));
    }

    // 4. Without one syscall it needs, it must fail: as the program, not at container start.
    let (broken, removed) = without(&profile, w.remove);
    assert!(!removed.is_empty(), "{label}: none of {:?} is in the exported profile: {profile}", w.remove);
    let broken_file = dir.file(&format!("{}-without.json", w.label));
    std::fs::write(&broken_file, serde_json::to_string_pretty(&broken).expect("JSON")).expect("write profile");
    let opt = format!("seccomp={}", text(&broken_file));
    let crippled = docker_run(&dir, &mut cleanup, runtime, &["--rm", "--security-opt", &opt], w.command, RUN_TIMEOUT);
    let crippled_failed = crippled.code.is_some_and(|c| c != 0 && c != 125) && crippled.outcome() != learned.outcome();
    let said_why = w.fails_with.iter().all(|m| crippled.stdout.contains(m) || crippled.stderr.contains(m));
    if !crippled_failed || !said_why {
        failures.push(format!(
            "without {removed:?} it should fail as a program (exit neither 0 nor 125, docker's own), saying {:?}: {}",
            w.fails_with,
            crippled.describe()
        ));
    }

    // 5. The agent ends uninstalled: nothing stays pinned.
    drop(agent);
    if pin_dir.exists() {
        failures.push(format!("{} is still there after the agent's uninstall", pin_dir.display()));
    }
    eprintln!(
        "{label}: learned {} syscalls in {:.1} s; exported profile allows {}; replay: {} ({:.1} s); without {removed:?}: exit {:?} ({}); {:.0} s in all",
        seen_names.len(),
        learned.took.as_secs_f64(),
        allowed(&profile).len(),
        if round_trip_ok { "same output, exit 0".to_owned() } else { format!("DIFFERENT, {}", reason(&replay)) },
        replay.took.as_secs_f64(),
        crippled.code,
        reason(&crippled),
        started.elapsed().as_secs_f64(),
    );
    assert!(failures.is_empty(), "{label}:\n{}", failures.join("\n\n"));
}

macro_rules! round_trips {
    ($($test:ident: $runtime:literal, $workload:ident;)*) => {
        $(
            #[test]
            fn $test() {
                round_trip($runtime, &$workload);
            }
        )*
    };
}

round_trips! {
    runc_memcached: "runc", MEMCACHED;
    crun_memcached: "crun", MEMCACHED;
    runc_redis: "runc", REDIS;
    crun_redis: "crun", REDIS;
    runc_nginx: "runc", NGINX;
    crun_nginx: "crun", NGINX;
    runc_socat: "runc", SOCAT;
    crun_socat: "crun", SOCAT;
    runc_perl: "runc", PERL;
    crun_perl: "crun", PERL;
    runc_python: "runc", PYTHON;
    crun_python: "crun", PYTHON;
}

/// The bound holds: a run past its time is stopped, its container killed and removed.
#[test]
fn a_run_past_its_time_is_killed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    require_root();
    require_image_and_runtime("runc");
    let dir = Dir::new("realsoft", "timeout");
    let mut cleanup = Cleanup(Vec::new());
    let limit = Duration::from_secs(3);
    let run = docker_run(&dir, &mut cleanup, "runc", &["--rm"], "sleep 600", limit);
    let n = cleanup.0.last().expect("the container").clone();
    assert!(run.timed_out, "sleep 600 ended by itself? {}", run.describe());
    assert!(run.took < limit + Duration::from_secs(20), "stopping it took too long: {}", run.describe());
    let o = docker(&["inspect", "--format", "{{.State.Running}}", &n]);
    let running = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success() || running.trim() == "false", "{n} still runs after the timeout: {running}");
}
