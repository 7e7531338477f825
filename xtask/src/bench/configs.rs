//! The per-syscall configurations (bare, the floor, observer's modes, its peers): how
//! each is started, the workload run under it, the rounds that alternate them, and
//! the programs' own time per run from the kernel's BPF statistics.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::{
    BenchArgs,
    env::{Env, check_nothing_attached, median, wait_for},
    running::{Running, uninstall},
};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Config {
    Bare,
    FloorEnter,
    FloorBoth,
    AgentWatched,
    AgentUnwatched,
    AgentWatchedFiltered,
    AgentWatchedDecided,
    AgentWatchedCountErrors,
    Trace,
    TraceTime,
    Bpftrace,
}

pub const ALL: [Config; 11] = [
    Config::Bare,
    Config::FloorEnter,
    Config::FloorBoth,
    Config::AgentWatched,
    Config::AgentUnwatched,
    Config::AgentWatchedFiltered,
    Config::AgentWatchedDecided,
    Config::AgentWatchedCountErrors,
    Config::Trace,
    Config::TraceTime,
    Config::Bpftrace,
];

impl Config {
    pub fn name(self) -> &'static str {
        match self {
            Config::Bare => "bare",
            Config::FloorEnter => "floor: empty sys_enter",
            Config::FloorBoth => "floor: empty sys_enter + sys_exit",
            Config::AgentWatched => "observer agent, watched cgroup",
            Config::AgentUnwatched => "observer agent, unwatched cgroup",
            Config::AgentWatchedFiltered => "observer agent, watched, under a filter",
            Config::AgentWatchedDecided => "observer agent, watched, filter decides",
            Config::AgentWatchedCountErrors => "observer agent --count-errors, watched",
            Config::Trace => "observer trace",
            Config::TraceTime => "observer trace --time",
            Config::Bpftrace => "bpftrace count map",
        }
    }
}

/// ns per syscall of every configuration, one figure per round.
pub struct PerSyscall {
    pub getppid: BTreeMap<Config, Vec<f64>>,
    pub mix: BTreeMap<Config, Vec<f64>>,
    /// Per configuration, ns per run of each of its programs, one figure per
    /// round of `IN_KERNEL`.
    pub program_ns: BTreeMap<Config, BTreeMap<String, Vec<f64>>>,
    pub strace: Vec<f64>,
}

impl PerSyscall {
    /// Added getppid cost against each round's bare run, median over rounds: slow
    /// drift of the machine cancels out within a round.
    pub fn added(&self, c: Config) -> f64 {
        let per_round: Vec<f64> =
            self.getppid[&c].iter().zip(&self.getppid[&Config::Bare]).map(|(v, b)| v - b).collect();
        median(&per_round)
    }

    pub fn rows(&self) -> Vec<serde_json::Value> {
        let bare_m = median(&self.mix[&Config::Bare]);
        ALL.iter()
            .map(|c| {
                json!({
                    "config": c.name(),
                    "getppid_ns": median(&self.getppid[c]),
                    "getppid_added_ns": self.added(*c),
                    "mix_ns": median(&self.mix[c]),
                    "mix_added_ns": median(&self.mix[c]) - bare_m,
                    "getppid_runs": self.getppid[c],
                })
            })
            .collect()
    }

    /// ns per run of `program` under `config`, per round (empty when it was not measured).
    fn program_runs(&self, config: Config, program: &str) -> &[f64] {
        self.program_ns.get(&config).and_then(|m| m.get(program)).map_or(&[], Vec::as_slice)
    }

    /// What `config`'s `sys_enter` adds to the empty one, in kernel: each
    /// round's difference (the two ran seconds apart), median over rounds.
    /// Single runs of the same program move by 5-10 ns on this VM; pairing
    /// within a round cancels the slow drift, the median the outliers.
    pub fn enter_over_floor(&self, config: Config) -> f64 {
        let over: Vec<f64> = self
            .program_runs(config, "sys_enter")
            .iter()
            .zip(self.program_runs(Config::FloorBoth, "floor_enter"))
            .map(|(ours, floor)| ours - floor)
            .collect();
        if over.is_empty() { f64::NAN } else { median(&over) }
    }

    /// The in-kernel figures for the report: per configuration and program,
    /// the median and every round's figure.
    pub fn program_report(&self) -> serde_json::Value {
        let programs = |m: &BTreeMap<String, Vec<f64>>| -> serde_json::Map<String, serde_json::Value> {
            m.iter().map(|(p, runs)| (p.clone(), json!({"median": median(runs), "rounds": runs}))).collect()
        };
        json!(
            self.program_ns
                .iter()
                .map(|(c, m)| (c.name().to_owned(), json!(programs(m))))
                .collect::<serde_json::Map<_, _>>()
        )
    }
}

/// The configurations whose programs' own time is measured: the floor, then
/// observer's paths (a container's processes run under a seccomp filter: one
/// that allows getppid whatever its arguments, as Docker's default does, and
/// one that decides on them, whose calls each get an enter note).
pub const IN_KERNEL: [Config; 5] = [
    Config::FloorBoth,
    Config::AgentWatched,
    Config::AgentUnwatched,
    Config::AgentWatchedFiltered,
    Config::AgentWatchedDecided,
];

/// Rounds of the in-kernel measurement (the empty programs, then observer's
/// watched and unwatched), at least: each takes a few seconds.
const IN_KERNEL_ROUNDS: usize = 7;

/// Every configuration once per round, in turn; then the programs' own times,
/// alternated the same way; then strace.
pub fn measure(args: &BenchArgs, env: &Env) -> anyhow::Result<PerSyscall> {
    let workload_cg = env.v2.join("observer-bench-workload");
    let _ = std::fs::create_dir(&workload_cg);
    // Removed however this ends (a bail included); its processes have exited by then.
    let _remove = RemoveOnDrop(workload_cg.clone());
    let mut r =
        PerSyscall { getppid: BTreeMap::new(), mix: BTreeMap::new(), program_ns: BTreeMap::new(), strace: Vec::new() };
    for round in 0..args.rounds {
        eprintln!("[bench] round {}/{}", round + 1, args.rounds);
        for &config in &ALL {
            let running = start(config, env)?;
            let g = workload(env, config, &workload_cg, getppid_mode(config), args.calls)?;
            let m = workload(env, config, &workload_cg, "bench-mix", args.mix)?;
            drop(running);
            if config == Config::Bare && !args.allow_attached {
                check_nothing_attached()?;
            }
            eprintln!("[bench]   {:<42} getppid {g:>8.1} ns   mix {m:>8.1} ns", config.name());
            r.getppid.entry(config).or_default().push(g);
            r.mix.entry(config).or_default().push(m);
        }
    }
    for round in 0..args.rounds.max(IN_KERNEL_ROUNDS) {
        eprintln!("[bench] in-kernel round {}/{}", round + 1, args.rounds.max(IN_KERNEL_ROUNDS));
        for config in IN_KERNEL {
            let running = start(config, env)?;
            set_bpf_stats(true)?;
            let _ = workload(env, config, &workload_cg, getppid_mode(config), args.calls)?;
            let per_run = program_times(config, env)?;
            set_bpf_stats(false)?;
            drop(running);
            eprintln!("[bench]   {:<42} in-kernel ns per run: {per_run:?}", config.name());
            for (program, ns) in per_run {
                r.program_ns.entry(config).or_default().entry(program).or_default().push(ns);
            }
        }
    }
    // strace: a few runs of a shorter workload.
    for _ in 0..3 {
        let out = Command::new("strace")
            .args(["-f", "-c", "-o", "/dev/null"])
            .arg(&env.testprog)
            .args(["bench-getppid", "20000"])
            .output()
            .context("strace is needed (cargo xtask setup test installs it)")?;
        r.strace.push(String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().unwrap_or(f64::NAN));
    }
    Ok(r)
}

/// The testprog mode of `config`'s getppid workload.
fn getppid_mode(config: Config) -> &'static str {
    match config {
        Config::AgentWatchedFiltered => "bench-getppid-filtered",
        Config::AgentWatchedDecided => "bench-getppid-decided",
        _ => "bench-getppid",
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        super::env::remove_cgroup_tree(&self.0);
    }
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

fn start(config: Config, env: &Env) -> anyhow::Result<Running> {
    let mut running = Running { child: None, cleanup: Vec::new() };
    let agent = |watch: &str, count_errors: bool| -> anyhow::Result<std::process::Child> {
        let state = env.state_dir();
        let _ = std::fs::remove_dir_all(&state);
        let socket = env.socket();
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
        Config::AgentWatched | Config::AgentWatchedFiltered | Config::AgentWatchedDecided => {
            running.child = Some(agent("all", false)?);
            running.cleanup.push(uninstall(env));
        }
        Config::AgentWatchedCountErrors => {
            running.child = Some(agent("all", true)?);
            running.cleanup.push(uninstall(env));
        }
        Config::AgentUnwatched => {
            running.child = Some(agent("containers", false)?);
            running.cleanup.push(uninstall(env));
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
const WORKLOAD_CPU: &str = super::workers::WORKER_CPU;

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
