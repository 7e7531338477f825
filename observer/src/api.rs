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
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ps,
    Profile { container: String },
    Enforce { target: Target, action: String, allowed_rows: Vec<u32>, profile: String },
    EnforceOff { target: Target },
    Status,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Self {
        Self { ok: true, error: None, data }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self { ok: false, error: Some(message.into()), data: serde_json::Value::Null }
    }
}

/// The socket to use: `--socket`, else $OBSERVER_SOCKET, else the default.
pub fn socket_path(given: Option<&Path>) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("OBSERVER_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Sends one request to the agent and returns its data, or its error.
pub fn call(socket: &Path, request: &Request) -> anyhow::Result<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!("cannot reach the observer agent at {} (is `observer agent` running, and are you root?)", socket.display())
    })?;
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
    Ok(response.data)
}
