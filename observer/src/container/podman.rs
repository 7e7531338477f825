//! Rootful podman's answer about one container: asked of its API service
//! (`GET /libpod/containers/ID/json` on `/run/podman/podman.sock`) when it
//! listens, else `podman container inspect --format json ID` run as a child
//! process with a timeout (podman has no daemon unless its API service is
//! started; the CLI reads its own database). The socket is preferred: a child
//! runs in the agent's cgroup, and its calls are work the agent did not need.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;

use super::identity::RuntimeIdentity;

#[derive(Debug, thiserror::Error)]
pub enum PodmanError {
    #[error("podman is not installed ({0} not found)")]
    Missing(PathBuf),
    #[error("podman container inspect {0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("podman container inspect {0}: {1}")]
    Failed(String, String),
    #[error("podman container inspect {0}: unexpected answer: {1}")]
    Json(String, serde_json::Error),
}

#[derive(Clone, Debug)]
pub struct PodmanClient {
    bin: PathBuf,
    timeout: Duration,
    /// podman's API service socket, where its events are followed.
    socket: PathBuf,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    image_name: String,
    #[serde(default)]
    image_digest: String,
    #[serde(default, rename = "OCIRuntime")]
    oci_runtime: String,
    #[serde(default)]
    is_infra: bool,
    #[serde(default)]
    state: Option<InspectState>,
    #[serde(default)]
    config: Option<InspectConfig>,
    #[serde(default)]
    host_config: Option<InspectHostConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    #[serde(default)]
    status: String,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    started_at: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct InspectHostConfig {
    #[serde(default)]
    security_opt: Option<Vec<String>>,
}

/// Podman's states, in the words `confirm` understands: before it runs a
/// container is `configured`, `created` or `initialized` (pid 0): "created".
fn state_word(status: &str) -> String {
    match status {
        "configured" | "initialized" | "created" => "created".into(),
        "stopped" | "exited" => "exited".into(),
        other => other.to_owned(),
    }
}

/// Parses `podman container inspect --format json` output (an array of one).
pub fn parse_inspect(body: &[u8], id: &str) -> Result<Option<RuntimeIdentity>, PodmanError> {
    let list: Vec<Inspect> = serde_json::from_slice(body).map_err(|e| PodmanError::Json(id.to_owned(), e))?;
    Ok(list.into_iter().find(|i| i.id == id).map(identity_of))
}

/// Parses the API service's answer (the same fields, one object).
pub fn parse_api_inspect(body: &[u8], id: &str) -> Result<Option<RuntimeIdentity>, PodmanError> {
    let i: Inspect = serde_json::from_slice(body).map_err(|e| PodmanError::Json(id.to_owned(), e))?;
    Ok((i.id == id).then(|| identity_of(i)))
}

fn identity_of(i: Inspect) -> RuntimeIdentity {
    let state = i.state.unwrap_or_default();
    let seccomp = i
        .host_config
        .unwrap_or_default()
        .security_opt
        .unwrap_or_default()
        .iter()
        .find_map(|o| o.strip_prefix("seccomp=").map(str::to_owned))
        .unwrap_or_else(|| "default".into());
    let mut labels = i.config.unwrap_or_default().labels.unwrap_or_default();
    if i.is_infra {
        labels.insert("io.podman.infra".into(), "true".into());
    }
    RuntimeIdentity {
        engine: "podman".into(),
        runtime: "podman".into(),
        container_name: i.name.clone(),
        name: i.name,
        image: i.image_name,
        image_digest: if i.image_digest.is_empty() { format!("sha256:{}", i.image) } else { i.image_digest },
        pid: state.pid,
        state: state_word(&state.status),
        started_at: state.started_at,
        seccomp: Some(seccomp),
        pod: None,
        labels: {
            if !i.oci_runtime.is_empty() {
                labels.insert("io.podman.oci-runtime".into(), i.oci_runtime);
            }
            labels
        },
    }
}

impl PodmanClient {
    /// `/usr/bin/podman`, else `podman` on PATH.
    pub fn from_host() -> Self {
        let bin = ["/usr/bin/podman", "/usr/local/bin/podman"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("podman"));
        PodmanClient::new(bin)
    }

    pub fn new(bin: impl Into<PathBuf>) -> Self {
        PodmanClient {
            bin: bin.into(),
            timeout: Duration::from_secs(5),
            socket: PathBuf::from(super::podman_events::DEFAULT_SOCKET),
        }
    }

    /// Another API service socket than podman's default.
    pub fn with_socket(mut self, socket: impl Into<PathBuf>) -> Self {
        self.socket = socket.into();
        self
    }

    /// podman's API service socket (its events are read there).
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Podman's answer for a 64-hex container id: `Ok(None)` when podman does
    /// not know it. The child runs outside the agent's runtime threads and is
    /// killed on timeout.
    pub async fn inspect(&self, id: &str) -> Result<Option<RuntimeIdentity>, PodmanError> {
        match self.inspect_by_api(id).await {
            Some(answer) => answer,
            None => self.inspect_by_cli(id).await,
        }
    }

    /// The API service's answer, or `None` when nothing listens on its socket.
    async fn inspect_by_api(&self, id: &str) -> Option<Result<Option<RuntimeIdentity>, PodmanError>> {
        // The id goes into a request path: only hex, as podman's ids are.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(Ok(None));
        }
        let api = super::docker_api::DockerClient::new(&self.socket).with_timeout(self.timeout);
        let request = format!("/v4.0.0/libpod/containers/{id}/json");
        match api.get(&request).await {
            Err(super::docker_api::DockerError::SocketMissing(_) | super::docker_api::DockerError::Connect { .. }) => {
                None
            }
            Err(e) => Some(Err(PodmanError::Failed(id.to_owned(), e.to_string()))),
            Ok((status, _)) if status == hyper::StatusCode::NOT_FOUND => Some(Ok(None)),
            Ok((status, body)) if status.is_success() => Some(parse_api_inspect(&body, id)),
            Ok((status, body)) => Some(Err(PodmanError::Failed(
                id.to_owned(),
                format!("{request}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
            ))),
        }
    }

    async fn inspect_by_cli(&self, id: &str) -> Result<Option<RuntimeIdentity>, PodmanError> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(["container", "inspect", "--format", "json", id])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(self.timeout, cmd.output()).await {
            Err(_) => return Err(PodmanError::Timeout(id.to_owned(), self.timeout)),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PodmanError::Missing(self.bin.clone()));
            }
            Ok(Err(e)) => return Err(PodmanError::Failed(id.to_owned(), e.to_string())),
            Ok(Ok(out)) => out,
        };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if err.contains("no such container") || err.contains("no such object") {
                return Ok(None);
            }
            return Err(PodmanError::Failed(id.to_owned(), err));
        }
        parse_inspect(&out.stdout, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_inspect_answer() {
        let id = "5cd25ec2936477f11dd459701aab9b8ccbd30ba0592fb6ae1803ad79cdd54937";
        let body = format!(
            r#"[{{"Id":"{id}","Name":"web","Image":"4cf716e33bbe","ImageName":"localhost/observer-busybox:latest",
            "OCIRuntime":"crun","State":{{"Status":"running","Pid":4522,"StartedAt":"2026-12-01T00:59:00.333474767Z"}},
            "Config":{{"Labels":{{"tier":"front"}}}},"HostConfig":{{"SecurityOpt":[]}}}}]"#
        );
        let i = parse_inspect(body.as_bytes(), id).unwrap().unwrap();
        assert_eq!(
            (i.name.as_str(), i.image.as_str(), i.pid, i.state.as_str()),
            ("web", "localhost/observer-busybox:latest", 4522, "running")
        );
        assert_eq!(i.runtime, "podman");
        assert_eq!(i.labels["tier"], "front");
        assert_eq!(i.seccomp.as_deref(), Some("default"));
        assert_eq!(parse_inspect(b"[]", id).unwrap(), None);
        assert_eq!(state_word("configured"), "created");
    }

    #[tokio::test]
    async fn a_missing_podman_is_an_error_not_an_unknown_container() {
        let c = PodmanClient::new("/nonexistent/podman").with_socket("/nonexistent/podman.sock");
        assert!(matches!(c.inspect("0").await, Err(PodmanError::Missing(_))));
    }

    /// With the API service listening, its answer is used and no podman binary
    /// is run (the one named here does not exist).
    #[tokio::test]
    async fn the_api_services_answer_is_used_when_it_listens() {
        let id = "5cd25ec2936477f11dd459701aab9b8ccbd30ba0592fb6ae1803ad79cdd54937";
        let dir = std::env::temp_dir().join(format!("observer-podman-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("podman.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let body = format!(
            r#"{{"Id":"{id}","Name":"api","ImageName":"localhost/observer-busybox:latest","ImageDigest":"sha256:ab",
            "State":{{"Status":"running","Pid":77}}}}"#
        );
        let served = tokio::spawn(crate::container::podman_events::tests::serve_once(listener, body));
        let c = PodmanClient::new("/nonexistent/podman").with_socket(&socket);
        let i = c.inspect(id).await.unwrap().expect("known to the service");
        assert_eq!((i.name.as_str(), i.pid, i.image_digest.as_str()), ("api", 77, "sha256:ab"));
        let request = served.await.unwrap();
        assert!(request.starts_with(&format!("GET /v4.0.0/libpod/containers/{id}/json ")), "{request}");
        assert_eq!(c.inspect("not/hex").await.unwrap(), None, "a non-hex id is never put in a path");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
