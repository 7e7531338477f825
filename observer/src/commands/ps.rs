//! `observer ps`: the containers the agent knows.

use std::{fmt::Write as _, path::Path};

use crate::api::{Request, call, socket_path};

pub fn run(json: bool, socket: Option<&Path>) -> anyhow::Result<i32> {
    let data = call(&socket_path(socket), &Request::Ps)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(0);
    }
    print!("{}", table(&data));
    Ok(0)
}

pub fn table(data: &serde_json::Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<20} {:<20} {:<10} {:<24} {:<15} {:>8} {:>10} {:>7} {:>6} {:>6}",
        "ID", "NAME", "IMAGE", "RUNTIME", "POD", "STATE", "SYSCALLS", "CALLS", "SECCOMP", "DENIED", "ALERTS"
    );
    for c in data.as_array().into_iter().flatten() {
        let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
        let id = crate::agent::short(&s("id"));
        let _ = writeln!(
            out,
            "{:<12} {:<20} {:<20} {:<10} {:<24} {:<15} {:>8} {:>10} {:>7} {:>6} {:>6}",
            truncate(&id, 12),
            truncate(&s("name"), 20),
            truncate(&s("image"), 20),
            truncate(&s("runtime"), 10),
            truncate(&pod(c), 24),
            s("state"),
            c["syscalls"].as_u64().unwrap_or(0),
            c["calls"].as_u64().unwrap_or(0),
            c["seccomp_mode"].as_u64().map_or_else(|| "-".to_owned(), |m| m.to_string()),
            c["denied"].as_u64().unwrap_or(0),
            c["alerts"].as_u64().unwrap_or(0),
        );
    }
    out
}

/// `NAMESPACE/POD`, marked (first, so that truncation keeps the mark) when the
/// container is the pod's sandbox; `-` outside pods.
fn pod(c: &serde_json::Value) -> String {
    let p = &c["pod"];
    match (p["namespace"].as_str(), p["name"].as_str()) {
        (Some(ns), Some(name)) if p["sandbox"] == true => format!("(sandbox) {ns}/{name}"),
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        _ => "-".into(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}
