//! dockerd's event stream (`GET /events`), containers only: `create` comes
//! before the container's cgroup exists, so the agent can know a container's
//! name and rules before its first syscall; `start` comes once dockerd knows
//! the container's init pid, so a cgroup waiting for confirmation is asked
//! about at once rather than on the next background round.

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

use super::docker_api::DockerError;

/// What a container event says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Start,
    Destroy,
}

/// One container event: which container, and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEvent {
    pub action: Action,
    /// The full 64-hex id.
    pub id: String,
    /// The event's attributes: for `create`, the container's labels with its
    /// `name` and `image` (which win over labels of those names).
    pub attributes: BTreeMap<String, String>,
}

/// `filters={"type":["container"],"event":["create","start","destroy"]}`, URL-encoded.
const EVENTS_PATH: &str = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22create%22%2C%22start%22%2C%22destroy%22%5D%7D";

/// An event is a few hundred bytes (more with many labels): a line longer than
/// this is dropped, never buffered without bound.
const MAX_LINE: usize = 1 << 20;

/// How long connecting and the answer's head may take; the stream itself has
/// no end.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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

/// One line of the stream; `None` for an event of another kind or action, or
/// a line that is not an event.
pub fn parse_event(line: &[u8]) -> Option<ContainerEvent> {
    let raw: RawEvent = serde_json::from_slice(line).ok()?;
    if raw.kind != "container" {
        return None;
    }
    let action = match raw.action.as_str() {
        "create" => Action::Create,
        "start" => Action::Start,
        "destroy" => Action::Destroy,
        _ => return None,
    };
    let RawActor { id, attributes } = raw.actor?;
    let valid = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some(ContainerEvent { action, id, attributes })
}

/// Splits complete lines off `buffer`, keeping the unfinished tail; a tail
/// longer than [`MAX_LINE`] is dropped up to its end.
pub(super) fn take_lines(buffer: &mut Vec<u8>, skipping: &mut bool) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=end).collect();
        if std::mem::take(skipping) {
            continue;
        }
        lines.push(line);
    }
    if buffer.len() > MAX_LINE {
        buffer.clear();
        *skipping = true;
    }
    lines
}

/// What the follower tells the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerNews {
    /// (Re)connected to dockerd, whose cgroup driver (`GET /info`'s
    /// `CgroupDriver`: `cgroupfs` or `systemd`) says where it puts containers'
    /// cgroups; empty when it could not be read.
    Connected {
        cgroup_driver: String,
    },
    Container(ContainerEvent),
}

/// One HTTP/1.1 connection to dockerd, driven by whoever reads its answer:
/// dropping it closes the socket (never a task left behind on a hung daemon).
type Connection = std::pin::Pin<Box<hyper::client::conn::http1::Connection<TokioIo<UnixStream>, Empty<Bytes>>>>;

/// Sends `GET path` on a new connection to `socket`: the answer's head within
/// [`CONNECT_TIMEOUT`], and the connection, which must be polled while the
/// body is read.
async fn open(socket: &Path, path: &str) -> Result<(hyper::Response<hyper::body::Incoming>, Connection), DockerError> {
    let http = |error| DockerError::Http { path: socket.to_path_buf(), error };
    let connecting = async {
        let stream = UnixStream::connect(socket).await.map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                DockerError::SocketMissing(socket.to_path_buf())
            } else {
                DockerError::Connect { path: socket.to_path_buf(), source }
            }
        })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
        let mut connection: Connection = Box::pin(connection);
        // hyper's client adds no Host header, and dockerd (Go's net/http)
        // refuses an HTTP/1.1 request without one.
        let request = Request::get(path)
            .header(header::HOST, "docker")
            .header(header::USER_AGENT, "observer")
            .header(header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|_| DockerError::InvalidId(path.to_owned()))?;
        // The connection writes the request and reads the answer's head.
        tokio::select! {
            response = sender.send_request(request) => Ok((response.map_err(http)?, connection)),
            ended = &mut connection => Err(match ended {
                Err(error) => http(error),
                Ok(()) => DockerError::Status { status: 0, request: path.to_owned(), message: "dockerd closed the connection".into() },
            }),
        }
    };
    let (response, connection) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(answer) => answer?,
        Err(_) => return Err(DockerError::Timeout { path: socket.to_path_buf(), timeout: CONNECT_TIMEOUT }),
    };
    if response.status() != StatusCode::OK {
        return Err(DockerError::Status {
            status: response.status().as_u16(),
            request: path.to_owned(),
            message: String::new(),
        });
    }
    Ok((response, connection))
}

/// dockerd's cgroup driver (`GET /info`), empty when it does not say.
async fn cgroup_driver(socket: &Path) -> Result<String, DockerError> {
    #[derive(Deserialize)]
    struct Info {
        #[serde(rename = "CgroupDriver", default)]
        cgroup_driver: String,
    }
    let (response, connection) = open(socket, "/info").await?;
    let read = http_body_util::Limited::new(response.into_body(), MAX_LINE).collect();
    // The body is read while the connection is driven; it ends after the answer.
    let bytes = match tokio::time::timeout(CONNECT_TIMEOUT, async { tokio::join!(read, connection).0 }).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => return Ok(String::new()),
        Err(_) => return Err(DockerError::Timeout { path: socket.to_path_buf(), timeout: CONNECT_TIMEOUT }),
    };
    Ok(serde_json::from_slice::<Info>(&bytes).map(|i| i.cgroup_driver).unwrap_or_default())
}

/// Follows dockerd's container events on `socket`, sending each to `news`
/// (after its cgroup driver), until the connection ends (dockerd restarted),
/// fails or nobody listens. The caller reconnects.
pub async fn follow(socket: &Path, news: &UnboundedSender<DockerNews>) -> Result<(), DockerError> {
    let (response, mut connection) = open(socket, EVENTS_PATH).await?;
    let mut body = response.into_body();
    let reading = async {
        // Asked once the stream is open: no event is missed meanwhile.
        let cgroup_driver = cgroup_driver(socket).await?;
        if news.send(DockerNews::Connected { cgroup_driver }).is_err() {
            return Ok(());
        }
        let (mut buffer, mut skipping) = (Vec::new(), false);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| DockerError::Http { path: socket.to_path_buf(), error })?;
            let Ok(data) = frame.into_data() else { continue };
            buffer.extend_from_slice(&data);
            for line in take_lines(&mut buffer, &mut skipping) {
                if let Some(event) = parse_event(&line)
                    && news.send(DockerNews::Container(event)).is_err()
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    // The stream has no end of its own: it ends when dockerd closes it.
    tokio::select! {
        read = reading => read,
        ended = &mut connection => ended.map_err(|error| DockerError::Http { path: socket.to_path_buf(), error }),
    }
}

/// Follows dockerd's events for as long as the agent runs: reconnects after
/// dockerd restarts or is missing (quietly: a host without Docker is normal).
pub async fn follow_forever(socket: PathBuf, news: UnboundedSender<DockerNews>) {
    let mut told = false;
    while !news.is_closed() {
        match follow(&socket, &news).await {
            Ok(()) => told = false,
            Err(DockerError::SocketMissing(_)) => {}
            Err(e) if !told => {
                told = true;
                tracing::warn!("following dockerd's events: {e}; retrying every 2 s");
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e2c1b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

    #[test]
    fn container_events_are_read_and_others_left_out() {
        let line = format!(
            r#"{{"status":"create","id":"{ID}","from":"observer-busybox","Type":"container","Action":"create","Actor":{{"ID":"{ID}","Attributes":{{"image":"observer-busybox","name":"t0"}}}},"scope":"local","time":1,"timeNano":1}}"#
        );
        let created = parse_event(line.as_bytes()).expect("a create event");
        assert_eq!((created.action, created.id.as_str()), (Action::Create, ID));
        assert_eq!(created.attributes.get("name").map(String::as_str), Some("t0"));
        let start = line.replace(r#""Action":"create""#, r#""Action":"start""#);
        assert_eq!(parse_event(start.as_bytes()).map(|e| e.action), Some(Action::Start));
        let exec = line.replace(r#""Action":"create""#, r#""Action":"exec_create: sh""#);
        assert_eq!(parse_event(exec.as_bytes()), None);
        let network = line.replace(r#""Type":"container""#, r#""Type":"network""#);
        assert_eq!(parse_event(network.as_bytes()), None);
        let short = line.replace(ID, "3f4e2c1b");
        assert_eq!(parse_event(short.as_bytes()), None, "only full ids");
        assert_eq!(parse_event(b"not json"), None);
    }

    #[test]
    fn lines_are_split_and_an_overlong_one_dropped() {
        let (mut buffer, mut skipping) = (b"{\"a\":1}\n{\"b\"".to_vec(), false);
        assert_eq!(take_lines(&mut buffer, &mut skipping), vec![b"{\"a\":1}\n".to_vec()]);
        assert_eq!(buffer, b"{\"b\"");
        buffer.extend(std::iter::repeat_n(b'x', MAX_LINE));
        assert!(take_lines(&mut buffer, &mut skipping).is_empty());
        assert!(buffer.is_empty() && skipping);
        buffer.extend_from_slice(b"tail of the long one\n{\"c\":2}\n");
        assert_eq!(take_lines(&mut buffer, &mut skipping), vec![b"{\"c\":2}\n".to_vec()]);
    }
}
