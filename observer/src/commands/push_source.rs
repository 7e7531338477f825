//! Where `observer profile push` takes its profile from: a file, a container the
//! agent watches (its learned profile, tagged by its image's digest), or a
//! workload's merged profile from the agent.

use std::path::Path;

use anyhow::Context as _;
use observer_contract::{
    api::Request,
    views::{ExportFormat, ProfileView, PsRow},
};

use crate::{
    api::{call_as, socket_path},
    learned::{self, ExportRequest},
};

/// The profile to push and what its source says about it (provenance the
/// command line did not give).
pub struct PushSource {
    pub bytes: Vec<u8>,
    /// Names the source in messages: the file, `container NAME` or the agent's workload.
    pub label: String,
    pub image_digest: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub pods: Vec<String>,
}

impl PushSource {
    fn bytes_only(bytes: Vec<u8>, label: String) -> Self {
        Self { bytes, label, image_digest: None, first_seen: None, last_seen: None, pods: Vec::new() }
    }
}

/// SOURCE is a file when one exists at that path, else a container the agent
/// knows by name or id; no SOURCE takes `workload`'s profile from the agent.
pub fn resolve(source: Option<&str>, workload: Option<&str>, socket: Option<&Path>) -> anyhow::Result<PushSource> {
    match source {
        Some(file) if Path::new(file).exists() => {
            let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
            Ok(PushSource::bytes_only(bytes, file.to_owned()))
        }
        Some(container) => from_container(container, &socket_path(socket)),
        None => {
            let workload = workload.ok_or_else(|| {
                anyhow::anyhow!(
                    "give a profile file or a container to push, or --workload to push its profile from the agent"
                )
            })?;
            let key: observer_contract::pod::WorkloadKey = workload.parse()?;
            let request = ExportRequest::plain(ExportFormat::Docker);
            let text = crate::commands::workload::export(&socket_path(socket), &key, &request)?;
            Ok(PushSource::bytes_only(text.into_bytes(), "the agent's profile".to_owned()))
        }
    }
}

/// The container's learned profile as `profile export CONTAINER` writes it, with
/// its image digest (the tag the agent's `--profiles oci://` looks for), its
/// time span and its pod from the agent's `ps`.
fn from_container(container: &str, socket: &Path) -> anyhow::Result<PushSource> {
    let view: ProfileView = call_as(socket, &Request::Profile { container: container.to_owned() })
        .with_context(|| format!("{container}: no such file, so asked the agent for the container of that name"))?;
    let (exported, text) =
        learned::export_learned(&learned::learned_from_agent(&view), &ExportRequest::plain(ExportFormat::Docker))?;
    learned::report_left_out(&exported);
    let rows: Vec<PsRow> = call_as(socket, &Request::Ps)?;
    let row = rows.into_iter().find(|r| r.id == view.id);
    let label = format!("container {}", view.name);
    let Some(row) = row else {
        return Ok(PushSource::bytes_only(text.into_bytes(), label));
    };
    Ok(PushSource {
        bytes: text.into_bytes(),
        label,
        image_digest: Some(row.image_digest).filter(|d| !d.is_empty()),
        first_seen: Some(row.observed_since.unwrap_or(row.first_seen)).filter(|t| !t.is_empty()),
        last_seen: Some(row.last_seen).filter(|t| !t.is_empty()),
        pods: row.pod.map(|p| format!("{}/{}", p.namespace, p.name)).into_iter().collect(),
    })
}
