//! `observer agent --profiles oci://REGISTRY/REPO`: the profile bound to a
//! container's image is fetched from a registry (tag `sha256-<hex>` of the
//! image digest, observer_oci::bound) by a task of its own, never under the
//! agent's lock nor on the event path: binding a container only queues its
//! image digest; the fetcher pulls (through the digest-checked on-disk
//! `BoundCache`, `STATE_DIR/bound-profiles/registry`), resolves the profile
//! to kernel rows, then takes the lock once to bind every container of that
//! image. A registry that does not answer is asked again a few times with a
//! growing pause, then every [`ASK_AGAIN_AFTER`] while a container still
//! waits; `ps` says so meanwhile (`image_profile`: `fetching from ...` or
//! `unavailable: ...`) and the agent goes on.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use observer_common::{
    counters::ROW_INVALID,
    event::{Event, EventKind},
    slot::phase,
};
use observer_oci::{
    OciError,
    bound::{BoundCache, fetch_bound_profile},
    client::{ClientOptions, Registry},
    reference::RegistryRef,
};
use tokio::{
    sync::{Mutex, mpsc},
    task::JoinSet,
};

use super::{
    bound_profiles::{Binding, BoundProfiles},
    core::Agent,
};
use crate::clock::boottime_ns;
use observer_contract::{alerts::AlertKind, views::State};

/// What `--profiles` names a registry with.
pub const SCHEME: &str = "oci://";
/// Attempts in one round of asking the registry for one image, with a pause
/// of [`FIRST_PAUSE`] doubled after each failed one.
pub const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// After a failed round, an image a container still waits for is asked again
/// this long later.
pub const ASK_AGAIN_AFTER: Duration = Duration::from_secs(30);
/// Images fetched at once.
const IN_FLIGHT: usize = 8;
/// Images waiting to be fetched; past it a container is asked for again when
/// the agent next applies its rules, or at the next round.
const QUEUE: usize = 1024;
/// Images whose fetch state is remembered (the rest are asked again).
const MAX_TRACKED: usize = 4096;
/// The on-disk cache of pulled profiles.
pub const CACHE_BYTES: u64 = 64 << 20;
/// The platform whose profile is pulled: the one the agent runs on.
const PLATFORM: &str = if cfg!(target_arch = "aarch64") { "linux/arm64" } else { "linux/amd64" };

/// Where one image's profile stands while no container of it is bound.
#[derive(Clone, Debug)]
enum Fetch {
    Queued,
    /// The last round failed; asked again after [`ASK_AGAIN_AFTER`].
    Failed {
        problem: String,
        at: Instant,
    },
    /// Fetched: kept until the containers of that image are bound.
    Done(Binding),
}

/// The agent's side: what was asked and what came back (under the agent's lock).
#[derive(Debug)]
pub struct RegistryProfiles {
    repo: String,
    requests: mpsc::Sender<String>,
    images: HashMap<String, Fetch>,
}

/// The fetcher's side, run by [`fetch_profiles`].
pub struct Fetcher {
    registry: Arc<Registry>,
    cache: BoundCache,
    requests: mpsc::Receiver<String>,
}

/// `--profiles oci://REGISTRY/REPO`: connects (credentials, CA) now, so a bad
/// reference or CA file stops the agent at start; the registry itself is
/// first asked when a container needs it.
pub fn open(
    reference: &str,
    state_dir: &std::path::Path,
    options: &ClientOptions,
) -> anyhow::Result<(RegistryProfiles, Fetcher)> {
    let repo = RegistryRef::parse(reference).with_context(|| format!("--profiles {reference}"))?;
    anyhow::ensure!(
        repo.tag.is_none() && repo.digest.is_none(),
        "--profiles {reference}: name a repository, not a tag or digest (each image's profile is its own tag, \
         sha256-<hex>)"
    );
    let registry = Registry::connect(&repo, options).with_context(|| format!("--profiles {reference}"))?;
    let cache = BoundCache::new(&state_dir.join("bound-profiles").join("registry"), CACHE_BYTES)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    Ok((
        RegistryProfiles { repo: repo.to_string(), requests: tx, images: HashMap::new() },
        Fetcher { registry: Arc::new(registry), cache, requests: rx },
    ))
}

/// `--profiles DIR` or `--profiles oci://REGISTRY/REPO` (with the fetcher to run).
pub fn open_profiles(args: &super::AgentArgs) -> anyhow::Result<(Option<BoundProfiles>, Option<Fetcher>)> {
    let r = &args.registry;
    let registry_flags = r.plain_http || r.ca.is_some() || r.docker_config.is_some();
    let reference = args.profiles.as_deref().and_then(|p| p.to_str()).filter(|p| p.starts_with(SCHEME));
    if let Some(reference) = reference {
        let (profiles, fetcher) = open(reference, &args.state_dir, &r.options())?;
        return Ok((Some(BoundProfiles::from_registry(profiles, args.enforce_bound)), Some(fetcher)));
    }
    anyhow::ensure!(!registry_flags, "--plain-http, --ca and --docker-config are for --profiles {SCHEME}REGISTRY/REPO");
    let dir = args.profiles.as_deref();
    Ok((dir.map(|d| BoundProfiles::open(d, &args.state_dir, args.enforce_bound)).transpose()?, None))
}

impl RegistryProfiles {
    /// The binding fetched for `image_digest`, if it is there; else it is
    /// asked for (once at a time) and the container stays unbound for now.
    pub fn binding_for(&mut self, image_digest: &str) -> Option<Binding> {
        match self.images.get(image_digest) {
            Some(Fetch::Done(b)) => return Some(b.clone()),
            Some(Fetch::Queued) => return None,
            Some(Fetch::Failed { at, .. }) if at.elapsed() < ASK_AGAIN_AFTER => return None,
            _ => {}
        }
        if self.images.len() >= MAX_TRACKED {
            self.images.retain(|_, f| matches!(f, Fetch::Queued));
        }
        if self.requests.try_send(image_digest.to_owned()).is_ok() {
            self.images.insert(image_digest.to_owned(), Fetch::Queued);
        }
        None
    }

    /// What `ps` says of a container whose image is not bound yet.
    pub fn status(&self, image_digest: &str) -> Option<String> {
        match self.images.get(image_digest)? {
            Fetch::Queued => Some(format!("fetching from {}", self.repo)),
            Fetch::Failed { problem, .. } => Some(format!("unavailable: {problem}")),
            Fetch::Done(_) => None,
        }
    }

    /// Images whose last round failed long enough ago, among `waiting`.
    fn due<'a>(&self, waiting: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
        waiting
            .filter(
                |d| matches!(self.images.get(*d), Some(Fetch::Failed { at, .. }) if at.elapsed() >= ASK_AGAIN_AFTER),
            )
            .map(str::to_owned)
            .collect()
    }
}

/// Fetches what containers ask for, [`IN_FLIGHT`] images at once; every
/// [`ASK_AGAIN_AFTER`], asks again for images a running container still
/// waits for. Runs as long as the agent.
pub async fn fetch_profiles(agent: Arc<Mutex<Agent>>, mut fetcher: Fetcher) -> anyhow::Result<()> {
    let mut in_flight: JoinSet<(String, Result<Binding, String>)> = JoinSet::new();
    let mut again = tokio::time::interval(ASK_AGAIN_AFTER);
    again.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let spawn = |set: &mut JoinSet<_>, digest: String, fetcher: &Fetcher| {
        let (registry, cache) = (fetcher.registry.clone(), fetcher.cache.clone());
        set.spawn(async move {
            let outcome = fetch_with_retries(&registry, &cache, &digest).await;
            (digest, outcome)
        });
    };
    loop {
        tokio::select! {
            Some(digest) = fetcher.requests.recv(), if in_flight.len() < IN_FLIGHT => spawn(&mut in_flight, digest, &fetcher),
            Some(done) = in_flight.join_next() => {
                let (digest, outcome) = done.context("an image profile fetch")?;
                agent.lock().await.on_image_profile(&digest, outcome);
            }
            _ = again.tick() => {
                let due = agent.lock().await.images_waiting_again();
                for digest in due {
                    spawn(&mut in_flight, digest, &fetcher);
                }
            }
        }
    }
}

/// One round: up to [`ATTEMPTS`] tries while the registry does not answer;
/// an answer (a profile, none, a refusal) ends it.
async fn fetch_with_retries(registry: &Registry, cache: &BoundCache, image_digest: &str) -> Result<Binding, String> {
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match fetch_bound_profile(registry, cache, image_digest, PLATFORM).await {
            Ok(None) => return Ok(Binding::NoProfile),
            Ok(Some(bound)) => {
                let tag = observer_oci::tags::image_digest_tag(image_digest).unwrap_or_default();
                let source = format!("{} ({})", registry.repository().with_tag(&tag), bound.digest);
                return rows_of(&bound.profile, &source).map(|rows| Binding::Profile { source, rows });
            }
            Err(e @ (OciError::Unreachable { .. } | OciError::Registry { .. })) if attempt < ATTEMPTS => {
                tracing::debug!("--profiles: attempt {attempt}: {e}");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            Err(e) => return Err(format!("{e} (after {attempt} attempt{})", if attempt == 1 { "" } else { "s" })),
        }
    }
}

/// The kernel rows a pulled profile lets through (off the agent's lock: it
/// resolves every syscall name).
fn rows_of(profile: &[u8], source: &str) -> Result<BTreeSet<u32>, String> {
    let text = std::str::from_utf8(profile).map_err(|e| format!("{source}: not UTF-8: {e}"))?;
    let model = observer_profile::model::parse(text, source).map_err(|e| e.to_string())?;
    let resolved = model.resolve(&observer_profile::resolve::ResolveOptions::docker_default());
    Ok(crate::profile_rows::allowed_rows(&resolved))
}

impl Agent {
    /// A fetch came back: binds every container of that image not bound yet,
    /// and judges what each already did against its new baseline (the fetch
    /// takes a moment; calls made meanwhile are not let off).
    pub(super) fn on_image_profile(&mut self, image_digest: &str, outcome: Result<Binding, String>) {
        let Some(registry) = self.bound.as_mut().and_then(|b| b.registry.as_mut()) else { return };
        let binding = match outcome {
            Ok(b) => b,
            Err(problem) => {
                tracing::warn!(
                    "--profiles {}: the profile of image {image_digest}: {problem}; containers of it stay unbound \
                     (asked again in {}s)",
                    registry.repo,
                    ASK_AGAIN_AFTER.as_secs()
                );
                registry.images.insert(image_digest.to_owned(), Fetch::Failed { problem, at: Instant::now() });
                return;
            }
        };
        registry.images.insert(image_digest.to_owned(), Fetch::Done(binding));
        let waiting: Vec<String> = self
            .containers
            .iter()
            .filter(|(k, r)| r.image_digest == image_digest && !self.is_bound(k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in waiting {
            let before = self.containers.get(&key).and_then(|r| r.baseline.clone());
            self.apply_rules(&key);
            if before.is_none() {
                self.judge_past_drift(&key);
            }
        }
        if let Some(r) = self.bound.as_mut().and_then(|b| b.registry.as_mut()) {
            r.images.remove(image_digest);
        }
    }

    fn is_bound(&self, key: &str) -> bool {
        self.bound.as_ref().and_then(|b| b.binding(key)).is_some()
    }

    /// Images of running, unbound containers whose last fetch failed long enough ago.
    fn images_waiting_again(&mut self) -> BTreeSet<String> {
        let Some(registry) = self.bound.as_ref().and_then(|b| b.registry.as_ref()) else { return BTreeSet::new() };
        let waiting = self
            .containers
            .iter()
            .filter(|(k, r)| r.state == State::Running && !self.is_bound(k))
            .map(|(_, r)| r.image_digest.as_str());
        let due = registry.due(waiting);
        if let Some(r) = self.bound.as_mut().and_then(|b| b.registry.as_mut()) {
            for d in &due {
                r.images.insert(d.clone(), Fetch::Queued);
            }
        }
        due
    }

    /// `outside_baseline` for every call the container's own processes made
    /// before its baseline came, that the baseline does not allow.
    fn judge_past_drift(&mut self, key: &str) {
        let Some(record) = self.containers.get(key) else { return };
        let Some(baseline) = &record.baseline else { return };
        let past: Vec<(u32, Event)> = record
            .first_use
            .keys()
            .filter(|row| *row < ROW_INVALID && !baseline.contains(row))
            .filter(|row| record.first_use.seen_in(*row, phase::CONTAINER))
            .filter_map(|row| {
                let caller = record.first_use.get(&row)?.container_caller()?;
                let ago = caller.first_seen.time().map_or(0, |t| {
                    u64::try_from((time::OffsetDateTime::now_utc() - t).whole_nanoseconds()).unwrap_or(0)
                });
                let mut comm = [0u8; 16];
                let n = caller.comm.len().min(15);
                comm[..n].copy_from_slice(&caller.comm.as_bytes()[..n]);
                Some((
                    row,
                    Event {
                        kind: EventKind::FirstSeen as u32,
                        slot: 0,
                        row,
                        phase: phase::CONTAINER,
                        tgid: caller.pid,
                        tid: caller.pid,
                        cgroup_id: 0,
                        ktime_ns: boottime_ns().saturating_sub(ago),
                        nr: observer_common::counters::Row::decode(row).map_or(-1, |r| i64::from(r.nr)),
                        comm,
                        seccomp_mode: 0,
                        _pad: 0,
                    },
                ))
            })
            .collect();
        for (_, event) in past {
            self.alert(key, AlertKind::OutsideBaseline, &event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(queue: usize) -> (RegistryProfiles, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(queue);
        (RegistryProfiles { repo: "oci://127.0.0.1:5000/p".into(), requests: tx, images: HashMap::new() }, rx)
    }

    #[test]
    fn an_image_is_asked_for_once_until_its_answer_and_again_only_after_a_pause() {
        let (mut p, mut rx) = profiles(4);
        assert_eq!(p.binding_for("sha256:a"), None);
        assert_eq!(p.binding_for("sha256:a"), None);
        assert_eq!(rx.try_recv().as_deref(), Ok("sha256:a"));
        assert!(rx.try_recv().is_err(), "asked once while queued");
        assert_eq!(p.status("sha256:a").as_deref(), Some("fetching from oci://127.0.0.1:5000/p"));
        // A failed round: said in ps, not asked again before the pause is over.
        p.images.insert("sha256:a".into(), Fetch::Failed { problem: "did not answer".into(), at: Instant::now() });
        assert_eq!(p.binding_for("sha256:a"), None);
        assert!(rx.try_recv().is_err());
        assert_eq!(p.status("sha256:a").as_deref(), Some("unavailable: did not answer"));
        assert!(p.due(["sha256:a"].into_iter()).is_empty());
        let long_ago = Instant::now().checked_sub(ASK_AGAIN_AFTER + Duration::from_secs(1)).expect("uptime");
        p.images.insert("sha256:a".into(), Fetch::Failed { problem: "did not answer".into(), at: long_ago });
        assert_eq!(p.due(["sha256:a", "sha256:b"].into_iter()), BTreeSet::from(["sha256:a".to_owned()]));
        assert_eq!(p.binding_for("sha256:a"), None);
        assert_eq!(rx.try_recv().as_deref(), Ok("sha256:a"));
        // An answer binds without asking.
        p.images.insert("sha256:a".into(), Fetch::Done(Binding::NoProfile));
        assert_eq!(p.binding_for("sha256:a"), Some(Binding::NoProfile));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_leaves_the_image_to_be_asked_for_later() {
        let (mut p, _rx) = profiles(1);
        assert_eq!(p.binding_for("sha256:a"), None);
        assert_eq!(p.binding_for("sha256:b"), None);
        assert_eq!(p.status("sha256:b"), None, "not queued: not said to be fetching");
        assert!(p.status("sha256:a").is_some());
    }

    #[test]
    fn a_pulled_profile_becomes_kernel_rows_and_a_bad_one_is_named() {
        let rows = rows_of(
            br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
            "p",
        )
        .unwrap();
        assert!(!rows.is_empty());
        let e = rows_of(b"{", "oci://r/p:sha256-x").unwrap_err();
        assert!(e.contains("oci://r/p:sha256-x"), "{e}");
    }
}
