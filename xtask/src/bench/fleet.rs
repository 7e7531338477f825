//! The node with many containers for the memory and agent-at-scale sections: N plain
//! cgroups with one sleeping worker each, every one of which has made about 80
//! distinct syscalls, all recorded at once by `observer agent --watch all`.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::{
    env::Env,
    running::{Running, fresh_parent, status, wait_quiet, watching_agent},
    workers::Workers,
};

/// Slots beyond the fleet's cgroups, for the other cgroups `--watch all` records.
pub const SLOT_MARGIN: usize = 64;

pub struct Fleet {
    pub agent: Running,
    pub pid: u32,
    pub workers: Workers,
    pub slots: usize,
    pub seconds_to_build: f64,
}

impl Fleet {
    pub fn start(env: &Env, cgroups: usize) -> anyhow::Result<Fleet> {
        let t0 = Instant::now();
        eprintln!("[bench] {cgroups} plain cgroups, one worker each, ~80 distinct syscalls in each");
        let parent = fresh_parent(env, "observer-bench-fleet")?;
        let slots = cgroups + SLOT_MARGIN;
        let (agent, pid) = watching_agent(env, &["--slots", &slots.to_string()])?;
        let mut workers = Workers::start(env, &parent, cgroups, cgroups)?;
        workers.distinct()?;
        let mut fleet = Fleet { agent, pid, workers, slots, seconds_to_build: 0.0 };
        fleet.wait_recorded(env, cgroups)?;
        wait_quiet(pid, 2, Duration::from_secs(120))?;
        fleet.seconds_to_build = t0.elapsed().as_secs_f64();
        Ok(fleet)
    }

    fn wait_recorded(&self, env: &Env, cgroups: usize) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            let s = status(env)?;
            if s["cgroups_overflow"].as_u64().unwrap_or(0) > 0 {
                bail!("{} cgroups found every slot taken ({} slots)", s["cgroups_overflow"], self.slots);
            }
            if s["slots_used"].as_u64().unwrap_or(0) >= cgroups as u64 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("the agent did not record {cgroups} cgroups within 120 s")
    }
}
