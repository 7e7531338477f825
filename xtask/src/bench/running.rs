//! What the bench starts: a configuration alive while its value lives (`Running`),
//! and `observer agent --watch all` with the bench's own socket, state dir and pins.
//! Every agent ends with `observer agent --uninstall --pin-dir ...`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::env::{Env, wait_for};

/// A configuration under test, alive while the value lives.
pub struct Running {
    pub child: Option<Child>,
    pub cleanup: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(c.id() as i32, 15);
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

pub fn kill(pid: i32, sig: i32) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

/// The shell command that detaches and unpins everything the bench's agents pinned.
pub fn uninstall(env: &Env) -> String {
    format!("{} agent --uninstall --pin-dir {} >/dev/null 2>&1", env.observer.display(), env.pin_dir.display())
}

/// Starts `observer agent --watch all` (plus `extra`) with an empty state dir; its pid.
pub fn watching_agent(env: &Env, extra: &[&str]) -> anyhow::Result<(Running, u32)> {
    let _ = std::fs::remove_dir_all(env.state_dir());
    agent_keeping_state(env, extra)
}

/// Starts `observer agent --watch all` (plus `extra`) on whatever the state dir and
/// the pins hold (a restart); its pid.
pub fn agent_keeping_state(env: &Env, extra: &[&str]) -> anyhow::Result<(Running, u32)> {
    let socket = env.socket();
    let _ = std::fs::remove_file(&socket);
    // Every agent of a run appends to one log, kept for a look afterwards
    // (`OBSERVER_LOG=observer=debug` shows each answer's timings).
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.work.join("agent.log"))
        .context("opening the bench's agent log")?;
    let child = Command::new(&env.observer)
        .args(["agent", "--watch", "all"])
        .args(extra)
        .arg("--state-dir")
        .arg(env.state_dir())
        .arg("--socket")
        .arg(&socket)
        .arg("--pin-dir")
        .arg(&env.pin_dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting observer agent")?;
    let pid = child.id();
    let running = Running { child: Some(child), cleanup: vec![uninstall(env)] };
    wait_for(|| socket.exists(), "the agent's socket")?;
    Ok((running, pid))
}

/// `observer status` of the bench's agent.
pub fn status(env: &Env) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(&env.observer).args(["status", "--socket"]).arg(env.socket()).output()?;
    serde_json::from_slice(&out.stdout).context("observer status")
}

/// Waits until the agent has been nearly idle (at most `ticks` clock ticks of CPU in
/// half a second) or `limit` has passed: after a burst of new cgroups it writes their
/// records, and a measurement should not share the machine with that.
pub fn wait_quiet(pid: u32, ticks: u64, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut before = super::env::cpu_ticks(pid)?;
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(500));
        let now = super::env::cpu_ticks(pid)?;
        if now - before <= ticks {
            return Ok(());
        }
        before = now;
    }
    eprintln!("[bench] the agent was still busy after {} s; going on", limit.as_secs());
    Ok(())
}

/// The directory the bench's cgroups live under, made fresh.
pub fn fresh_parent(env: &Env, name: &str) -> anyhow::Result<PathBuf> {
    let parent = env.v2.join(name);
    super::env::remove_cgroup_tree(&parent);
    std::fs::create_dir(&parent).with_context(|| format!("creating {}", parent.display()))?;
    Ok(parent)
}
