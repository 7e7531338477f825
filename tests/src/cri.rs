//! Drives a containerd's CRI the way the kubelet does, for the tests and for
//! the set-up's check (xtask/scripts/containerd-cri.sh): RunPodSandbox in the
//! node's network namespace (no CNI here, and no hostname: runc cannot set one
//! without a UTS namespace of the pod's own), with a kubelet-style cgroup parent
//! (`/kubepods/besteffort/pod<uid>`), then CreateContainer and StartContainer.

use std::collections::HashMap;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopContainerRequest, StopPodSandboxRequest, runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::{Channel, Endpoint, Uri};

/// The test containerd's socket (xtask/scripts/containerd-cri.sh).
pub const SOCKET: &str = "/run/observer-cri/containerd.sock";
/// The busybox image as containerd names it after `ctr images import`.
pub const BUSYBOX: &str = "docker.io/library/observer-busybox:latest";

pub struct Cri {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

/// A pod as the kubelet would describe it.
#[derive(Clone, Debug)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: HashMap<String, String>,
}

impl Pod {
    pub fn new(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Pod {
        Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid: new_uid(),
            labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        }
    }

    pub fn cgroup_parent(&self) -> String {
        format!("/kubepods/besteffort/pod{}", self.uid)
    }

    fn config(&self) -> PodSandboxConfig {
        let mut labels = self.labels.clone();
        // What the kubelet adds to every sandbox.
        labels.insert("io.kubernetes.pod.name".into(), self.name.clone());
        labels.insert("io.kubernetes.pod.namespace".into(), self.namespace.clone());
        labels.insert("io.kubernetes.pod.uid".into(), self.uid.clone());
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: self.name.clone(),
                uid: self.uid.clone(),
                namespace: self.namespace.clone(),
                attempt: 0,
            }),
            hostname: String::new(),
            labels,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A random RFC 4122 version 4 UID, as the API server gives pods.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    let f = std::fs::read("/proc/sys/kernel/random/uuid").unwrap_or_default();
    let text = String::from_utf8_lossy(&f).trim().to_owned();
    if text.len() == 36 {
        return text;
    }
    for (i, x) in b.iter_mut().enumerate() {
        *x = (crate::unique() >> (i % 8 * 8)) as u8;
    }
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-4{:x}{:02x}-8{:x}{:02x}-{}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6] & 15,
        b[7],
        b[8] & 15,
        b[9],
        b[10..].iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn err(what: &str, s: tonic::Status) -> String {
    format!("{what}: {:?}: {}", s.code(), s.message())
}

impl Cri {
    pub fn connect(socket: &str) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let socket = socket.to_owned();
        let channel = rt.block_on(async {
            let endpoint = Endpoint::try_from("http://[::1]:1").map_err(|e| e.to_string())?;
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
                })),
            )
            .await
            .map_err(|_| "connecting timed out".to_owned())?
            .map_err(|e| format!("connecting: {e:?}"))
        })?;
        Ok(Cri { rt, client: RuntimeServiceClient::new(channel) })
    }

    /// RunPodSandbox: the sandbox id.
    pub fn run_pod(&mut self, pod: &Pod) -> Result<String, String> {
        let req = RunPodSandboxRequest { config: Some(pod.config()), runtime_handler: String::new() };
        let r = self.rt.block_on(self.client.run_pod_sandbox(req)).map_err(|s| err("RunPodSandbox", s))?;
        Ok(r.into_inner().pod_sandbox_id)
    }

    /// CreateContainer + StartContainer in a pod: the container id.
    pub fn run_container(
        &mut self,
        sandbox: &str,
        pod: &Pod,
        name: &str,
        image: &str,
        cmd: &[&str],
    ) -> Result<String, String> {
        let labels: HashMap<String, String> = [
            ("io.kubernetes.container.name", name),
            ("io.kubernetes.pod.name", pod.name.as_str()),
            ("io.kubernetes.pod.namespace", pod.namespace.as_str()),
            ("io.kubernetes.pod.uid", pod.uid.as_str()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(ImageSpec { image: image.into(), ..Default::default() }),
            command: cmd.iter().map(|s| (*s).to_owned()).collect(),
            labels,
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(config),
            sandbox_config: Some(pod.config()),
        };
        let id = self
            .rt
            .block_on(self.client.create_container(req))
            .map_err(|s| err("CreateContainer", s))?
            .into_inner()
            .container_id;
        self.rt
            .block_on(self.client.start_container(StartContainerRequest { container_id: id.clone() }))
            .map_err(|s| err("StartContainer", s))?;
        Ok(id)
    }

    pub fn remove_container(&mut self, id: &str) {
        let _ =
            self.rt.block_on(self.client.stop_container(StopContainerRequest { container_id: id.into(), timeout: 0 }));
        let _ = self.rt.block_on(self.client.remove_container(RemoveContainerRequest { container_id: id.into() }));
    }

    /// StopPodSandbox + RemovePodSandbox (its containers go with it).
    pub fn remove_pod(&mut self, sandbox: &str) -> Result<(), String> {
        self.rt
            .block_on(self.client.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.into() }))
            .map_err(|s| err("StopPodSandbox", s))?;
        self.rt
            .block_on(self.client.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox.into() }))
            .map_err(|s| err("RemovePodSandbox", s))?;
        Ok(())
    }
}

/// Removes pods when dropped (also when a test fails).
pub struct PodCleanup(pub Vec<String>);

impl Drop for PodCleanup {
    fn drop(&mut self) {
        if let Ok(mut cri) = Cri::connect(SOCKET) {
            for id in &self.0 {
                let _ = cri.remove_pod(id);
            }
        }
    }
}
