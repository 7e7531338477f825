//! The union of several profiles, e.g. one learned per replica: everything
//! any input lets through, under the strictest default, remembering which
//! inputs let each syscall through.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    action,
    export::ExportedProfile,
    resolve::{ActionOrConditional, ConditionalRule, abi_names},
    types::{Action, Arch, ResolvedProfile, ResolvedRule},
};

/// One profile to merge and the name it is reported under.
#[derive(Clone, Debug)]
pub struct MergeInput {
    pub source: String,
    pub profile: ResolvedProfile,
}

/// Merges the inputs. The default is the strictest input's (kill over
/// errno over allow; the first input wins a tie); a name any input lets
/// through unconditionally is allowed; one only let through under argument
/// conditions keeps the union of those conditions; an explicit denial
/// (`clone3` → ENOSYS) is kept when no input lets the name through. Names
/// are taken from the ABI tables, so inputs that allow by default contribute
/// every name they do not deny.
pub fn merge(inputs: &[MergeInput]) -> ExportedProfile {
    let default_action = inputs
        .iter()
        .map(|i| i.profile.default_action)
        .fold(None, |best: Option<Action>, a| match best {
            Some(b) if action::strictness(b) >= action::strictness(a) => Some(b),
            _ => Some(a),
        })
        .unwrap_or(Action::Errno(action::DEFAULT_ERRNO));
    let mut arches: Vec<Arch> = Vec::new();
    for arch in inputs.iter().flat_map(|i| &i.profile.arches) {
        if !arches.contains(arch) {
            arches.push(*arch);
        }
    }

    let mut allowed: BTreeSet<String> = BTreeSet::new();
    let mut conditional: BTreeMap<String, Vec<ConditionalRule>> = BTreeMap::new();
    let mut denied: BTreeMap<String, Action> = BTreeMap::new();
    let mut contributors: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for arch in &arches {
        for name in abi_names(*arch) {
            for input in inputs.iter().filter(|i| i.profile.arches.contains(arch)) {
                match input.profile.action_for(*arch, name) {
                    ActionOrConditional::Action(a) if action::lets_through(a) => {
                        allowed.insert(name.to_owned());
                    }
                    ActionOrConditional::Conditional(rules) => {
                        let have = conditional.entry(name.to_owned()).or_default();
                        for r in rules {
                            if !have.contains(&r) {
                                have.push(r);
                            }
                        }
                    }
                    ActionOrConditional::Action(a) => {
                        if a != input.profile.default_action {
                            denied.entry(name.to_owned()).or_insert(a);
                        }
                        continue;
                    }
                }
                contributors.entry(name.to_owned()).or_default().insert(input.source.clone());
            }
        }
    }

    let mut rules: Vec<ResolvedRule> = allowed
        .iter()
        .map(|name| ResolvedRule { name: name.clone(), action: Action::Allow, args: Vec::new() })
        .collect();
    for (name, rs) in conditional.into_iter().filter(|(n, _)| !allowed.contains(n)) {
        rules.extend(rs.into_iter().map(|r| ResolvedRule { name: name.clone(), action: r.action, args: r.args }));
    }
    for (name, a) in denied {
        if !contributors.contains_key(&name) && a != default_action {
            rules.push(ResolvedRule { name, action: a, args: Vec::new() });
        }
    }
    let mut merged =
        ExportedProfile::from_resolved(ResolvedProfile { default_action, arches, rules, unknown_names: Vec::new() });
    merged.contributors = contributors;
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::parse, resolve::ResolveOptions};

    fn profile(text: &str) -> ResolvedProfile {
        parse(text, "t.json").unwrap().resolve(&ResolveOptions::docker_default_for_kernel((6, 8)))
    }

    fn input(source: &str, text: &str) -> MergeInput {
        MergeInput { source: source.into(), profile: profile(text) }
    }

    #[test]
    fn union_of_allowed_names_under_strictest_default() {
        let a = input(
            "a",
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        let b = input(
            "b",
            r#"{"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
                {"names": ["read", "openat"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        let merged = merge(&[a, b]);
        let p = &merged.profile;
        assert_eq!(p.default_action, Action::KillProcess);
        for name in ["read", "write", "openat"] {
            assert_eq!(p.action_for(Arch::X86_64, name), ActionOrConditional::Action(Action::Allow), "{name}");
        }
        assert_eq!(p.action_for(Arch::X86_64, "mount"), ActionOrConditional::Action(Action::KillProcess));
        assert_eq!(p.action_for(Arch::X86_64, "clone3"), ActionOrConditional::Action(Action::Errno(38)));
        let ActionOrConditional::Conditional(personality) = p.action_for(Arch::X86_64, "personality") else {
            panic!("personality should stay conditional");
        };
        let values: Vec<u64> = personality.iter().map(|r| r.args[0].value).collect();
        assert_eq!(values, [8, 0]);
        assert_eq!(merged.contributors["read"], BTreeSet::from(["a".to_owned(), "b".to_owned()]));
        assert_eq!(merged.contributors["write"], BTreeSet::from(["a".to_owned()]));
        assert!(!merged.contributors.contains_key("clone3"));
        let json: serde_json::Value = serde_json::from_str(&merged.to_docker_json()).unwrap();
        assert_eq!(json["x-observer"]["contributors"]["openat"], serde_json::json!(["b"]));
    }

    #[test]
    fn allow_by_default_inputs_contribute_what_they_do_not_deny() {
        let a = input(
            "deny-list",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]}"#,
        );
        let b = input(
            "allow-list",
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let p = merge(&[a, b]).profile;
        assert_eq!(p.default_action, Action::Errno(1));
        assert_eq!(p.action_for(Arch::X86_64, "reboot"), ActionOrConditional::Action(Action::Allow));
        assert_eq!(p.action_for(Arch::X86_64, "mount"), ActionOrConditional::Action(Action::Errno(1)));
    }
}
