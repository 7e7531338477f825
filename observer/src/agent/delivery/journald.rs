//! `--journald [PATH]`: each alert as one datagram in journald's native
//! protocol (`/run/systemd/journal/socket`), so that its fields can be
//! queried (`journalctl OBSERVER_CONTAINER_NAME=web OBSERVER_KIND=enforce`).
//! MESSAGE is the alert's JSON line; every field of it is also a journal
//! field, `OBSERVER_` and its name in capitals (nested ones joined by `_`).
//! The protocol: <https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>.

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use serde_json::Value;

use super::queue::Sink;

/// Where journald reads native datagrams.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";

/// `warning`, as the syslog output.
const PRIORITY: &str = "4";

/// Appends one field: `KEY=value\n`, or, for a value with a newline, the
/// binary form `KEY\n`, its length as 64-bit little endian, the value, `\n`.
fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// A journal field name from a JSON key: capitals, digits and `_` only.
fn field_name(parts: &[&str]) -> String {
    let joined = parts.join("_");
    joined.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// Every scalar of the alert, under `OBSERVER_<PATH>`; nulls are left out.
fn flatten(out: &mut Vec<u8>, path: &mut Vec<String>, value: &Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                flatten(out, path, v);
                path.pop();
            }
        }
        Value::Null => {}
        Value::String(s) => field(out, &name_of(path), s),
        other => field(out, &name_of(path), &other.to_string()),
    }
}

fn name_of(path: &[String]) -> String {
    let parts: Vec<&str> = std::iter::once("observer").chain(path.iter().map(String::as_str)).collect();
    field_name(&parts)
}

/// One datagram for an alert line.
pub fn format(pid: u32, line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() * 2 + 128);
    field(&mut out, "MESSAGE", line);
    field(&mut out, "PRIORITY", PRIORITY);
    field(&mut out, "SYSLOG_IDENTIFIER", "observer");
    field(&mut out, "SYSLOG_PID", &pid.to_string());
    if let Ok(alert) = serde_json::from_str::<Value>(line) {
        flatten(&mut out, &mut Vec::new(), &alert);
    }
    out
}

/// journald's socket, sent to by path each time (as the syslog output).
#[derive(Debug)]
pub struct Journald {
    path: PathBuf,
    socket: UnixDatagram,
    pid: u32,
}

impl Journald {
    pub fn open(path: &Path) -> anyhow::Result<Journald> {
        let check = UnixDatagram::unbound().context("making a unix datagram socket")?;
        check.connect(path).map_err(|e| {
            anyhow::anyhow!(
                "--journald {}: journald's socket is not there ({e}); without systemd, use --syslog",
                path.display()
            )
        })?;
        let socket = UnixDatagram::unbound().context("making a unix datagram socket")?;
        socket.set_nonblocking(true).context("making the journald socket non-blocking")?;
        Ok(Journald { path: path.to_path_buf(), socket, pid: std::process::id() })
    }
}

impl Sink for Journald {
    async fn send(&mut self, line: &str) -> Result<(), String> {
        match self.socket.send_to(&format(self.pid, line), &self.path) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a native datagram back into (key, value) pairs.
    fn parse(mut d: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let nl = d.iter().position(|b| *b == b'\n').expect("a field ends with a newline");
            let head = &d[..nl];
            if let Some(eq) = head.iter().position(|b| *b == b'=') {
                out.push((
                    String::from_utf8_lossy(&head[..eq]).into(),
                    String::from_utf8_lossy(&head[eq + 1..]).into(),
                ));
                d = &d[nl + 1..];
            } else {
                let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
                let value = &d[nl + 9..nl + 9 + len];
                assert_eq!(d[nl + 9 + len], b'\n');
                out.push((String::from_utf8_lossy(head).into(), String::from_utf8_lossy(value).into()));
                d = &d[nl + 10 + len..];
            }
        }
        out
    }

    #[test]
    fn every_field_of_the_alert_is_a_journal_field() {
        let line = r#"{"kind":"enforce","name":"web","pid":42,"detail":"two\nlines","pod":null,"rule":{"source":"enforce","target":{"container":"abc"}}}"#;
        let fields = parse(&format(977, line));
        let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MESSAGE"), Some(line));
        assert_eq!(get("PRIORITY"), Some("4"));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("observer"));
        assert_eq!(get("SYSLOG_PID"), Some("977"));
        assert_eq!(get("OBSERVER_KIND"), Some("enforce"));
        assert_eq!(get("OBSERVER_NAME"), Some("web"));
        assert_eq!(get("OBSERVER_PID"), Some("42"));
        assert_eq!(get("OBSERVER_DETAIL"), Some("two\nlines"), "binary form for a newline");
        assert_eq!(get("OBSERVER_RULE_TARGET_CONTAINER"), Some("abc"));
        assert_eq!(get("OBSERVER_POD"), None, "nulls are left out");
        assert_eq!(field_name(&["observer", "call-time"]), "OBSERVER_CALL_TIME");
    }

    #[test]
    fn missing_socket_is_an_error_naming_it() {
        let e = Journald::open(Path::new("/nonexistent/journal/socket")).unwrap_err().to_string();
        assert!(e.contains("--journald /nonexistent/journal/socket") && e.contains("--syslog"), "{e}");
    }
}
