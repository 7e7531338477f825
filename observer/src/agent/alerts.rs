//! The alert line: one JSON object per line, on stdout and in alerts.jsonl.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Alert {
    pub time: String,
    pub kind: crate::views::AlertKind,
    pub id: String,
    pub name: String,
    pub image: String,
    pub pid: u32,
    pub comm: String,
    pub syscall: String,
    pub abi: String,
    /// Why, for alerts that are not about one syscall (an impostor cgroup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
