//! Containers the runtime announced before their cgroup's first syscall.
//!
//! Docker's `create` event comes before runc makes the container's cgroup, and
//! runc's init then runs in that cgroup for a while (its setup, then a wait for
//! `runc start`) before it execs the container's process. So by the cgroup's
//! first call (the kernel's `NewCgroup` event, made by runc's init) the agent
//! already knows the container's name, image and rules, and arms its slot
//! under the same lock that adopts it: the container's own first call is
//! judged by the kernel. Whatever a slower path misses is judged when the rule
//! is armed (`Agent::enforce_on`).

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use super::{core::Agent, identity::IdentityJob};
use crate::container::{
    ContainerRef, Kind, Runtime, RuntimeIdentity,
    confirm::Confirmation,
    docker_events::{Action, ContainerEvent, DockerNews},
};

/// At most this many announced containers are kept (a host creating
/// containers it never starts cannot grow the table without bound).
const MAX_ANNOUNCED: usize = 4096;
/// An announcement is forgotten after this long (a `docker create` started
/// later is confirmed by its `start` event instead).
const KEEP: Duration = Duration::from_secs(3600);

/// Container id -> what the runtime said when it announced it.
#[derive(Default)]
pub struct Announced {
    by_id: HashMap<String, (Instant, u64, RuntimeIdentity)>,
    /// Insertion order, to drop the oldest first.
    next: u64,
    /// dockerd's cgroup driver (`cgroupfs`, `systemd`), which says where it
    /// puts a container's cgroup; empty while unknown.
    pub cgroup_driver: String,
}

impl Announced {
    pub fn insert(&mut self, id: String, identity: RuntimeIdentity) {
        let now = Instant::now();
        self.by_id.retain(|_, (at, _, _)| now.duration_since(*at) < KEEP);
        if self.by_id.len() >= MAX_ANNOUNCED
            && let Some(oldest) = self.by_id.iter().min_by_key(|(_, (_, n, _))| *n).map(|(id, _)| id.clone())
        {
            self.by_id.remove(&oldest);
        }
        self.next += 1;
        self.by_id.insert(id, (now, self.next, identity));
    }

    pub fn get(&self, id: &str) -> Option<&RuntimeIdentity> {
        self.by_id.get(id).filter(|(at, _, _)| at.elapsed() < KEEP).map(|(_, _, identity)| identity)
    }

    pub fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// Whether `path` is the cgroup Docker itself makes for the container `cref`
/// names under its cgroup driver: `/docker/<id>` (cgroupfs) or
/// `/system.slice/docker-<id>.scope` (systemd), at the top of the host's tree.
/// Together with a path only root can write (checked before) and dockerd
/// announcing the container, that is the runtime's word on the cgroup before
/// its init pid exists: a container with a writable cgroupfs can make
/// directories only below its own cgroup, never there. A container under
/// `--cgroup-parent` is confirmed by its init pid instead, once dockerd says
/// it started.
pub fn where_docker_puts_it(cref: &ContainerRef, path: &str, cgroup_driver: &str) -> bool {
    let expected = match cgroup_driver {
        "cgroupfs" => format!("/docker/{}", cref.id),
        "systemd" => format!("/system.slice/docker-{}.scope", cref.id),
        _ => return false,
    };
    cref.runtime == Runtime::Docker && cref.kind == Kind::Container && cref.cgroup == path && path == expected
}

impl Agent {
    /// A container cgroup's confirmation and identity from an announcement,
    /// if the runtime made one (see `where_docker_puts_it`).
    pub(super) fn announced_for(&self, cref: &ContainerRef, path: &str) -> Option<(Confirmation, RuntimeIdentity)> {
        let identity = self.announced.get(&cref.id)?.clone();
        let confirmation = if super::announced_podman::where_runtime_puts_it(cref, path, &self.announced.cgroup_driver)
        {
            Confirmation::Confirmed
        } else {
            Confirmation::Pending
        };
        Some((confirmation, identity))
    }

    /// dockerd announced a container (`identity`, its inspect answer, asked
    /// outside the lock). Usually its cgroup does not exist yet; if it does
    /// (the event came late), its pending cgroups are confirmed and armed now.
    pub fn on_container_created(&mut self, id: &str, identity: RuntimeIdentity) {
        self.announced.insert(id.to_owned(), identity.clone());
        let Some(record) = self.containers.get(id) else { return };
        let pending: Vec<(u64, String)> = record
            .cgroups
            .iter()
            .filter(|(_, c)| c.slot.is_some() && c.confirmation == Confirmation::Pending)
            .map(|(id, c)| (*id, c.path.clone()))
            .collect();
        for (cgroup_id, path) in pending {
            let cref = crate::container::cgroup_path::parse(&path);
            if super::announced_podman::where_runtime_puts_it(&cref, &path, &self.announced.cgroup_driver)
                && let Some(cg) = self.containers.get_mut(id).and_then(|r| r.cgroups.get_mut(&cgroup_id))
            {
                tracing::info!(cgroup = %path, "confirmed by its runtime's create event");
                cg.confirmation = Confirmation::Confirmed;
            }
        }
        let cref = crate::container::cgroup_path::parse(&format!("/docker/{id}"));
        self.fill_identity(id, &cref, Some(identity));
        self.dirty.insert(id.to_owned());
        self.apply_rules(id);
    }

    /// The jobs that ask the runtime about a container's cgroups still
    /// pending: run when dockerd says it started (its init pid is known now).
    pub fn jobs_on_start(&mut self, id: &str) -> Vec<IdentityJob> {
        self.pending_jobs().into_iter().filter(|j| j.cref.id == id).collect()
    }
}

/// A container as dockerd's `create` event describes it: its name, image and
/// labels (the attributes besides `name` and `image`).
fn identity_of_event(mut attributes: BTreeMap<String, String>) -> RuntimeIdentity {
    let name = attributes.remove("name").unwrap_or_default();
    let image = attributes.remove("image").unwrap_or_default();
    RuntimeIdentity {
        engine: "docker".into(),
        container_name: name.clone(),
        name,
        image,
        state: "created".into(),
        labels: attributes,
        ..RuntimeIdentity::default()
    }
}

/// Follows dockerd's container events for as long as the agent runs.
pub async fn follow_docker(
    agent: std::sync::Arc<tokio::sync::Mutex<Agent>>,
    resolver: std::sync::Arc<crate::container::Resolver>,
) -> anyhow::Result<()> {
    let Some(socket) = resolver.docker_socket().map(std::path::Path::to_path_buf) else {
        // No dockerd to ask: nothing to follow, ever.
        return std::future::pending().await;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(crate::container::docker_events::follow_forever(socket, tx));
    while let Some(news) = rx.recv().await {
        let ContainerEvent { action, id, attributes } = match news {
            DockerNews::Connected { cgroup_driver } => {
                agent.lock().await.announced.cgroup_driver = cgroup_driver;
                continue;
            }
            DockerNews::Container(event) => event,
        };
        match action {
            Action::Create => {
                // What the event says is known at once; dockerd's inspect
                // (runtime, seccomp, image digest) follows when it answers.
                agent.lock().await.on_container_created(&id, identity_of_event(attributes));
                let (agent, resolver) = (agent.clone(), resolver.clone());
                tokio::spawn(async move {
                    let cref = crate::container::cgroup_path::parse(&format!("/docker/{id}"));
                    match resolver.runtime_identity(&cref).await {
                        Ok(Some(identity)) => agent.lock().await.on_container_created(&id, identity),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!("asking dockerd about new container {}: {e}", crate::printable::short(&id))
                        }
                    }
                });
            }
            Action::Start => {
                let jobs = agent.lock().await.jobs_on_start(&id);
                let (agent, resolver) = (agent.clone(), resolver.clone());
                tokio::spawn(async move { super::identity::resolve_jobs(&agent, &resolver, jobs).await });
            }
            Action::Destroy => agent.lock().await.announced.remove(&id),
        }
    }
    follower.abort();
    anyhow::bail!("dockerd's event follower stopped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::cgroup_path::parse;

    const ID: &str = "3f4e2c1b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

    #[test]
    fn only_the_cgroup_docker_makes_is_confirmed_by_an_announcement() {
        let cgroupfs = format!("/docker/{ID}");
        let systemd = format!("/system.slice/docker-{ID}.scope");
        assert!(where_docker_puts_it(&parse(&cgroupfs), &cgroupfs, "cgroupfs"));
        assert!(where_docker_puts_it(&parse(&systemd), &systemd, "systemd"));
        // Where the other driver would put it: not where this dockerd does.
        assert!(!where_docker_puts_it(&parse(&systemd), &systemd, "cgroupfs"));
        assert!(!where_docker_puts_it(&parse(&cgroupfs), &cgroupfs, "systemd"));
        assert!(!where_docker_puts_it(&parse(&cgroupfs), &cgroupfs, ""), "the driver unknown");
        for path in [
            // Below the container's cgroup: a cgroup of its own, confirmed by pid.
            format!("/docker/{ID}/sub"),
            // Somewhere else in the tree (`--cgroup-parent`, or made to look like it).
            format!("/custom/docker-{ID}.scope"),
            format!("/user.slice/user-1000.slice/user@1000.service/docker-{ID}.scope"),
            format!("/libpod_parent/libpod-{ID}"),
        ] {
            for driver in ["cgroupfs", "systemd"] {
                assert!(!where_docker_puts_it(&parse(&path), &path, driver), "{path}");
            }
        }
    }

    #[test]
    fn announcements_are_bounded() {
        let mut a = Announced::default();
        let identity = RuntimeIdentity::default();
        for i in 0..MAX_ANNOUNCED + 10 {
            a.insert(format!("{i:064x}"), identity.clone());
        }
        assert_eq!(a.len(), MAX_ANNOUNCED);
        assert!(a.get(&format!("{:064x}", MAX_ANNOUNCED + 9)).is_some(), "the newest is kept");
        assert!(a.get(&format!("{:064x}", 0)).is_none(), "the oldest went first");
    }
}
