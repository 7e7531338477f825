//! `cargo xtask bench`: what observer's kernel programs cost per syscall,
//! against bare, against the floor (empty programs on the same tracepoints) and
//! against its peers (bpftrace, strace), measured in one run with the
//! configurations alternated and medians taken; plus the memory, agent CPU and
//! latency targets. Writes docs/bench.json and docs/bench.md.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct BenchArgs {
    /// Rounds: each configuration runs once per round, in turn.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// getppid calls per measurement.
    #[arg(long, default_value_t = 3_000_000)]
    pub calls: u64,
    /// Iterations of the file mix (5 syscalls each) per measurement.
    #[arg(long, default_value_t = 100_000)]
    pub mix: u64,
    /// Cgroups for the memory target.
    #[arg(long, default_value_t = 10_000)]
    pub cgroups: u32,
    /// Skip the memory, CPU and latency targets (only the per-syscall costs).
    #[arg(long)]
    pub quick: bool,
    /// Run even while other programs (another agent, a test) are attached to
    /// the raw syscall tracepoints: their cost is then in every configuration,
    /// bare included, so added costs and ratios stay comparable but absolute
    /// numbers do not; the report says how many were attached.
    #[arg(long)]
    pub allow_attached: bool,
}

struct Env {
    observer: PathBuf,
    testprog: PathBuf,
    v2: PathBuf,
    pin_dir: PathBuf,
    work: PathBuf,
}

/// A configuration under test, alive while the value lives.
struct Running {
    child: Option<Child>,
    cleanup: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id() as i32, 15);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for cmd in &self.cleanup {
            let _ = Command::new("sh").args(["-c", cmd]).status();
        }
    }
}

fn unsafe_kill(pid: i32, sig: i32) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Config {
    Bare,
    FloorEnter,
    FloorBoth,
    AgentWatched,
    AgentUnwatched,
    AgentWatchedCountErrors,
    Trace,
    TraceTime,
    Bpftrace,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Bare => "bare",
            Config::FloorEnter => "floor: empty sys_enter",
            Config::FloorBoth => "floor: empty sys_enter + sys_exit",
            Config::AgentWatched => "observer agent, watched cgroup",
            Config::AgentUnwatched => "observer agent, unwatched cgroup",
            Config::AgentWatchedCountErrors => "observer agent --count-errors, watched",
            Config::Trace => "observer trace",
            Config::TraceTime => "observer trace --time",
            Config::Bpftrace => "bpftrace count map",
        }
    }
}

pub fn run(args: &BenchArgs, root: &Path) -> anyhow::Result<()> {
    let env = Env {
        observer: root.join("target/release/observer"),
        testprog: root.join("target/release/observer-testprog"),
        v2: v2_mount()?,
        pin_dir: PathBuf::from("/sys/fs/bpf/observer-bench"),
        work: std::env::temp_dir().join("observer-bench"),
    };
    std::fs::create_dir_all(&env.work)?;
    ensure_tracefs()?;
    let others_attached = if args.allow_attached { attached_count()? } else { check_nothing_attached().map(|()| 0)? };
    if others_attached > 0 {
        eprintln!(
            "[bench] {others_attached} other links are attached to the raw syscall tracepoints: absolute numbers include them"
        );
    }
    let workload_cg = env.v2.join("observer-bench-workload");
    let _ = std::fs::create_dir(&workload_cg);

    let configs = [
        Config::Bare,
        Config::FloorEnter,
        Config::FloorBoth,
        Config::AgentWatched,
        Config::AgentUnwatched,
        Config::AgentWatchedCountErrors,
        Config::Trace,
        Config::TraceTime,
        Config::Bpftrace,
    ];
    let mut getppid: BTreeMap<Config, Vec<f64>> = BTreeMap::new();
    let mut mix: BTreeMap<Config, Vec<f64>> = BTreeMap::new();
    for round in 0..args.rounds {
        eprintln!("[bench] round {}/{}", round + 1, args.rounds);
        for &config in &configs {
            let running = start(config, &env)?;
            let g = workload(&env, config, &workload_cg, "bench-getppid", args.calls)?;
            let m = workload(&env, config, &workload_cg, "bench-mix", args.mix)?;
            drop(running);
            if config == Config::Bare && !args.allow_attached {
                check_nothing_attached()?;
            }
            eprintln!("[bench]   {:<42} getppid {g:>8.1} ns   mix {m:>8.1} ns", config.name());
            getppid.entry(config).or_default().push(g);
            mix.entry(config).or_default().push(m);
        }
    }
    // The programs' own time per run, from the kernel's BPF statistics.
    let mut program_ns = serde_json::Map::new();
    for config in [Config::FloorBoth, Config::AgentWatched, Config::AgentUnwatched] {
        let running = start(config, &env)?;
        set_bpf_stats(true)?;
        let _ = workload(&env, config, &workload_cg, "bench-getppid", args.calls)?;
        let per_run = program_times(config, &env)?;
        set_bpf_stats(false)?;
        drop(running);
        eprintln!("[bench]   {:<42} in-kernel ns per run: {per_run:?}", config.name());
        program_ns.insert(config.name().to_owned(), json!(per_run));
    }
    // strace: a few runs of a shorter workload.
    let mut strace = Vec::new();
    for _ in 0..3 {
        let out = Command::new("strace")
            .args(["-f", "-c", "-o", "/dev/null"])
            .arg(&env.testprog)
            .args(["bench-getppid", "20000"])
            .output()
            .context("strace is needed (cargo xtask setup test installs it)")?;
        strace.push(String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().unwrap_or(f64::NAN));
    }
    let _ = std::fs::remove_dir(&workload_cg);

    let med = |v: &Vec<f64>| median(v);
    let bare_g = med(&getppid[&Config::Bare]);
    let bare_m = med(&mix[&Config::Bare]);
    // Added cost per round against that round's bare run, then the median over
    // rounds: slow drift of the machine cancels out within a round.
    let added = |c: Config| {
        let per_round: Vec<f64> = getppid[&c].iter().zip(&getppid[&Config::Bare]).map(|(v, b)| v - b).collect();
        median(&per_round)
    };
    let floor_both = added(Config::FloorBoth);
    let mut targets = Vec::new();
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    targets.push(target(
        "watched container, default mode: added cost <= 1.5x the floor's (both programs)",
        ratio(added(Config::AgentWatched), floor_both),
        1.5,
    ));
    targets.push(target(
        "unwatched cgroup: added cost <= 1.15x the floor's",
        ratio(added(Config::AgentUnwatched), floor_both),
        1.15,
    ));
    targets.push(target(
        "at most a third of bpftrace's added cost",
        ratio(added(Config::AgentWatched), added(Config::Bpftrace)),
        1.0 / 3.0,
    ));

    let mut extra = json!({});
    if !args.quick {
        let memory = memory_target(&env, args.cgroups)?;
        targets.push(target(
            &format!("kernel map memory <= 16 KiB per watched cgroup ({} cgroups watched at once)", args.cgroups),
            memory["bytes_per_cgroup"].as_f64().unwrap_or(f64::INFINITY) / 16384.0,
            1.0,
        ));
        let cpu = cpu_target(&env)?;
        targets.push(target(
            "agent CPU <= 2% of one core, 100 cgroups making 1M syscalls/s",
            cpu["agent_cpu_percent"].as_f64().unwrap_or(f64::INFINITY) / 2.0,
            1.0,
        ));
        targets.push(target(
            "no first-seen event lost under that load",
            cpu["events_lost"].as_f64().unwrap_or(1.0) + 1.0,
            1.0,
        ));
        targets.push(target(
            "first use of a syscall to the agent knowing it: median <= 100 ms",
            cpu["first_seen_latency_median_ms"].as_f64().unwrap_or(f64::INFINITY) / 100.0,
            1.0,
        ));
        let start = start_latency(&env)?;
        targets.push(target(
            "20 containers started at once: a syscall at start to the agent knowing it, p99 <= 20 ms",
            start["first_seen_at_start_latency_p99_ms"].as_f64().unwrap_or(f64::INFINITY) / 20.0,
            1.0,
        ));
        extra = json!({"memory": memory, "cpu": cpu, "start": start});
    }

    let machine = machine();
    let rows: Vec<serde_json::Value> = configs
        .iter()
        .map(|c| {
            json!({
                "config": c.name(),
                "getppid_ns": med(&getppid[c]),
                "getppid_added_ns": added(*c),
                "mix_ns": med(&mix[c]),
                "mix_added_ns": med(&mix[c]) - bare_m,
                "getppid_runs": getppid[c],
            })
        })
        .collect();
    let report = json!({
        "machine": machine,
        "other_links_attached_at_start": others_attached,
        "rounds": args.rounds,
        "calls": args.calls,
        "mix_iterations": args.mix,
        "results": rows,
        "program_ns_per_run_with_bpf_stats": program_ns,
        "strace_getppid_ns": median(&strace),
        "strace_added_ns": median(&strace) - bare_g,
        "targets": targets,
        "extra": extra,
    });
    let docs = crate::workspace_root().join("docs");
    std::fs::write(docs.join("bench.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(docs.join("bench.md"), markdown(&report))?;
    print!("{}", markdown(&report));
    Ok(())
}

fn set_bpf_stats(on: bool) -> anyhow::Result<()> {
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", if on { "1" } else { "0" }).context("kernel.bpf_stats_enabled")
}

/// ns per run of this configuration's programs on the raw syscall tracepoints
/// (bpftool's run_time_ns / run_cnt): the agent's are the ones its pinned
/// links run (others' programs may have the same names).
fn program_times(config: Config, env: &Env) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut ids = Vec::new();
    for link in ["link_sys_enter", "link_sys_exit"] {
        let out =
            Command::new("bpftool").args(["link", "show", "pinned"]).arg(env.pin_dir.join(link)).arg("--json").output();
        if let Ok(out) = out
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && let Some(id) = v["prog_id"].as_u64()
        {
            ids.push(id);
        }
    }
    let out = Command::new("bpftool").args(["prog", "show", "--json"]).output().context("bpftool")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("bpftool JSON")?;
    let mut times = BTreeMap::new();
    for p in v.as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("");
        let ours = match config {
            Config::FloorEnter | Config::FloorBoth => ["floor_enter", "floor_exit"].contains(&name),
            _ => p["id"].as_u64().is_some_and(|id| ids.contains(&id)),
        };
        if !ours {
            continue;
        }
        let (t, n) = (p["run_time_ns"].as_f64().unwrap_or(0.0), p["run_cnt"].as_f64().unwrap_or(0.0));
        if n > 0.0 {
            times.insert(name.to_owned(), t / n);
        }
    }
    Ok(times)
}

fn target(what: &str, ratio: f64, limit: f64) -> serde_json::Value {
    let pass = ratio <= limit;
    eprintln!("[bench] {} {what}: ratio {ratio:.3} (limit {limit:.3})", if pass { "PASS" } else { "FAIL" });
    json!({"target": what, "ratio": ratio, "limit": limit, "pass": pass})
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

fn start(config: Config, env: &Env) -> anyhow::Result<Running> {
    let mut running = Running { child: None, cleanup: Vec::new() };
    let agent = |watch: &str, count_errors: bool| -> anyhow::Result<Child> {
        let state = env.work.join("state");
        let _ = std::fs::remove_dir_all(&state);
        let socket = env.work.join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(&env.observer);
        cmd.arg("agent")
            .args(["--watch", watch, "--state-dir"])
            .arg(&state)
            .arg("--socket")
            .arg(&socket)
            .arg("--pin-dir")
            .arg(&env.pin_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if count_errors {
            cmd.arg("--count-errors");
        }
        let child = cmd.spawn().context("starting observer agent")?;
        wait_for(|| socket.exists(), "the agent's socket")?;
        Ok(child)
    };
    let uninstall =
        format!("{} agent --uninstall --pin-dir {} >/dev/null 2>&1", env.observer.display(), env.pin_dir.display());
    match config {
        Config::Bare | Config::Trace | Config::TraceTime => {}
        Config::FloorEnter | Config::FloorBoth => {
            let mut cmd = Command::new(&env.observer);
            cmd.arg("floor").stderr(Stdio::piped());
            if config == Config::FloorEnter {
                cmd.arg("--enter-only");
            }
            let mut child = cmd.spawn()?;
            // It says so on stderr once attached.
            let mut stderr = child.stderr.take().context("stderr")?;
            let mut buf = [0u8; 256];
            let _ = std::io::Read::read(&mut stderr, &mut buf)?;
            running.child = Some(child);
        }
        Config::AgentWatched => {
            running.child = Some(agent("all", false)?);
            running.cleanup.push(uninstall);
        }
        Config::AgentWatchedCountErrors => {
            running.child = Some(agent("all", true)?);
            running.cleanup.push(uninstall);
        }
        Config::AgentUnwatched => {
            running.child = Some(agent("containers", false)?);
            running.cleanup.push(uninstall);
        }
        Config::Bpftrace => {
            let mut child = Command::new("bpftrace")
                .args(["-e", "tracepoint:raw_syscalls:sys_enter { @[cgroup, args->id] = count(); }"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("bpftrace is needed (cargo xtask setup test installs it)")?;
            let mut out = child.stdout.take().context("stdout")?;
            let mut buf = [0u8; 256];
            // "Attaching 1 probe..."
            let _ = std::io::Read::read(&mut out, &mut buf)?;
            std::thread::sleep(Duration::from_millis(300));
            running.child = Some(child);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    Ok(running)
}

/// The workload runs pinned to one CPU: no migrations in the measurement.
const WORKLOAD_CPU: &str = "1";

/// Runs one workload in the workload cgroup (under `observer trace` for Trace) and returns ns per syscall.
fn workload(env: &Env, config: Config, cgroup: &Path, mode: &str, n: u64) -> anyhow::Result<f64> {
    let tp = env.testprog.display().to_string();
    let out = if matches!(config, Config::Trace | Config::TraceTime) {
        let time: &[&str] = if config == Config::TraceTime { &["--time"] } else { &[] };
        Command::new("taskset")
            .args(["-c", WORKLOAD_CPU])
            .arg(&env.observer)
            .args(["trace", "-o", "/dev/null"])
            .args(time)
            .args(["--", &tp, mode, &n.to_string()])
            .output()?
    } else {
        let script =
            format!("echo $$ > {}/cgroup.procs && exec taskset -c {WORKLOAD_CPU} {tp} {mode} {n}", cgroup.display());
        Command::new("sh").args(["-c", &script]).output()?
    };
    if !out.status.success() {
        bail!("workload {mode} under {} failed: {}", config.name(), String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("workload output {:?}", String::from_utf8_lossy(&out.stdout)))
}

fn wait_for(mut f: impl FnMut() -> bool, what: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn v2_mount() -> anyhow::Result<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo")?;
    mi.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .context("no cgroup2 mount")
}

fn ensure_tracefs() -> anyhow::Result<()> {
    if Path::new("/sys/kernel/tracing/events").exists() {
        return Ok(());
    }
    eprintln!("[bench] mounting tracefs at /sys/kernel/tracing (bpftrace's tracepoints need it)");
    let st = Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]).status()?;
    if !st.success() {
        bail!("could not mount tracefs");
    }
    Ok(())
}

/// No program of observer's (or anyone's) may sit on the raw syscall tracepoints:
/// the bare numbers would not be bare.
fn attached_count() -> anyhow::Result<usize> {
    let out = Command::new("bpftool")
        .args(["link", "show"])
        .output()
        .context("bpftool is needed (cargo xtask setup test installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().filter(|l| l.contains("tp 'sys_enter'") || l.contains("tp 'sys_exit'")).count())
}

fn check_nothing_attached() -> anyhow::Result<()> {
    let out = Command::new("bpftool")
        .args(["link", "show"])
        .output()
        .context("bpftool is needed (cargo xtask setup test installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let attached: Vec<&str> =
        text.lines().filter(|l| l.contains("tp 'sys_enter'") || l.contains("tp 'sys_exit'")).collect();
    if !attached.is_empty() {
        bail!(
            "programs are still attached to the raw syscall tracepoints ({}): the bare numbers would be wrong. \
             Stop running agents and `observer agent --uninstall` (bpftool link show lists them)",
            attached.len()
        );
    }
    Ok(())
}

fn machine() -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_owned();
    let cores = read("/proc/cpuinfo").lines().filter(|l| l.starts_with("processor")).count();
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    json!({
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "cpu": cpu,
        "cores": cores,
        "memory_gib": mem_kb / 1024 / 1024,
        "date": String::from_utf8_lossy(&Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().map(|o| o.stdout).unwrap_or_default()).trim(),
    })
}

fn status(env: &Env) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(&env.observer).args(["status", "--socket"]).arg(env.work.join("agent.sock")).output()?;
    serde_json::from_slice(&out.stdout).context("observer status")
}

/// 10,000 cgroups watched at once, a few syscalls in each; the kernel's own
/// account of the maps' memory (memlock in fdinfo), per cgroup. Then past the
/// capacity: what could not be recorded is counted.
fn memory_target(env: &Env, cgroups: u32) -> anyhow::Result<serde_json::Value> {
    let slots = cgroups + 64;
    let (_running, pid) = watching_agent(env, &["--slots", &slots.to_string()])?;
    let parent = env.v2.join("observer-bench-mem");
    let _ = std::fs::create_dir(&parent);
    let total = cgroups + 200;
    eprintln!("[bench] memory: {total} cgroups ({cgroups} within capacity), a few syscalls in each");
    let start = Instant::now();
    let script = format!(
        "for i in $(seq 0 {}); do mkdir -p {p}/c$i; sh -c \"echo \\$\\$ > {p}/c$i/cgroup.procs; exec true\"; done",
        total - 1,
        p = parent.display()
    );
    let st = Command::new("sh").args(["-c", &script]).status()?;
    if !st.success() {
        bail!("creating cgroups failed");
    }
    std::thread::sleep(Duration::from_secs(2));
    let s = status(env)?;
    let memlock = pinned_memlock(&env.pin_dir)?;
    let _ = pid;
    let used = s["slots_used"].as_u64().unwrap_or(0);
    let _ = Command::new("sh")
        .args(["-c", &format!("for d in {}/c*; do rmdir $d; done; rmdir {}", parent.display(), parent.display())])
        .status();
    let per = memlock as f64 / f64::from(cgroups);
    Ok(json!({
        "cgroups_created": total,
        "slots": slots,
        "slots_used": used,
        "map_memlock_bytes": memlock,
        "bytes_per_cgroup": per,
        "cgroups_overflow": s["cgroups_overflow"],
        "calls_unrecorded": s["calls_unrecorded"],
        "seconds": start.elapsed().as_secs_f64(),
    }))
}

/// `observer agent --watch all` for the memory and CPU targets; its pid.
fn watching_agent(env: &Env, extra: &[&str]) -> anyhow::Result<(Running, u32)> {
    let state = env.work.join("state");
    let _ = std::fs::remove_dir_all(&state);
    let socket = env.work.join("agent.sock");
    let _ = std::fs::remove_file(&socket);
    let child = Command::new(&env.observer)
        .args(["agent", "--watch", "all"])
        .args(extra)
        .arg("--state-dir")
        .arg(&state)
        .arg("--socket")
        .arg(&socket)
        .arg("--pin-dir")
        .arg(&env.pin_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let running = Running {
        child: Some(child),
        cleanup: vec![format!(
            "{} agent --uninstall --pin-dir {} >/dev/null 2>&1",
            env.observer.display(),
            env.pin_dir.display()
        )],
    };
    wait_for(|| socket.exists(), "the agent's socket")?;
    Ok((running, pid))
}

/// The kernel's own figure (`bytes_memlock`) summed over every map the agent
/// pinned: what observer's maps take, whoever holds them open.
fn pinned_memlock(pin_dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(pin_dir).with_context(|| format!("reading {}", pin_dir.display()))? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("link_")) {
            continue;
        }
        let out = Command::new("bpftool").args(["map", "show", "pinned"]).arg(&path).arg("--json").output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("bpftool map show pinned {}", path.display()))?;
        total += v["bytes_memlock"].as_u64().unwrap_or(0);
    }
    Ok(total)
}

/// Twenty containers started at once: how long from a call in a container's
/// start (the runtime's init phases) to the agent knowing it, as `observer
/// status` keeps it, apart from the steady state of `cpu_target`.
fn start_latency(env: &Env) -> anyhow::Result<serde_json::Value> {
    let (_running, _pid) = watching_agent(env, &[])?;
    std::thread::sleep(Duration::from_secs(1));
    let names: Vec<String> = (0..20).map(|i| format!("observer-bench-start-{i}")).collect();
    for n in &names {
        let _ = Command::new("docker").args(["rm", "-f", n]).output();
    }
    let starts: Vec<Child> = names
        .iter()
        .map(|n| {
            Command::new("docker")
                .args(["run", "-d", "--network", "none", "--name", n, "observer-busybox", "sh", "-c", "sleep 2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .collect::<Result<_, _>>()
        .context("docker is needed (cargo xtask setup test installs it)")?;
    for mut c in starts {
        c.wait()?;
    }
    std::thread::sleep(Duration::from_secs(4));
    let s = status(env)?;
    for n in &names {
        let _ = Command::new("docker").args(["rm", "-f", n]).output();
    }
    let ms = |key: &str| s[key].as_f64().map(|ns| ns / 1e6);
    Ok(json!({
        "containers": names.len(),
        "first_seen_at_start_events": s["first_seen_at_start_events"],
        "first_seen_at_start_latency_median_ms": ms("first_seen_at_start_latency_median_ns"),
        "first_seen_at_start_latency_p99_ms": ms("first_seen_at_start_latency_p99_ns"),
    }))
}

/// 100 cgroups making 1M syscalls/s together; the agent's CPU time over the
/// window, the kernel's loss counter, and the first-seen latency.
fn cpu_target(env: &Env) -> anyhow::Result<serde_json::Value> {
    let socket = env.work.join("agent.sock");
    let (_running, pid) = watching_agent(env, &[])?;
    std::thread::sleep(Duration::from_secs(1));
    let parent = env.v2.join("observer-bench-cpu");
    let _ = std::fs::create_dir(&parent);
    // Workers run 16 s; the agent's CPU is taken over the 10 s in the middle, in
    // the steady state (the start of 100 cgroups is a burst of its own).
    let seconds = 16;
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for i in 0..100 {
        let dir = parent.join(format!("c{i}"));
        let _ = std::fs::create_dir(&dir);
        let script =
            format!("echo $$ > {}/cgroup.procs && exec {} rate 10000 {seconds}", dir.display(), env.testprog.display());
        workers.push(Command::new("sh").args(["-c", &script]).spawn()?);
    }
    std::thread::sleep(Duration::from_secs(4));
    let cpu_before = cpu_ticks(pid)?;
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let cpu_after = cpu_ticks(pid)?;
    let window = window.elapsed().as_secs_f64();
    for mut w in workers {
        w.wait()?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let s = status(env)?;
    let hz = 100.0;
    let agent_cpu = (cpu_after - cpu_before) as f64 / hz / window * 100.0;
    let calls: u64 = {
        let out = Command::new(&env.observer).args(["ps", "--json", "--socket"]).arg(&socket).output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["cgroup_path"].as_str().is_some_and(|p| p.contains("observer-bench-cpu")))
            .map(|c| c["calls"].as_u64().unwrap_or(0))
            .sum()
    };
    let _ = Command::new("sh")
        .args(["-c", &format!("for d in {}/c*; do rmdir $d; done; rmdir {}", parent.display(), parent.display())])
        .status();
    let median_ms = s["first_seen_latency_median_ns"].as_f64().map(|n| n / 1e6);
    Ok(json!({
        "seconds": elapsed,
        "cpu_window_seconds": window,
        "calls_recorded": calls,
        "calls_per_second": calls as f64 / elapsed,
        "agent_cpu_percent": agent_cpu,
        "events_lost": s["events_lost"],
        "first_seen_events": s["first_seen_events"],
        "first_seen_latency_median_ms": median_ms,
        "first_seen_latency_p99_ms": s["first_seen_latency_p99_ns"].as_f64().map(|n| n / 1e6),
    }))
}

fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the comm.
    Ok(f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
}

fn markdown(r: &serde_json::Value) -> String {
    let mut s = String::new();
    let m = &r["machine"];
    let _ = writeln!(s, "# observer benchmark\n");
    let _ = writeln!(
        s,
        "Measured by `cargo xtask bench` on {} ({} cores, {} GiB), kernel {}, {}. {} rounds, configurations alternated, medians; {} getppid calls and {} file-mix iterations (openat, write, lseek, read, close) per measurement.\n",
        m["cpu"].as_str().unwrap_or(""),
        m["cores"],
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or(""),
        m["date"].as_str().unwrap_or(""),
        r["rounds"],
        r["calls"],
        r["mix_iterations"]
    );
    if r["other_links_attached_at_start"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            s,
            "**Run with `--allow-attached`: {} other links were attached to the raw syscall tracepoints** (other agents or tests on this machine); their cost is in every row, bare included: compare added costs and ratios, not absolute numbers.\n",
            r["other_links_attached_at_start"]
        );
    }
    let _ = writeln!(s, "| configuration | getppid ns/call | added | file mix ns/syscall | added |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
    for row in r["results"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:+.1} | {:.1} | {:+.1} |",
            row["config"].as_str().unwrap_or(""),
            row["getppid_ns"].as_f64().unwrap_or(f64::NAN),
            row["getppid_added_ns"].as_f64().unwrap_or(f64::NAN),
            row["mix_ns"].as_f64().unwrap_or(f64::NAN),
            row["mix_added_ns"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let _ = writeln!(
        s,
        "| strace -f -c (20,000 calls, 3 runs) | {:.1} | {:+.1} | | |\n",
        r["strace_getppid_ns"].as_f64().unwrap_or(f64::NAN),
        r["strace_added_ns"].as_f64().unwrap_or(f64::NAN)
    );
    let _ = writeln!(s, "## Targets\n\n| target | ratio | limit | result |\n| --- | ---: | ---: | --- |");
    for t in r["targets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {} |",
            t["target"].as_str().unwrap_or(""),
            t["ratio"].as_f64().unwrap_or(f64::NAN),
            t["limit"].as_f64().unwrap_or(f64::NAN),
            if t["pass"].as_bool() == Some(true) { "PASS" } else { "FAIL" }
        );
    }
    let _ = writeln!(
        s,
        "\nIn-kernel time per program run (kernel.bpf_stats_enabled; the statistics themselves add about the floor programs' figure to every run):\n\n```json\n{}\n```",
        serde_json::to_string_pretty(&r["program_ns_per_run_with_bpf_stats"]).unwrap_or_default()
    );
    if r["extra"].as_object().is_some_and(|o| !o.is_empty()) {
        let _ = writeln!(
            s,
            "\n## Details\n\n```json\n{}\n```",
            serde_json::to_string_pretty(&r["extra"]).unwrap_or_default()
        );
    }
    s
}
