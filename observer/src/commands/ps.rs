//! `observer ps`: the containers the agent knows.

use std::{fmt::Write as _, path::Path};

use observer_contract::{api::Request, views::PsRow};

use crate::api::{call_as, call_raw, socket_path};

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
        let state = c.state.as_str();
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
            c.seccomp_mode.map_or_else(|| "-".to_owned(), seccomp_mode),
            c.denied,
            c.alerts,
        );
    }
    with_image_profiles(out, rows)
}

/// With `agent --profiles`: a last column, PROFILE, naming each container's
/// image profile (`none` when its image has none, `-` when not bound).
fn with_image_profiles(table: String, rows: &[PsRow]) -> String {
    if rows.iter().all(|r| r.image_profile.is_none()) {
        return table;
    }
    let mut out = String::new();
    for (i, line) in table.lines().enumerate() {
        let column = match i {
            0 => "PROFILE".to_owned(),
            n => rows.get(n - 1).and_then(|r| r.image_profile.as_deref()).map_or_else(|| "-".to_owned(), printable),
        };
        let _ = writeln!(out, "{line} {column}");
    }
    out
}

/// A seccomp mode as `/proc/PID/status` users know it (`Seccomp:` 0, 1, 2);
/// a mode this build does not know stays a number.
fn seccomp_mode(mode: u32) -> String {
    match mode {
        0 => "none".into(),
        1 => "strict".into(),
        2 => "filter".into(),
        other => other.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seccomp_column_names_the_mode() {
        let doc = include_str!("../../../docs/cli.md");
        let start = doc.find("```json ps\n").expect("the ps example") + "```json ps\n".len();
        let example: Vec<PsRow> = serde_json::from_str(&doc[start..start + doc[start..].find("```").unwrap()]).unwrap();
        let column = |mode: Option<u32>| {
            let row = PsRow { seccomp_mode: mode, ..example[0].clone() };
            let text = table(&[row]);
            let header = text.lines().next().unwrap();
            let at = header.find("SECCOMP").unwrap();
            // Right-aligned under its header: the 7 characters (not bytes: the
            // image is cut with an ellipsis) ending where SECCOMP ends.
            text.lines().nth(1).unwrap().chars().skip(at).take(7).collect::<String>().trim().to_owned()
        };
        assert_eq!(column(Some(2)), "filter");
        assert_eq!(column(Some(1)), "strict");
        assert_eq!(column(Some(0)), "none");
        assert_eq!(column(None), "-");
        assert_eq!(column(Some(7)), "7");
    }
}
