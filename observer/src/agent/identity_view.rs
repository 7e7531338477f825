//! The runtime identity of a record as the API shows it (`ps`, workloads):
//! engine, pod, workload, labels. Kept apart from `core` so that the agent's
//! state machine and these views change independently.

use observer_contract::{
    pod::WorkloadKey,
    workload::{WorkloadMember, WorkloadView},
};

use super::model::ContainerRecord;

/// The workload container a record is a replica of (None for a pod's sandbox
/// and for containers outside Kubernetes).
pub fn workload_key(r: &ContainerRecord) -> Option<WorkloadKey> {
    WorkloadKey::of(r.pod.as_ref()?, &r.container_name)
}

/// The records of the workload container `key` names (the kind in any case), or why none.
pub fn select<'a>(
    records: impl Iterator<Item = &'a ContainerRecord> + Clone,
    key: &WorkloadKey,
) -> Result<Vec<&'a ContainerRecord>, String> {
    let chosen: Vec<&ContainerRecord> =
        records.clone().filter(|r| r.pod.as_ref().is_some_and(|p| key.names(p, &r.container_name))).collect();
    if chosen.is_empty() {
        let known: std::collections::BTreeSet<String> =
            records.filter_map(workload_key).map(|k| k.to_string()).collect();
        let known = if known.is_empty() {
            " (no workload container is known)".to_owned()
        } else {
            format!("; known: {}", known.into_iter().collect::<Vec<_>>().join(", "))
        };
        return Err(format!("no container of workload {:?}{known}", key.to_string()));
    }
    Ok(chosen)
}

/// Why a record's pod was taken as a replica of its workload.
fn matched_by(pod: &observer_contract::pod::PodInfo) -> String {
    if pod.workload.matched_by.is_empty() {
        // A record saved before the reason was kept: the same rules again.
        observer_contract::pod::Workload::of_pod(&pod.name, &pod.labels).matched_by
    } else {
        pod.workload.matched_by.clone()
    }
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

/// Every record of one workload container (`NAMESPACE/KIND/NAME/CONTAINER`),
/// replicas and restarts alike, with their profiles and where they come from.
pub fn workload(a: &super::Agent, key: &WorkloadKey) -> Result<WorkloadView, String> {
    let records = select(a.containers.values(), key)?;
    let mut pods = std::collections::BTreeSet::new();
    let mut templates = std::collections::BTreeSet::new();
    let mut images = std::collections::BTreeSet::new();
    let mut kind = String::new();
    let (mut namespace, mut name, mut container) = (String::new(), String::new(), String::new());
    let mut profiles = Vec::new();
    let mut members = Vec::new();
    for r in &records {
        if let Some(p) = &r.pod {
            pods.insert(p.name.clone());
            templates.extend(p.workload.template.clone());
            kind.clone_from(&p.workload.kind);
            namespace.clone_from(&p.namespace);
            name.clone_from(&p.workload.name);
            members.push(WorkloadMember {
                pod: p.name.clone(),
                uid: p.uid.clone(),
                container_id: r.id.clone(),
                matched_by: matched_by(p),
            });
        }
        container.clone_from(&r.container_name);
        images.insert(r.image.clone());
        profiles.push(a.profile(&r.id)?);
    }
    let since = records
        .iter()
        .map(|r| r.observed_since.clone().unwrap_or_else(|| r.first_seen.clone()))
        .min()
        .unwrap_or_default();
    let until = records.iter().map(|r| r.last_seen.clone()).max().unwrap_or_default();
    Ok(WorkloadView {
        // The records' own spelling of the kind, not the request's.
        workload: WorkloadKey {
            namespace: namespace.clone(),
            kind: kind.clone(),
            name: name.clone(),
            container: container.clone(),
        },
        namespace,
        name,
        kind,
        container,
        node: node_name(),
        replicas: pods.len(),
        pods: pods.into_iter().collect(),
        containers: records.len(),
        templates: templates.into_iter().collect(),
        images: images.into_iter().collect(),
        since,
        until,
        members,
        profiles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use observer_contract::pod::{PodInfo, Workload};

    fn record(id: &str, pod: &str, labels: &[(&str, &str)], container: &str) -> ContainerRecord {
        let mut r = ContainerRecord::new(id, "containerd".into(), format!("/kubepods/{id}"), 7, "t".into());
        r.container_name = container.into();
        let labels: std::collections::BTreeMap<String, String> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let workload = Workload::of_pod(pod, &labels);
        r.pod = Some(PodInfo {
            namespace: "shop".into(),
            name: pod.into(),
            uid: format!("uid-{id}"),
            labels,
            sandbox: false,
            workload,
        });
        r
    }

    #[test]
    fn a_bare_pod_named_like_a_deployment_is_another_workload() {
        let replica = record("a", "web-7d4b9c8f6d-x2x9k", &[("pod-template-hash", "7d4b9c8f6d")], "app");
        let impostor = record("b", "web", &[], "app");
        let all = [replica.clone(), impostor.clone()];
        let key = |r: &ContainerRecord| workload_key(r).map(|k| k.to_string());
        assert_eq!(key(&replica).as_deref(), Some("shop/Deployment/web/app"));
        assert_eq!(key(&impostor).as_deref(), Some("shop/Pod/web/app"));
        let ids = |spec: &str| {
            select(all.iter(), &spec.parse().unwrap()).map(|v| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
        };
        assert_eq!(ids("shop/Deployment/web/app"), Ok(vec!["a".to_owned()]));
        assert_eq!(ids("shop/deployment/web/app"), Ok(vec!["a".to_owned()]));
        assert_eq!(ids("shop/Pod/web/app"), Ok(vec!["b".to_owned()]));
        // The old three-part key is ambiguous: refused when parsed (observer_contract::workload's tests).
        let e = ids("shop/StatefulSet/web/app").unwrap_err();
        assert!(e.contains("shop/Deployment/web/app") && e.contains("shop/Pod/web/app"), "{e}");
        // Why each matched.
        let p = replica.pod.as_ref().unwrap();
        assert_eq!(matched_by(p), "label pod-template-hash=7d4b9c8f6d and pod name web-7d4b9c8f6d-<suffix>");
        let mut old = p.clone();
        old.workload.matched_by.clear();
        assert_eq!(matched_by(&old), matched_by(p));
        assert!(matched_by(impostor.pod.as_ref().unwrap()).contains("its own workload"));
    }
}
