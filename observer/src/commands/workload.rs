//! `observer profile export --workload NAMESPACE/KIND/NAME/CONTAINER`: one
//! profile for every replica (and restart) of a workload's container on this
//! node, merged with observer-profile's merge, and, as a SeccompProfile, with
//! metadata saying where, when and from how many replicas and nodes it was learned.

use std::collections::BTreeMap;

use anyhow::Context as _;
use observer_contract::{api::Request, pod::WorkloadKey, views::ExportFormat, workload::WorkloadView};
use observer_profile::{
    export::ExportMeta,
    merge::{MergeInput, merge},
};

use crate::{
    api::call_as,
    learned::{self, ExportRequest},
};

/// A Kubernetes label value: at most 63 characters of `[A-Za-z0-9._-]`,
/// starting and ending with an alphanumeric one.
pub fn label_value(s: &str) -> String {
    let cleaned: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect();
    let cut: String = cleaned.chars().take(63).collect();
    cut.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()
}

/// A DNS-1123 subdomain name for the SeccompProfile: lower case, `[a-z0-9.-]`, at most 253.
pub fn object_name(s: &str) -> String {
    let cleaned: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '-' })
        .collect();
    let cut: String = cleaned.chars().take(253).collect();
    cut.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()
}

/// `2026-12-01T01:08:54.2Z` as a label value: `20261201T010854Z`.
fn compact_time(rfc3339: &str) -> String {
    let digits: String = rfc3339.chars().take(19).filter(char::is_ascii_alphanumeric).collect();
    if digits.is_empty() { String::new() } else { format!("{digits}Z") }
}

/// Each merged pod's container, and why its pod was taken as one of the
/// workload's: `pod web-7d4b9c8f6d-x2x9k (uid ..., container 3f4e2c1b9a8d):
/// Deployment web by label pod-template-hash=... and pod name ...`.
fn members(data: &WorkloadView) -> Vec<String> {
    data.members
        .iter()
        .map(|m| {
            let id: String = m.container_id.chars().take(12).collect();
            format!("pod {} (uid {}, container {id}): {} {} by {}", m.pod, m.uid, data.kind, data.name, m.matched_by)
        })
        .collect()
}

/// Asks the agent for the workload, merges its replicas and renders the result.
pub fn export(socket: &std::path::Path, workload: &WorkloadKey, req: &ExportRequest) -> anyhow::Result<String> {
    let data: WorkloadView = call_as(socket, &Request::Workload { workload: workload.clone() })?;
    render(&data, req)
}

/// The merged profile of an agent's `workload` answer, in `req.format`.
pub fn render(data: &WorkloadView, req: &ExportRequest) -> anyhow::Result<String> {
    // The reachable tier is added to the merged profile: merging would turn its logged names into allowed ones.
    let per_replica = ExportRequest { format: ExportFormat::Docker, reachable: None, ..req.clone() };
    let mut inputs = Vec::new();
    let mut calls = 0;
    for view in &data.profiles {
        let learned = learned::learned_from_agent(view);
        calls += learned.metadata.calls;
        let (exported, _) =
            learned::export_learned(&learned, &per_replica).with_context(|| format!("exporting {}", view.name))?;
        learned::report_left_out(&exported);
        inputs.push(MergeInput { source: view.name.clone(), profile: exported.profile });
    }
    anyhow::ensure!(!inputs.is_empty(), "the agent gave no profile for {:?}", data.workload.to_string());
    let matched = members(data);
    for m in &matched {
        eprintln!("merged {m}");
    }
    let mut merged = merge(&inputs);
    if let Some(tier) = &req.reachable {
        observer_profile::tiers::add_reachable(&mut merged, tier, &learned::export_options(req)?);
    }
    merged.metadata = Some(ExportMeta {
        container: data.workload.to_string(),
        image: data.images.join(","),
        since: data.since.clone(),
        calls,
        generator: format!("observer {}", env!("CARGO_PKG_VERSION")),
    });
    if req.format != ExportFormat::Spo {
        return learned::render(&merged, req);
    }
    let replicas = data.replicas.to_string();
    let labels: BTreeMap<String, String> = [
        ("observer/workload", label_value(&data.name)),
        ("observer/workload-kind", label_value(&data.kind)),
        ("observer/container", label_value(&data.container)),
        ("observer/replicas", replicas.clone()),
        ("observer/nodes", "1".to_owned()),
        ("observer/node", label_value(&data.node)),
        ("observer/learned-until", compact_time(&data.until)),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let annotations: BTreeMap<String, String> = [
        ("observer/workload", data.workload.to_string()),
        ("observer/replicas", replicas),
        ("observer/containers", data.containers.to_string()),
        ("observer/pods", data.pods.join(",")),
        ("observer/nodes", data.node.clone()),
        ("observer/templates", data.templates.join(",")),
        ("observer/matched", matched.join("; ")),
        ("observer/until", data.until.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let name = req.name.clone().unwrap_or_else(|| object_name(&format!("{}-{}", data.name, data.container)));
    let namespace = req.namespace.clone().unwrap_or_else(|| data.namespace.clone());
    Ok(merged.to_spo_yaml_with(&name, &namespace, &labels, &annotations))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_label_values_are_kubernetes_valid() {
        assert_eq!(label_value("node-1.example"), "node-1.example");
        assert_eq!(label_value("-a b/c-"), "a-b-c");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
        assert_eq!(object_name("Web_App-app"), "web-app-app");
        assert_eq!(compact_time("2026-12-01T01:08:54.206460946Z"), "20261201T010854Z");
    }

    #[test]
    fn replicas_merge_into_one_seccomp_profile() {
        let row_in = |name: &str, phase: &str| {
            serde_json::json!({"name": name, "abi": "x86_64", "phase": phase, "phases": [phase], "denied_phases": [],
                               "calls": 1, "errors": 0, "denied": 0, "first_seen": null, "pid": null, "comm": null})
        };
        let row = |name: &str| row_in(name, "container");
        let init = row_in("execve", "init_after_filter");
        let profile = |name: &str, calls: u64, syscalls: serde_json::Value| {
            serde_json::json!({"id": name, "name": name, "image": "nginx:1.25", "runtime": "containerd", "state": "exited",
                               "first_seen": "2026-12-01T01:00:00Z", "observed_since": null, "seccomp_mode": 2,
                               "calls": calls, "baseline": null, "syscalls": syscalls})
        };
        let data: WorkloadView = serde_json::from_value(serde_json::json!({
            "workload": "shop/Deployment/web/app", "namespace": "shop", "name": "web", "kind": "Deployment", "container": "app",
            "node": "node-1", "replicas": 2, "containers": 2, "pods": ["web-1", "web-2"], "templates": ["7d4b9"],
            "images": ["nginx:1.25"], "since": "2026-12-01T01:00:00Z", "until": "2026-12-01T02:00:00Z",
            "members": [
                {"pod": "web-1", "uid": "u1", "container_id": "c1", "matched_by": "label pod-template-hash=7d4b9 and pod name web-7d4b9-<suffix>"},
                {"pod": "web-2", "uid": "u2", "container_id": "c2", "matched_by": "label pod-template-hash=7d4b9 and pod name web-7d4b9-<suffix>"},
            ],
            "profiles": [
                profile("shop/web-1/app", 5, serde_json::json!([row("read"), row("chmod"), init.clone()])),
                profile("shop/web-2/app", 7, serde_json::json!([row("read"), row("mkdir"), init])),
            ],
        }))
        .expect("a workload answer");
        let req = ExportRequest::plain(ExportFormat::Spo);
        let yaml = render(&data, &req).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(doc["kind"], "SeccompProfile");
        assert_eq!(doc["metadata"]["name"], "web-app");
        assert_eq!(doc["metadata"]["namespace"], "shop");
        assert_eq!(doc["metadata"]["labels"]["observer/replicas"], "2");
        assert_eq!(doc["metadata"]["labels"]["observer/workload-kind"], "Deployment");
        assert_eq!(doc["metadata"]["annotations"]["observer/calls"], "12");
        let matched = doc["metadata"]["annotations"]["observer/matched"].as_str().unwrap();
        assert!(
            matched.starts_with("pod web-1 (uid u1, container c1): Deployment web by label pod-template-hash=7d4b9")
                && matched.contains("; pod web-2 "),
            "{matched}"
        );
        let allowed: Vec<String> = doc["spec"]["syscalls"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|r| r["names"].as_sequence().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect();
        for n in ["read", "chmod", "mkdir", "execve"] {
            assert!(allowed.iter().any(|a| a == n), "{n} in {allowed:?}");
        }
    }
}
