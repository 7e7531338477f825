//! Rootful podman's container events, read from podman's API service on its
//! unix socket (`GET /v4.0.0/libpod/events`), as dockerd's are followed
//! (`docker_events`): `create` comes before crun makes the container's
//! cgroup, so the agent knows a podman container's name and rules before its
//! first syscall. The agent reads the socket itself: no child process runs
//! in the agent's cgroup, and a host whose podman runs no API service
//! (`podman system service`, or systemd's `podman.socket`) is normal: the
//! follower then stays off and looks for the socket again now and then.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, StatusCode, body::Bytes, header};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::{net::UnixStream, sync::mpsc::UnboundedSender};

use super::docker_events::{Action, ContainerEvent, take_lines};

/// Where rootful podman's API service listens (`podman.socket`'s address).
pub const DEFAULT_SOCKET: &str = "/run/podman/podman.sock";

/// `filters={"type":["container"],"event":["create","start","remove"]}`,
/// URL-encoded, on libpod's API (4.0.0 is the oldest podman 4 and 5 serve).
const EVENTS_PATH: &str = "/v4.0.0/libpod/events?stream=true&filters=%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22create%22%2C%22start%22%2C%22remove%22%5D%7D";

/// How long connecting and sending the request may take. The answer's head
/// has no bound: podman sends it with the first event, which may come hours
/// later on a quiet host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long before connecting again after the stream ended (the service
/// restarted, or stopped).
const RECONNECT: Duration = Duration::from_secs(2);

/// How long before looking again for a socket that is absent (no podman, or
/// no API service): slow, as a host without one usually stays so.
pub const LOOK_AGAIN: Duration = Duration::from_secs(30);

/// Attributes podman adds to every event besides the container's labels.
const NOT_LABELS: [&str; 2] = ["containerExitCode", "podId"];

#[derive(Debug, thiserror::Error)]
pub enum PodmanApiError {
    /// No socket, or a socket nobody listens on (a stopped service's).
    #[error("podman's API socket {0} is absent (no `podman system service` or podman.socket runs)")]
    Absent(PathBuf),
    #[error("connecting to podman's API socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("podman's API service at {path} took no request within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("bad HTTP exchange with podman's API service at {path}: {error}")]
    Http { path: PathBuf, error: hyper::Error },
    #[error("podman's API service at {path} answered {status} to its events request")]
    Status { path: PathBuf, status: u16 },
}

/// One event as libpod's API writes it (the shape of dockerd's events).
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: Option<RawActor>,
}

#[derive(Deserialize)]
struct RawActor {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: BTreeMap<String, String>,
}

/// One line as a container event: `create`, `start` or `remove` (podman's
/// end of a container, as dockerd's `destroy`); `None` for anything else.
/// The attributes are the container's labels with its `name` and `image`,
/// as dockerd's events carry them.
pub fn parse_event(line: &[u8]) -> Option<ContainerEvent> {
    let raw: RawEvent = serde_json::from_slice(line).ok()?;
    if raw.kind != "container" {
        return None;
    }
    let action = match raw.action.as_str() {
        "create" => Action::Create,
        "start" => Action::Start,
        "remove" => Action::Destroy,
        _ => return None,
    };
    let RawActor { id, mut attributes } = raw.actor?;
    let valid = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return None;
    }
    for key in NOT_LABELS {
        attributes.remove(key);
    }
    Some(ContainerEvent { action, id, attributes })
}

/// What the follower tells its reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodmanNews {
    /// Connected to the service, whose request goes out at once: events
    /// from then on are delivered.
    Connected,
    Container(ContainerEvent),
}

/// Follows podman's container events on `socket` until the stream ends (the
/// service stopped), fails, or nobody listens. The caller connects again.
pub async fn follow(socket: &Path, news: &UnboundedSender<PodmanNews>) -> Result<(), PodmanApiError> {
    let http = |error| PodmanApiError::Http { path: socket.to_path_buf(), error };
    let connecting = async {
        let stream = UnixStream::connect(socket).await.map_err(|source| match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => PodmanApiError::Absent(socket.to_path_buf()),
            _ => PodmanApiError::Connect { path: socket.to_path_buf(), source },
        })?;
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await.map_err(http)
    };
    let (mut sender, connection) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(connected) => connected?,
        Err(_) => return Err(PodmanApiError::Timeout { path: socket.to_path_buf(), timeout: CONNECT_TIMEOUT }),
    };
    // Dropping the connection closes the socket: no task is left behind.
    let mut connection = std::pin::pin!(connection);
    // podman's service (Go's net/http) refuses an HTTP/1.1 request without Host.
    let request = Request::get(EVENTS_PATH)
        .header(header::HOST, "podman")
        .header(header::USER_AGENT, "observer")
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .expect("a constant request");
    let reading = async {
        let answer = sender.send_request(request);
        // The connection, polled beside this, writes the request at once; the
        // answer's head comes with the first event.
        let _ = news.send(PodmanNews::Connected);
        let response = answer.await.map_err(http)?;
        if response.status() != StatusCode::OK {
            return Err(PodmanApiError::Status { path: socket.to_path_buf(), status: response.status().as_u16() });
        }
        let mut body = response.into_body();
        let (mut buffer, mut skipping) = (Vec::new(), false);
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(http)?.into_data() else { continue };
            buffer.extend_from_slice(&data);
            for line in take_lines(&mut buffer, &mut skipping) {
                if let Some(event) = parse_event(&line)
                    && news.send(PodmanNews::Container(event)).is_err()
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    tokio::select! {
        read = reading => read,
        ended = &mut connection => ended.map_err(http),
    }
}

/// Follows podman's events for as long as anybody listens: connects again
/// after the stream ends, and looks for an absent socket every `look_again`,
/// quietly (one line when it goes missing, one when it is found).
pub async fn follow_forever(socket: PathBuf, news: UnboundedSender<PodmanNews>, look_again: Duration) {
    let (mut told_absent, mut told_error) = (false, false);
    while !news.is_closed() {
        let wait = match follow(&socket, &news).await {
            Ok(()) => {
                (told_absent, told_error) = (false, false);
                RECONNECT
            }
            Err(PodmanApiError::Absent(_)) => {
                if !told_absent {
                    told_absent = true;
                    tracing::info!(
                        "podman's API socket {} is absent: podman containers are named once they run \
                         (`podman inspect`); looking for it again every {look_again:?}",
                        socket.display()
                    );
                }
                look_again
            }
            Err(e) => {
                if !told_error {
                    told_error = true;
                    tracing::warn!("following podman's events: {e}; retrying every {look_again:?}");
                }
                look_again
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const ID: &str = "2691b94674d9aace5e32bdd8cdc652286994bed3cc4376bcca1ec942917c67cc";

    /// A line as podman 4.3's API service writes it.
    fn line(action: &str) -> String {
        format!(
            r#"{{"status":"{action}","id":"{ID}","from":"localhost/observer-busybox:latest","Type":"container","Action":"{action}","Actor":{{"ID":"{ID}","Attributes":{{"containerExitCode":"0","image":"localhost/observer-busybox:latest","name":"t0","podId":"","tier":"web"}}}},"scope":"local","time":1796698053,"timeNano":1796698053712885317}}"#
        )
    }

    #[test]
    fn container_events_are_read_and_others_left_out() {
        let created = parse_event(line("create").as_bytes()).expect("a create event");
        assert_eq!((created.action, created.id.as_str()), (Action::Create, ID));
        let attributes: Vec<(&str, &str)> = created.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            attributes,
            [("image", "localhost/observer-busybox:latest"), ("name", "t0"), ("tier", "web")],
            "podman's own attributes are not labels"
        );
        assert_eq!(parse_event(line("start").as_bytes()).map(|e| e.action), Some(Action::Start));
        assert_eq!(parse_event(line("remove").as_bytes()).map(|e| e.action), Some(Action::Destroy));
        assert_eq!(parse_event(line("init").as_bytes()), None);
        assert_eq!(parse_event(line("died").as_bytes()), None);
        let image = line("create").replace(r#""Type":"container""#, r#""Type":"image""#);
        assert_eq!(parse_event(image.as_bytes()), None);
        let short = line("create").replace(ID, "2691b946");
        assert_eq!(parse_event(short.as_bytes()), None, "only full ids");
        assert_eq!(parse_event(b"not json"), None);
    }

    /// A stand-in podman service: answers one events request with `body`
    /// (an answer that ends with the connection), then stays silent.
    pub(crate) async fn serve_once(listener: tokio::net::UnixListener, body: String) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&chunk[..n]);
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
        stream.write_all(format!("{head}{body}").as_bytes()).await.expect("write");
        let _ = stream.shutdown().await;
        // Later connections are accepted and left unanswered.
        tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                kept.push(s);
            }
        });
        String::from_utf8_lossy(&request).into_owned()
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<PodmanNews>) -> PodmanNews {
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        got.expect("news within 10 s").expect("the follower runs")
    }

    /// No socket: the follower neither ends nor fails; once a service
    /// listens there, it connects on its next look and delivers its events.
    #[tokio::test]
    async fn an_absent_socket_is_looked_for_again_and_followed_once_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("podman.sock");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let follower = tokio::spawn(follow_forever(socket.clone(), tx, Duration::from_millis(50)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!follower.is_finished(), "an absent socket ended the follower");
        assert!(rx.try_recv().is_err(), "nothing to tell while the socket is absent");

        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let server = tokio::spawn(serve_once(listener, format!("{}\n{}\n", line("init"), line("create"))));
        assert_eq!(next(&mut rx).await, PodmanNews::Connected);
        match next(&mut rx).await {
            PodmanNews::Container(e) => assert_eq!((e.action, e.id.as_str()), (Action::Create, ID)),
            other => panic!("expected the create event, got {other:?}"),
        }
        let request = server.await.expect("the stand-in service");
        assert!(request.starts_with(&format!("GET {EVENTS_PATH} HTTP/1.1\r\n")), "{request}");
        // The stream ended: the follower connects again (and waits there).
        assert_eq!(next(&mut rx).await, PodmanNews::Connected);
        assert!(!follower.is_finished());
        drop(rx);
        follower.abort();
    }

    /// A socket file nobody listens on (a stopped service's) is absent too.
    #[tokio::test]
    async fn a_stale_socket_is_absent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("podman.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        assert!(matches!(follow(&socket, &tx).await, Err(PodmanApiError::Absent(_))));
    }
}
