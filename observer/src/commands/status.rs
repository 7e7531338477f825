//! `observer status`: the agent's own state (slots, losses, latency, enforcements), as JSON.

use std::path::Path;

use observer_contract::{api::Request, views::StatusView};

use crate::api::{call_as, socket_path};

pub fn run(socket: Option<&Path>) -> anyhow::Result<i32> {
    let status: StatusView = call_as(&socket_path(socket), &Request::Status)?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(0)
}
