//! A Kubernetes workload's container as one name (`NAMESPACE/KIND/NAME/CONTAINER`)
//! and the agent's answer about it (`{"cmd": "workload"}`): every replica and
//! restart of that container on the node, with their profiles.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{error::ContractError, pod::PodInfo, views::ProfileView};

/// `NAMESPACE/KIND/NAME/CONTAINER` for a workload container of a pod (not its
/// sandbox): the key under which replicas of one workload are one profile.
/// The owner's kind is part of it, so that a bare pod named `web` is never
/// merged into the Deployment `web` (anyone who may create pods in the
/// namespace could otherwise poison the Deployment's profile).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkloadKey {
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, ... (see `Workload::kind`).
    pub kind: String,
    pub name: String,
    pub container: String,
}

impl WorkloadKey {
    /// The key of a pod's container; None for the pod's sandbox.
    pub fn of(pod: &PodInfo, container: &str) -> Option<Self> {
        (!pod.sandbox).then(|| WorkloadKey {
            namespace: pod.namespace.clone(),
            kind: pod.workload.kind.clone(),
            name: pod.workload.name.clone(),
            container: container.to_owned(),
        })
    }

    /// Whether it names this pod's container (the kind in any case, as typed
    /// on a command line); never a sandbox.
    pub fn names(&self, pod: &PodInfo, container: &str) -> bool {
        !pod.sandbox
            && pod.namespace == self.namespace
            && pod.workload.kind.eq_ignore_ascii_case(&self.kind)
            && pod.workload.name == self.name
            && container == self.container
    }
}

impl FromStr for WorkloadKey {
    type Err = ContractError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [namespace, kind, name, container] if parts.iter().all(|p| !p.is_empty()) => Ok(WorkloadKey {
                namespace: (*namespace).to_owned(),
                kind: (*kind).to_owned(),
                name: (*name).to_owned(),
                container: (*container).to_owned(),
            }),
            _ => Err(ContractError::WorkloadKey { given: s.to_owned() }),
        }
    }
}

impl TryFrom<String> for WorkloadKey {
    type Error = ContractError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<WorkloadKey> for String {
    fn from(k: WorkloadKey) -> Self {
        k.to_string()
    }
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.namespace, self.kind, self.name, self.container)
    }
}

/// `observer profile export --workload`: what the agent knows of one workload container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadView {
    pub workload: WorkloadKey,
    pub namespace: String,
    pub name: String,
    pub kind: String,
    pub container: String,
    /// The node the agent runs on (`$NODE_NAME`, else the host name).
    pub node: String,
    /// Distinct pods.
    pub replicas: usize,
    pub pods: Vec<String>,
    /// Records: a restarted container is a record of its own.
    pub containers: usize,
    /// Pod templates (`pod-template-hash`, `controller-revision-hash`) seen.
    pub templates: Vec<String>,
    pub images: Vec<String>,
    /// The earliest observation of any replica, RFC 3339.
    pub since: String,
    /// The latest, RFC 3339.
    pub until: String,
    pub members: Vec<WorkloadMember>,
    pub profiles: Vec<ProfileView>,
}

/// One record taken as a replica of the workload, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadMember {
    pub pod: String,
    pub uid: String,
    pub container_id: String,
    /// The labels and name shape that made its pod one of the workload's.
    pub matched_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_print_and_refuse_other_shapes() {
        let k: WorkloadKey = "shop/Deployment/web/app".parse().unwrap();
        assert_eq!(
            (k.namespace.as_str(), k.kind.as_str(), k.name.as_str(), k.container.as_str()),
            ("shop", "Deployment", "web", "app")
        );
        assert_eq!(k.to_string(), "shop/Deployment/web/app");
        assert_eq!(serde_json::to_value(&k).unwrap(), "shop/Deployment/web/app");
        // The old three-part key is ambiguous (a Deployment or a bare pod): refused, saying the shape.
        for bad in ["shop/web/app", "shop//web/app", "a/b/c/d/e", ""] {
            let e = bad.parse::<WorkloadKey>().unwrap_err().to_string();
            assert!(e.contains("NAMESPACE/KIND/NAME/CONTAINER") && e.contains(&format!("{bad:?}")), "{e}");
        }
        let e = serde_json::from_str::<WorkloadKey>("\"shop/web/app\"").unwrap_err().to_string();
        assert!(e.contains("NAMESPACE/KIND/NAME/CONTAINER"), "{e}");
    }
}
