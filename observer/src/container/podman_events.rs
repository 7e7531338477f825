//! Rootful podman's container events, as dockerd's are followed
//! (`docker_events`): `create` comes before crun makes the container's cgroup,
//! so the agent knows a podman container's name and rules before its first
//! syscall. podman has no daemon unless its API service runs, so the CLI is
//! followed (`podman events --format json`, one JSON object a line, read from
//! podman's own event log), as a child killed with the agent. When podman
//! is not installed, nothing is followed.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde::Deserialize;
use tokio::{io::AsyncReadExt as _, sync::mpsc::UnboundedSender};

use super::docker_events::{Action, ContainerEvent, take_lines};

/// One line of `podman events --format json` (podman 4: `ID`, `Name`,
/// `Image`, `Status`, `Type`, and the container's labels in `Attributes`).
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Attributes", default)]
    attributes: Option<BTreeMap<String, String>>,
}

/// One line as a container event: `create`, `start` or `remove` (podman's
/// end of a container, as dockerd's `destroy`); `None` for anything else.
/// The attributes are the labels, with `name` and `image` set from the
/// event's own fields, as dockerd's events carry them.
pub fn parse_event(line: &[u8]) -> Option<ContainerEvent> {
    let raw: RawEvent = serde_json::from_slice(line).ok()?;
    if raw.kind != "container" {
        return None;
    }
    let action = match raw.status.as_str() {
        "create" => Action::Create,
        "start" => Action::Start,
        "remove" => Action::Destroy,
        _ => return None,
    };
    let valid = raw.id.len() == 64 && raw.id.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return None;
    }
    let mut attributes = raw.attributes.unwrap_or_default();
    attributes.insert("name".into(), raw.name);
    attributes.insert("image".into(), raw.image);
    Some(ContainerEvent { action, id: raw.id, attributes })
}

/// Follows podman's container events until the child ends or nobody
/// listens; an error when podman cannot be started.
pub async fn follow(bin: &Path, news: &UnboundedSender<ContainerEvent>) -> std::io::Result<()> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["events", "--format", "json", "--filter", "type=container"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    // An agent killed outright (SIGKILL, no drop) takes its podman with it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let Some(mut out) = child.stdout.take() else { return Ok(()) };
    let (mut buffer, mut skipping, mut chunk) = (Vec::new(), false, vec![0u8; 64 * 1024]);
    loop {
        let n = out.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
        for line in take_lines(&mut buffer, &mut skipping) {
            if let Some(event) = parse_event(&line)
                && news.send(event).is_err()
            {
                return Ok(());
            }
        }
    }
    let _ = child.kill().await;
    Ok(())
}

/// Follows podman's events for as long as the agent runs, starting podman
/// again when it ends; quietly when podman is not installed (a host without
/// podman is normal).
pub async fn follow_forever(bin: PathBuf, news: UnboundedSender<ContainerEvent>) {
    let mut told = false;
    let mut delay = RETRY_FIRST;
    while !news.is_closed() {
        let started = std::time::Instant::now();
        match follow(&bin, &news).await {
            Ok(()) => told = false,
            // Not installed: nothing to follow, ever.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if !told => {
                told = true;
                tracing::warn!("following podman's events ({} events): {e}; retrying", bin.display());
            }
            Err(_) => {}
        }
        // A podman that ends at once (no event log it can read) is not started
        // again every 2 s for as long as the agent runs.
        delay = if started.elapsed() < Duration::from_secs(10) { (delay * 2).min(RETRY_MAX) } else { RETRY_FIRST };
        tokio::time::sleep(delay).await;
    }
}

/// Waits before podman is started again: doubling from the first to the most.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "2691b94674d9aace5e32bdd8cdc652286994bed3cc4376bcca1ec942917c67cc";

    /// Lines as podman 4.3 writes them.
    #[test]
    fn container_events_are_read_and_others_left_out() {
        let line = format!(
            r#"{{"ID":"{ID}","Image":"localhost/observer-busybox:latest","Name":"t0","Status":"create","Time":"2026-12-07T23:32:25.05226804Z","Type":"container","Attributes":{{"tier":"web"}}}}"#
        );
        let created = parse_event(line.as_bytes()).expect("a create event");
        assert_eq!((created.action, created.id.as_str()), (Action::Create, ID));
        assert_eq!(created.attributes.get("name").map(String::as_str), Some("t0"));
        assert_eq!(created.attributes.get("image").map(String::as_str), Some("localhost/observer-busybox:latest"));
        assert_eq!(created.attributes.get("tier").map(String::as_str), Some("web"));
        let start = line.replace(r#""Status":"create""#, r#""Status":"start""#);
        assert_eq!(parse_event(start.as_bytes()).map(|e| e.action), Some(Action::Start));
        let removed = line.replace(r#""Status":"create""#, r#""Status":"remove""#);
        assert_eq!(parse_event(removed.as_bytes()).map(|e| e.action), Some(Action::Destroy));
        let init = line.replace(r#""Status":"create""#, r#""Status":"init""#);
        assert_eq!(parse_event(init.as_bytes()), None);
        let image = line.replace(r#""Type":"container""#, r#""Type":"image""#);
        assert_eq!(parse_event(image.as_bytes()), None);
        let short = line.replace(ID, "2691b946");
        assert_eq!(parse_event(short.as_bytes()), None, "only full ids");
        let no_attributes = line.replace(r#","Attributes":{"tier":"web"}"#, "");
        assert!(parse_event(no_attributes.as_bytes()).is_some());
        assert_eq!(parse_event(b"not json"), None);
    }
}
