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

/// The identity fields added to each `ps` row (the older fields stay as they are).
pub fn identity_json(r: &ContainerRecord) -> Value {
    json!({
        "engine": r.engine,
        "container_name": r.container_name,
        "image_digest": r.image_digest,
        "labels": r.labels,
        "pod": r.pod.as_ref().map(|p| json!({
            "namespace": p.namespace,
            "name": p.name,
            "uid": p.uid,
            "sandbox": p.sandbox,
            "labels": p.labels,
            "workload": p.workload,
        })),
        "sandbox": r.pod.as_ref().is_some_and(|p| p.sandbox),
        "workload": workload_key(r),
    })
}

/// `ps` rows with the identity fields merged in (matched by id).
pub fn enrich_ps(records: &std::collections::BTreeMap<String, ContainerRecord>, mut rows: Value) -> Value {
    for row in rows.as_array_mut().into_iter().flatten() {
        let Some(r) = row["id"].as_str().and_then(|id| records.get(id)) else { continue };
        if let (Some(obj), Value::Object(extra)) = (row.as_object_mut(), identity_json(r)) {
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
        }
    }
    rows
}
