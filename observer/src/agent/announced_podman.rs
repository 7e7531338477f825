//! Containers podman announced before their cgroup's first syscall (its
//! `create` event, see `container::podman_events`), as dockerd's are
//! (`announced`): named, confirmed where podman puts them, and armed under
//! the lock that adopts the cgroup, before the container's own first call.

use std::collections::BTreeMap;

use super::{announced::where_docker_puts_it, core::Agent};
use crate::container::{
    ContainerRef, Kind, Runtime, RuntimeIdentity,
    cgroup_path::parse,
    docker_events::{Action, ContainerEvent},
    podman_events::{self, PodmanNews},
};

/// Whether `path` is the cgroup rootful podman itself makes for the container
/// `cref` names: `/libpod_parent/libpod-<id>` (its cgroupfs manager) or
/// `/machine.slice/libpod-<id>.scope` (systemd), at the top of the host's
/// tree. podman picks the manager per container (`--cgroup-manager`), so
/// either is podman's. As for Docker: only root can make either directory
/// (an unprivileged path is refused before), and podman announced the id.
pub fn where_podman_puts_it(cref: &ContainerRef, path: &str) -> bool {
    let made_by_podman =
        [format!("/libpod_parent/libpod-{}", cref.id), format!("/machine.slice/libpod-{}.scope", cref.id)];
    cref.runtime == Runtime::Podman
        && cref.kind == Kind::Container
        && cref.cgroup == path
        && made_by_podman.iter().any(|p| p == path)
}

/// Whether `path` is where the runtime that announces containers like
/// `cref` puts it (dockerd under its cgroup driver, or podman).
pub fn where_runtime_puts_it(cref: &ContainerRef, path: &str, docker_cgroup_driver: &str) -> bool {
    match cref.runtime {
        Runtime::Docker => where_docker_puts_it(cref, path, docker_cgroup_driver),
        Runtime::Podman => where_podman_puts_it(cref, path),
        _ => false,
    }
}

/// A container as podman's `create` event describes it.
fn identity_of_event(mut attributes: BTreeMap<String, String>) -> RuntimeIdentity {
    let name = attributes.remove("name").unwrap_or_default();
    let image = attributes.remove("image").unwrap_or_default();
    RuntimeIdentity {
        engine: "podman".into(),
        runtime: "podman".into(),
        container_name: name.clone(),
        name,
        image,
        state: "created".into(),
        labels: attributes,
        ..RuntimeIdentity::default()
    }
}

/// Follows podman's container events for as long as the agent runs, from
/// its API service's socket (`container::podman_events`). Never ends: a host
/// without podman's service is normal, and an agent that lost its podman
/// follower still records, names and enforces (later, once podman answers
/// an inspect).
pub async fn follow_podman(
    agent: std::sync::Arc<tokio::sync::Mutex<Agent>>,
    resolver: std::sync::Arc<crate::container::Resolver>,
) -> anyhow::Result<()> {
    let Some(socket) = resolver.podman().map(|p| p.socket().to_path_buf()) else {
        return std::future::pending().await;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(podman_events::follow_forever(socket.clone(), tx, podman_events::LOOK_AGAIN));
    while let Some(news) = rx.recv().await {
        let ContainerEvent { action, id, attributes } = match news {
            PodmanNews::Connected => {
                tracing::info!("following podman's events on {}", socket.display());
                continue;
            }
            PodmanNews::Container(event) => event,
        };
        match action {
            Action::Create => {
                agent.lock().await.on_container_created(&id, identity_of_event(attributes));
                // podman's inspect (image digest, OCI runtime, seccomp) when it answers.
                let (agent, resolver) = (agent.clone(), resolver.clone());
                tokio::spawn(async move {
                    let cref = parse(&format!("/libpod_parent/libpod-{id}"));
                    match resolver.runtime_identity(&cref).await {
                        Ok(Some(identity)) => agent.lock().await.on_container_created(&id, identity),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!("asking podman about new container {}: {e}", crate::printable::short(&id))
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
    // Only a panic in the follower gets here: the agent runs on without it.
    if let Err(e) = follower.await {
        tracing::warn!("podman's event follower stopped ({e}); podman containers are named once they run");
    }
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "2691b94674d9aace5e32bdd8cdc652286994bed3cc4376bcca1ec942917c67cc";

    #[test]
    fn only_the_cgroups_podman_makes_are_confirmed_by_an_announcement() {
        for path in [format!("/libpod_parent/libpod-{ID}"), format!("/machine.slice/libpod-{ID}.scope")] {
            assert!(where_podman_puts_it(&parse(&path), &path), "{path}");
            assert!(where_runtime_puts_it(&parse(&path), &path, ""), "{path}");
        }
        for path in [
            // Below the container's cgroup: a cgroup of its own, confirmed by pid.
            format!("/libpod_parent/libpod-{ID}/sub"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            // Its monitor (conmon), and elsewhere in the tree.
            format!("/libpod_parent/conmon-{ID}"),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            format!("/user.slice/user-1000.slice/user@1000.service/libpod-{ID}.scope"),
            format!("/docker/{ID}"),
        ] {
            assert!(!where_podman_puts_it(&parse(&path), &path), "{path}");
        }
    }
}
