//! `observer ps`: the containers the agent knows.

use std::{fmt::Write as _, path::Path};

use crate::{
    api::{Request, call_as, call_raw, socket_path},
    views::PsRow,
};

pub fn run(json: bool, socket: Option<&Path>) -> anyhow::Result<i32> {
    if json {
        // The agent wrote it from the same typed rows (`views::PsRow`).
        println!("{}", call_raw(&socket_path(socket), &Request::Ps)?);
        return Ok(0);
    }
    let rows: Vec<PsRow> = call_as(&socket_path(socket), &Request::Ps)?;
    print!("{}", table(&rows));
    Ok(0)
}

pub fn table(rows: &[PsRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<20} {:<20} {:<10} {:<24} {:<15} {:>8} {:>10} {:>7} {:>6} {:>6}",
        "ID", "NAME", "IMAGE", "RUNTIME", "POD", "STATE", "SYSCALLS", "CALLS", "SECCOMP", "DENIED", "ALERTS"
    );
    for c in rows {
        let id = crate::printable::short(&c.id);
        let state = serde_json::to_value(c.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<12} {:<20} {:<20} {:<10} {:<24} {:<15} {:>8} {:>10} {:>7} {:>6} {:>6}",
            truncate(&id, 12),
            truncate(&printable(&c.name), 20),
            truncate(&printable(&c.image), 20),
            truncate(&c.runtime, 10),
            truncate(&pod(c), 24),
            state,
            c.syscalls,
            c.calls,
            c.seccomp_mode.map_or_else(|| "-".to_owned(), |m| m.to_string()),
            c.denied,
            c.alerts,
        );
    }
    out
}

/// `NAMESPACE/POD`, marked (first, so that truncation keeps the mark) when the
/// container is the pod's sandbox; `-` outside pods.
fn pod(c: &PsRow) -> String {
    match &c.pod {
        Some(p) if p.sandbox => format!("(sandbox) {}/{}", p.namespace, p.name),
        Some(p) => format!("{}/{}", p.namespace, p.name),
        None => "-".into(),
    }
}

fn printable(s: &str) -> String {
    crate::printable::printable(s).into_owned()
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}
