//! The runtime identity of a record as the API shows it (`ps`, workloads):
//! engine, pod, workload, labels. Kept apart from `core` so that the agent's
//! state machine and these views change independently.

use serde_json::{Value, json};

use super::model::ContainerRecord;

/// `NAMESPACE/WORKLOAD/CONTAINER` for a workload container of a pod (not its
/// sandbox): the key under which replicas of one workload are one profile.
pub fn workload_key(r: &ContainerRecord) -> Option<String> {
    let pod = r.pod.as_ref().filter(|p| !p.sandbox)?;
    Some(format!("{}/{}/{}", pod.namespace, pod.workload.name, r.container_name))
}

/// The node's name: `$NODE_NAME` (the DaemonSet sets it from the downward
/// API), else the kernel's host name.
pub fn node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_default()
}

/// Every record of one workload container (`NAMESPACE/WORKLOAD/CONTAINER`),
/// replicas and restarts alike, with their profiles and where they come from.
pub fn workload(a: &super::Agent, spec: &str) -> Result<Value, String> {
    let parts: Vec<&str> = spec.split('/').collect();
    let [namespace, name, container] = parts.as_slice() else {
        return Err(format!("--workload {spec:?}: expected NAMESPACE/WORKLOAD/CONTAINER"));
    };
    let records: Vec<&ContainerRecord> =
        a.containers.values().filter(|r| workload_key(r).as_deref() == Some(spec)).collect();
    if records.is_empty() {
        let known: std::collections::BTreeSet<String> = a.containers.values().filter_map(workload_key).collect();
        return Err(format!(
            "no container of workload {spec:?}{}",
            if known.is_empty() {
                " (no workload container is known)".to_owned()
            } else {
                format!("; known: {}", known.into_iter().collect::<Vec<_>>().join(", "))
            }
        ));
    }
    let mut pods = std::collections::BTreeSet::new();
    let mut templates = std::collections::BTreeSet::new();
    let mut images = std::collections::BTreeSet::new();
    let mut kind = String::new();
    let mut profiles = Vec::new();
    for r in &records {
        if let Some(p) = &r.pod {
            pods.insert(p.name.clone());
            templates.extend(p.workload.template.clone());
            kind.clone_from(&p.workload.kind);
        }
        images.insert(r.image.clone());
        profiles.push(a.profile(&r.id)?);
    }
    let since = records
        .iter()
        .map(|r| r.observed_since.clone().unwrap_or_else(|| r.first_seen.clone()))
        .min()
        .unwrap_or_default();
    let until = records.iter().map(|r| r.last_seen.clone()).max().unwrap_or_default();
    Ok(json!({
        "workload": spec,
        "namespace": namespace,
        "name": name,
        "kind": kind,
        "container": container,
        "node": node_name(),
        "replicas": pods.len(),
        "pods": pods,
        "containers": records.len(),
        "templates": templates,
        "images": images,
        "since": since,
        "until": until,
        "profiles": profiles,
    }))
}
