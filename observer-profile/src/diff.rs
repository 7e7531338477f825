//! What changed between two resolved profiles, per ABI: names that can now
//! run, names that no longer can, and names whose action or argument
//! conditions differ.

use serde::{Serialize, Serializer};

use crate::{
    model::arch,
    resolve::{ActionOrConditional, ConditionalRule, abi_names},
    types::{Arch, ResolvedProfile},
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProfileDiff {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_action: Option<Change>,
    pub abis: Vec<AbiDiff>,
}

/// An old and a new value, as contract strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub old: String,
    pub new: String,
}

/// Whether each side lists the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Listed {
    Both,
    /// Only the old profile accepts this ABI: all its calls are now killed.
    OnlyOld,
    /// Only the new profile accepts this ABI.
    OnlyNew,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AbiDiff {
    #[serde(serialize_with = "short_arch")]
    pub arch: Arch,
    pub listed: Listed,
    /// Could not run before, can now (always or under conditions).
    pub added: Vec<String>,
    /// Could run before, cannot now.
    pub removed: Vec<String>,
    /// Action or conditions differ otherwise.
    pub changed: Vec<NameChange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NameChange {
    pub name: String,
    /// Action string or `conditional`.
    pub old: String,
    pub new: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub old_rules: Vec<ConditionalRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_rules: Vec<ConditionalRule>,
}

fn short_arch<S: Serializer>(arch: &Arch, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(arch::short_name(*arch))
}

impl ProfileDiff {
    pub fn is_empty(&self) -> bool {
        self.default_action.is_none()
            && self
                .abis
                .iter()
                .all(|a| a.listed == Listed::Both && a.added.is_empty() && a.removed.is_empty() && a.changed.is_empty())
    }

    /// The entry of one ABI.
    pub fn abi(&self, arch: Arch) -> Option<&AbiDiff> {
        self.abis.iter().find(|a| a.arch == arch)
    }
}

/// Compares every syscall name of every ABI either profile lists. For an
/// ABI only one side lists, only that fact is reported, not each name.
pub fn diff(old: &ResolvedProfile, new: &ResolvedProfile) -> ProfileDiff {
    let mut arches: Vec<Arch> = old.arches.clone();
    for a in &new.arches {
        if !arches.contains(a) {
            arches.push(*a);
        }
    }
    arches.sort();
    let abis = arches
        .into_iter()
        .map(|arch| {
            let listed = match (old.arches.contains(&arch), new.arches.contains(&arch)) {
                (true, false) => Listed::OnlyOld,
                (false, true) => Listed::OnlyNew,
                _ => Listed::Both,
            };
            let mut entry = AbiDiff { arch, listed, added: Vec::new(), removed: Vec::new(), changed: Vec::new() };
            if listed == Listed::Both {
                for name in abi_names(arch) {
                    compare(&mut entry, name, old.action_for(arch, name), new.action_for(arch, name));
                }
            }
            entry
        })
        .collect();
    let default_action = (old.default_action != new.default_action)
        .then(|| Change { old: old.default_action.to_string(), new: new.default_action.to_string() });
    ProfileDiff { default_action, abis }
}

fn compare(entry: &mut AbiDiff, name: &str, old: ActionOrConditional, new: ActionOrConditional) {
    if old == new {
        return;
    }
    match (old.may_run(), new.may_run()) {
        (false, true) => entry.added.push(name.to_owned()),
        (true, false) => entry.removed.push(name.to_owned()),
        _ => entry.changed.push(NameChange {
            name: name.to_owned(),
            old: old.to_string(),
            new: new.to_string(),
            old_rules: rules_of(old),
            new_rules: rules_of(new),
        }),
    }
}

fn rules_of(effect: ActionOrConditional) -> Vec<ConditionalRule> {
    match effect {
        ActionOrConditional::Conditional(rules) => rules,
        ActionOrConditional::Action(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::tests::repo_profile, resolve::ResolveOptions};

    fn resolved(rel: &str) -> ResolvedProfile {
        repo_profile(rel).resolve(&ResolveOptions::docker_default_for_kernel((6, 8)))
    }

    #[test]
    fn no_chmod_profile_removes_the_chmod_family() {
        let d = diff(&resolved("docker-labs/default.json"), &resolved("docker-labs/default-no-chmod.json"));
        assert!(!d.is_empty());
        for arch in [Arch::X86_64, Arch::I386, Arch::X32] {
            let abi = d.abi(arch).unwrap();
            assert_eq!(abi.removed, ["chmod", "fchmod", "fchmodat"], "{arch:?}");
            assert!(abi.added.is_empty() && abi.changed.is_empty());
        }
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["abis"][0]["arch"], "x86_64");
        assert_eq!(json["abis"][0]["removed"][0], "chmod");
    }

    #[test]
    fn same_profile_is_empty_and_reverse_adds() {
        let a = resolved("docker-labs/default.json");
        assert!(diff(&a, &a).is_empty());
        let d = diff(&resolved("docker-labs/default-no-chmod.json"), &a);
        assert_eq!(d.abi(Arch::X86_64).unwrap().added, ["chmod", "fchmod", "fchmodat"]);
    }

    #[test]
    fn conditions_and_arches_show_as_changes() {
        let moby = resolved("moby/default.json");
        let admin = repo_profile("moby/default.json")
            .resolve(&ResolveOptions::docker_default_for_kernel((6, 8)).with_caps(["CAP_SYS_ADMIN"]));
        let d = diff(&moby, &admin);
        let x86_64 = d.abi(Arch::X86_64).unwrap();
        assert!(x86_64.added.contains(&"mount".to_owned()));
        let clone = x86_64.changed.iter().find(|c| c.name == "clone").unwrap();
        assert_eq!((clone.old.as_str(), clone.new.as_str()), ("conditional", "allow"));
        assert_eq!(clone.old_rules[0].args[0].value, 2114060288);
        // errno(38) could not run; allow can.
        assert!(x86_64.added.contains(&"clone3".to_owned()));
        assert!(!x86_64.changed.iter().any(|c| c.name == "clone3"));

        let mut narrow = moby.clone();
        narrow.arches.retain(|a| *a == Arch::X86_64);
        let d = diff(&moby, &narrow);
        assert_eq!(d.abi(Arch::I386).unwrap().listed, Listed::OnlyOld);
        assert!(!d.is_empty());
    }
}
