//! What `observer compare` prints with `--json`, as types: one report per group
//! of processes that run under one policy, the first one also at the top level
//! (the shape docs/cli.md gives).

use std::collections::BTreeMap;

use observer_profile::{args::drift::ArgDrift, syscall_table, types::Arch};
use serde::Serialize;

use crate::commands::policy::{ABIS, Outcome, PolicyTable};

/// A syscall the container used: under the filter (the runtime's init after
/// it, or the container's own processes), or denied.
#[derive(Clone, Debug, Default)]
pub struct Use {
    pub denied: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    /// The first group's report, at the top level.
    #[serde(flatten)]
    pub first: GroupReport,
    pub container: ContainerRef,
    pub groups: Vec<GroupReport>,
    /// `--reach`: seen and reachable, reachable not seen, seen not reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach: Option<crate::commands::reach_groups::ReachGroups>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
    pub image: String,
}

/// Per ABI: how much of what the policy allows was used.
#[derive(Clone, Debug, Serialize)]
pub struct AbiUse {
    pub allowed: usize,
    pub used: usize,
    pub allowed_but_unused: usize,
    /// allowed_but_unused / allowed, rounded to three decimals.
    pub unused_share: f64,
    pub allowed_but_unused_names: Vec<String>,
}

/// What the syscalls used meet under one policy.
#[derive(Clone, Debug, Serialize)]
pub struct GroupReport {
    pub source: String,
    pub pids: Vec<i64>,
    /// The seccomp mode: 0 with no filter, 2 otherwise.
    pub mode: u8,
    /// Instruction count of each filter of the stack.
    pub filters: Vec<usize>,
    pub used_but_denied: Vec<String>,
    /// x86_64 names allowed and never used.
    pub allowed_but_unused: Vec<String>,
    pub conditional: Vec<String>,
    pub denied_attempts: BTreeMap<String, u64>,
    pub abis: BTreeMap<String, AbiUse>,
    pub verdict: String,
    pub argument_drift: Vec<ArgDrift>,
    /// `--reach`: per ABI, the names above by whether the image can make them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach_tiers: Option<BTreeMap<String, super::reach::ReachTiers>>,
}

/// A syscall as the report names it: bare for x86_64, `abi:name` otherwise.
pub fn label(abi: &str, name: &str) -> String {
    if abi == "x86_64" { name.to_owned() } else { format!("{abi}:{name}") }
}

impl GroupReport {
    pub fn new(
        used: &BTreeMap<(String, String), Use>,
        pids: Vec<i64>,
        source: String,
        table: Option<&PolicyTable>,
        filters: Vec<usize>,
        argument_drift: Vec<ArgDrift>,
    ) -> Self {
        let mut used_but_denied = Vec::new();
        let mut conditional = Vec::new();
        let mut denied_attempts = BTreeMap::new();
        for ((abi, name), u) in used {
            if u.denied > 0 {
                denied_attempts.insert(label(abi, name), u.denied);
            }
            let outcome = table.and_then(|t| t.get(abi, name)).map_or(Outcome::Allowed, |d| d.outcome);
            match outcome {
                Outcome::Denied => used_but_denied.push(label(abi, name)),
                Outcome::Conditional => conditional.push(label(abi, name)),
                Outcome::Allowed if u.denied > 0 => conditional.push(label(abi, name)),
                Outcome::Allowed => {}
            }
        }
        let abis: BTreeMap<String, AbiUse> =
            ABIS.iter().map(|(abi, arch)| ((*abi).to_owned(), abi_use(used, table, abi, *arch))).collect();
        let x = abi_use(used, table, "x86_64", Arch::X86_64);
        let verdict = if used_but_denied.is_empty() {
            format!(
                "everything used is allowed; {} of {} allowed x86_64 syscalls ({:.0}%) were never used: a profile learned from this container would remove them",
                x.allowed_but_unused,
                x.allowed,
                x.unused_share * 100.0
            )
        } else {
            format!(
                "{} used syscall(s) denied by the {source} ({}); {} of {} allowed x86_64 syscalls never used",
                used_but_denied.len(),
                used_but_denied.join(", "),
                x.allowed_but_unused,
                x.allowed
            )
        };
        let allowed_but_unused = x.allowed_but_unused_names.clone();
        let mode = if table.is_none() && source.starts_with("no filter") { 0 } else { 2 };
        GroupReport {
            source,
            pids,
            mode,
            filters,
            used_but_denied,
            allowed_but_unused,
            conditional,
            denied_attempts,
            abis,
            verdict,
            argument_drift,
            reach_tiers: None,
        }
    }
}

/// One ABI's use of what the policy allows (every syscall of the ABI when
/// there is no filter).
fn abi_use(used: &BTreeMap<(String, String), Use>, table: Option<&PolicyTable>, abi: &str, arch: Arch) -> AbiUse {
    let names: Vec<String> = match table {
        Some(t) => t
            .abis
            .get(abi)
            .map(|m| {
                m.iter()
                    .filter(|(n, d)| d.outcome != Outcome::Denied && !n.starts_with("syscall_"))
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default(),
        None => syscall_table::all(arch).into_iter().map(|(_, n)| n.to_owned()).collect(),
    };
    let unused: Vec<String> =
        names.iter().filter(|n| !used.contains_key(&(abi.to_owned(), (*n).clone()))).cloned().collect();
    let share = if names.is_empty() { 0.0 } else { unused.len() as f64 / names.len() as f64 };
    AbiUse {
        allowed: names.len(),
        used: used.keys().filter(|(a, _)| a == abi).count(),
        allowed_but_unused: unused.len(),
        unused_share: (share * 1000.0).round() / 1000.0,
        allowed_but_unused_names: unused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_call_is_used_but_denied_and_counted() {
        let mut used = BTreeMap::new();
        used.insert(("x86_64".to_owned(), "chmod".to_owned()), Use { denied: 3 });
        used.insert(("i386".to_owned(), "getpid".to_owned()), Use { denied: 0 });
        let report =
            GroupReport::new(&used, vec![7], "no filter (seccomp mode 0)".into(), None, Vec::new(), Vec::new());
        assert_eq!(report.mode, 0);
        assert_eq!(report.denied_attempts.get("chmod"), Some(&3));
        // No filter: allowed, yet denials were seen, so it depends on something else.
        assert_eq!(report.conditional, ["chmod"]);
        assert_eq!(report.abis["i386"].used, 1);
        assert!(report.verdict.starts_with("everything used is allowed"), "{}", report.verdict);
        let json = serde_json::to_value(CompareReport {
            first: report.clone(),
            container: ContainerRef { id: "a".into(), name: "b".into(), image: "c".into() },
            groups: vec![report],
            reach: None,
        })
        .expect("serialises");
        assert_eq!(json["denied_attempts"]["chmod"], 3, "the first group is at the top level: {json}");
        assert_eq!(json["groups"][0]["pids"][0], 7);
    }
}
