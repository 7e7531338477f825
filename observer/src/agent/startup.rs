//! What the agent does once at start: read its settings (enforce.json,
//! `--baseline`), check the cgroup mount, and take up what the kernel and the
//! runtimes did while no agent ran (`reconcile`).

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
};

use anyhow::Context as _;
use observer_contract::{
    rules::{EnforceRule, Target},
    views::State,
};

use super::{Agent, BaselineRule, core, identity};
use crate::clock::now;

/// The enforcement rules kept in `enforce.json`. A file that cannot be read is
/// set aside and the agent refuses to start while it is there: starting with
/// the rules silently dropped would switch enforcement off without a word.
pub(super) fn load_enforcements(state_dir: &Path) -> anyhow::Result<Vec<EnforceRule>> {
    let file = state_dir.join("enforce.json");
    let aside = state_dir.join("enforce.json.corrupt");
    let decide = "repair it and move it back to enforce.json, or delete it to start without those rules";
    if aside.exists() {
        anyhow::bail!("{} holds enforcement rules that could not be read; {decide}", aside.display());
    }
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    match serde_json::from_slice(&bytes) {
        Ok(rules) => Ok(rules),
        Err(e) => {
            std::fs::rename(&file, &aside).with_context(|| format!("setting {} aside", file.display()))?;
            anyhow::bail!("{} is corrupt ({e}); it was moved to {}: {decide}", file.display(), aside.display())
        }
    }
}

/// Containers are named by finding their cgroup ids in the v2 mount: a mount
/// of a namespace's subtree (cgroup2 mounted inside a private cgroup
/// namespace, instead of the host's tree bound in) cannot name them.
pub(super) fn warn_unless_whole_tree(mount: &Path) {
    match observer_probe::v2_mount::shows_whole_tree(mount) {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "the cgroup v2 mount at {} shows a subtree, not the host's whole hierarchy: cgroups outside it \
             cannot be named or confirmed (mount the host's cgroup v2 tree there, as deploy/observer.yaml does)",
            mount.display()
        ),
        Err(e) => tracing::warn!("the cgroup v2 mount at {}: {e}", mount.display()),
    }
}

pub(super) fn parse_baselines(specs: &[String]) -> anyhow::Result<Vec<BaselineRule>> {
    let mut out = Vec::new();
    for spec in specs {
        let expected = "expected NAME=FILE, or KIND:VALUE=FILE with KIND name, image, pod, namespace or label";
        let kind = spec.split_once(':').map(|(k, _)| k);
        let matcher = matches!(kind, Some("name" | "image" | "pod" | "namespace" | "label"));
        // label:KEY=VALUE=FILE: the file is after the last `=`.
        let split = if matcher { spec.rsplit_once('=') } else { spec.split_once('=') };
        let (who, file) = split.with_context(|| format!("--baseline {spec:?}: {expected}"))?;
        let target = if matcher {
            Target::parse_match(who).map_err(|e| anyhow::anyhow!("--baseline {e}"))?
        } else {
            Target::Name(who.to_owned())
        };
        let rows = crate::profile_rows::allowed_rows_of_file(Path::new(file), None)
            .with_context(|| format!("--baseline {spec:?}"))?;
        out.push(BaselineRule { target, rows, source: file.to_owned() });
    }
    Ok(out)
}

/// After a restart: slots the kernel filled while no agent ran, and containers
/// that were already running before the first start.
pub(super) async fn reconcile(agent: &mut Agent) {
    // Records whose slot still holds their cgroup keep it.
    let mut owned: HashMap<u32, (String, u64)> = HashMap::new();
    for record in agent.containers.values_mut() {
        for (cgroup_id, cg) in record.cgroups.iter_mut() {
            if let Some(slot) = cg.slot {
                if slot < agent.probe.slots() && agent.probe.counters().info(slot).cgroup_id == *cgroup_id {
                    owned.insert(slot, (record.id.clone(), *cgroup_id));
                } else {
                    cg.slot = None;
                }
            }
        }
        // Records written before ended cgroups were retired, or whose slots
        // ended while no agent ran.
        if record.retire_ended_cgroups() > 0 {
            agent.dirty.insert(record.id.clone());
        }
    }
    agent.slot_owner = owned;
    // The kernel's rules as enforce.json says now: the file may have changed
    // (or gone) while no agent ran, and the pinned slots kept the old ones.
    let keys: BTreeSet<String> = agent.slot_owner.values().map(|(key, _)| key.clone()).collect();
    for key in keys {
        agent.arm(&key);
    }
    agent.count_shares();
    // Running on record but holding no live slot (after a reboot or an uninstall
    // the kernel's slots are gone): ended, so that nothing counts on them, until
    // the cgroup shows up again below.
    let now = now();
    for record in agent.containers.values_mut() {
        if record.state == State::Running && record.cgroups.values().all(|c| c.slot.is_none()) {
            tracing::info!(container = %record.name, "no live slot in the kernel: marked ended");
            record.state = State::Exited;
            record.ended_at = Some(now.clone());
            record.pids.clear();
            agent.dirty.insert(record.id.clone());
        }
    }
    // Every cgroup there now, named once.
    let mount = agent.resolver.mount().to_path_buf();
    let ids = tokio::task::spawn_blocking(move || observer_probe::v2_mount::walk_ids(&mount)).await;
    let ids = match ids {
        Ok(Ok(ids)) => ids,
        _ => HashMap::new(),
    };
    agent.known_paths.extend(ids.clone());
    // Runtime questions are asked all at once at the end: a slow runtime costs
    // its timeout once, not once per container.
    let mut jobs = Vec::new();
    // Slots the kernel opened while we were away.
    for slot in 0..agent.probe.slots() {
        let info = agent.probe.counters().info(slot);
        if info.cgroup_id != 0 && !agent.slot_owner.contains_key(&slot) {
            jobs.extend(agent.on_new_cgroup(info.cgroup_id, slot, 0, ""));
        }
    }
    // Containers running already, idle or not: give them a slot now.
    let first_new = agent.probe.first_new_cgroup_id();
    for (cgroup_id, path) in ids {
        let cref = crate::container::cgroup_path::parse(&path);
        // Only cgroups older than the programs: the kernel sees a newer one's
        // start itself and records its init phases from its first call.
        if !cref.is_container() || cgroup_id >= first_new {
            continue;
        }
        // Its init is long gone: everything it does is its own.
        let all_filtered = core::all_under_seccomp_filter(&agent.resolver.mount().join(path.trim_start_matches('/')));
        let slot = match agent.probe.give_slot_without_init(cgroup_id, all_filtered) {
            Ok(Some(slot)) => slot,
            // It has an entry already (a slot, or ignored), or no slot is free.
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("giving running container cgroup {path} a slot: {e:#}");
                continue;
            }
        };
        agent.known_paths.insert(cgroup_id, path);
        jobs.extend(agent.on_new_cgroup(cgroup_id, slot, 0, ""));
        let started = agent.started_at.clone();
        if let Some((key, _)) = agent.slot_owner.get(&slot).cloned()
            && let Some(r) = agent.containers.get_mut(&key)
            && r.first_use.is_empty()
        {
            r.observed_since = Some(started);
        }
    }
    identify_now(agent, jobs).await;
}

/// At start, before anything else runs: ask the runtime about every job at
/// once (each within its own timeout), then apply the answers.
async fn identify_now(agent: &mut Agent, jobs: Vec<identity::IdentityJob>) {
    let resolver = agent.resolver.clone();
    let mut asked = tokio::task::JoinSet::new();
    for job in jobs {
        let resolver = resolver.clone();
        asked.spawn(async move {
            let (identity, verdict) = identity::identify(&resolver, &job.path, &job.cref).await;
            (job, identity, verdict)
        });
    }
    while let Some(answer) = asked.join_next().await {
        if let Ok((job, identity, verdict)) = answer {
            agent.apply_identity(job, identity, verdict);
        }
    }
}
