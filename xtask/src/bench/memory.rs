//! Kernel memory per watched container: the kernel's own account (`bytes_memlock`)
//! of every map the agent pinned, over the fleet's containers, each of which has
//! made about 80 distinct syscalls (a sparse layout reports only what it holds, so
//! idle cgroups would flatter it). Plus the size of one slot as compiled.

use std::{path::Path, process::Command};

use anyhow::Context as _;
use serde_json::json;

use super::{env::Env, fleet::Fleet, running::status};

pub fn measure(env: &Env, fleet: &Fleet) -> anyhow::Result<serde_json::Value> {
    let s = status(env)?;
    let maps = pinned_maps(&env.pin_dir)?;
    let memlock: u64 = maps.iter().map(|(_, b)| b).sum();
    let containers = fleet.workers.cgroups;
    let used = s["slots_used"].as_u64().unwrap_or(0);
    let syscalls = distinct_per_cgroup(env, fleet)?;
    Ok(json!({
        "containers": containers,
        "slots": fleet.slots,
        "slots_used": used,
        "distinct_syscalls_per_container_median": super::env::median(&syscalls),
        "distinct_syscalls_per_container_min": syscalls.iter().copied().fold(f64::INFINITY, f64::min),
        "map_memlock_bytes": memlock,
        "bytes_per_container": memlock as f64 / containers as f64,
        "bytes_per_slot_used": memlock as f64 / used.max(1) as f64,
        "slot_size_bytes": std::mem::size_of::<observer_common::slot::Slot>(),
        "maps": maps.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "cgroups_overflow": s["cgroups_overflow"],
        "calls_unrecorded": s["calls_unrecorded"],
    }))
}

/// The distinct syscalls the agent knows of each of the fleet's cgroups (`ps`).
fn distinct_per_cgroup(env: &Env, fleet: &Fleet) -> anyhow::Result<Vec<f64>> {
    let out = Command::new(&env.observer).args(["ps", "--json", "--socket"]).arg(env.socket()).output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("observer ps --json")?;
    let prefix = fleet.workers.cgroup_path(env, 0);
    let prefix = prefix.trim_end_matches("c0");
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["cgroup_path"].as_str().is_some_and(|p| p.starts_with(prefix)))
        .filter_map(|c| c["syscalls"].as_f64())
        .collect())
}

/// The kernel's figure (`bytes_memlock`) of every map the agent pinned: what
/// observer's maps take, whoever holds them open. (name, bytes).
pub fn pinned_maps(pin_dir: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let mut maps = Vec::new();
    for entry in std::fs::read_dir(pin_dir).with_context(|| format!("reading {}", pin_dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        if name.starts_with("link_") || path.is_dir() {
            continue;
        }
        let out = Command::new("bpftool").args(["map", "show", "pinned"]).arg(&path).arg("--json").output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("bpftool map show pinned {}", path.display()))?;
        // Pinned programs answer with an error object, not a map.
        if let Some(bytes) = v["bytes_memlock"].as_u64() {
            maps.push((name, bytes));
        }
    }
    Ok(maps)
}
