//! The API socket (root only: mode 0600, the peer's uid checked, and in a 0700
//! directory when the directory is the agent's own).

use std::{
    os::unix::fs::{DirBuilderExt as _, PermissionsExt as _},
    path::Path,
    sync::Arc,
};

use anyhow::Context as _;
use observer_contract::{
    api::{Request, Response},
    rules::{EnforceRule, Target},
};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::Mutex,
    task::JoinHandle,
};

use super::Agent;

pub async fn serve(agent: Arc<Mutex<Agent>>, socket: &Path) -> anyhow::Result<JoinHandle<()>> {
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        restrict_own_directory(dir)?;
    }
    // We hold the agent lock, so a socket file left here is stale.
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).with_context(|| format!("listening on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let agent = agent.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(agent, stream).await {
                    tracing::debug!("API connection: {e:#}");
                }
            });
        }
    }))
}

/// Makes the socket's directory root-only when it is the agent's own: one it
/// creates now, or observer's default (`/run/observer`). Any other directory
/// (`/run`, `/tmp`, an operator's) belongs to someone else and keeps its mode;
/// the socket itself is 0600 and the peer's uid is checked either way.
fn restrict_own_directory(dir: &Path) -> anyhow::Result<()> {
    let own = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Every directory created here (the missing ancestors too) is the agent's.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            true
        }
        Err(e) => return Err(e).with_context(|| format!("looking at {}", dir.display())),
        // A symlink is followed for the socket, never chmodded through.
        Ok(meta) => meta.is_dir() && Path::new(observer_contract::api::DEFAULT_SOCKET).parent() == Some(dir),
    };
    if own {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} root-only", dir.display()))?;
    }
    Ok(())
}

async fn handle(agent: Arc<Mutex<Agent>>, stream: UnixStream) -> anyhow::Result<()> {
    let uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let Some(line) = lines.next_line().await? else { return Ok(()) };
    let response = if uid != 0 {
        Response::error("the observer API is for root only")
    } else {
        match serde_json::from_str::<Request>(&line) {
            // The connection stays open: frames are pushed on it.
            Ok(Request::Subscribe { every_ms, container }) => {
                let sub = super::live::Subscription::new(every_ms, container);
                return super::live::stream(agent, lines, write, sub).await;
            }
            Ok(request) => answer(&agent, request).await,
            Err(e) => Response::error(format!("bad request: {e}")),
        }
    };
    let mut out = serde_json::to_string(&response)?;
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    Ok(())
}

async fn answer(agent: &Arc<Mutex<Agent>>, request: Request) -> Response {
    let asked = std::time::Instant::now();
    let mut a = agent.lock().await;
    let locked = asked.elapsed();
    // Counts are read fresh from the kernel's memory (no syscall per slot);
    // pids and seccomp modes, which take file reads, come from the background
    // read of the last second, except for new records and the one record
    // `profile` shows. So an answer's cost stays small with thousands of
    // containers.
    match &request {
        Request::Status | Request::Subscribe { .. } => {}
        Request::Profile { container } => {
            if let Ok(key) = a.find(container) {
                a.refresh_record(&key);
            }
        }
        Request::Ps | Request::Workload { .. } => {
            a.read_counts();
            a.refresh_new_facts();
        }
        _ => a.tick(),
    }
    let read = asked.elapsed();
    if let Request::Ps = request {
        // The rows are copied under the lock and encoded after it is let go:
        // 10,000 rows are megabytes of JSON, which the event reader and the
        // saving tasks should not wait for.
        let rows = a.ps();
        drop(a);
        let copied = asked.elapsed();
        let response = tokio::task::spawn_blocking(move || Response::of(&rows))
            .await
            .unwrap_or_else(|e| Response::error(format!("encoding the answer: {e}")));
        tracing::debug!(?locked, ?read, ?copied, answered = ?asked.elapsed(), "answered ps");
        return response;
    }
    let response = respond(&mut a, request);
    tracing::debug!(?locked, ?read, answered = ?asked.elapsed(), "answered");
    response
}

fn respond(a: &mut Agent, request: Request) -> Response {
    match request {
        Request::Ps => Response::error("ps is answered before (its rows are encoded without the lock)"),
        Request::Status => Response::of(&a.status()),
        Request::Subscribe { .. } => Response::error("subscribe opens a feed of its own (handled before)"),
        Request::Profile { container } => match a.profile(&container) {
            Ok(v) => Response::of(&v),
            Err(e) => Response::error(e),
        },
        Request::Workload { workload } => match super::identity_view::workload(a, &workload) {
            Ok(v) => Response::of(&v),
            Err(e) => Response::error(e),
        },
        Request::Enforce { target, action, allowed_rows, profile } => {
            let target = match resolve_target(a, target) {
                Ok(t) => t,
                Err(e) => return Response::error(e),
            };
            let rule = EnforceRule { target: target.clone(), action, allowed_rows, profile };
            let keys: Vec<String> = matching(a, &target);
            // A named container with no live slot (ended, or its slot lost to a
            // reboot or an uninstall) would be enforced on paper only: say so.
            if let Target::Container(c) = &target
                && !keys
                    .iter()
                    .any(|k| a.containers.get(k).is_some_and(|r| r.cgroups.values().any(|c| c.slot.is_some())))
            {
                return Response::error(format!(
                    "nothing armed: container {c:?} has no live cgroup in the kernel (it ended, or it has made no syscall since the programs were attached); use --match name:NAME to wait for it"
                ));
            }
            // The rule joins the others first: each container is armed with
            // the latest rule that names it, which this one now is.
            a.enforcements.retain(|r| r.target != target);
            a.enforcements.push(rule.clone());
            let mut armed = observer_contract::rules::Armed::default();
            for key in &keys {
                armed.add(a.arm(key));
            }
            a.flush(false);
            Response::of(&observer_contract::rules::EnforceAnswer { enforced: keys, armed, rule })
        }
        Request::EnforceOff { target } => {
            let target = match resolve_target(a, target) {
                Ok(t) => t,
                Err(e) => return Response::error(e),
            };
            let keys = matching(a, &target);
            a.enforcements.retain(|r| r.target != target);
            // Another rule that still names a container keeps it armed.
            for key in &keys {
                a.arm(key);
            }
            a.flush(false);
            Response::of(&observer_contract::rules::ReleaseAnswer { released: keys })
        }
    }
}

/// A container given by id prefix or name must exist; name and image targets may wait.
fn resolve_target(a: &Agent, target: Target) -> Result<Target, String> {
    match target {
        Target::Container(c) => a.find(&c).map(Target::Container),
        other => Ok(other),
    }
}

fn matching(a: &Agent, target: &Target) -> Vec<String> {
    a.containers
        .values()
        .filter(|r| r.state == observer_contract::views::State::Running)
        .filter(|r| match target {
            Target::Container(id) => &r.id == id,
            other => other.matches(&r.subject()),
        })
        .map(|r| r.id.clone())
        .collect()
}
