//! A tiny Docker Engine API client: one `GET /containers/<id>/json` over the
//! daemon's unix socket, to learn a container's name, image, runtime and
//! seccomp setting. HTTP/1.1 is hyper's client connection (already in the tree
//! through tonic); the answer is read within a timeout and a size bound.

use std::{
    collections::BTreeMap,
    env,
    error::Error as _,
    fmt, io,
    path::{Path, PathBuf},
    time::Duration,
};

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::{
    Request, StatusCode,
    body::{Body as _, Bytes},
    header,
};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::UnixStream;

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// dockerd answers an inspect in milliseconds; a hung daemon must not stall
/// the agent.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// An inspect answer is a few KiB (more with a custom seccomp profile inline).
const MAX_RESPONSE: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("DOCKER_HOST={0:?} is not a unix:// address; only unix sockets are supported")]
    UnsupportedHost(String),
    #[error("docker socket {0} does not exist (is dockerd running?)")]
    SocketMissing(PathBuf),
    #[error("connecting to docker socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("dockerd at {path} did not answer within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    /// A malformed or cut-short answer, or the connection failing mid-way.
    /// hyper's error names the stage; its causes name the detail (a bad chunk
    /// size line, an end of file before the body's length), so both are shown.
    #[error("bad HTTP exchange with dockerd at {path}: {}", with_causes(.error))]
    Http { path: PathBuf, error: hyper::Error },
    #[error("dockerd at {path} answered more than {max} bytes")]
    TooLarge { path: PathBuf, max: usize },
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("dockerd answered {status} to {request}: {message}")]
    Status { status: u16, request: String, message: String },
    #[error("unexpected JSON from dockerd for {request}: {source}")]
    Json {
        request: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0:?} is not a container id or name")]
    InvalidId(String),
}

/// `error: cause: cause...`: callers log errors with `{}`, which shows no causes.
fn with_causes(error: &hyper::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// What the agent needs to know about a Docker container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerInfo {
    /// The full 64-hex id.
    pub id: String,
    /// The name without Docker's leading `/`.
    pub name: String,
    /// The image as the user asked for it (`Config.Image`, e.g. `nginx:1.25`).
    pub image: String,
    /// The image's content id (`sha256:...`).
    pub image_id: String,
    /// The OCI runtime (`HostConfig.Runtime`: `runc`, `crun`, ...).
    pub runtime: String,
    pub seccomp: Seccomp,
    /// The init process's pid in the host pid namespace; 0 when not running.
    pub pid: u32,
    /// RFC 3339, as dockerd gives it; `0001-01-01T00:00:00Z` if never started.
    pub started_at: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    pub state: String,
    /// `Config.Labels`: the image's labels and those given with `--label`, which
    /// `--match label:` and `--baseline label:` rules name.
    pub labels: BTreeMap<String, String>,
}

/// The seccomp setting a container was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seccomp {
    /// No `seccomp=` option: Docker's default profile.
    Default,
    /// `seccomp=unconfined`.
    Unconfined,
    /// Any other value: the docker CLI sends a custom profile's JSON inline.
    Custom(String),
}

impl Seccomp {
    /// From `HostConfig.SecurityOpt`. Old clients wrote `seccomp:<value>`.
    pub fn from_security_opts(opts: &[String]) -> Self {
        let value = opts.iter().find_map(|o| o.strip_prefix("seccomp=").or_else(|| o.strip_prefix("seccomp:")));
        match value {
            None => Seccomp::Default,
            Some("unconfined") => Seccomp::Unconfined,
            Some(v) => Seccomp::Custom(v.to_owned()),
        }
    }
}

impl fmt::Display for Seccomp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seccomp::Default => f.write_str("default"),
            Seccomp::Unconfined => f.write_str("unconfined"),
            Seccomp::Custom(v) => f.write_str(v),
        }
    }
}

/// The subset of `GET /containers/{id}/json` that [`DockerInfo`] is made from.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    config: Option<InspectConfig>,
    #[serde(default)]
    host_config: Option<InspectHostConfig>,
    #[serde(default)]
    state: Option<InspectState>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    #[serde(default)]
    image: Option<String>,
    /// `null` for a container with no label at all.
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct InspectHostConfig {
    #[serde(default)]
    runtime: Option<String>,
    #[serde(default)]
    security_opt: Option<Vec<String>>,
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

impl From<Inspect> for DockerInfo {
    fn from(i: Inspect) -> Self {
        let config = i.config.unwrap_or_default();
        let host = i.host_config.unwrap_or_default();
        let state = i.state.unwrap_or_default();
        DockerInfo {
            id: i.id,
            name: i.name.trim_start_matches('/').to_owned(),
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            image_id: i.image,
            runtime: host.runtime.unwrap_or_default(),
            seccomp: Seccomp::from_security_opts(&host.security_opt.unwrap_or_default()),
            pid: state.pid,
            started_at: state.started_at,
            state: state.status,
        }
    }
}

/// Parses an inspect answer's body.
pub fn parse_inspect(body: &[u8], request: &str) -> Result<DockerInfo, DockerError> {
    serde_json::from_slice::<Inspect>(body)
        .map(DockerInfo::from)
        .map_err(|source| DockerError::Json { request: request.to_owned(), source })
}

/// A client for one dockerd socket.
#[derive(Debug, Clone)]
pub struct DockerClient {
    socket: PathBuf,
    timeout: Duration,
}

impl DockerClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        DockerClient { socket: socket.into(), timeout: DEFAULT_TIMEOUT }
    }

    /// `DOCKER_HOST=unix://<path>` if set, else [`DEFAULT_SOCKET`].
    pub fn from_env() -> Result<Self, DockerError> {
        match env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => match host.strip_prefix("unix://") {
                Some(path) if !path.is_empty() => Ok(Self::new(path)),
                _ => Err(DockerError::UnsupportedHost(host)),
            },
            _ => Ok(Self::new(DEFAULT_SOCKET)),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `docker inspect <id>`: `id` is a full or short id, or a name.
    pub async fn inspect(&self, id: &str) -> Result<DockerInfo, DockerError> {
        // The id goes into a request path: allow only what Docker ids and names use.
        let valid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(DockerError::InvalidId(id.to_owned()));
        }
        let request = format!("/containers/{id}/json");
        let (status, body) = self.get(&request).await?;
        match status {
            StatusCode::OK => parse_inspect(&body, &request),
            StatusCode::NOT_FOUND => Err(DockerError::NotFound(id.to_owned())),
            status => Err(DockerError::Status { status: status.as_u16(), request, message: error_message(&body) }),
        }
    }

    /// One `GET` on the socket, whole answer read within the timeout. podman's
    /// API service speaks the same HTTP on its own socket (`podman.rs`).
    pub(crate) async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), DockerError> {
        match tokio::time::timeout(self.timeout, self.get_inner(path)).await {
            Ok(result) => result,
            Err(_) => Err(DockerError::Timeout { path: self.socket.clone(), timeout: self.timeout }),
        }
    }

    async fn get_inner(&self, path: &str) -> Result<(StatusCode, Bytes), DockerError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                DockerError::SocketMissing(self.socket.clone())
            } else {
                DockerError::Connect { path: self.socket.clone(), source }
            }
        })?;
        let http = |error| DockerError::Http { path: self.socket.clone(), error };
        let too_large = || DockerError::TooLarge { path: self.socket.clone(), max: MAX_RESPONSE };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
        // hyper's client adds no Host header, and dockerd (Go's net/http)
        // refuses an HTTP/1.1 request without one.
        let request = Request::get(path)
            .header(header::HOST, "docker")
            .header(header::USER_AGENT, "observer")
            .header(header::ACCEPT, "application/json")
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            // Not with the ids `inspect` lets through: they are valid in a path.
            .map_err(|_| DockerError::InvalidId(path.to_owned()))?;
        let exchange = async move {
            let response = sender.send_request(request).await.map_err(http)?;
            let status = response.status();
            let body = response.into_body();
            // A Content-Length over the bound fails before anything is read.
            if body.size_hint().lower() > MAX_RESPONSE as u64 {
                return Err(too_large());
            }
            let body = Limited::new(body, MAX_RESPONSE)
                .collect()
                .await
                // Limited's errors are the body's (hyper's) and its own
                // LengthLimitError.
                .map_err(|e| match e.downcast::<hyper::Error>() {
                    Ok(e) => http(*e),
                    Err(_) => too_large(),
                })?
                .to_bytes();
            Ok((status, body))
        };
        // The connection is driven here, not in a task of its own, so the
        // timeout drops the socket with it. It ends after the answer
        // (`Connection: close`); its own error is the one the exchange saw.
        let (answer, _) = tokio::join!(exchange, connection);
        answer
    }
}

/// dockerd's error bodies are `{"message": "..."}`.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ApiError {
        message: String,
    }
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {

    use super::*;

    /// A dockerd stand-in on a fresh socket: reads one request head, writes
    /// `answer`, closes. Returns the socket and the request it read.
    async fn fake_dockerd(answer: Vec<u8>) -> (PathBuf, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("observer-fake-dockerd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            // The client may hang up first (an answer too large): not an error here.
            let _ = conn.write_all(&answer).await;
            let _ = std::fs::remove_dir_all(dir);
            String::from_utf8_lossy(&head).into_owned()
        });
        (socket, server)
    }

    async fn inspect_answer(answer: &[u8]) -> Result<DockerInfo, DockerError> {
        let (socket, server) = fake_dockerd(answer.to_vec()).await;
        let result = DockerClient::new(&socket).inspect("abc").await;
        server.abort();
        result
    }

    const INSPECT: &str = r#"{"Id":"abc","Name":"/web","State":{"Status":"running","Pid":7}}"#;

    #[tokio::test]
    async fn content_length_and_chunked_answers() {
        let (socket, server) = fake_dockerd(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{INSPECT}",
                INSPECT.len()
            )
            .into_bytes(),
        )
        .await;
        let info = DockerClient::new(&socket).inspect("abc").await.unwrap();
        assert_eq!((info.id.as_str(), info.name.as_str(), info.pid), ("abc", "web", 7));
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /containers/abc/json HTTP/1.1\r\n"), "{request}");
        assert!(request.to_ascii_lowercase().contains("host: docker\r\n"), "dockerd needs a Host header: {request}");

        // Chunks with an extension, and a trailer.
        let (first, rest) = INSPECT.split_at(10);
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\nX-Trailer: y\r\n\r\n",
            first.len(),
            rest.len()
        );
        assert_eq!(inspect_answer(chunked.as_bytes()).await.unwrap().name, "web");
    }

    #[tokio::test]
    async fn not_found_and_other_statuses() {
        let body = r#"{"message":"No such container: abc"}"#;
        let answer = |status: &str| format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let err = inspect_answer(answer("404 Not Found").as_bytes()).await.unwrap_err();
        assert!(matches!(&err, DockerError::NotFound(id) if id == "abc"), "{err}");
        let err = inspect_answer(answer("500 Internal Server Error").as_bytes()).await.unwrap_err();
        assert!(
            matches!(&err, DockerError::Status { status: 500, message, .. } if message == "No such container: abc"),
            "{err}"
        );
        // A body that is not JSON is quoted, cut short.
        let err = inspect_answer(b"HTTP/1.1 502 Bad Gateway\r\n\r\n<html>").await.unwrap_err();
        assert!(matches!(&err, DockerError::Status { status: 502, message, .. } if message == "<html>"), "{err}");
    }

    #[tokio::test]
    async fn garbage_and_truncation_are_errors() {
        for answer in [
            &b""[..],
            b"not http at all\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"a\"",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
        ] {
            let err = inspect_answer(answer).await.unwrap_err();
            assert!(matches!(err, DockerError::Http { .. }), "{:?}: {err}", String::from_utf8_lossy(answer));
            assert!(err.to_string().contains("docker.sock"), "the error names the socket: {err}");
        }
    }

    #[tokio::test]
    async fn hostile_sizes_are_errors_within_the_bound() {
        let chunked = |body: &[u8]| {
            let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            raw.extend_from_slice(body);
            raw
        };
        // Sizes that overflowed the hand-written parser's arithmetic (once a
        // panic in the agent's reader task), then the connection ends.
        for size in ["ffffffffffffffff", "fffffffffffffffe", "8000000000000000"] {
            let err = inspect_answer(&chunked(format!("{size}\r\n{{}}\r\n0\r\n\r\n").as_bytes())).await.unwrap_err();
            assert!(matches!(err, DockerError::Http { .. }), "{size}: {err}");
        }
        // More digits than a u64 holds, and signs from_str_radix would take.
        for line in ["10000000000000000", "+5", "-1", ""] {
            let err = inspect_answer(&chunked(format!("{line}\r\nabcde\r\n0\r\n\r\n").as_bytes())).await.unwrap_err();
            assert!(err.to_string().contains("chunk size"), "{line:?}: {err}");
        }
        // A huge chunk that keeps coming, and chunks that each fit but add up
        // to more than an answer may be: cut at the bound.
        let mut huge = chunked(b"ffffffffffffffff\r\n");
        huge.resize(huge.len() + MAX_RESPONSE + 1024, b'x');
        let mut many = Vec::new();
        for _ in 0..17 {
            many.extend_from_slice(b"100000\r\n");
            many.resize(many.len() + (1 << 20), b'x');
            many.extend_from_slice(b"\r\n");
        }
        many.extend_from_slice(b"0\r\n\r\n");
        // A Content-Length over the bound: refused before any of it is read.
        let declared = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1u64 << 40).into_bytes();
        for answer in [huge, chunked(&many), declared] {
            let err = inspect_answer(&answer).await.unwrap_err();
            assert!(matches!(err, DockerError::TooLarge { max: MAX_RESPONSE, .. }), "{err}");
        }
    }

    #[test]
    fn inspect_json_maps_to_docker_info() {
        let body = br#"{"Id":"3f4e","Name":"/web","Image":"sha256:965f","State":{"Status":"running","Pid":4242,"StartedAt":"2026-05-20T10:00:00.123Z"},
            "Config":{"Image":"observer-busybox","Labels":{"team":"db","tier":""}},"HostConfig":{"Runtime":"crun","SecurityOpt":["label=disable","seccomp=unconfined"]}}"#;
        let info = parse_inspect(body, "/containers/3f4e/json").unwrap();
        assert_eq!(
            info,
            DockerInfo {
                id: "3f4e".into(),
                name: "web".into(),
                image: "observer-busybox".into(),
                image_id: "sha256:965f".into(),
                runtime: "crun".into(),
                seccomp: Seccomp::Unconfined,
                pid: 4242,
                started_at: "2026-05-20T10:00:00.123Z".into(),
                state: "running".into(),
                labels: BTreeMap::from([("team".into(), "db".into()), ("tier".into(), String::new())]),
            }
        );
        let minimal = parse_inspect(br#"{"Id":"x","HostConfig":{"SecurityOpt":null}}"#, "r").unwrap();
        assert_eq!(minimal.seccomp, Seccomp::Default);
        let unlabelled = parse_inspect(br#"{"Id":"x","Config":{"Image":"i","Labels":null}}"#, "r").unwrap();
        assert!(unlabelled.labels.is_empty());
        assert!(matches!(parse_inspect(b"[1,2]", "r"), Err(DockerError::Json { .. })));
    }

    #[test]
    fn seccomp_option_values() {
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Seccomp::from_security_opts(&[]), Seccomp::Default);
        assert_eq!(Seccomp::from_security_opts(&opts(&["no-new-privileges"])), Seccomp::Default);
        assert_eq!(Seccomp::from_security_opts(&opts(&["seccomp:unconfined"])), Seccomp::Unconfined);
        let custom = Seccomp::from_security_opts(&opts(&["seccomp={\"defaultAction\":\"SCMP_ACT_ERRNO\"}"]));
        assert_eq!(custom, Seccomp::Custom("{\"defaultAction\":\"SCMP_ACT_ERRNO\"}".into()));
        assert_eq!(Seccomp::Default.to_string(), "default");
    }

    #[tokio::test]
    async fn missing_socket_and_bad_ids_are_clear_errors() {
        let client = DockerClient::new("/nonexistent/docker.sock");
        let err = client.inspect("abc").await.unwrap_err();
        assert!(matches!(err, DockerError::SocketMissing(_)), "{err}");
        assert!(err.to_string().contains("/nonexistent/docker.sock"), "{err}");
        for bad in ["", "../../info", "a b", "x?y"] {
            assert!(matches!(client.inspect(bad).await, Err(DockerError::InvalidId(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_and_a_silent_server_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("observer-docker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();

        // A socket file nobody listens on: ECONNREFUSED.
        let dead = dir.join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        let err = DockerClient::new(&dead).inspect("abc").await.unwrap_err();
        assert!(matches!(err, DockerError::Connect { .. }), "{err}");

        // A server that accepts and never answers: the timeout fires.
        let silent = dir.join("silent.sock");
        let listener = tokio::net::UnixListener::bind(&silent).unwrap();
        let server = tokio::spawn(async move {
            let (_conn, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let client = DockerClient::new(&silent).with_timeout(Duration::from_millis(200));
        let err = client.inspect("abc").await.unwrap_err();
        assert!(matches!(err, DockerError::Timeout { .. }), "{err}");
        server.abort();

        // One that stops half-way through the body: the timeout covers the whole answer.
        let stalled = dir.join("stalled.sock");
        let listener = tokio::net::UnixListener::bind(&stalled).unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let (mut conn, _) = listener.accept().await.unwrap();
            let _ = conn.read(&mut [0u8; 1024]).await;
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Id\"").await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let client = DockerClient::new(&stalled).with_timeout(Duration::from_millis(200));
        let err = client.inspect("abc").await.unwrap_err();
        assert!(matches!(err, DockerError::Timeout { .. }), "{err}");
        server.abort();

        // Servers that keep the connection open after what they sent: a whole
        // answer is taken at once, and one declaring too large a body is refused
        // at once, neither waiting for the timeout.
        for (answer, want_ok) in [
            (format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{INSPECT}", INSPECT.len()), true),
            (format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{{", 1u64 << 40), false),
        ] {
            let open = dir.join("open.sock");
            let _ = std::fs::remove_file(&open);
            let listener = tokio::net::UnixListener::bind(&open).unwrap();
            let server = tokio::spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let (mut conn, _) = listener.accept().await.unwrap();
                let _ = conn.read(&mut [0u8; 1024]).await;
                conn.write_all(answer.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
            let started = std::time::Instant::now();
            let result = DockerClient::new(&open).inspect("abc").await;
            assert!(started.elapsed() < Duration::from_secs(1), "{:?} for {result:?}", started.elapsed());
            match result {
                Ok(info) => assert!(want_ok, "{info:?}"),
                Err(err) => assert!(!want_ok && matches!(err, DockerError::TooLarge { .. }), "{err}"),
            }
            server.abort();
        }

        std::fs::remove_dir_all(&dir).unwrap();
    }
}
