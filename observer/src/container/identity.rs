//! What a container runtime says about one container, in one shape for every
//! runtime (Docker, podman, containerd and CRI-O through the CRI): the agent's
//! records, `--match` rules and baselines read this, never a runtime's own type.

use std::collections::BTreeMap;

use observer_contract::{image::image_matches, pod::PodInfo};
use serde::{Deserialize, Serialize};

use super::docker_api::DockerInfo;

/// One container as its runtime describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeIdentity {
    /// Who runs it: `docker`, `podman`, `containerd`, `cri-o` (the CRI's runtime name).
    pub engine: String,
    /// What `observer ps` shows as `runtime`: Docker's OCI runtime (`runc`,
    /// `crun`), as it always did; the engine for the others.
    pub runtime: String,
    /// The name to show: Docker's and podman's container name; for a CRI
    /// container `NAMESPACE/POD/CONTAINER` (`NAMESPACE/POD/POD` for the sandbox).
    pub name: String,
    /// The container's own name (the CRI's metadata name; Docker's name).
    pub container_name: String,
    /// The image as asked for (`nginx:1.25`, `docker.io/library/nginx:1.25`).
    pub image: String,
    /// The image's content id or digest (`sha256:...`).
    pub image_digest: String,
    /// Its init process in the host pid namespace; 0 when not running.
    pub pid: u32,
    /// `created`, `running`, `exited`, ... (the CRI's states spelled that way too).
    pub state: String,
    /// RFC 3339; empty when unknown or never started.
    pub started_at: String,
    /// Docker's `--security-opt seccomp=` value, when the runtime says.
    pub seccomp: Option<String>,
    pub pod: Option<PodInfo>,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
}

impl From<DockerInfo> for RuntimeIdentity {
    fn from(d: DockerInfo) -> Self {
        RuntimeIdentity {
            engine: "docker".into(),
            runtime: d.runtime,
            container_name: d.name.clone(),
            name: d.name,
            image: d.image,
            image_digest: d.image_id,
            pid: d.pid,
            state: d.state,
            started_at: d.started_at,
            seccomp: Some(d.seccomp.to_string()),
            pod: None,
            labels: d.labels,
        }
    }
}

impl RuntimeIdentity {
    /// Whether an image rule (`image:IMAGE`) names this container's image: the
    /// image as written, without its tag, or (for registries' full names) by
    /// its last path components, or by digest.
    pub fn image_matches(image: &str, digest: &str, wanted: &str) -> bool {
        image_matches(image, digest, wanted)
    }
}
