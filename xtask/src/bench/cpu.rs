//! The agent under a steady load of 100 busy cgroups (its CPU, lost events, the
//! first-seen latency) and with 20 containers starting at once.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::json;

use super::{
    env::{Env, TICKS_PER_SECOND, cpu_ticks, remove_cgroup_tree},
    running::{status, watching_agent},
};

/// Twenty containers started at once: how long from a call in a container's
/// start (the runtime's init phases) to the agent knowing it, as `observer
/// status` keeps it, apart from the steady state of `cpu_target`.
pub fn start_latency(env: &Env) -> anyhow::Result<serde_json::Value> {
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
pub fn cpu_target(env: &Env) -> anyhow::Result<serde_json::Value> {
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
    let agent_cpu = (cpu_after - cpu_before) as f64 / TICKS_PER_SECOND / window * 100.0;
    let calls: u64 = {
        let out = Command::new(&env.observer).args(["ps", "--json", "--socket"]).arg(env.socket()).output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["cgroup_path"].as_str().is_some_and(|p| p.contains("observer-bench-cpu")))
            .map(|c| c["calls"].as_u64().unwrap_or(0))
            .sum()
    };
    remove_cgroup_tree(&parent);
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
