//! The soak (`cargo xtask soak --minutes N` runs it): a real agent under
//! cgroup churn for N minutes. Plain cgroups v2 are made and removed by the
//! thousand (each with a process making syscalls), Docker containers run as
//! fast as Docker starts them (some under `enforce --action alert`), a process
//! makes syscalls throughout, and the agent is SIGKILLed and restarted every
//! few minutes. It samples the agent (RSS, fds, slots, bounded tables), checks
//! what must hold, and writes the figures as JSON for the report.
//!
//! Usage: observer-soak --seconds S --pin-dir DIR --out FILE.json

use std::{
    collections::BTreeMap,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use observer_tests::{
    agent::TestAgent,
    churn::{Cgroup, fds_and_rss_kib, run_in_new_cgroup, v2_root},
    docker::{IMAGE, docker, moby_default_without, require_docker},
    require_root, testprog, unique,
};
use serde_json::{Value, json};

/// Plain cgroups a minute the churn aims at (with the containers: 10,000 in all).
const CGROUPS_PER_MINUTE: u64 = 10_000;
/// The agent's limits under test. The churn reaches this many records within
/// each life's 20 s warm-up (plain cgroups come at about 160 a second), so that
/// "flat after warm-up" measures leaks, not the records growing up to the cap.
/// The cap holds at every new record and drops ended plain cgroups first: it
/// leaves room for a 10-minute run's 800-900 containers plus the 200 or so
/// plain cgroups alive at any moment, so every container keeps its profile.
const MAX_RECORDS: usize = 2000;
const ALERTS_MAX_BYTES: u64 = 8 * 1024;
/// Names of the containers under enforcement (rules by name, reused).
const ENFORCED: [&str; 2] = ["soak-enforced-a", "soak-enforced-b"];
/// getppid calls the steady process makes while the agent is down, each time.
const DOWN_CALLS: u64 = 25_000;

struct Opts {
    seconds: u64,
    pin_dir: String,
    out: String,
}

fn opts() -> Opts {
    let mut o = Opts { seconds: 60, pin_dir: String::new(), out: String::new() };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = value().parse().expect("--seconds N"),
            "--pin-dir" => o.pin_dir = value(),
            "--out" => o.out = value(),
            other => panic!("unknown argument {other}; usage: observer-soak --seconds S --pin-dir DIR --out FILE"),
        }
    }
    assert!(!o.pin_dir.is_empty() && !o.out.is_empty(), "--pin-dir and --out are needed");
    o
}

/// How often the agent is killed: every minute in a short run, every 5 in a long one.
fn kill_every(seconds: u64) -> Duration {
    match seconds {
        0..=90 => Duration::from_secs(seconds / 2),
        91..=900 => Duration::from_secs(60),
        _ => Duration::from_secs(300),
    }
}

fn main() {
    require_root();
    require_docker();
    let o = opts();
    let run = format!("observer-soak-{}", unique() % 1_000_000_000);
    let mut agent = TestAgent::prepare(&[
        "--watch",
        "all",
        "--slots",
        "4096",
        "--max-records",
        &MAX_RECORDS.to_string(),
        "--alerts-max-bytes",
        &ALERTS_MAX_BYTES.to_string(),
    ]);
    agent.pin_dir = o.pin_dir.clone().into();
    agent.spawn();
    std::thread::sleep(Duration::from_secs(2));
    let baseline_slots = agent.status()["slots_used"].as_u64().unwrap_or(0);

    // Enforcement by name, on containers yet to start: a profile without uname.
    let profile = moby_default_without(&["uname", "getdents64", "sysinfo"]);
    for name in ENFORCED {
        let o = agent.cli(&[
            "enforce",
            "--match",
            &format!("name:{name}"),
            "--profile",
            profile.to_str().unwrap(),
            "--action",
            "alert",
        ]);
        assert!(o.status.success(), "enforce: {}", String::from_utf8_lossy(&o.stderr));
    }

    let stop = Arc::new(AtomicBool::new(false));
    // While the agent is down no container starts: one that starts and ends
    // entirely while no agent runs leaves counts under its cgroup id, but
    // nothing can name it any more (docs/reliability.md).
    let agent_down = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicU64::new(0));
    let plain_made = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.seconds);

    // Plain cgroups: 4 workers, paced to the target rate together.
    let per_worker_interval = Duration::from_secs_f64(60.0 * 4.0 / CGROUPS_PER_MINUTE as f64);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, made, run) = (stop.clone(), plain_made.clone(), run.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = run_in_new_cgroup(&format!("{run}/w{w}-{n}"), &["/bin/true"]);
                    made.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                    next += per_worker_interval;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    } else if Instant::now() - next > Duration::from_secs(1) {
                        next = Instant::now(); // behind: no catching up in a burst
                    }
                }
            })
        })
        .collect();

    // Containers: 2 workers, as fast as Docker goes; every third one enforced.
    // (id, name, seconds into the soak when it started)
    let containers: Arc<Mutex<Vec<(String, String, f64)>>> = Arc::default();
    let docker_workers: Vec<_> = (0..2)
        .map(|w| {
            let (stop, containers, run, down, running) =
                (stop.clone(), containers.clone(), run.clone(), agent_down.clone(), running.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    if down.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    running.fetch_add(1, Ordering::SeqCst);
                    if down.load(Ordering::SeqCst) {
                        running.fetch_sub(1, Ordering::SeqCst);
                        continue;
                    }
                    let name = if n.is_multiple_of(3) { ENFORCED[w].to_owned() } else { format!("{run}-d{w}-{n}") };
                    n += 1;
                    let started = start.elapsed().as_secs_f64();
                    let o = docker(&[
                        "run",
                        "--network",
                        "none",
                        "--name",
                        &name,
                        IMAGE,
                        "sh",
                        "-c",
                        "sleep 1; cat /etc/passwd > /dev/null; uname -a > /dev/null; ls / > /dev/null; free > /dev/null",
                    ]);
                    let id = docker(&["inspect", "-f", "{{.Id}}", &name]);
                    let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
                    if o.status.success() && id.len() == 64 {
                        containers.lock().unwrap().push((id, name.clone(), started));
                    }
                    let _ = docker(&["rm", "-f", &name]);
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Syscall load throughout, in a cgroup of its own that lives the whole soak.
    let steady = Cgroup::create(&format!("{run}/steady"));
    let mut load = steady
        .spawn(Command::new("sh").args(["-c", "while :; do cat /proc/self/status > /dev/null; done"]))
        .expect("the syscall load");

    let mut samples = Vec::new();
    let mut downtimes = Vec::new();
    let mut down_cgroups: Vec<Cgroup> = Vec::new();
    let mut lives = 1u32;
    // Each life's log (kept to explain a missing profile) and its start time.
    let mut logs: Vec<String> = Vec::new();
    let mut life_starts = vec![0.0f64];
    let mut life_started = Instant::now();
    let every = kill_every(o.seconds);
    let mut next_kill = start + every;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        let t = start.elapsed().as_secs_f64();
        let pid = agent.pid();
        let (fds, rss) = fds_and_rss_kib(pid).unwrap_or((0, 0));
        let s = agent.status();
        samples.push(json!({
            "t": t, "life": lives, "age": life_started.elapsed().as_secs_f64(), "pid": pid,
            "rss_kib": rss, "fds": fds,
            "slots_used": s["slots_used"], "records": s["containers"],
            "cgroup_watches": s["cgroup_watches"], "cached_runtime_answers": s["cached_runtime_answers"],
            "known_cgroup_paths": s["known_cgroup_paths"], "events_lost": s["events_lost"],
            "plain_cgroups_made": plain_made.load(Ordering::Relaxed),
            "containers_run": containers.lock().unwrap().len(),
        }));
        if Instant::now() >= next_kill && Instant::now() + Duration::from_secs(15) < deadline {
            // SIGKILL, then syscalls while nobody reads: in the steady cgroup and
            // in a cgroup made while the agent is down.
            agent_down.store(true, Ordering::SeqCst);
            // Containers running now end before the kill (see agent_down).
            let wait = Instant::now();
            while running.load(Ordering::SeqCst) > 0 && wait.elapsed() < Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(50));
            }
            logs.push(agent.stderr());
            agent.kill();
            let down = Cgroup::create(&format!("{run}/down-{lives}"));
            let calls = down
                .spawn(Command::new(testprog()).args(["calls", &DOWN_CALLS.to_string()]))
                .and_then(|mut c| c.wait());
            let in_steady = steady
                .spawn(Command::new(testprog()).args(["calls", &DOWN_CALLS.to_string()]))
                .and_then(|mut c| c.wait());
            assert!(calls.is_ok() && in_steady.is_ok(), "running observer-testprog");
            downtimes.push(json!({"t": start.elapsed().as_secs_f64(), "cgroup": down.rel()}));
            down_cgroups.push(down);
            std::thread::sleep(Duration::from_secs(1));
            agent.spawn();
            agent_down.store(false, Ordering::SeqCst);
            lives += 1;
            life_started = Instant::now();
            life_starts.push(start.elapsed().as_secs_f64());
            next_kill = Instant::now() + every;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers.into_iter().chain(docker_workers) {
        let _ = w.join();
    }
    let churn_seconds = start.elapsed().as_secs_f64();
    let plain = plain_made.load(Ordering::Relaxed);
    let containers = containers.lock().unwrap().clone();

    // Checks, after the churn.
    let mut checks: BTreeMap<&str, (bool, String)> = BTreeMap::new();
    let rate = (plain + containers.len() as u64) as f64 * 60.0 / churn_seconds;
    checks.insert(
        "churn rate",
        (rate >= CGROUPS_PER_MINUTE as f64 * 0.8, format!("{rate:.0} cgroups and containers a minute")),
    );

    // Counts made while the agent was down are there.
    let _ = load.kill();
    let _ = load.wait();
    std::thread::sleep(Duration::from_secs(3));
    let getppid = |p: &Value| {
        p["syscalls"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == "getppid" && r["abi"] == "x86_64"))
            .and_then(|r| r["calls"].as_u64())
            .unwrap_or(0)
    };
    let steady_calls = agent.try_profile(&steady.rel()).map_or(0, |p| getppid(&p));
    let want = DOWN_CALLS * downtimes.len() as u64;
    checks.insert(
        "syscalls while down (steady cgroup)",
        (steady_calls >= want, format!("getppid {steady_calls}, made while the agent was down {want}")),
    );
    let mut down_ok = 0;
    for d in &down_cgroups {
        if agent.try_profile(&d.rel()).is_some_and(|p| getppid(&p) >= DOWN_CALLS) {
            down_ok += 1;
        }
    }
    checks.insert(
        "syscalls while down (cgroups made while down)",
        (down_ok == down_cgroups.len(), format!("{down_ok} of {} with every call", down_cgroups.len())),
    );

    // Every container that ran has its profile (a missing one is named with
    // when it ran and what the agent logged about it).
    // The agent's warnings over every life, for whoever reads a failed run.
    let mut warnings: BTreeMap<String, usize> = BTreeMap::new();
    for line in logs.iter().flat_map(|l| l.lines()).filter(|l| l.contains(" WARN ")) {
        let what = line.split(" WARN ").nth(1).unwrap_or(line);
        let what: String = what.chars().take(120).collect();
        *warnings.entry(what).or_default() += 1;
    }
    for (what, n) in warnings.iter().take(12) {
        println!("agent warning ({n}x): {what}");
    }
    let mut missing = Vec::new();
    let mut enforced_alerted = 0;
    let alerts = agent.alerts();
    logs.push(agent.stderr());
    for (id, name, started) in &containers {
        let ok = agent.try_profile(id).is_some_and(|p| p["syscalls"].as_array().is_some_and(|s| s.len() > 5));
        if !ok {
            let (short, detail) = missing_container(id, *started, &life_starts, &logs, &agent);
            println!("missing profile: {detail}");
            missing.push(short);
        }
        if ENFORCED.contains(&name.as_str())
            && alerts.iter().any(|a| a["kind"] == "enforce" && a["id"] == id.as_str() && a["syscall"] == "uname")
        {
            enforced_alerted += 1;
        }
    }
    let enforced_ran = containers.iter().filter(|(_, n, _)| ENFORCED.contains(&n.as_str())).count();
    checks.insert(
        "every container has its profile",
        (
            missing.is_empty() && !containers.is_empty(),
            format!("{} containers, missing: {missing:?}", containers.len()),
        ),
    );
    // Alerts on stdout come from the agent's current life only.
    checks.insert(
        "enforcement alerted",
        (enforced_ran > 0 && enforced_alerted > 0, format!("{enforced_alerted} uname alert(s) on stdout for {enforced_ran} enforced containers (stdout covers the last agent life)")),
    );

    // Slots back at the baseline once the churn's cgroups are gone.
    drop(steady);
    drop(down_cgroups);
    let _ = std::fs::remove_dir(v2_root().join(&run));
    let settle = Instant::now();
    let mut slots_after = u64::MAX;
    while settle.elapsed() < Duration::from_secs(40) {
        slots_after = agent.status()["slots_used"].as_u64().unwrap_or(u64::MAX);
        if slots_after <= baseline_slots + 2 {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    checks.insert(
        "slots back at the baseline",
        (slots_after <= baseline_slots + 2, format!("{slots_after} used after, {baseline_slots} before")),
    );

    // Flat after warm-up: within each agent life, samples older than 20 s;
    // the first life is the node's warm-up as a whole (the agent starts on an
    // empty state while thousands of records arrive at once: its heap grows
    // by a fifth after the records reach the cap, which later lives, started
    // on a full state, do not repeat) and is left out when later lives exist.
    let lives_sampled = samples.iter().filter_map(|s| s["life"].as_u64()).max().unwrap_or(1);
    let warm: Vec<&Value> = samples
        .iter()
        .filter(|s| s["age"].as_f64().unwrap_or(0.0) >= 20.0)
        .filter(|s| lives_sampled < 2 || s["life"].as_u64().unwrap_or(0) >= 2)
        .collect();
    // (relative spread, absolute spread): the largest over the lives.
    let spread = |key: &str| {
        let mut by_life: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for s in &warm {
            by_life.entry(s["life"].as_u64().unwrap_or(0)).or_default().push(s[key].as_f64().unwrap_or(0.0));
        }
        by_life
            .values()
            .filter(|v| v.len() >= 2)
            .map(|v| {
                let (lo, hi) = v.iter().fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
                (if lo > 0.0 { (hi - lo) / lo } else { 0.0 }, hi - lo)
            })
            .fold((0f64, 0f64), |(r, a), (r2, a2)| (r.max(r2), a.max(a2)))
    };
    let ((rss_spread, _), (fd_spread, fd_abs)) = (spread("rss_kib"), spread("fds"));
    // RSS is a sawtooth (each 10 s sweep allocates a table of the host's
    // cgroups, then the heap is trimmed): what a leak raises is its floor. Per
    // life, the lowest RSS of the later half of the warm samples against the
    // lowest of the earlier half.
    let rss_floor_growth = {
        let mut by_life: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for s in &warm {
            by_life.entry(s["life"].as_u64().unwrap_or(0)).or_default().push(s["rss_kib"].as_f64().unwrap_or(0.0));
        }
        by_life
            .values()
            .filter(|v| v.len() >= 2)
            .map(|v| {
                let (early, late) = v.split_at(v.len() / 2);
                let floor = |h: &[f64]| h.iter().copied().fold(f64::MAX, f64::min);
                if floor(early) > 0.0 { floor(late) / floor(early) - 1.0 } else { 0.0 }
            })
            .fold(0f64, f64::max)
    };
    checks.insert(
        "RSS flat after warm-up",
        (
            !warm.is_empty() && rss_floor_growth <= 0.10,
            format!(
                "floor grew {:.1}% within a life (peak-to-trough spread {:.1}%)",
                rss_floor_growth * 100.0,
                rss_spread * 100.0
            ),
        ),
    );
    // The agent holds about 25 fds; the soak's own status query and a Docker
    // query in flight come and go (a few fds), which is not growth: within 10%
    // or within 4 fds. A leak under this churn adds hundreds.
    checks.insert(
        "open fds flat after warm-up",
        (
            !warm.is_empty() && (fd_spread <= 0.10 || fd_abs <= 4.0),
            format!("largest spread within one life {:.1}% ({fd_abs} fds)", fd_spread * 100.0),
        ),
    );
    let max_of = |key: &str| samples.iter().filter_map(|s| s[key].as_u64()).max().unwrap_or(0);
    checks.insert(
        "records bounded",
        (
            max_of("records") <= MAX_RECORDS as u64,
            format!("at most {} (--max-records {MAX_RECORDS})", max_of("records")),
        ),
    );
    checks.insert(
        "cached runtime answers bounded",
        (max_of("cached_runtime_answers") <= 64, format!("at most {}", max_of("cached_runtime_answers"))),
    );
    checks.insert(
        "inotify watches bounded",
        (max_of("cgroup_watches") <= 2000, format!("at most {}", max_of("cgroup_watches"))),
    );
    checks.insert(
        "cgroup paths known bounded",
        (max_of("known_cgroup_paths") <= 5000, format!("at most {}", max_of("known_cgroup_paths"))),
    );

    // alerts.jsonl rotated by size.
    let state = agent.state_dir();
    let size = |f: &str| std::fs::metadata(state.join(f)).map_or(0, |m| m.len());
    let (current, older) = (size("alerts.jsonl"), size("alerts.jsonl.1"));
    checks.insert(
        "alerts.jsonl rotated by size",
        (
            older > 0 && current <= ALERTS_MAX_BYTES && older <= ALERTS_MAX_BYTES,
            format!("alerts.jsonl {current} B, alerts.jsonl.1 {older} B (--alerts-max-bytes {ALERTS_MAX_BYTES})"),
        ),
    );

    // Events lost: none, or counted and alerted.
    let status = agent.status();
    let lost = status["events_lost"].as_u64().unwrap_or(0);
    let lost_alerted = std::fs::read_to_string(state.join("alerts.jsonl")).unwrap_or_default().contains("events_lost")
        || std::fs::read_to_string(state.join("alerts.jsonl.1")).unwrap_or_default().contains("events_lost")
        || agent.alerts().iter().any(|a| a["kind"] == "events_lost");
    checks.insert(
        "events lost: 0, or counted and alerted",
        (lost == 0 || lost_alerted, format!("{lost} counted; alerted: {lost_alerted}")),
    );

    let failed: Vec<&str> = checks.iter().filter(|(_, (ok, _))| !ok).map(|(k, _)| *k).collect();
    let result = json!({
        "seconds": o.seconds,
        "churn_seconds": churn_seconds,
        "plain_cgroups": plain,
        "containers": containers.len(),
        "enforced_containers": enforced_ran,
        "agent_lives": lives,
        "kill_every_seconds": every.as_secs(),
        "baseline_slots": baseline_slots,
        "final_status": status,
        "samples": samples,
        "downtimes": downtimes,
        "checks": checks.iter().map(|(k, (ok, what))| json!({"check": k, "ok": ok, "figure": what})).collect::<Vec<_>>(),
        "failed": failed,
    });
    std::fs::write(&o.out, serde_json::to_string_pretty(&result).unwrap()).expect("writing the results");
    let _ = std::fs::remove_file(profile);
    for (k, (ok, what)) in &checks {
        eprintln!("{} {k}: {what}", if *ok { "ok  " } else { "FAIL" });
    }
    drop(agent);
    std::process::exit(i32::from(!failed.is_empty()));
}

/// A container without its profile, for the report: its short id, when it
/// started against the agent's lives, what its saved file holds (and the
/// agent's answer for its cgroup id), and the agent's log lines naming it.
/// Returns the short form for the report and the whole story for stdout.
fn missing_container(
    id: &str,
    started: f64,
    life_starts: &[f64],
    logs: &[String],
    agent: &TestAgent,
) -> (String, String) {
    let short = &id[..12];
    let life = life_starts.iter().rposition(|t| *t <= started).unwrap_or(0);
    let lines: Vec<&str> = logs.iter().flat_map(|l| l.lines()).filter(|l| l.contains(short)).take(6).collect();
    let file = agent.state_dir().join("containers").join(format!("{id}.json"));
    let saved = match std::fs::read(&file).map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
        Err(e) => format!("no saved file ({e})"),
        Ok(Err(e)) => format!("saved file unreadable ({e})"),
        Ok(Ok(r)) => {
            let by_id = agent
                .try_profile(&format!("cgroup:{}", r["cgroup_id"]))
                .map(|p| format!("{} syscalls", p["syscalls"].as_array().map_or(0, Vec::len)));
            format!(
                "saved: state {}, {} first uses, cgroups {}; record cgroup:{}: {by_id:?}",
                r["state"],
                r["first_use"]
                    .as_object()
                    .map(serde_json::Map::len)
                    .or(r["first_use"].as_array().map(Vec::len))
                    .unwrap_or(0),
                r["cgroups"],
                r["cgroup_id"]
            )
        }
    };
    let when = format!("{:.1} s into life {}", started - life_starts[life], life + 1);
    (format!("{short} ({when})"), format!("{short} (started at {started:.0} s, {when}; {saved}; agent log: {lines:?})"))
}
