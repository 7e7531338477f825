//! `observer compare --reach`: each policy group's syscalls by reach tier.
//! Used, denied and allowed-but-unused names, each split into those the
//! container's binaries can make (`observer reach`) and those they cannot:
//! an allowed name nothing can reach is safe to drop, a used one nothing can
//! reach is code that did not come from the image.

use std::collections::{BTreeMap, BTreeSet};

use observer_reach::Reach;
use serde::Serialize;

use super::report::{GroupReport, Use};

/// One ABI's names of one policy group, by tier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReachTiers {
    pub used_reachable: Vec<String>,
    pub used_unreachable: Vec<String>,
    pub denied_reachable: Vec<String>,
    pub denied_unreachable: Vec<String>,
    pub allowed_unused_reachable: Vec<String>,
    pub allowed_unused_unreachable: Vec<String>,
}

/// The tiers of `group`, per ABI. `denied` names are those the policy denies
/// (`used_but_denied`, labelled `abi:name` outside x86_64).
pub fn tiers(
    group: &GroupReport,
    used: &BTreeMap<(String, String), Use>,
    reach: &Reach,
) -> BTreeMap<String, ReachTiers> {
    let reachable: BTreeMap<&str, BTreeSet<&str>> =
        reach.abis.iter().map(|(abi, calls)| (abi.as_str(), calls.iter().map(|c| c.name.as_str()).collect())).collect();
    let can = |abi: &str, name: &str| reachable.get(abi).is_some_and(|s| s.contains(name));
    let denied: BTreeSet<&str> = group.used_but_denied.iter().map(String::as_str).collect();
    let mut out: BTreeMap<String, ReachTiers> = BTreeMap::new();
    for (abi, name) in used.keys() {
        let t = out.entry(abi.clone()).or_default();
        let label = super::report::label(abi, name);
        let list = match (denied.contains(label.as_str()), can(abi, name)) {
            (true, true) => &mut t.denied_reachable,
            (true, false) => &mut t.denied_unreachable,
            (false, true) => &mut t.used_reachable,
            (false, false) => &mut t.used_unreachable,
        };
        list.push(name.clone());
    }
    for (abi, u) in &group.abis {
        let t = out.entry(abi.clone()).or_default();
        for name in &u.allowed_but_unused_names {
            if can(abi, name) {
                t.allowed_unused_reachable.push(name.clone());
            } else {
                t.allowed_unused_unreachable.push(name.clone());
            }
        }
    }
    out.retain(|_, t| *t != ReachTiers::default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_denied_and_unused_names_split_by_what_the_image_can_reach() {
        let calls: Vec<serde_json::Value> = ["read", "chmod", "getpid"]
            .iter()
            .map(|n| serde_json::json!({"name": n, "nr": 0, "binaries": [], "binaries_total": 0, "sites": []}))
            .collect();
        let reach: Reach = serde_json::from_value(serde_json::json!({
            "root": "/", "complete": true, "files": 1, "executables": 1, "dlopen_roots": 0,
            "undecided": [], "undecided_total": 0, "incomplete_files": [], "foreign_files": [],
            "missing_libraries": [], "timing": {"files": 0.0, "loader": 0.0, "reachability": 0.0},
            "abis": {"x86_64": calls}
        }))
        .unwrap();
        let mut used = BTreeMap::new();
        for (name, denied) in [("read", 0), ("kexec_load", 0), ("chmod", 2), ("ptrace", 1)] {
            used.insert(("x86_64".to_owned(), name.to_owned()), Use { denied });
        }
        let mut group = GroupReport::new(&used, vec![1], "profile p".into(), None, Vec::new(), Vec::new());
        group.used_but_denied = vec!["chmod".into(), "ptrace".into()];
        let t = &tiers(&group, &used, &reach)["x86_64"];
        assert_eq!(t.used_reachable, ["read"]);
        assert_eq!(t.used_unreachable, ["kexec_load"]);
        assert_eq!(t.denied_reachable, ["chmod"]);
        assert_eq!(t.denied_unreachable, ["ptrace"]);
        assert!(t.allowed_unused_reachable.contains(&"getpid".to_owned()), "{t:?}");
        assert!(t.allowed_unused_unreachable.contains(&"mount".to_owned()), "{t:?}");
        assert!(!t.allowed_unused_unreachable.contains(&"read".to_owned()), "used names are not unused");
    }
}
