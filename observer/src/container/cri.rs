//! A CRI client (the kubelet's API to containerd and CRI-O) over gRPC on the
//! runtime's unix socket: for one container or pod sandbox id, its pod
//! (namespace, name, uid, labels), its name, image and digest, labels, state
//! and init pid (from the verbose status, which both runtimes fill).
//!
//! The sockets are given with `--cri-socket` (defaults: containerd's and
//! CRI-O's usual paths); one that does not exist is skipped, and looked at
//! again on the next question, so a runtime that starts after the agent is found.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ContainerFilter, ContainerStatusRequest, ListContainersRequest, PodSandboxStatusRequest, VersionRequest,
    runtime_service_client::RuntimeServiceClient,
};
use observer_contract::pod::{PodInfo, Workload};
use tonic::transport::{Channel, Endpoint, Uri};

use super::identity::RuntimeIdentity;

pub const DEFAULT_SOCKETS: [&str; 2] = ["/run/containerd/containerd.sock", "/var/run/crio/crio.sock"];

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("no CRI socket found (looked at {0})")]
    NoSocket(String),
    #[error("CRI {socket}: {what} did not answer within {timeout:?}")]
    Timeout { socket: String, what: String, timeout: Duration },
    #[error("CRI {socket}: connecting: {error}")]
    Connect { socket: String, error: String },
    #[error("CRI {socket}: {what}: {status}")]
    Call { socket: String, what: String, status: String },
}

/// One runtime's CRI socket.
pub struct CriClient {
    socket: PathBuf,
    timeout: Duration,
    /// The channel and the runtime's name (`containerd`, `cri-o`), once connected.
    channel: Mutex<Option<(Channel, String)>>,
}

fn ns_to_rfc3339(ns: i64) -> String {
    if ns <= 0 {
        return String::new();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The init pid in a verbose status's `info` map: `{"info": "{\"pid\": 1234, ...}"}`
/// (containerd and CRI-O both write it there).
pub fn pid_from_info(info: &std::collections::HashMap<String, String>) -> u32 {
    /// The one field of the verbose info read here (the rest is ignored).
    #[derive(serde::Deserialize)]
    struct VerboseInfo {
        pid: Option<u64>,
    }
    info.get("info")
        .and_then(|s| serde_json::from_str::<VerboseInfo>(s).ok())
        .and_then(|v| v.pid)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0)
}

/// The engine's name as the CRI gives it, in lower case (`containerd`, `cri-o`).
fn engine_name(runtime_name: &str) -> String {
    let n = runtime_name.to_ascii_lowercase();
    if n.contains("crio") || n.contains("cri-o") { "cri-o".into() } else { n }
}

impl CriClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        CriClient { socket: socket.into(), timeout: Duration::from_secs(3), channel: Mutex::new(None) }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn name(&self) -> String {
        self.socket.display().to_string()
    }

    async fn call<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, CriError> {
        match tokio::time::timeout(self.timeout, f).await {
            Err(_) => {
                self.drop_channel();
                Err(CriError::Timeout { socket: self.name(), what: what.into(), timeout: self.timeout })
            }
            Ok(Err(status)) => {
                if status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Unknown {
                    self.drop_channel();
                }
                Err(CriError::Call {
                    socket: self.name(),
                    what: what.into(),
                    status: format!("{:?}: {}", status.code(), status.message()),
                })
            }
            Ok(Ok(v)) => Ok(v),
        }
    }

    fn drop_channel(&self) {
        *self.channel.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The channel to the runtime, connecting (and asking its name) on first use.
    async fn connect(&self) -> Result<(RuntimeServiceClient<Channel>, String), CriError> {
        if let Some((ch, name)) = self.channel.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok((RuntimeServiceClient::new(ch), name));
        }
        let socket = self.socket.clone();
        // The URI is not used: every connection goes to the unix socket.
        let endpoint = Endpoint::try_from("http://[::1]:1")
            .map_err(|e| CriError::Connect { socket: self.name(), error: e.to_string() })?
            .connect_timeout(self.timeout);
        let connecting = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
        }));
        let channel = match tokio::time::timeout(self.timeout, connecting).await {
            Err(_) => {
                return Err(CriError::Timeout { socket: self.name(), what: "connect".into(), timeout: self.timeout });
            }
            Ok(Err(e)) => return Err(CriError::Connect { socket: self.name(), error: format!("{e:?}") }),
            Ok(Ok(c)) => c,
        };
        let mut client = RuntimeServiceClient::new(channel.clone());
        let version = self.call("Version", client.version(VersionRequest { version: "v1".into() })).await?.into_inner();
        let name = engine_name(&version.runtime_name);
        *self.channel.lock().unwrap_or_else(|e| e.into_inner()) = Some((channel, name.clone()));
        Ok((client, name))
    }

    /// What the runtime says about a container or pod sandbox id: `Ok(None)`
    /// when it knows neither.
    pub async fn identify(&self, id: &str) -> Result<Option<RuntimeIdentity>, CriError> {
        let (mut client, engine) = self.connect().await?;
        let listed = self
            .call(
                "ListContainers",
                client.list_containers(ListContainersRequest {
                    filter: Some(ContainerFilter { id: id.to_owned(), ..Default::default() }),
                }),
            )
            .await?
            .into_inner();
        if let Some(c) = listed.containers.into_iter().find(|c| c.id == id) {
            let status = self
                .call(
                    "ContainerStatus",
                    client.container_status(ContainerStatusRequest { container_id: id.to_owned(), verbose: true }),
                )
                .await?
                .into_inner();
            let pid = pid_from_info(&status.info);
            let s = status.status.unwrap_or_default();
            let pod = self.pod(&mut client, &c.pod_sandbox_id).await?.map(|(pod, _, _)| pod);
            let container_name =
                s.metadata.as_ref().or(c.metadata.as_ref()).map(|m| m.name.clone()).unwrap_or_default();
            let state = match k8s_cri::v1::ContainerState::try_from(s.state) {
                Ok(k8s_cri::v1::ContainerState::ContainerCreated) => "created",
                Ok(k8s_cri::v1::ContainerState::ContainerRunning) => "running",
                Ok(k8s_cri::v1::ContainerState::ContainerExited) => "exited",
                _ => "unknown",
            };
            let image = s
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| c.image.map(|i| i.image).unwrap_or_default());
            let name = match &pod {
                Some(p) => format!("{}/{}/{}", p.namespace, p.name, container_name),
                None => container_name.clone(),
            };
            return Ok(Some(RuntimeIdentity {
                runtime: engine.clone(),
                engine,
                name,
                container_name,
                image,
                image_digest: if s.image_ref.is_empty() { c.image_ref } else { s.image_ref },
                pid,
                state: state.into(),
                started_at: ns_to_rfc3339(s.started_at),
                seccomp: None,
                pod,
                labels: s.labels.into_iter().collect(),
            }));
        }
        // Not a container: perhaps a pod's sandbox.
        let Some((pod, pid, (state, created))) = self.pod(&mut client, id).await? else { return Ok(None) };
        Ok(Some(RuntimeIdentity {
            runtime: engine.clone(),
            engine,
            name: format!("{}/{}/POD", pod.namespace, pod.name),
            container_name: "POD".into(),
            image: String::new(),
            image_digest: String::new(),
            pid,
            state,
            started_at: created,
            seccomp: None,
            labels: pod.labels.clone(),
            pod: Some(PodInfo { sandbox: true, ..pod }),
        }))
    }

    /// A pod sandbox's pod, init pid, state and creation time; None when unknown.
    async fn pod(
        &self,
        client: &mut RuntimeServiceClient<Channel>,
        sandbox_id: &str,
    ) -> Result<Option<(PodInfo, u32, (String, String))>, CriError> {
        if sandbox_id.is_empty() {
            return Ok(None);
        }
        let answer =
            client.pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: sandbox_id.to_owned(), verbose: true });
        let status = match self.call("PodSandboxStatus", answer).await {
            Ok(s) => s.into_inner(),
            Err(CriError::Call { status, .. }) if status.starts_with("NotFound") => return Ok(None),
            Err(e) => return Err(e),
        };
        let pid = pid_from_info(&status.info);
        let s = status.status.unwrap_or_default();
        let meta = s.metadata.unwrap_or_default();
        let labels: BTreeMap<String, String> = s.labels.into_iter().collect();
        let state = match k8s_cri::v1::PodSandboxState::try_from(s.state) {
            Ok(k8s_cri::v1::PodSandboxState::SandboxReady) => "running",
            _ => "exited",
        };
        let workload = Workload::of_pod(&meta.name, &labels);
        Ok(Some((
            PodInfo { namespace: meta.namespace, name: meta.name, uid: meta.uid, labels, sandbox: false, workload },
            pid,
            (state.into(), ns_to_rfc3339(s.created_at)),
        )))
    }
}

/// Every CRI socket the agent was given.
pub struct CriClients {
    clients: Vec<CriClient>,
}

impl CriClients {
    pub fn new(sockets: &[PathBuf]) -> Self {
        CriClients { clients: sockets.iter().map(CriClient::new).collect() }
    }

    /// The first runtime that knows the id answers. `Ok(None)` only when every
    /// socket there answered and none knows it; an error when none could be
    /// asked (or one that could not be asked might know it).
    pub async fn identify(&self, id: &str) -> Result<Option<RuntimeIdentity>, CriError> {
        let mut error = None;
        let mut asked = 0;
        for c in &self.clients {
            if !c.socket.exists() {
                continue;
            }
            asked += 1;
            match c.identify(id).await {
                Ok(Some(i)) => return Ok(Some(i)),
                Ok(None) => {}
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) => Err(e),
            None if asked == 0 => {
                Err(CriError::NoSocket(self.clients.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_and_names() {
        let mut info = std::collections::HashMap::new();
        assert_eq!(pid_from_info(&info), 0);
        info.insert("info".to_owned(), r#"{"sandboxID":"x","pid":4242,"runtimeSpec":{}}"#.to_owned());
        assert_eq!(pid_from_info(&info), 4242);
        assert_eq!(engine_name("containerd"), "containerd");
        assert_eq!(engine_name("cri-o"), "cri-o");
        assert_eq!(ns_to_rfc3339(0), "");
        assert!(ns_to_rfc3339(1_700_000_000_000_000_000).starts_with("2023-11-14T"));
    }

    #[tokio::test]
    async fn no_socket_is_unavailable_not_unknown() {
        let c = CriClients::new(&[PathBuf::from("/nonexistent/containerd.sock")]);
        assert!(matches!(c.identify("abc").await, Err(CriError::NoSocket(_))));
    }
}
