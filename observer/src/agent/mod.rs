//! `observer agent`: attaches once (pinned in bpffs, so recording goes on while
//! it is down), names every cgroup, keeps live profiles of containers, raises
//! drift alerts, and answers the CLI on a root-only unix socket.

mod alerting;
mod announced;
mod announced_podman;
mod answers;
mod args;
mod bound_profiles;
mod bound_registry;
mod cgroup_rows;
mod cgroup_watch;
mod core;
mod delivery;
mod dense_map;
mod events;
mod first_use;
mod first_uses;
mod health;
pub mod heap;
mod identity;
pub mod identity_view;
mod live;
mod lock;
mod metrics_server;
pub mod model;
mod overflow;
pub mod priority;
mod reachable;
mod rules;
mod saving;
mod server;
mod slot_share;
mod startup;
mod store;
mod tasks;
mod upkeep;
mod vanished;
mod write_order;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use observer_common::config;
use observer_probe::{LoadOptions, Probe};
use tokio::sync::Mutex;

pub use self::{
    args::AgentArgs,
    core::{Agent, BaselineRule, Watch},
};
use crate::{clock::now, container::Resolver};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/observer";
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/observer";

/// How often what changed is written out (staged; see the state stager).
const STAGE_EVERY: Duration = Duration::from_millis(250);

/// Records whose pids and seccomp mode the background read refreshes each
/// second (all of them up to this many; a full round takes longer beyond).
const FACTS_PER_SECOND: usize = 1024;

pub async fn run(args: AgentArgs) -> anyhow::Result<i32> {
    if args.uninstall {
        let found = Probe::uninstall(&args.pin_dir)?;
        eprintln!(
            "observer: {}",
            if found {
                format!("detached and unpinned everything under {}", args.pin_dir.display())
            } else {
                "nothing was installed".into()
            }
        );
        return Ok(0);
    }
    std::fs::create_dir_all(&args.state_dir).with_context(|| format!("creating {}", args.state_dir.display()))?;
    let _lock = lock::AgentLock::acquire(&args.state_dir)?;
    let store = store::Store::open(&args.state_dir)?.with_alerts_max_bytes(args.alerts_max_bytes.max(1));
    let baselines = startup::parse_baselines(&args.baseline)?;
    let (bound, profile_fetcher) = bound_registry::open_profiles(&args)?;
    // Before the programs load: a refusal leaves nothing attached behind.
    let enforcements = startup::load_enforcements(&args.state_dir)?;
    let (alert_outputs, alert_workers) = delivery::AlertOutputs::open(&args.alert_outputs)?;
    let mut probe = Probe::load_pinned(
        LoadOptions {
            slots: args.slots,
            mode: config::mode::AUTO,
            count_errors: args.count_errors,
            timed: false,
            event_ring_bytes: args.event_ring_kib * 1024,
        },
        &args.pin_dir,
    )?;
    let events = probe.take_events().context("the EVENTS ring buffer is missing")?;
    let kernel_log = probe.take_logger();
    let mount = observer_probe::v2_mount::find_v2_mount()?;
    startup::warn_unless_whole_tree(&mount);
    let resolver = Arc::new(
        Resolver::new(
            mount,
            match &args.docker_socket {
                Some(path) => Some(crate::container::DockerClient::new(path)),
                None => crate::container::DockerClient::from_env().ok(),
            },
        )
        .with_podman(crate::container::podman::PodmanClient::from_host())
        .with_cri(crate::container::cri::CriClients::new(&if args.cri_socket.is_empty() {
            crate::container::cri::DEFAULT_SOCKETS.iter().map(PathBuf::from).collect()
        } else {
            args.cri_socket.clone()
        })),
    );
    let mut agent = Agent {
        probe,
        resolver,
        store,
        watch: args.watch,
        started_at: now(),
        learn_for: args.learn_for,
        retention: args.retention,
        containers: BTreeMap::new(),
        slot_owner: HashMap::new(),
        baselines,
        bound,
        enforcements_saved: serde_json::to_string(&enforcements).unwrap_or_default(),
        on_overflow: args.on_overflow,
        shares: slot_share::SlotShares::new(args.slots_per_owner.unwrap_or(args.slots / 8)),
        overflow_alerted: Default::default(),
        overflow_pending: Default::default(),
        enforcements,
        alerts_total: 0,
        alert_outputs,
        dirty: BTreeSet::new(),
        known_paths: HashMap::new(),
        first_seen_latency_ns: std::collections::VecDeque::new(),
        first_seen_at_start_latency_ns: std::collections::VecDeque::new(),
        next_slot_to_read: 0,
        next_facts_key: String::new(),
        last_reads: HashMap::new(),
        counts_dirty: BTreeSet::new(),
        counts_saved_at: std::time::Instant::now(),
        fresh_paths: cgroup_watch::spawn(observer_probe::v2_mount::find_v2_mount()?),
        health: Default::default(),
        max_records: args.max_records.max(1),
        announced: Default::default(),
        reach: reachable::ReachSets::new(&args.state_dir, args.reach),
    };
    agent.containers = agent.store.load_all();
    agent.alerts_total = agent.containers.values().map(|r| r.alerts).sum();
    // Losses from before this start: alerted once; the scan below makes up for them.
    agent.check_events_lost(true);
    startup::reconcile(&mut agent).await;
    tracing::info!(
        reused = agent.probe.reused,
        slots = agent.probe.slots(),
        containers = agent.containers.len(),
        "observer agent running; API on {}",
        args.socket.display()
    );
    let agent = Arc::new(Mutex::new(agent));

    // Every task runs until the agent stops: one that dies stops it, non-zero.
    let mut tasks = tasks::Tasks::new();
    tasks.catch_every_panic();
    tasks.watch("the API server", server::serve(agent.clone(), &args.socket).await?);
    if let Some(addr) = &args.metrics {
        let (snapshots, publisher) = metrics_server::publish_snapshots(agent.clone()).await;
        tasks.spawn("the metrics snapshots", publisher);
        tasks.watch("the metrics endpoint", metrics_server::serve_metrics(snapshots, addr).await?);
    }
    tasks.spawn("the event reader", events::read_events(agent.clone(), events));
    if let Some(fetcher) = profile_fetcher {
        tasks.spawn("the image profile fetcher", bound_registry::fetch_profiles(agent.clone(), fetcher));
    }
    {
        let resolver = agent.lock().await.resolver.clone();
        tasks.spawn("dockerd's event follower", announced::follow_docker(agent.clone(), resolver.clone()));
        tasks.spawn("podman's event follower", announced_podman::follow_podman(agent.clone(), resolver));
    }
    alert_workers.spawn_into(&mut tasks);
    if let Some(log) = kernel_log {
        tasks.spawn("the kernel log reader", events::read_kernel_log(log));
    }
    {
        let agent = agent.clone();
        // Saving in two steps, each a task of its own. The stager writes what
        // changed under temporary names every quarter second (safe from a
        // SIGKILL from then on: `Store::settle_temps`); the committer flushes
        // and renames, merging every round staged meanwhile into one flush. A
        // slow disk delays the renames, never the staging of the next change.
        let (staged_tx, mut staged_rx) = tokio::sync::mpsc::unbounded_channel::<saving::StagedRound>();
        let committer = agent.clone();
        tasks.spawn("the state committer", async move {
            while let Some(first) = staged_rx.recv().await {
                let mut rounds = vec![first];
                while let Ok(more) = staged_rx.try_recv() {
                    rounds.push(more);
                }
                let report = tokio::task::spawn_blocking(move || saving::commit(rounds)).await.unwrap_or_default();
                committer.lock().await.writes_done(report);
            }
            Ok(())
        });
        tasks.spawn("the state stager", async move {
            let mut interval = tokio::time::interval(STAGE_EVERY);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let taken = {
                    let mut a = agent.lock().await;
                    let held = std::time::Instant::now();
                    let taken = a.take_unencoded(false);
                    tracing::debug!(held = ?held.elapsed(), writes = taken.len(), "the stager's hold of the lock");
                    taken
                };
                if taken.is_empty() {
                    continue;
                }
                let round = tokio::task::spawn_blocking(move || saving::stage(&saving::encode_all(taken)))
                    .await
                    .unwrap_or_default();
                if staged_tx.send(round).is_err() {
                    anyhow::bail!("the state committer is gone");
                }
            }
        });
    }
    {
        let agent = agent.clone();
        tasks.spawn("the background read", async move {
            // The API reads the kernel fresh on every request, so the background read
            // only needs to notice ended cgroups and keep saved state current.
            // Runtime queries and tree walks happen between the locked parts.
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            // Runtimes are asked again about pending cgroups in a task of their
            // own: a dockerd that takes seconds to answer holds up neither the
            // reads here nor the event reader; one round of asking at a time.
            let asking = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut n = 0u64;
            loop {
                interval.tick().await;
                let (resolver, jobs) = {
                    let mut a = agent.lock().await;
                    let held = std::time::Instant::now();
                    a.read_slots(1024);
                    a.check_events_lost(false);
                    let out = (a.resolver.clone(), a.pending_jobs());
                    tracing::debug!(held = ?held.elapsed(), "the background read's hold of the lock");
                    out
                };
                if !jobs.is_empty() && !asking.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    let (agent, resolver, asking) = (agent.clone(), resolver.clone(), asking.clone());
                    tokio::spawn(async move {
                        identity::resolve_jobs(&agent, &resolver, jobs).await;
                        asking.store(false, std::sync::atomic::Ordering::Release);
                    });
                }
                // Pids and seccomp modes: a share of the records each second,
                // read without the lock.
                let facts_jobs = agent.lock().await.facts_round(FACTS_PER_SECOND);
                if let Ok(facts) = tokio::task::spawn_blocking(move || upkeep::read_facts(facts_jobs)).await {
                    agent.lock().await.apply_facts(facts);
                }
                agent.lock().await.refresh_rules();
                // What new images can reach: analysed one at a time, off the lock.
                let reach_jobs = agent.lock().await.reach_jobs();
                if !reach_jobs.is_empty() {
                    let agent = agent.clone();
                    tokio::spawn(async move {
                        for job in reach_jobs {
                            let answer = reachable::compute_detached(job.clone()).await;
                            agent.lock().await.apply_reach(&job, answer);
                        }
                    });
                }
                n += 1;
                if n.is_multiple_of(10) {
                    let mount = resolver.mount().to_path_buf();
                    let Ok(Ok(alive)) =
                        tokio::task::spawn_blocking(move || observer_probe::v2_mount::walk_ids(&mount)).await
                    else {
                        continue;
                    };
                    let jobs = {
                        let mut a = agent.lock().await;
                        let mut jobs = a.sweep(alive);
                        jobs.extend(a.scan_slot_table());
                        jobs
                    };
                    // The walk and the sweep allocate and free a table of every
                    // cgroup on the host; glibc keeps freed heap pages, so under
                    // churn RSS would ratchet up to each round's peak. Hand them back.
                    #[cfg(target_env = "gnu")]
                    // SAFETY: malloc_trim has no preconditions; it only releases free pages.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                    let (agent, resolver) = (agent.clone(), resolver.clone());
                    tokio::spawn(async move { identity::resolve_jobs(&agent, &resolver, jobs).await });
                }
            }
            #[allow(unreachable_code)]
            Ok(())
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let death = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
        e = tasks.first_death() => Some(e),
    };
    tasks.abort_all();
    if let Some(e) = &death {
        tracing::error!("{e:#}; stopping");
    }
    let mut a = agent.lock().await;
    a.tick();
    a.flush(true);
    let _ = std::fs::remove_file(&args.socket);
    tracing::info!(
        "observer agent stopped; the kernel programs stay attached (observer agent --uninstall detaches them)"
    );
    match death {
        None => Ok(0),
        Some(e) => Err(e.context("an agent task died")),
    }
}
