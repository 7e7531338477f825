//! Alerts: the line the agent writes for each (stdout, alerts.jsonl, syslog,
//! journald, the webhook), and the counts of their delivery.

use serde::{Deserialize, Serialize};

use crate::rules::{EnforceAction, Target};

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A syscall outside the container's baseline, by its own processes.
    OutsideBaseline,
    /// Seccomp denied a syscall.
    Denied,
    /// A syscall outside an enforced profile.
    Enforce,
    /// A cgroup named like a container its runtime does not confirm.
    ImpostorCgroup,
    /// A cgroup the kernel could not record (every slot taken).
    Overflow,
    /// The kernel's ring buffer was full: events were dropped (and counted).
    EventsLost,
    /// A state file could not be written (disk full, read-only): records stay
    /// in memory and are written again once the directory takes writes.
    StateWriteFailed,
    /// A workload runs a new image digest, and its previous image had a
    /// profile (`observer agent --profiles`).
    NewImage,
    /// A container's own call that none of the binaries it can execute can
    /// make (observer reach): code that did not come from its image.
    UnreachableSyscall,
    /// A call outside the container's baseline (its learned profile) that its
    /// image's binaries can make: a path learning never took.
    UnlearnedSyscall,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::OutsideBaseline => "outside_baseline",
            AlertKind::Denied => "denied",
            AlertKind::Enforce => "enforce",
            AlertKind::ImpostorCgroup => "impostor_cgroup",
            AlertKind::Overflow => "overflow",
            AlertKind::EventsLost => "events_lost",
            AlertKind::StateWriteFailed => "state_write_failed",
            AlertKind::NewImage => "new_image",
            AlertKind::UnreachableSyscall => "unreachable_syscall",
            AlertKind::UnlearnedSyscall => "unlearned_syscall",
        }
    }
}

/// One alert: a line on the agent's stdout and in alerts.jsonl, the text of a
/// syslog message, the body of a webhook POST. Fields are only ever added
/// (with defaults), so older lines still read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// When the agent raised it.
    pub time: String,
    pub kind: AlertKind,
    pub id: String,
    pub name: String,
    pub image: String,
    pub pid: u32,
    pub comm: String,
    /// Empty for alerts about a cgroup rather than a call.
    pub syscall: String,
    pub abi: String,
    /// Why, for alerts that are not about one syscall (an impostor cgroup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// As `observer ps` shows it: Docker's OCI runtime, else the engine.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    /// `docker`, `podman`, `containerd`, `cri-o`; absent for plain cgroups.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine: String,
    /// The Kubernetes pod's namespace and name, for CRI containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The raw syscall number in `abi`'s table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nr: Option<i64>,
    /// The kernel's time of the call (its timestamp, as wall-clock time); may be
    /// well before `time` when the agent read it late (it was down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_time: Option<String>,
    /// The rule, baseline or filter that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<AlertRule>,
}

/// What made an alert fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum AlertRule {
    /// An enforcement rule (`observer enforce`); `profile` is its file.
    Enforce { target: Target, action: EnforceAction, profile: String },
    /// The container's baseline: a `--baseline` file, or `learned over ...`.
    Baseline { profile: String },
    /// The container's own seccomp filter (Docker's `--security-opt seccomp=`, when known).
    Seccomp { profile: Option<String> },
}

/// `observer status`'s `alert_delivery`: what became of alerts sent to syslog,
/// journald and the webhook (null when not asked for).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDelivery {
    pub syslog: Option<OutputCounts>,
    #[serde(default)]
    pub journald: Option<OutputCounts>,
    pub webhook: Option<OutputCounts>,
}

/// One alert output's counts since the agent started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputCounts {
    /// The socket path or URL.
    pub target: String,
    pub delivered: u64,
    /// Attempts that failed and were tried again.
    pub retries: u64,
    /// Alerts given up after every retry failed.
    pub failed: u64,
    /// Alerts dropped because the queue was full.
    pub dropped: u64,
    /// Alerts waiting now.
    pub queued: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keep_their_spelling() {
        assert_eq!(serde_json::to_value(AlertKind::ImpostorCgroup).unwrap(), AlertKind::ImpostorCgroup.as_str());
        assert_eq!(serde_json::to_value(AlertKind::StateWriteFailed).unwrap(), "state_write_failed");
    }
}
