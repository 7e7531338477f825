//! The CLI's client of the agent's local API (the lines themselves are
//! `observer_contract::api`): one JSON request per line on a unix socket that
//! only root can use, one JSON response per line.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use observer_contract::api::{DEFAULT_SOCKET, Request, Response};

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
