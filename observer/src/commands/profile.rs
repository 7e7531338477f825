//! `observer profile ...`: show a container's live profile; export, merge,
//! diff and check profile files.

use std::{fmt::Write as _, path::PathBuf};

use clap::Subcommand;

use crate::api::{Request, call, socket_path};

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// A container's syscalls: per ABI and start phase, with counts and first use.
    Show {
        /// Container id, unique id prefix or name.
        container: String,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
}

pub fn run(cmd: ProfileCommand) -> anyhow::Result<i32> {
    match cmd {
        ProfileCommand::Show { container, json, socket } => {
            let data = call(&socket_path(socket.as_deref()), &Request::Profile { container })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&data)?);
            } else {
                print!("{}", table(&data));
            }
            Ok(0)
        }
    }
}

fn table(data: &serde_json::Value) -> String {
    let mut out = String::new();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let _ = writeln!(out, "container {} ({}), image {}, state {}", s(&data["name"]), crate::agent::short(&s(&data["id"])), s(&data["image"]), s(&data["state"]));
    if let Some(since) = data["observed_since"].as_str() {
        let _ = writeln!(out, "observed since {since} (it was running before the agent saw it)");
    }
    let _ = writeln!(out, "{:<22} {:<7} {:<19} {:>10} {:>8} {:>7} {:<21} {:>7} COMM", "SYSCALL", "ABI", "PHASE", "CALLS", "ERRORS", "DENIED", "FIRST SEEN", "PID");
    for r in data["syscalls"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<22} {:<7} {:<19} {:>10} {:>8} {:>7} {:<21} {:>7} {}",
            s(&r["name"]),
            s(&r["abi"]),
            s(&r["phase"]),
            r["calls"].as_u64().unwrap_or(0),
            r["errors"].as_u64().unwrap_or(0),
            r["denied"].as_u64().unwrap_or(0),
            s(&r["first_seen"]),
            r["pid"].as_u64().map_or_else(|| "-".into(), |p| p.to_string()),
            s(&r["comm"]),
        );
    }
    out
}
