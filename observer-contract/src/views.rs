//! The agent's answers as types, shared by the agent (which builds them) and
//! the CLI (which reads them): the contract docs/cli.md describes, held by the
//! compiler instead of by `json!` on one side and `Value` indexing on the other.

use std::collections::BTreeMap;

use observer_profile::args::SeenArgs;
use serde::{Deserialize, Serialize};

use crate::{
    alerts::{Alert, AlertDelivery},
    pod::{PodInfo, WorkloadKey},
    rules::{EnforceAction, EnforceRule},
};

/// A container's start phase, as the kernel tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The runtime's init before it installed the seccomp filter.
    InitBeforeFilter,
    /// The runtime's init after the filter, before the exec.
    InitAfterFilter,
    /// The container's own processes.
    Container,
}

impl Phase {
    pub fn of_kernel(p: u32) -> Self {
        match p {
            observer_common::slot::phase::INIT_BEFORE_FILTER => Phase::InitBeforeFilter,
            observer_common::slot::phase::INIT_AFTER_FILTER => Phase::InitAfterFilter,
            _ => Phase::Container,
        }
    }

    /// Whether calls in this phase passed the filter the container runs under.
    pub fn under_filter(self) -> bool {
        self != Phase::InitBeforeFilter
    }

    /// The short name tables print (`profile show`, `top`).
    pub fn label(self) -> &'static str {
        match self {
            Phase::InitBeforeFilter => "init",
            Phase::InitAfterFilter => "init-filtered",
            Phase::Container => "container",
        }
    }
}

/// Whose a row of a profile is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Only the runtime's init made the call (or had it denied), starting the container.
    Runtime,
    /// The container's own processes made the call (or had it denied), whatever
    /// the runtime's init did too.
    Container,
}

impl Owner {
    /// From the phases a row was seen in (entered or denied). A row with no
    /// phase known (its first use was never recorded) is counted as the
    /// container's, as `phase` says.
    pub fn of(phases: &[Phase], denied_phases: &[Phase]) -> Self {
        let mut all = phases.iter().chain(denied_phases);
        if phases.is_empty() && denied_phases.is_empty() || all.any(|p| *p == Phase::Container) {
            Owner::Container
        } else {
            Owner::Runtime
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Owner::Runtime => "runtime",
            Owner::Container => "container",
        }
    }
}

/// Whether a container runs.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    Exited,
    /// Ended without its own process ever running (e.g. seccomp denied the runtime's init).
    FailedToStart,
}

impl State {
    /// Its name as the JSON spells it (`running`, `exited`, `failed_to_start`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Exited => "exited",
            State::FailedToStart => "failed_to_start",
        }
    }
}

/// The formats a profile is exported in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Docker/moby seccomp JSON.
    Docker,
    /// The runtime spec's `linux.seccomp`.
    Oci,
    /// A Security Profiles Operator `SeccompProfile` (YAML).
    Spo,
}

/// One row of `observer ps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsRow {
    pub id: String,
    pub name: String,
    pub image: String,
    pub runtime: String,
    pub cgroup_id: u64,
    pub cgroup_path: String,
    pub pids: Vec<u32>,
    /// Distinct rows seen.
    pub syscalls: usize,
    pub calls: u64,
    pub seccomp_mode: Option<u32>,
    pub seccomp_option: Option<String>,
    pub denied: u64,
    pub alerts: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub observed_since: Option<String>,
    pub state: State,
    #[serde(default)]
    pub engine: String,
    #[serde(default)]
    pub container_name: String,
    #[serde(default)]
    pub image_digest: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub pod: Option<PodInfo>,
    #[serde(default)]
    pub sandbox: bool,
    /// With `observer agent --profiles`: the image profile the container is
    /// bound to, or `none` when its image has none; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_profile: Option<String>,
    /// `NAMESPACE/KIND/NAME/CONTAINER` for a pod's workload container.
    #[serde(default)]
    pub workload: Option<WorkloadKey>,
}

/// One syscall of a profile (`profile show`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ProfileRowAsRead")]
pub struct ProfileRow {
    pub name: String,
    pub abi: String,
    /// The first phase: the earliest the syscall entered in (else was denied
    /// in). Only the first: `phases` and `denied_phases` have them all.
    pub phase: Phase,
    /// Phases in which it entered the kernel (the filter of that moment let it through).
    pub phases: Vec<Phase>,
    /// Phases in which seccomp denied it.
    #[serde(default)]
    pub denied_phases: Vec<Phase>,
    /// Whose row it is: the container's when its own processes made the call,
    /// the runtime's when only the runtime's init did.
    pub owner: Owner,
    /// Totals over every phase: the kernel keeps one count per row, not per phase.
    pub calls: u64,
    pub errors: u64,
    pub denied: u64,
    /// The first call of the row, in whichever phase.
    pub first_seen: Option<String>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The first call by the container's own processes; null when they never
    /// made it (or the agent did not keep it apart then: older records).
    #[serde(default)]
    pub container_first_use: Option<FirstCall>,
}

/// A `ProfileRow` as read: an older agent's answer (or a saved one) has no
/// `owner`, which then follows from the phases as the agent would set it.
#[derive(Deserialize)]
struct ProfileRowAsRead {
    name: String,
    abi: String,
    phase: Phase,
    phases: Vec<Phase>,
    #[serde(default)]
    denied_phases: Vec<Phase>,
    #[serde(default)]
    owner: Option<Owner>,
    calls: u64,
    errors: u64,
    denied: u64,
    first_seen: Option<String>,
    pid: Option<u32>,
    comm: Option<String>,
    #[serde(default)]
    container_first_use: Option<FirstCall>,
}

impl From<ProfileRowAsRead> for ProfileRow {
    fn from(r: ProfileRowAsRead) -> Self {
        ProfileRow {
            owner: r.owner.unwrap_or_else(|| Owner::of(&r.phases, &r.denied_phases)),
            name: r.name,
            abi: r.abi,
            phase: r.phase,
            phases: r.phases,
            denied_phases: r.denied_phases,
            calls: r.calls,
            errors: r.errors,
            denied: r.denied,
            first_seen: r.first_seen,
            pid: r.pid,
            comm: r.comm,
            container_first_use: r.container_first_use,
        }
    }
}

/// One call, as its first-seen event told it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstCall {
    pub first_seen: String,
    pub pid: u32,
    pub comm: String,
}

impl ProfileRow {
    /// The first call by whom `owner` names: the container's own for its rows
    /// (None when it is not known), the first call at all for the runtime's.
    pub fn owners_first_use(&self) -> Option<FirstCall> {
        match self.owner {
            Owner::Container => self.container_first_use.clone(),
            Owner::Runtime => Some(FirstCall {
                first_seen: self.first_seen.clone()?,
                pid: self.pid.unwrap_or_default(),
                comm: self.comm.clone().unwrap_or_default(),
            }),
        }
    }

    /// Every phase it was seen in, as tables print them: `init,container`,
    /// denials as `denied:container`; `-` when none is known.
    pub fn phases_label(&self) -> String {
        let entered = self.phases.iter().map(|p| p.label().to_owned());
        let denied = self.denied_phases.iter().map(|p| format!("denied:{}", p.label()));
        let all: Vec<String> = entered.chain(denied).collect();
        if all.is_empty() { "-".into() } else { all.join(",") }
    }
}

/// `observer profile show`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileView {
    pub id: String,
    pub name: String,
    pub image: String,
    pub runtime: String,
    pub state: State,
    pub first_seen: String,
    pub observed_since: Option<String>,
    pub seccomp_mode: Option<u32>,
    pub calls: u64,
    /// Where the baseline came from, if there is one.
    pub baseline: Option<String>,
    pub syscalls: Vec<ProfileRow>,
    /// Values of the deciding arguments (kind name: `socket`, `clone`, ...,
    /// see observer_profile::args), in the phases a seccomp filter sees.
    #[serde(default, skip_serializing_if = "SeenArgs::is_empty")]
    pub args: SeenArgs,
}

/// `observer status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub started_at: String,
    pub slots: u32,
    pub slots_used: usize,
    pub reused_pinned_programs: bool,
    pub events_lost: u64,
    pub cgroups_overflow: u64,
    pub calls_unrecorded: u64,
    pub denials_unattributed: u64,
    /// Counter wraps past 2^32 that found the kernel's `WRAPS` map full: each
    /// leaves one row 2^32 short (0 unless a row made billions of calls).
    #[serde(default)]
    pub counter_wraps_unrecorded: u64,
    /// Failed BPF helper calls in the kernel programs, by call site (every
    /// site, zeros included): a failed kill, a thread note that could not be
    /// made, a register read that failed.
    #[serde(default)]
    pub helper_failures: std::collections::BTreeMap<String, u64>,
    pub alerts: u64,
    pub containers: usize,
    pub enforcements: Vec<EnforceRule>,
    pub first_seen_events: usize,
    pub first_seen_latency_median_ns: Option<u64>,
    pub first_seen_latency_p99_ns: Option<u64>,
    pub first_seen_at_start_events: usize,
    pub first_seen_at_start_latency_median_ns: Option<u64>,
    pub first_seen_at_start_latency_p99_ns: Option<u64>,
    /// State file writes that failed since start (disk full, read-only).
    pub state_write_errors: u64,
    /// Why the latest write failed, while writes fail; null once one succeeds again.
    pub state_write_error: Option<String>,
    /// Memory that churn could grow, each bounded: directories of the cgroup
    /// tree watched with inotify, runtime answers cached, cgroup paths known.
    pub cgroup_watches: usize,
    pub cached_runtime_answers: usize,
    pub known_cgroup_paths: usize,
    pub pid: u32,
    /// Alerts sent to syslog and the webhook.
    #[serde(default)]
    pub alert_delivery: AlertDelivery,
}

/// One container in the live feed (`observer top`): who it is and its totals
/// now. Rates are the client's, from the totals of consecutive frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopRow {
    pub id: String,
    pub name: String,
    pub image: String,
    pub runtime: String,
    /// `docker`, `podman`, `containerd`, `cri-o`; empty for plain cgroups.
    pub engine: String,
    /// `NAMESPACE/POD` for a Kubernetes container.
    pub pod: Option<String>,
    pub state: State,
    pub calls: u64,
    /// Distinct rows seen.
    pub syscalls: usize,
    /// Rows first used in the last minute (by the kernel's time of the call).
    pub new_syscalls: usize,
    pub denied: u64,
    pub alerts: u64,
    /// The enforcement rule that names it, if any.
    pub enforce: Option<EnforceAction>,
    /// Where its baseline came from, if it has one.
    pub baseline: Option<String>,
}

/// One frame of `{"cmd": "subscribe"}`, pushed every period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopFrame {
    /// When the counts were read, CLOCK_BOOTTIME in ns: rates divide by the
    /// difference of two frames' `at_ns`, never by when the client got them.
    pub at_ns: u64,
    /// The same moment, RFC 3339.
    pub time: String,
    pub containers: Vec<TopRow>,
    /// The latest alert lines, oldest first (the tail of alerts.jsonl).
    pub alerts: Vec<Alert>,
    /// The subscribed container's profile, when the request named one.
    pub profile: Option<ProfileView>,
    /// Why there is no profile although the request named a container.
    pub profile_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_kinds_keep_their_spelling() {
        assert_eq!(serde_json::to_value(Phase::InitAfterFilter).unwrap(), "init_after_filter");
        assert_eq!(Phase::of_kernel(observer_common::slot::phase::CONTAINER), Phase::Container);
        for s in [State::Running, State::Exited, State::FailedToStart] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}

/// docs/cli.md is the contract: its JSON examples parse as these types, and say
/// the same thing when written back.
#[cfg(test)]
mod documented {
    use super::*;
    use crate::alerts::{AlertKind, AlertRule};

    const CLI_MD: &str = include_str!("../../docs/cli.md");

    /// The examples fenced as ```json NAME.
    fn example(name: &str) -> serde_json::Value {
        let fence = format!("```json {name}\n");
        let start =
            CLI_MD.find(&fence).unwrap_or_else(|| panic!("docs/cli.md has no ```json {name} example")) + fence.len();
        let end = start + CLI_MD[start..].find("```").expect("closing fence");
        serde_json::from_str(&CLI_MD[start..end])
            .unwrap_or_else(|e| panic!("docs/cli.md's {name} example is not JSON: {e}"))
    }

    fn round_trips<T: serde::de::DeserializeOwned + Serialize>(name: &str) -> T {
        let doc = example(name);
        let typed: T =
            serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("docs/cli.md's {name} example: {e}"));
        assert_eq!(serde_json::to_value(&typed).expect("encode"), doc, "{name}: the documented fields are the fields");
        typed
    }

    #[test]
    fn the_documented_answers_are_the_contract() {
        let ps: Vec<PsRow> = round_trips("ps");
        assert_eq!(ps[0].state, State::Running);
        let profile: ProfileView = round_trips("profile");
        assert_eq!(profile.syscalls[0].denied_phases, [Phase::Container]);
        assert_eq!(profile.syscalls[0].owner, Owner::Container, "denied in the container: still its own");
        assert_eq!(profile.syscalls[0].container_first_use.as_ref().map(|f| f.pid), Some(1201));
        let status: StatusView = round_trips("status");
        assert_eq!(status.enforcements[0].action, EnforceAction::Kill);
        let subscribe: crate::api::Request = round_trips("subscribe");
        assert!(matches!(subscribe, crate::api::Request::Subscribe { every_ms: 1000, container: Some(_) }));
        let top: TopFrame = round_trips("top");
        assert_eq!(top.containers[0].enforce, Some(EnforceAction::Alert));
        assert_eq!(top.alerts[0].kind, AlertKind::OutsideBaseline);
        assert_eq!(top.profile.as_ref().map(|p| p.syscalls.len()), Some(1));
        let alert: Alert = round_trips("alert");
        assert!(matches!(alert.rule, Some(AlertRule::Enforce { action: EnforceAction::Alert, .. })));
    }
}
