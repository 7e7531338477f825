//! A container's syscalls set against what its image's code can make
//! (`observer reach`): seen and reachable; reachable but never seen (what
//! `profile export --reachable` adds); seen but not reachable (code that did
//! not come from the image: downloaded, written or injected at run time).
//! Only the container's own phase counts: the runtime's init is not image code.

use std::{collections::BTreeMap, fmt::Write as _};

use observer_contract::views::{Phase, ProfileView};
use observer_reach::Reach;
use serde::Serialize;

use crate::{
    commands::reach::{ReachArgs, analyse_target},
    printable::printable,
};

/// The three groups of one ABI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Groups {
    pub seen_and_reachable: Vec<String>,
    pub reachable_not_seen: Vec<String>,
    pub seen_not_reachable: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReachGroups {
    /// The `observer reach` target the set came from.
    pub source: String,
    /// False when the analysis listed undecided sites or unread files: a name
    /// in `seen_not_reachable` may then be reachable after all.
    pub complete: bool,
    pub abis: BTreeMap<String, Groups>,
}

/// `observer reach` on `target`, else on the first of `candidates` that
/// resolves (a container's image, then the container): the target used and
/// its result, or an error naming every target tried.
pub fn find_reach(target: Option<&str>, candidates: &[String]) -> anyhow::Result<(String, Reach)> {
    let tried: Vec<&str> = match target {
        Some(t) => vec![t],
        None => candidates.iter().map(String::as_str).filter(|c| !c.is_empty()).collect(),
    };
    let mut errors = Vec::new();
    for t in tried {
        match analyse_target(&ReachArgs::of(t)) {
            Ok(reach) => return Ok((t.to_owned(), reach)),
            Err(e) => errors.push(format!("{}: {e:#}", printable(t))),
        }
    }
    anyhow::bail!(
        "no reachable set ({}); name one with --reach-target IMAGE|CONTAINER|DIR",
        if errors.is_empty() { "the agent named no image".to_owned() } else { errors.join("; ") }
    )
}

pub fn groups(view: &ProfileView, source: &str, reach: &Reach) -> ReachGroups {
    let mut abis: BTreeMap<String, Groups> = BTreeMap::new();
    for (abi, calls) in &reach.abis {
        let g = abis.entry(abi.clone()).or_default();
        for c in calls {
            let seen = view.syscalls.iter().any(|r| &r.abi == abi && r.name == c.name && own(r));
            if seen {
                g.seen_and_reachable.push(c.name.clone());
            } else {
                g.reachable_not_seen.push(c.name.clone());
            }
        }
    }
    for r in view.syscalls.iter().filter(|r| own(r)) {
        let reachable = reach.abis.get(&r.abi).is_some_and(|calls| calls.iter().any(|c| c.name == r.name));
        if !reachable {
            abis.entry(r.abi.clone()).or_default().seen_not_reachable.push(r.name.clone());
        }
    }
    for g in abis.values_mut() {
        for list in [&mut g.seen_and_reachable, &mut g.reachable_not_seen, &mut g.seen_not_reachable] {
            list.sort();
            list.dedup();
        }
    }
    ReachGroups { source: source.to_owned(), complete: reach.complete, abis }
}

/// Made by the container's own processes (entered the kernel, or was denied, there).
fn own(r: &observer_contract::views::ProfileRow) -> bool {
    r.phases.contains(&Phase::Container) || r.denied_phases.contains(&Phase::Container)
}

pub fn text(g: &ReachGroups) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nAGAINST WHAT THE IMAGE CAN CALL (observer reach {}{})",
        printable(&g.source),
        if g.complete { "" } else { ", incomplete: the image may reach more" }
    );
    let list = |names: &[String]| {
        if names.is_empty() { "-".to_owned() } else { names.iter().map(|n| printable(n)).collect::<Vec<_>>().join(" ") }
    };
    for (abi, groups) in &g.abis {
        let _ = writeln!(out, "{abi}:");
        let _ = writeln!(
            out,
            "  seen and reachable ({}): {}",
            groups.seen_and_reachable.len(),
            list(&groups.seen_and_reachable)
        );
        let _ = writeln!(
            out,
            "  reachable, not seen ({}): {}",
            groups.reachable_not_seen.len(),
            list(&groups.reachable_not_seen)
        );
        let _ = writeln!(
            out,
            "  seen, NOT reachable ({}): {}",
            groups.seen_not_reachable.len(),
            list(&groups.seen_not_reachable)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_groups_per_abi_from_the_containers_own_calls() {
        let row = |name: &str, phases: &[&str]| {
            serde_json::json!({"name": name, "abi": "x86_64", "phase": phases[0], "phases": phases, "owner": "container",
                "calls": 1, "errors": 0, "denied": 0, "first_seen": "2026-01-01T00:00:00Z", "pid": 1, "comm": "sh"})
        };
        let view: ProfileView = serde_json::from_value(serde_json::json!({
            "name": "web", "id": "0123", "image": "img", "runtime": "runc", "state": "running",
            "first_seen": "2026-01-01T00:00:00Z", "observed_since": null, "seccomp_mode": 2, "calls": 4, "baseline": null,
            "syscalls": [row("read", &["container"]), row("kexec_load", &["container"]), row("pivot_root", &["init_before_filter"])],
        }))
        .unwrap();
        let reach: Reach = serde_json::from_value(serde_json::json!({
            "root": "/", "abis": {"x86_64": [
                {"name": "read", "nr": 0, "binaries": [], "binaries_total": 1, "sites": []},
                {"name": "fsync", "nr": 74, "binaries": [], "binaries_total": 1, "sites": []}]},
            "complete": true, "files": 1, "executables": 1, "dlopen_roots": 0, "undecided": [], "undecided_total": 0,
            "incomplete_files": [], "foreign_files": [], "missing_libraries": [],
            "timing": {"files": 0.0, "loader": 0.0, "reachability": 0.0}
        }))
        .unwrap();
        let g = groups(&view, "img", &reach);
        let x = &g.abis["x86_64"];
        assert_eq!(x.seen_and_reachable, ["read"]);
        assert_eq!(x.reachable_not_seen, ["fsync"]);
        // The runtime's pivot_root is not the image's code: not listed.
        assert_eq!(x.seen_not_reachable, ["kexec_load"]);
        let shown = text(&g);
        assert!(shown.contains("seen, NOT reachable (1): kexec_load"), "{shown}");
    }
}
