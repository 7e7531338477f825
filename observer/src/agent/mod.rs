//! `observer agent`: attaches once (pinned in bpffs, so recording goes on while
//! it is down), names every cgroup, keeps live profiles of containers, raises
//! drift alerts, and answers the CLI on a root-only unix socket.

mod alerting;
mod alerts;
mod announced;
mod answers;
mod cgroup_rows;
mod cgroup_watch;
mod core;
mod delivery;
mod dense_map;
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
pub mod priority;
mod rules;
mod saving;
mod server;
mod slot_share;
mod store;
mod tasks;
mod upkeep;
mod write_order;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;
use observer_common::{config, event::Event, slot::SLOT_FIRST_MARKER};
use tokio::{io::unix::AsyncFd, sync::Mutex};

pub use self::{
    alerts::Alert,
    core::{Agent, BaselineRule, EnforceRule, Watch},
};
use crate::{
    api::Target,
    clock::now,
    container::Resolver,
    probe::{LoadOptions, Probe},
};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/observer";
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/observer";

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// What to record: `containers` (default) or `all` cgroups.
    #[arg(long, default_value = "containers", value_parser = ["containers", "all"])]
    pub watch: String,
    /// The API socket (root only).
    #[arg(long, default_value = crate::api::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Where profiles, alerts and settings are kept.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Where the kernel programs and maps are pinned.
    #[arg(long, default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// How long profiles of ended containers are kept (e.g. 24h, 30m).
    #[arg(long, default_value = "7days", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// Learn a baseline for each container over this window, then alert on anything new.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub learn_for: Option<Duration>,
    /// A baseline profile: NAME=FILE (container name), or image:IMAGE=FILE,
    /// pod:NAMESPACE/NAME=FILE, namespace:NAME=FILE, label:KEY=VALUE=FILE.
    #[arg(long, value_name = "NAME=FILE")]
    pub baseline: Vec<String>,
    /// Serve Prometheus metrics at this address (e.g. 127.0.0.1:9464). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// How many cgroups the kernel can record at once (about 3.4 KiB each).
    #[arg(long, default_value_t = 1024)]
    pub slots: u32,
    /// At most this many slots for the cgroups of one owner other than root
    /// (the uid of the cgroup's directory: a user's delegated subtree, a
    /// rootless container). Default: an eighth of `--slots`. Past it, that
    /// owner's new cgroups are not recorded (one `overflow` alert names the
    /// owner), and a container root's runtime starts when the table is full
    /// takes one of their slots.
    #[arg(long, value_name = "N")]
    pub slots_per_owner: Option<u32>,
    /// Size of the kernel's event ring buffer in KiB (a power of two, at least
    /// 4): 2 MiB holds 32,768 events, about ten seconds of 10,000 cgroups
    /// starting a minute (e.g. while the agent restarts). Set when the programs
    /// are loaded; pinned programs keep theirs.
    #[arg(long, default_value_t = 2048, value_name = "KIB", value_parser = ring_kib)]
    pub event_ring_kib: u32,
    /// Also count syscalls that returned an error (costs a little on every failed call).
    #[arg(long)]
    pub count_errors: bool,
    /// The agent's nice value. Below 0 (the default, -10) its event reader keeps
    /// up while container runtimes starting many containers take every CPU: a
    /// syscall at a container's start reaches the agent within milliseconds.
    /// The agent itself uses little CPU. Needs CAP_SYS_NICE; without it the
    /// agent says so and runs at its inherited priority.
    #[arg(long, default_value_t = -10, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: i32,
    /// What to do with a container an enforcement rule names when every slot is
    /// taken, so the kernel can neither record nor enforce it: `alert` (an
    /// `overflow` alert) or `kill`.
    #[arg(long, value_enum, default_value = "alert")]
    pub on_overflow: core::OverflowAction,
    /// A CRI runtime's socket (containerd, CRI-O) to ask about Kubernetes
    /// containers; repeatable. Default: /run/containerd/containerd.sock and
    /// /var/run/crio/crio.sock (a missing socket is skipped, and looked for again later).
    #[arg(long = "cri-socket", value_name = "PATH")]
    pub cri_socket: Vec<PathBuf>,
    /// dockerd's socket. Default: `DOCKER_HOST` (unix://PATH), else /var/run/docker.sock.
    #[arg(long, value_name = "PATH")]
    pub docker_socket: Option<PathBuf>,
    /// alerts.jsonl moves to alerts.jsonl.1 (replacing it) when it would grow past this size.
    #[arg(long, default_value_t = store::DEFAULT_ALERTS_MAX_BYTES, value_name = "BYTES")]
    pub alerts_max_bytes: u64,
    /// At most this many records (containers, cgroups) are kept, in memory and on
    /// disk: past it the longest-ended go first, plain cgroups before containers.
    #[arg(long, default_value_t = 20_000)]
    pub max_records: usize,
    /// Where alerts go besides stdout and alerts.jsonl.
    #[command(flatten)]
    pub alert_outputs: delivery::OutputArgs,
    /// Detach and unpin everything an agent left behind, then exit.
    #[arg(long)]
    pub uninstall: bool,
}

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
    let baselines = parse_baselines(&args.baseline)?;
    // Before the programs load: a refusal leaves nothing attached behind.
    let enforcements = load_enforcements(&args.state_dir)?;
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
    let mount = crate::container::v2_mount::find_v2_mount()?;
    warn_unless_whole_tree(&mount);
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
        watch: if args.watch == "all" { Watch::All } else { Watch::Containers },
        started_at: now(),
        learn_for: args.learn_for,
        retention: args.retention,
        containers: BTreeMap::new(),
        slot_owner: HashMap::new(),
        baselines,
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
        fresh_paths: cgroup_watch::spawn(crate::container::v2_mount::find_v2_mount()?),
        health: Default::default(),
        max_records: args.max_records.max(1),
        announced: Default::default(),
    };
    agent.containers = agent.store.load_all();
    agent.alerts_total = agent.containers.values().map(|r| r.alerts).sum();
    // Losses from before this start: alerted once; the scan below makes up for them.
    agent.check_events_lost(true);
    reconcile(&mut agent).await;
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
    tasks.spawn("the event reader", read_events(agent.clone(), events));
    {
        let resolver = agent.lock().await.resolver.clone();
        tasks.spawn("dockerd's event follower", announced::follow_docker(agent.clone(), resolver));
    }
    alert_workers.spawn_into(&mut tasks);
    if let Some(log) = kernel_log {
        tasks.spawn("the kernel log reader", read_kernel_log(log));
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
                n += 1;
                if n.is_multiple_of(10) {
                    let mount = resolver.mount().to_path_buf();
                    let Ok(Ok(alive)) =
                        tokio::task::spawn_blocking(move || crate::container::v2_mount::walk_ids(&mount)).await
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

/// After a restart: slots the kernel filled while no agent ran, and containers
/// that were already running before the first start.
async fn reconcile(agent: &mut Agent) {
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
        if record.state == model::State::Running && record.cgroups.values().all(|c| c.slot.is_none()) {
            tracing::info!(container = %record.name, "no live slot in the kernel: marked ended");
            record.state = model::State::Exited;
            record.ended_at = Some(now.clone());
            record.pids.clear();
            agent.dirty.insert(record.id.clone());
        }
    }
    // Every cgroup there now, named once.
    let mount = agent.resolver.mount().to_path_buf();
    let ids = tokio::task::spawn_blocking(move || crate::container::v2_mount::walk_ids(&mount)).await;
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

/// How often what changed is written out (staged; see the state stager).
const STAGE_EVERY: Duration = Duration::from_millis(250);

/// Records whose pids and seccomp mode the background read refreshes each
/// second (all of them up to this many; a full round takes longer beyond).
const FACTS_PER_SECOND: usize = 1024;

async fn read_events(agent: Arc<Mutex<Agent>>, ring: aya::maps::RingBuf<aya::maps::MapData>) -> anyhow::Result<()> {
    // SAFETY: the ring buffer owns its fd and outlives the registration (both move into `fd`).
    let mut fd = unsafe { AsyncFd::register(ring) }.map_err(|e| anyhow::anyhow!("watching the ring buffer: {e}"))?;
    loop {
        let mut guard = fd.readable_mut().await?;
        let mut batch = Vec::new();
        {
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if item.len() >= std::mem::size_of::<Event>() {
                    // SAFETY: the kernel wrote an Event (repr(C), Pod) there.
                    batch.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
                }
            }
        }
        guard.clear_ready();
        if batch.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        // New cgroups inotify did not catch: one walk of the tree, without the lock.
        // (And those of events whose `NewCgroup` was lost: see `Agent::on_event`.)
        let (resolver, unknown) = {
            let a = agent.lock().await;
            let new_ids: Vec<u64> = batch
                .iter()
                .filter(|e| e.kind == observer_common::event::EventKind::NewCgroup as u32 || a.is_orphan(e))
                .map(|e| e.cgroup_id)
                .collect();
            (a.resolver.clone(), a.unknown_paths(new_ids.iter().copied()))
        };
        let walked = if unknown {
            let mount = resolver.mount().to_path_buf();
            tokio::task::spawn_blocking(move || crate::container::v2_mount::walk_ids(&mount))
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        let walk_done = started.elapsed();
        let jobs: Vec<identity::IdentityJob> = {
            let mut a = agent.lock().await;
            let locked = started.elapsed();
            if let Some(walked) = walked {
                a.known_paths.extend(walked);
            }
            let jobs = batch
                .iter()
                .filter(|e| e.slot < SLOT_FIRST_MARKER || e.kind == observer_common::event::EventKind::NewCgroup as u32)
                .filter_map(|e| a.on_event(e))
                .collect();
            let held = started.elapsed() - locked;
            tracing::debug!(events = batch.len(), walked = unknown, ?walk_done, ?locked, ?held, "event batch");
            jobs
        };
        // Each container's runtime is asked on its own, so twenty starting at
        // once are named side by side, and events keep draining meanwhile.
        for job in jobs {
            let (agent, resolver) = (agent.clone(), resolver.clone());
            tokio::spawn(async move { identity::resolve_jobs(&agent, &resolver, vec![job]).await });
        }
    }
}

/// Forwards the kernel programs' aya-log records to the agent's log.
async fn read_kernel_log(log: crate::probe::KernelLog) -> anyhow::Result<()> {
    // SAFETY: the logger owns its ring buffer fd and moves into `fd` with it.
    let mut fd = unsafe { AsyncFd::register(log) }.map_err(|e| anyhow::anyhow!("watching the kernel log: {e}"))?;
    loop {
        let mut guard = fd.readable_mut().await?;
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}

/// The enforcement rules kept in `enforce.json`. A file that cannot be read is
/// set aside and the agent refuses to start while it is there: starting with
/// the rules silently dropped would switch enforcement off without a word.
fn load_enforcements(state_dir: &Path) -> anyhow::Result<Vec<EnforceRule>> {
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
fn warn_unless_whole_tree(mount: &Path) {
    match crate::container::v2_mount::shows_whole_tree(mount) {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "the cgroup v2 mount at {} shows a subtree, not the host's whole hierarchy: cgroups outside it \
             cannot be named or confirmed (mount the host's cgroup v2 tree there, as deploy/observer.yaml does)",
            mount.display()
        ),
        Err(e) => tracing::warn!("the cgroup v2 mount at {}: {e}", mount.display()),
    }
}

fn parse_baselines(specs: &[String]) -> anyhow::Result<Vec<BaselineRule>> {
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

/// `--event-ring-kib`: the kernel takes a power of two of pages.
fn ring_kib(s: &str) -> Result<u32, String> {
    let kib: u32 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(4..=1 << 20).contains(&kib) || !kib.is_power_of_two() {
        return Err(format!("{kib}: a power of two from 4 to 1048576 KiB"));
    }
    Ok(kib)
}
