//! Cost against the number of busy cgroups: the same P worker processes spread over
//! 1, 10, ... 10,000 plain cgroups, taking turns so that one syscall batch runs at a
//! time and each cgroup's kernel data is cold when its turn comes. Each count is
//! measured bare and under `observer agent --watch all`, alternated over rounds;
//! the added cost is the per-round difference, median over rounds.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use super::{
    BenchArgs,
    env::{Env, check_nothing_attached, median},
    running::{fresh_parent, status, wait_quiet, watching_agent},
    workers::Workers,
};

/// Slots beyond the bench's cgroups: with `--watch all` every cgroup on the machine
/// that makes a syscall takes one (the bench's own, system services).
const SLOT_MARGIN: usize = 256;

pub fn measure(args: &BenchArgs, env: &Env) -> anyhow::Result<serde_json::Value> {
    let counts = &args.scale_cgroups;
    let workers = args.scale_workers;
    if let Some(&c) = counts.iter().find(|&&c| c == 0 || c > workers) {
        bail!("--scale-cgroups: {c} is not between 1 and --scale-workers ({workers})");
    }
    let _pids = PidRoom::make(workers + 2000)?;
    let mut rows = Vec::new();
    for &cgroups in counts {
        eprintln!(
            "[bench] busy cgroups: {cgroups} ({workers} workers taking turns, {} getppid per turn)",
            args.scale_batch
        );
        let parent = fresh_parent(env, "observer-bench-scale")?;
        let mut w = Workers::start(env, &parent, cgroups, workers)?;
        let (mut bare, mut agent) = (Vec::new(), Vec::new());
        for round in 0..args.scale_rounds {
            if !args.allow_attached {
                check_nothing_attached()?;
            }
            w.run(1, args.scale_batch)?;
            let b = w.run(args.scale_turns, args.scale_batch)?;
            let slots = (cgroups + SLOT_MARGIN).to_string();
            let (running, pid) = watching_agent(env, &["--slots", &slots])?;
            // The first turn gives every cgroup its slot; the agent then makes its
            // records. Measure once it has them all and has settled.
            w.run(1, args.scale_batch)?;
            wait_recorded(env, cgroups)?;
            wait_quiet(pid, 2, Duration::from_secs(90))?;
            let a = w.run(args.scale_turns, args.scale_batch)?;
            let s = status(env)?;
            drop(running);
            if s["cgroups_overflow"].as_u64().unwrap_or(0) > 0 {
                bail!("busy cgroups: {} cgroups found every slot taken ({slots} slots)", s["cgroups_overflow"]);
            }
            eprintln!(
                "[bench]   round {}/{}: bare {b:.1} ns, agent {a:.1} ns, added {:+.1} ns",
                round + 1,
                args.scale_rounds,
                a - b
            );
            bare.push(b);
            agent.push(a);
        }
        drop(w);
        let added: Vec<f64> = agent.iter().zip(&bare).map(|(a, b)| a - b).collect();
        rows.push(json!({
            "cgroups": cgroups,
            "bare_ns": median(&bare),
            "agent_ns": median(&agent),
            "added_ns": median(&added),
            "bare_runs": bare,
            "agent_runs": agent,
            "added_runs": added,
        }));
    }
    Ok(json!({
        "workers": workers,
        "calls_per_turn": args.scale_batch,
        "turns_per_measurement": args.scale_turns,
        "rounds": args.scale_rounds,
        "rows": rows,
    }))
}

/// Until the agent's slots hold at least `cgroups` cgroups (the bench's).
fn wait_recorded(env: &Env, cgroups: usize) -> anyhow::Result<()> {
    for _ in 0..600 {
        let used = status(env)?["slots_used"].as_u64().unwrap_or(0);
        if used >= cgroups as u64 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the agent did not record {cgroups} cgroups within 60 s")
}

/// Room for `needed` more processes under kernel.pid_max, raised if it is short and
/// put back when dropped.
pub struct PidRoom {
    restore: Option<String>,
}

const PID_MAX: &str = "/proc/sys/kernel/pid_max";

impl PidRoom {
    pub fn make(needed: usize) -> anyhow::Result<PidRoom> {
        let old = std::fs::read_to_string(PID_MAX).context("reading kernel.pid_max")?;
        let max: usize = old.trim().parse().context("kernel.pid_max")?;
        let running = std::fs::read_dir("/proc")?
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
            .count();
        if running + needed <= max {
            return Ok(PidRoom { restore: None });
        }
        let want = (running + needed).next_power_of_two();
        eprintln!("[bench] raising kernel.pid_max from {max} to {want} for the workers (put back afterwards)");
        std::fs::write(PID_MAX, want.to_string()).context("raising kernel.pid_max")?;
        Ok(PidRoom { restore: Some(old) })
    }
}

impl Drop for PidRoom {
    fn drop(&mut self) {
        if let Some(old) = &self.restore {
            let _ = std::fs::write(PID_MAX, old.trim());
        }
    }
}
