//! A tiny Docker Engine API client: one `GET /containers/<id>/json` over the
//! daemon's unix socket, to learn a container's name, image, runtime and
//! seccomp setting. HTTP/1.1 is written and parsed here (`Connection: close`,
//! Content-Length or chunked bodies) to keep the agent's dependencies small.

use std::{
    env, fmt, io,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
};

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// dockerd answers an inspect in milliseconds; a hung daemon must not stall
/// the agent.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// An inspect answer is a few KiB (more with a custom seccomp profile inline).
const MAX_RESPONSE: u64 = 16 << 20;

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
    #[error("talking to dockerd at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("dockerd at {path} did not answer within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("bad HTTP response from dockerd: {0}")]
    Http(#[from] HttpError),
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("dockerd answered {status} to {request}: {message}")]
    Status {
        status: u16,
        request: String,
        message: String,
    },
    #[error("unexpected JSON from dockerd for {request}: {source}")]
    Json {
        request: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0:?} is not a container id or name")]
    InvalidId(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("response ended before the end of its headers")]
    TruncatedHead,
    #[error("malformed status line {0:?}")]
    StatusLine(String),
    #[error("malformed header line {0:?}")]
    Header(String),
    #[error("bad Content-Length {0:?}")]
    ContentLength(String),
    #[error("body is {got} bytes, Content-Length said {want}")]
    TruncatedBody { got: usize, want: usize },
    #[error("bad chunk size line {0:?}")]
    ChunkSize(String),
    #[error("chunk size {size} is larger than a whole answer may be ({max} bytes)")]
    ChunkTooLarge { size: String, max: u64 },
    #[error("chunked body ended early")]
    TruncatedChunk,
    #[error("response is larger than {0} bytes")]
    TooLarge(u64),
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a whole HTTP/1.x response read until the server closed the connection.
pub fn parse_response(raw: &[u8]) -> Result<Response, HttpError> {
    let end = find(raw, b"\r\n\r\n").ok_or(HttpError::TruncatedHead)?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");

    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.splitn(3, ' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().unwrap_or_default();
    let status = match (
        version.starts_with("HTTP/1."),
        code.len(),
        code.parse::<u16>(),
    ) {
        (true, 3, Ok(status)) => status,
        _ => return Err(HttpError::StatusLine(status_line.to_owned())),
    };

    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .filter(|(n, _)| !n.is_empty() && !n.contains(' '))
            .ok_or_else(|| HttpError::Header(line.to_owned()))?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };

    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    response.body = if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = response.header("content-length") {
        let want: usize = len
            .parse()
            .map_err(|_| HttpError::ContentLength(len.to_owned()))?;
        if rest.len() < want {
            return Err(HttpError::TruncatedBody {
                got: rest.len(),
                want,
            });
        }
        rest[..want].to_vec()
    } else {
        // Neither: the body runs to the end of the connection.
        rest.to_vec()
    };
    Ok(response)
}

/// Decodes a `Transfer-Encoding: chunked` body (RFC 9112 §7.1); trailers are ignored.
///
/// The sizes come from the other end of a socket: each is checked against
/// [`MAX_RESPONSE`] before any arithmetic, so no size can overflow, and the
/// body as a whole stays within it too.
pub fn decode_chunked(mut raw: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let eol = find(raw, b"\r\n").ok_or(HttpError::TruncatedChunk)?;
        let line = String::from_utf8_lossy(&raw[..eol]);
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        // from_str_radix also takes a sign; a chunk size is hex digits only.
        let digits_only = !size_hex.is_empty() && size_hex.bytes().all(|b| b.is_ascii_hexdigit());
        let size = u64::from_str_radix(size_hex, 16)
            .ok()
            .filter(|_| digits_only)
            .ok_or_else(|| HttpError::ChunkSize(line.clone().into_owned()))?;
        if size > MAX_RESPONSE {
            return Err(HttpError::ChunkTooLarge { size: size_hex.to_owned(), max: MAX_RESPONSE });
        }
        // Within MAX_RESPONSE (16 MiB): fits a usize, and size + 2 cannot overflow.
        let size = size as usize;
        if (body.len() + size) as u64 > MAX_RESPONSE {
            return Err(HttpError::TooLarge(MAX_RESPONSE));
        }
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if raw.len() < size + 2 {
            return Err(HttpError::TruncatedChunk);
        }
        if &raw[size..size + 2] != b"\r\n" {
            return Err(HttpError::ChunkSize(
                String::from_utf8_lossy(&raw[size..(size + 16).min(raw.len())]).into_owned(),
            ));
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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
        let value = opts.iter().find_map(|o| {
            o.strip_prefix("seccomp=")
                .or_else(|| o.strip_prefix("seccomp:"))
        });
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
        .map_err(|source| DockerError::Json {
            request: request.to_owned(),
            source,
        })
}

/// A client for one dockerd socket.
#[derive(Debug, Clone)]
pub struct DockerClient {
    socket: PathBuf,
    timeout: Duration,
}

impl DockerClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        DockerClient {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
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
        let valid = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(DockerError::InvalidId(id.to_owned()));
        }
        let request = format!("/containers/{id}/json");
        let response = self.get(&request).await?;
        match response.status {
            200 => parse_inspect(&response.body, &request),
            404 => Err(DockerError::NotFound(id.to_owned())),
            status => Err(DockerError::Status {
                status,
                request,
                message: error_message(&response.body),
            }),
        }
    }

    /// One `GET` on the socket, whole response read within the timeout.
    pub async fn get(&self, path: &str) -> Result<Response, DockerError> {
        match tokio::time::timeout(self.timeout, self.get_inner(path)).await {
            Ok(result) => result,
            Err(_) => Err(DockerError::Timeout {
                path: self.socket.clone(),
                timeout: self.timeout,
            }),
        }
    }

    async fn get_inner(&self, path: &str) -> Result<Response, DockerError> {
        let mut stream = UnixStream::connect(&self.socket).await.map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                DockerError::SocketMissing(self.socket.clone())
            } else {
                DockerError::Connect {
                    path: self.socket.clone(),
                    source,
                }
            }
        })?;
        let io_err = |source| DockerError::Io {
            path: self.socket.clone(),
            source,
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: observer\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.map_err(io_err)?;
        let mut raw = Vec::new();
        let read = (&mut stream)
            .take(MAX_RESPONSE + 1)
            .read_to_end(&mut raw)
            .await
            .map_err(io_err)?;
        if read as u64 > MAX_RESPONSE {
            return Err(HttpError::TooLarge(MAX_RESPONSE).into());
        }
        Ok(parse_response(&raw)?)
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
    use std::process::Command;

    use super::*;

    #[test]
    fn content_length_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"{\"a\":1}");
    }

    #[test]
    fn chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\nA;ext=1\r\n:123456789\r\n1\r\n}\r\n0\r\nX-Trailer: y\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.body, b"{\"a\":123456789}");
    }

    #[test]
    fn close_delimited_body() {
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"x\"}").unwrap();
        assert_eq!((r.status, error_message(&r.body).as_str()), (404, "x"));
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let cases: [(&[u8], HttpError); 8] = [
            (b"", HttpError::TruncatedHead),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n",
                HttpError::TruncatedHead,
            ),
            (
                b"\x00\xff garbage\r\n\r\n",
                HttpError::StatusLine("\0\u{fffd} garbage".into()),
            ),
            (
                b"SSH-2.0-OpenSSH\r\n\r\n",
                HttpError::StatusLine("SSH-2.0-OpenSSH".into()),
            ),
            (
                b"HTTP/1.1 2000 OK\r\n\r\n",
                HttpError::StatusLine("HTTP/1.1 2000 OK".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                HttpError::Header("no colon".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"a\"",
                HttpError::TruncatedBody { got: 4, want: 10 },
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                HttpError::ContentLength("-1".into()),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse_response(raw),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let chunked = |body: &[u8]| {
            let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            raw.extend_from_slice(body);
            parse_response(&raw)
        };
        assert_eq!(chunked(b"a\r\nshort"), Err(HttpError::TruncatedChunk));
        assert_eq!(chunked(b"4\r\nabcd\r\n"), Err(HttpError::TruncatedChunk));
        assert_eq!(
            chunked(b"zz\r\nabcd\r\n0\r\n\r\n"),
            Err(HttpError::ChunkSize("zz".into()))
        );
        assert!(matches!(
            chunked(b"2\r\nabcd\r\n0\r\n\r\n"),
            Err(HttpError::ChunkSize(_))
        ));
    }

    #[test]
    fn hostile_chunk_sizes_are_errors_naming_the_size() {
        let chunked = |body: &[u8]| {
            let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            raw.extend_from_slice(body);
            parse_response(&raw)
        };
        // Overflows any size arithmetic: once a panic in the agent's reader task.
        for size in ["ffffffffffffffff", "fffffffffffffffe", "8000000000000000", "1000001"] {
            let body = format!("{size}\r\n{{}}\r\n0\r\n\r\n");
            let err = chunked(body.as_bytes()).unwrap_err();
            assert_eq!(err, HttpError::ChunkTooLarge { size: size.into(), max: MAX_RESPONSE }, "{size}");
            assert!(err.to_string().contains(size), "{err}");
        }
        // More digits than any size has, and signs from_str_radix would take.
        for line in ["10000000000000000", "+5", "-1", ""] {
            let body = format!("{line}\r\nabcde\r\n0\r\n\r\n");
            assert_eq!(chunked(body.as_bytes()), Err(HttpError::ChunkSize(line.into())), "{line:?}");
        }
        // Chunks that each fit but add up to more than an answer may be.
        let mut many = Vec::new();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..17 {
            many.extend_from_slice(b"100000\r\n");
            many.extend_from_slice(&chunk);
            many.extend_from_slice(b"\r\n");
        }
        many.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(chunked(&many), Err(HttpError::TooLarge(MAX_RESPONSE)));
    }

    #[test]
    fn inspect_json_maps_to_docker_info() {
        let body = br#"{"Id":"3f4e","Name":"/web","Image":"sha256:965f","State":{"Status":"running","Pid":4242,"StartedAt":"2026-05-20T10:00:00.123Z"},
            "Config":{"Image":"observer-busybox"},"HostConfig":{"Runtime":"crun","SecurityOpt":["label=disable","seccomp=unconfined"]}}"#;
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
            }
        );
        let minimal =
            parse_inspect(br#"{"Id":"x","HostConfig":{"SecurityOpt":null}}"#, "r").unwrap();
        assert_eq!(minimal.seccomp, Seccomp::Default);
        assert!(matches!(
            parse_inspect(b"[1,2]", "r"),
            Err(DockerError::Json { .. })
        ));
    }

    #[test]
    fn seccomp_option_values() {
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Seccomp::from_security_opts(&[]), Seccomp::Default);
        assert_eq!(
            Seccomp::from_security_opts(&opts(&["no-new-privileges"])),
            Seccomp::Default
        );
        assert_eq!(
            Seccomp::from_security_opts(&opts(&["seccomp:unconfined"])),
            Seccomp::Unconfined
        );
        let custom =
            Seccomp::from_security_opts(&opts(&["seccomp={\"defaultAction\":\"SCMP_ACT_ERRNO\"}"]));
        assert_eq!(
            custom,
            Seccomp::Custom("{\"defaultAction\":\"SCMP_ACT_ERRNO\"}".into())
        );
        assert_eq!(Seccomp::Default.to_string(), "default");
    }

    #[tokio::test]
    async fn missing_socket_and_bad_ids_are_clear_errors() {
        let client = DockerClient::new("/nonexistent/docker.sock");
        let err = client.inspect("abc").await.unwrap_err();
        assert!(matches!(err, DockerError::SocketMissing(_)), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/docker.sock"),
            "{err}"
        );
        for bad in ["", "../../info", "a b", "x?y"] {
            assert!(
                matches!(client.inspect(bad).await, Err(DockerError::InvalidId(_))),
                "{bad}"
            );
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

        // A server that answers garbage.
        let garbage = dir.join("garbage.sock");
        let listener = tokio::net::UnixListener::bind(&garbage).unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            conn.write_all(b"not http at all\r\n\r\n").await.unwrap();
        });
        let err = DockerClient::new(&garbage)
            .inspect("abc")
            .await
            .unwrap_err();
        assert!(
            matches!(err, DockerError::Http(HttpError::StatusLine(_))),
            "{err}"
        );
        server.await.unwrap();

        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Removes a test container when dropped, so a failed assertion still cleans up.
    pub(crate) struct TestContainer {
        pub name: String,
        pub id: String,
    }

    impl TestContainer {
        /// `docker run -d --rm --network none --name <name> <extra...> observer-busybox sleep 30`.
        pub(crate) fn start(name: &str, extra: &[&str]) -> Self {
            let _ = Command::new("docker").args(["rm", "-f", name]).output();
            let mut args = vec!["run", "-d", "--rm", "--network", "none", "--name", name];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["observer-busybox", "sleep", "30"]);
            let out = Command::new("docker")
                .args(&args)
                .output()
                .expect("running the docker CLI (is docker installed?)");
            assert!(
                out.status.success(),
                "`docker {}` failed (is dockerd running at /var/run/docker.sock?): {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            TestContainer {
                name: name.to_owned(),
                id,
            }
        }
    }

    impl Drop for TestContainer {
        fn drop(&mut self) {
            let _ = Command::new("docker")
                .args(["rm", "-f", &self.name])
                .output();
        }
    }

    #[tokio::test]
    async fn inspect_a_real_container() {
        let client = DockerClient::from_env().unwrap();
        let c = TestContainer::start("obs-api-test", &[]);
        let info = client.inspect(&c.id).await.unwrap_or_else(|e| {
            panic!(
                "inspecting {} through {}: {e}",
                c.id,
                client.socket().display()
            )
        });
        assert_eq!(info.id, c.id);
        assert_eq!(info.name, "obs-api-test");
        assert_eq!(info.image, "observer-busybox");
        assert!(info.image_id.starts_with("sha256:"), "{}", info.image_id);
        assert_eq!(info.runtime, "runc");
        assert_eq!(info.seccomp, Seccomp::Default);
        assert_eq!(info.state, "running");
        assert!(info.pid > 0);
        assert!(info.started_at.starts_with("20"), "{}", info.started_at);
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", info.pid)).unwrap();
        assert!(cgroup.contains(&format!("0::/docker/{}", c.id)), "{cgroup}");

        // By name too, and a short id.
        assert_eq!(client.inspect("obs-api-test").await.unwrap().id, c.id);
        assert_eq!(client.inspect(&c.id[..12]).await.unwrap().id, c.id);

        drop(c);
        let err = client.inspect("obs-api-test").await.unwrap_err();
        assert!(matches!(err, DockerError::NotFound(_)), "{err}");
    }

    #[tokio::test]
    async fn inspect_a_crun_container_without_seccomp() {
        let client = DockerClient::from_env().unwrap();
        let c = TestContainer::start(
            "obs-api-test-crun",
            &["--runtime", "crun", "--security-opt", "seccomp=unconfined"],
        );
        let info = client.inspect(&c.id).await.unwrap();
        assert_eq!(
            (info.runtime.as_str(), &info.seccomp),
            ("crun", &Seccomp::Unconfined)
        );
    }
}
