//! Which container a cgroup v2 is: the agent sees cgroup ids from its probes,
//! maps them to paths in the v2 mount ([`observer_probe::v2_mount`]), names the owner from the
//! path ([`cgroup_path`]) and asks dockerd for the details ([`docker_api`]).

pub mod cgroup_path;
pub mod confirm;
pub mod cri;
pub mod docker_api;
pub mod docker_events;
pub mod identity;
pub mod podman;
pub mod podman_events;

use std::{collections::HashMap, io, path::PathBuf, sync::Mutex};

use observer_probe::v2_mount;

pub use cgroup_path::{ContainerRef, Kind, Runtime};
pub use docker_api::{DockerClient, DockerError, DockerInfo, Seccomp};
pub use identity::RuntimeIdentity;

/// Everything known about the owner of one cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub container: ContainerRef,
    /// Docker's view, for Docker containers dockerd knows about.
    pub docker: Option<DockerInfo>,
}

/// Resolves cgroups to [`Identity`]s, caching Docker answers per container id
/// and the v2 tree's id→path map.
///
/// An answer for a container still in state `created` is not cached: the agent
/// can see a new cgroup's first syscalls before dockerd marks it running, and
/// the pid and start time come later.
pub struct Resolver {
    mount: PathBuf,
    docker: Option<DockerClient>,
    docker_cache: Mutex<HashMap<String, Option<DockerInfo>>>,
    paths: Mutex<HashMap<u64, String>>,
    podman: Option<podman::PodmanClient>,
    cri: Option<cri::CriClients>,
    /// Podman's and the CRI's answers, cached like Docker's.
    identity_cache: Mutex<HashMap<String, Option<RuntimeIdentity>>>,
}

impl Resolver {
    /// `mount` is the v2 mount ([`v2_mount::find_v2_mount`]); `docker` is
    /// `None` to resolve from paths alone.
    pub fn new(mount: PathBuf, docker: Option<DockerClient>) -> Self {
        Resolver {
            mount,
            docker,
            docker_cache: Mutex::new(HashMap::new()),
            paths: Mutex::new(HashMap::new()),
            podman: None,
            cri: None,
            identity_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Asks podman (`podman container inspect`) about podman-shaped cgroups.
    pub fn with_podman(mut self, podman: podman::PodmanClient) -> Self {
        self.podman = Some(podman);
        self
    }

    /// Asks these CRI sockets about containerd- and CRI-O-shaped cgroups.
    pub fn with_cri(mut self, cri: cri::CriClients) -> Self {
        self.cri = Some(cri);
        self
    }

    /// What the container's runtime says about the container a cgroup path
    /// names: `Ok(None)` when the runtime does not know it; an error when the
    /// runtime could not be asked (no client for it, down, timing out).
    /// Answers for containers not yet running are not cached.
    pub async fn runtime_identity(&self, cref: &ContainerRef) -> Result<Option<RuntimeIdentity>, String> {
        if cref.kind != Kind::Container {
            return Err(format!("{cref} is not a container"));
        }
        if cref.runtime == Runtime::Docker {
            return self.docker_info(&cref.id).await.map(|d| d.map(RuntimeIdentity::from)).map_err(|e| e.to_string());
        }
        if let Some(cached) = lock(&self.identity_cache).get(&cref.id) {
            return Ok(cached.clone());
        }
        let answer = match cref.runtime {
            Runtime::Podman => match &self.podman {
                Some(p) => p.inspect(&cref.id).await.map_err(|e| e.to_string())?,
                None => return Err("no podman client".into()),
            },
            Runtime::Containerd | Runtime::CriO => match &self.cri {
                Some(c) => c.identify(&cref.id).await.map_err(|e| e.to_string())?,
                None => return Err("no CRI socket given".into()),
            },
            _ => return Err(format!("no client for {:?}", cref.runtime)),
        };
        // "Unknown" is not cached: a CRI runtime learns a pod's sandbox only
        // after its process started.
        if answer.as_ref().is_some_and(|i| i.state != "created") {
            insert_bounded(&mut lock(&self.identity_cache), cref.id.clone(), answer.clone());
        }
        Ok(answer)
    }

    /// The v2 mount from `/proc/self/mountinfo` and dockerd from `DOCKER_HOST`
    /// or its default socket.
    pub fn from_host() -> anyhow::Result<Self> {
        Ok(Self::new(v2_mount::find_v2_mount()?, Some(DockerClient::from_env()?)))
    }

    /// The podman client, when podman containers are asked about.
    pub fn podman(&self) -> Option<&podman::PodmanClient> {
        self.podman.as_ref()
    }

    pub fn mount(&self) -> &std::path::Path {
        &self.mount
    }

    /// dockerd's socket, when the agent asks dockerd.
    pub fn docker_socket(&self) -> Option<&std::path::Path> {
        self.docker.as_ref().map(DockerClient::socket)
    }

    /// The identity of a cgroup given by its id (what `bpf_get_current_cgroup_id`
    /// returns). `Ok(None)` if no such cgroup exists (any more). A cache miss
    /// walks the whole v2 tree, so call this once per new cgroup id.
    pub async fn resolve_id(&self, cgroup_id: u64) -> io::Result<Option<Identity>> {
        let Some(path) = self.path_of(cgroup_id).await? else {
            return Ok(None);
        };
        Ok(Some(self.resolve(&path).await))
    }

    /// The path (relative to the v2 mount) of a cgroup id, rewalking the tree on a miss.
    pub async fn path_of(&self, cgroup_id: u64) -> io::Result<Option<String>> {
        if let Some(path) = lock(&self.paths).get(&cgroup_id) {
            return Ok(Some(path.clone()));
        }
        let mount = self.mount.clone();
        let walked =
            tokio::task::spawn_blocking(move || v2_mount::walk_ids(&mount)).await.map_err(io::Error::other)??;
        let mut paths = lock(&self.paths);
        *paths = walked;
        Ok(paths.get(&cgroup_id).cloned())
    }

    /// The identity of a cgroup given by its path relative to the v2 mount.
    /// A Docker error leaves `docker` empty and is logged; use
    /// [`Resolver::docker_info`] to see it.
    pub async fn resolve(&self, cgroup: &str) -> Identity {
        let container = cgroup_path::parse(cgroup);
        let docker = if container.runtime == Runtime::Docker && container.kind == Kind::Container {
            match self.docker_info(&container.id).await {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(container = %container.id, "asking dockerd: {e}");
                    None
                }
            }
        } else {
            None
        };
        Identity { container, docker }
    }

    /// Docker's answer for one container id: `Ok(None)` when dockerd does not
    /// know it; errors (dockerd down, timeout) are returned and not cached.
    pub async fn docker_info(&self, id: &str) -> Result<Option<DockerInfo>, DockerError> {
        if let Some(cached) = lock(&self.docker_cache).get(id) {
            return Ok(cached.clone());
        }
        let Some(client) = &self.docker else {
            return Ok(None);
        };
        let answer = match client.inspect(id).await {
            Ok(info) => Some(info),
            Err(DockerError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        if answer.as_ref().is_none_or(|info| info.state != "created") {
            insert_bounded(&mut lock(&self.docker_cache), id.to_owned(), answer.clone());
        }
        Ok(answer)
    }

    /// Drops what is cached about a container (call when its cgroup goes away).
    pub fn forget(&self, id: &str) {
        lock(&self.docker_cache).remove(id);
        lock(&self.identity_cache).remove(id);
    }
}

/// How many runtime answers a cache keeps. The agent forgets a container's
/// answer when it ends; this bounds what a caller that never forgets keeps.
const MAX_CACHED: usize = 4096;

/// Inserts into a cache of runtime answers, emptying it first when full: an
/// answer dropped is only asked again.
fn insert_bounded<V>(cache: &mut HashMap<String, V>, key: String, value: V) {
    if cache.len() >= MAX_CACHED && !cache.contains_key(&key) {
        cache.clear();
    }
    cache.insert(key, value);
}

/// The number of answers cached (Docker's and the other runtimes').
impl Resolver {
    pub fn cached_answers(&self) -> usize {
        lock(&self.docker_cache).len() + lock(&self.identity_cache).len()
    }
}

/// A poisoned lock only means another task panicked mid-insert into a cache;
/// the map is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_docker_resolves_from_the_path() {
        let r = Resolver::new(PathBuf::from("/nonexistent"), None);
        let id = "3f4e2c1b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";
        let identity = r.resolve(&format!("/docker/{id}/sub")).await;
        assert_eq!(identity.container.runtime, Runtime::Docker);
        assert_eq!(identity.container.cgroup, format!("/docker/{id}"));
        assert_eq!(identity.docker, None);
        assert!(r.resolve_id(1).await.is_err(), "a missing mount is an error");
    }

    #[tokio::test]
    async fn dockerd_down_is_an_error_not_a_cached_answer() {
        let r = Resolver::new(PathBuf::from("/"), Some(DockerClient::new("/nonexistent/docker.sock")));
        let id = "3f4e2c1b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";
        assert!(matches!(r.docker_info(id).await, Err(DockerError::SocketMissing(_))));
        assert!(lock(&r.docker_cache).is_empty());
        assert_eq!(r.resolve(&format!("/docker/{id}")).await.docker, None);
    }
}
