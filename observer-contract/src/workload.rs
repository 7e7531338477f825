//! The agent's answer about one workload container (`{"cmd": "workload"}`):
//! every replica and restart of that container on the node, with their profiles.

use serde::{Deserialize, Serialize};

use crate::{pod::WorkloadKey, views::ProfileView};

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
