//! `--reachable log|allow`: a learned profile gets a second tier, the
//! syscalls the image's code can make (what `observer reach` found) that
//! were never seen. They are logged (`SCMP_ACT_LOG`: allowed, and the
//! kernel logs each call) or allowed; every other name keeps the profile's
//! default action. Docker's default (or the base) stays the upper bound: a
//! reachable name it denies stays denied, and one it allows under argument
//! conditions keeps them.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::reach_tier::{ReachableTier, TierAction, TierCounts};
use crate::{
    action,
    export::{ExportOptions, ExportedProfile, Keep, Learned, decide, export},
    resolve::{ActionOrConditional, abi_knows},
    types::ResolvedRule,
};

/// A learned profile exported with its reachable tier, when `opts` has one
/// (`opts.reachable`): the tier is added after narrowing, since an unlearned
/// name has no recorded values to narrow to.
pub fn export_with_tier(learned: &Learned, opts: &ExportOptions) -> ExportedProfile {
    let mut exported = export(learned, opts);
    if let Some(tier) = &opts.reachable {
        add_reachable(&mut exported, tier, opts);
    }
    exported
}

/// Adds the reachable tier to `exported`: every reachable name the profile
/// does not let through yet, and has no rule for (clone3's ENOSYS stays),
/// gets the tier's action, under the reference's (and base's) conditions.
/// `beyond_default` never applies to this tier.
pub fn add_reachable(exported: &mut ExportedProfile, tier: &ReachableTier, opts: &ExportOptions) {
    let opts = ExportOptions { beyond_default: false, ..opts.clone() };
    let learned = let_through_names(exported);
    let mut added: BTreeMap<String, Keep> = BTreeMap::new();
    let mut denied = BTreeSet::new();
    for (arch, names) in &tier.names {
        if !exported.profile.arches.contains(arch) {
            continue;
        }
        for name in names {
            if !abi_knows(*arch, name) || added.contains_key(name) {
                continue;
            }
            let has_rule = exported.profile.rules.iter().any(|r| &r.name == name);
            if has_rule {
                continue;
            }
            match decide(*arch, name, &opts) {
                Ok((keep, _)) => {
                    added.insert(name.clone(), keep);
                }
                Err(_) => {
                    denied.insert(name.clone());
                }
            }
        }
    }
    denied.retain(|n| !added.contains_key(n) && !learned.contains(n));
    let action = tier.action.action();
    for (name, keep) in &added {
        match keep {
            Keep::Allow => exported.profile.rules.push(ResolvedRule { name: name.clone(), action, args: Vec::new() }),
            Keep::Conditional(rules) => exported.profile.rules.extend(rules.iter().map(|c| ResolvedRule {
                name: name.clone(),
                // The reference's conditional rules allow; the tier logs instead.
                action: if action::lets_through(c.action) { action } else { c.action },
                args: c.args.clone(),
            })),
        }
    }
    exported.tiers = Some(TierCounts {
        learned: learned.len(),
        reachable: added.len(),
        reachable_action: Some(tier.action),
        reachable_source: tier.source.clone(),
        reachable_complete: tier.complete,
        reachable_denied: denied,
    });
}

/// Names some rule of the profile lets through (always or under conditions).
fn let_through_names(exported: &ExportedProfile) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for arch in &exported.profile.arches {
        for rule in &exported.profile.rules {
            if names.contains(&rule.name) {
                continue;
            }
            let runs = match exported.profile.action_for(*arch, &rule.name) {
                ActionOrConditional::Action(a) => action::lets_through(a),
                ActionOrConditional::Conditional(_) => true,
            };
            if runs {
                names.insert(rule.name.clone());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model,
        resolve::ResolveOptions,
        types::{Action, Arch},
    };

    fn options() -> ExportOptions {
        let reference = model::parse(include_str!("../../profiles/moby/default.json"), "default.json")
            .unwrap()
            .resolve(&ResolveOptions::docker_default());
        ExportOptions::new(reference)
    }

    fn learned(names: &[&str]) -> Learned {
        let mut l = Learned::default();
        l.syscalls.insert(Arch::X86_64, names.iter().map(|n| (*n).to_owned()).collect());
        l
    }

    fn tier(names: &[&str], action: TierAction) -> ReachableTier {
        ReachableTier {
            names: BTreeMap::from([(Arch::X86_64, names.iter().map(|n| (*n).to_owned()).collect())]),
            action,
            source: "img".into(),
            complete: true,
        }
    }

    fn action_of(e: &ExportedProfile, name: &str) -> String {
        e.profile.action_for(Arch::X86_64, name).to_string()
    }

    #[test]
    fn unlearned_reachable_names_are_logged_learned_ones_stay_allowed_the_rest_default() {
        let mut opts = options();
        opts.reachable = Some(tier(&["read", "fsync", "personality", "kexec_load", "clone3"], TierAction::Log));
        let e = export_with_tier(&learned(&["read", "write"]), &opts);
        assert_eq!(action_of(&e, "read"), "allow");
        assert_eq!(action_of(&e, "write"), "allow");
        assert_eq!(action_of(&e, "fsync"), "log");
        // Docker's default allows personality only for some values: the tier keeps them.
        assert_eq!(action_of(&e, "personality"), "conditional");
        assert!(e.profile.rules.iter().filter(|r| r.name == "personality").all(|r| r.action == Action::Log));
        // Docker's default denies kexec_load: the upper bound holds.
        assert_eq!(action_of(&e, "kexec_load"), "errno(1)");
        // clone3 keeps its ENOSYS answer.
        assert_eq!(action_of(&e, "clone3"), "errno(38)");
        // Neither learned nor reachable: the default.
        assert_eq!(action_of(&e, "chmod"), "errno(1)");
        let t = e.tiers.as_ref().unwrap();
        assert_eq!((t.learned, t.reachable), (2, 2));
        assert_eq!(t.reachable_denied, BTreeSet::from(["kexec_load".to_owned()]));
        let json: serde_json::Value = serde_json::from_str(&e.to_docker_json()).unwrap();
        assert_eq!(json["x-observer"]["tiers"]["reachable"], 2);
        let logged: Vec<_> = json["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_LOG" && r["args"].is_null())
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .collect();
        assert_eq!(logged, [serde_json::json!("fsync")]);
    }

    #[test]
    fn allow_tier_allows_and_every_format_carries_it() {
        let mut opts = options();
        opts.reachable = Some(tier(&["fsync"], TierAction::Allow));
        let e = export_with_tier(&learned(&["read"]), &opts);
        assert_eq!(action_of(&e, "fsync"), "allow");
        let oci: serde_json::Value = serde_json::from_str(&e.to_oci_json()).unwrap();
        assert!(
            oci["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["names"].as_array().unwrap().contains(&serde_json::json!("fsync")))
        );
        let spo = e.to_spo_yaml("p", "ns");
        assert!(spo.contains("fsync"), "{spo}");
        assert!(spo.contains("observer/tiers"), "{spo}");
        // Without the tier, the same export does not allow it.
        let plain = export(&learned(&["read"]), &options());
        assert_eq!(action_of(&plain, "fsync"), "errno(1)");
        assert!(plain.tiers.is_none());
    }

    #[test]
    fn beyond_default_does_not_widen_the_reachable_tier() {
        let mut opts = options();
        opts.beyond_default = true;
        opts.reachable = Some(tier(&["kexec_load"], TierAction::Allow));
        let e = export_with_tier(&learned(&["read"]), &opts);
        assert_eq!(action_of(&e, "kexec_load"), "errno(1)");
    }
}
