//! The agent with the fleet's containers (10,000 by default): its memory, its CPU
//! while 1M syscalls/s are spread over all of them, how fast `ps` and `profile show`
//! answer, the state dir's size, and how long a restart takes (kill -9, start again
//! on the same state dir and pins, until `status` answers with every record loaded).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::{
    env::{Env, TICKS_PER_SECOND, cpu_ticks, median, rss_bytes},
    fleet::Fleet,
    running::{agent_keeping_state, kill, status, wait_quiet},
};

/// Answers timed per request.
const ASKS: usize = 10;
/// The load: every worker takes a turn each second with this many calls.
const RATE_SECONDS: u32 = 10;

pub fn measure(env: &Env, fleet: &mut Fleet) -> anyhow::Result<serde_json::Value> {
    let containers = fleet.workers.cgroups;
    let rss_idle = rss_bytes(fleet.pid)?;
    let ps = time_answers(env, &["ps", "--json"])?;
    let one = fleet.workers.cgroup_path(env, containers / 2);
    let profile = time_answers(env, &["profile", "show", &one, "--json"])?;

    // 1M syscalls/s over all of them: each worker's turn comes once a second.
    let per_turn = (1_000_000 / containers).max(1) as u32;
    let lost_before = status(env)?["events_lost"].as_u64().unwrap_or(0);
    let before = cpu_ticks(fleet.pid)?;
    let (calls, seconds) = fleet.workers.rate(RATE_SECONDS, per_turn)?;
    let ticks = cpu_ticks(fleet.pid)? - before;
    let rss_loaded = rss_bytes(fleet.pid)?;
    let s = status(env)?;
    wait_quiet(fleet.pid, 2, Duration::from_secs(60))?;

    let state = env.state_dir();
    let du = |flag: &str| -> anyhow::Result<u64> {
        let out = Command::new("du").args(["-s", flag]).arg(&state).output().context("du")?;
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().and_then(|v| v.parse().ok()).context("du output")
    };
    let state_bytes = du("-b")?;
    let state_disk = du("-B1")?;
    let state_files = walk_count(&state);
    let restart = restart(env, fleet)?;
    Ok(json!({
        "containers": containers,
        "agent_rss_bytes_idle": rss_idle,
        "agent_rss_bytes_under_load": rss_loaded,
        "load_calls": calls,
        "load_seconds": seconds,
        "load_calls_per_second": calls as f64 / seconds,
        "agent_cpu_percent_under_load": ticks as f64 / TICKS_PER_SECOND / seconds * 100.0,
        // Lost while the fleet was made (every cgroup's ~80 first uses at once) and
        // during the load (nothing new: none expected).
        "events_lost_while_building": lost_before,
        "events_lost_under_load": s["events_lost"].as_u64().unwrap_or(0).saturating_sub(lost_before),
        "seconds_to_build": fleet.seconds_to_build,
        "ps_ms": ps,
        "profile_show_ms": profile,
        "profile_show_cgroup": one,
        "state_dir_bytes": state_bytes,
        "state_dir_disk_bytes": state_disk,
        "state_dir_files": state_files,
        "restart": restart,
    }))
}

/// `observer ARGS --socket S`, ASKS times: median and max wall time in ms (the
/// client's start included, as a user sees it).
fn time_answers(env: &Env, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let mut ms = Vec::new();
    for _ in 0..ASKS {
        let t0 = Instant::now();
        let out = Command::new(&env.observer).args(args).arg("--socket").arg(env.socket()).output()?;
        let took = t0.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            bail!("observer {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        ms.push(took);
    }
    Ok(json!({
        "median": median(&ms),
        "max": ms.iter().copied().fold(0.0, f64::max),
        "runs": ms,
    }))
}

/// kill -9 the agent, start it again on the same state dir and pins, and time it
/// until `observer status` answers with as many records as before.
fn restart(env: &Env, fleet: &mut Fleet) -> anyhow::Result<serde_json::Value> {
    let records = status(env)?["containers"].as_u64().unwrap_or(0);
    // The pins must outlive the killed agent: no uninstall for this one.
    fleet.agent.cleanup.clear();
    let mut child = fleet.agent.child.take().context("the fleet's agent")?;
    kill(child.id() as i32, 9);
    let _ = child.wait();
    let slots = fleet.slots.to_string();
    let t0 = Instant::now();
    let (agent, pid) = agent_keeping_state(env, &["--slots", &slots])?;
    let socket_ms = t0.elapsed().as_secs_f64() * 1000.0;
    fleet.agent = agent;
    fleet.pid = pid;
    let mut first_answer_ms = None;
    loop {
        if let Ok(s) = status(env) {
            first_answer_ms.get_or_insert(t0.elapsed().as_secs_f64() * 1000.0);
            if s["containers"].as_u64().unwrap_or(0) >= records {
                let all_ms = t0.elapsed().as_secs_f64() * 1000.0;
                // Once its start-up work is done: the records as they sit in a heap
                // that never held the fleet's build (what a node's agent carries
                // after a restart, and what its memory limit must hold).
                wait_quiet(fleet.pid, 2, Duration::from_secs(60))?;
                let rss = rss_bytes(fleet.pid)?;
                return Ok(json!({
                    "rss_bytes_after": rss,
                    "rss_bytes_per_record_after": rss / records.max(1),
                    "records_before": records,
                    "records_after": s["containers"],
                    "reused_pinned_programs": s["reused_pinned_programs"],
                    "socket_ms": socket_ms,
                    "first_status_ms": first_answer_ms,
                    "all_records_ms": all_ms,
                }));
            }
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("after a restart the agent did not load its {records} records within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn walk_count(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| if e.file_type().is_ok_and(|t| t.is_dir()) { walk_count(&e.path()) } else { 1 })
        .sum()
}
