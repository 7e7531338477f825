//! The agent's local API: one JSON request per line on a unix socket that only
//! root can use, one JSON response per line. The CLI commands are its clients.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

pub const DEFAULT_SOCKET: &str = "/run/observer/observer.sock";

/// Which containers an enforcement applies to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A known container: id, unique id prefix or name.
    Container(String),
    /// Every container with this name, now and when (re)started.
    Name(String),
    /// Every container of this image, now and when started.
    Image(String),
    /// Every workload container of this Kubernetes pod (`NAMESPACE/NAME`).
    Pod(String),
    /// Every workload container in this Kubernetes namespace.
    Namespace(String),
    /// Every container whose labels (or whose pod's labels) hold `KEY=VALUE`.
    Label(String),
}

/// What a rule is matched against: a container as its runtime named it.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub image: &'a str,
    pub image_digest: &'a str,
    pub pod: Option<&'a crate::container::PodInfo>,
    pub labels: &'a std::collections::BTreeMap<String, String>,
}

impl Target {
    /// Parses `--match` and `--baseline` targets: `name:NAME`, `image:IMAGE`,
    /// `pod:NAMESPACE/NAME`, `namespace:NAME`, `label:KEY=VALUE`.
    pub fn parse_match(spec: &str) -> Result<Target, String> {
        let (kind, value) = spec.split_once(':').ok_or_else(|| {
            format!("{spec:?}: expected name:NAME, image:IMAGE, pod:NAMESPACE/NAME, namespace:NAME or label:KEY=VALUE")
        })?;
        if value.is_empty() {
            return Err(format!("{spec:?}: nothing after {kind}:"));
        }
        match kind {
            "name" => Ok(Target::Name(value.into())),
            "image" => Ok(Target::Image(value.into())),
            "pod"
                if value.split_once('/').is_some_and(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/')) =>
            {
                Ok(Target::Pod(value.into()))
            }
            "pod" => Err(format!("{spec:?}: expected pod:NAMESPACE/NAME")),
            "namespace" => Ok(Target::Namespace(value.into())),
            "label" if value.split_once('=').is_some_and(|(k, _)| !k.is_empty()) => Ok(Target::Label(value.into())),
            "label" => Err(format!("{spec:?}: expected label:KEY=VALUE")),
            other => Err(format!("{spec:?}: unknown match kind {other:?} (name, image, pod, namespace, label)")),
        }
    }

    /// Whether this rule names the container. A pod's sandbox ("pause")
    /// container is not one of its workload containers: pod, namespace and
    /// label rules leave it alone.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let workload_pod = s.pod.filter(|p| !p.sandbox);
        match self {
            Target::Name(n) => s.name == n,
            Target::Image(i) => crate::container::identity::image_matches(s.image, s.image_digest, i),
            Target::Container(c) => s.id == c || s.name == c || s.id.starts_with(c.as_str()),
            Target::Pod(p) => {
                workload_pod.is_some_and(|pod| p.split_once('/') == Some((pod.namespace.as_str(), pod.name.as_str())))
            }
            Target::Namespace(ns) => workload_pod.is_some_and(|pod| &pod.namespace == ns),
            Target::Label(kv) => {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let has = |labels: &std::collections::BTreeMap<String, String>| labels.get(k).is_some_and(|x| x == v);
                match s.pod {
                    Some(pod) if pod.sandbox => false,
                    Some(pod) => has(s.labels) || has(&pod.labels),
                    None => has(s.labels),
                }
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ps,
    Profile {
        container: String,
    },
    /// Every record of one workload container, `NAMESPACE/KIND/NAME/CONTAINER`.
    Workload {
        workload: String,
    },
    Enforce {
        target: Target,
        action: crate::views::EnforceAction,
        allowed_rows: Vec<u32>,
        profile: String,
    },
    EnforceOff {
        target: Target,
    },
    Status,
    /// A live feed (`observer top`): one `TopFrame` answer line every
    /// `every_ms`, pushed until the client closes the connection. A later
    /// `subscribe` line on the same connection replaces it (another
    /// container's profile, another period) and is answered at once.
    Subscribe {
        #[serde(default = "default_every_ms")]
        every_ms: u64,
        /// Also send this container's profile (id, unique id prefix or name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
    },
}

/// The feed's period when the request names none.
pub const DEFAULT_EVERY_MS: u64 = 1000;
/// Bounds of a feed's period: faster would keep the agent's lock busy, slower is no longer live.
pub const EVERY_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=60_000;

fn default_every_ms() -> u64 {
    DEFAULT_EVERY_MS
}

/// One answer line. `data` stays JSON text: the agent writes a view once
/// (no intermediate tree: `ps` with 10,000 containers), and the CLI reads it
/// straight into the view's type (`Response::data_as`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default = "null")]
    pub data: Box<serde_json::value::RawValue>,
}

fn null() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string("null".into()).expect("null is JSON")
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Self {
        Self::of(&data)
    }

    /// An answer of the typed contract (`crate::views`).
    pub fn of<T: Serialize>(view: &T) -> Self {
        match serde_json::value::to_raw_value(view) {
            Ok(data) => Self { ok: true, error: None, data },
            Err(e) => Self::error(format!("encoding the answer: {e}")),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self { ok: false, error: Some(message.into()), data: null() }
    }

    /// `data` read as `T`.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.data.get())
    }
}

/// The socket to use: `--socket`, else $OBSERVER_SOCKET, else the default.
pub fn socket_path(given: Option<&Path>) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("OBSERVER_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Sends one request and reads its answer as the contract's type for it.
pub fn call_as<T: serde::de::DeserializeOwned>(socket: &Path, request: &Request) -> anyhow::Result<T> {
    call_response(socket, request)?
        .data_as()
        .context("the agent's answer does not match this CLI's contract (an agent of another version?)")
}

/// A connection to the agent, or an error saying what to check.
pub fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the observer agent at {} (is `observer agent` running, and are you root?)",
            socket.display()
        )
    })
}

/// Sends one request to the agent and returns its data, or its error.
pub fn call(socket: &Path, request: &Request) -> anyhow::Result<serde_json::Value> {
    call_response(socket, request)?.data_as().context("the agent's answer is not valid JSON")
}

/// Sends one request and returns the agent's data as the JSON text it sent
/// (for output that is the contract's JSON as is: `ps --json` with 10,000
/// containers is 6 MB, parsed and written again for nothing otherwise).
pub fn call_raw(socket: &Path, request: &Request) -> anyhow::Result<String> {
    Ok(call_response(socket, request)?.data.get().to_owned())
}

/// Sends one request and returns the agent's successful answer, or its error.
fn call_response(socket: &Path, request: &Request) -> anyhow::Result<Response> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).context("reading the agent's answer")?;
    let response: Response = serde_json::from_str(&answer).context("the agent's answer is not valid JSON")?;
    if !response.ok {
        bail!("{}", response.error.unwrap_or_else(|| "the agent refused the request".into()));
    }
    Ok(response)
}
