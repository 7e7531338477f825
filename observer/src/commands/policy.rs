//! One shape for "what a policy does with each syscall", whether the policy is a
//! filter dumped from the kernel or a profile file: what `filter` prints and
//! `compare` compares against.

use std::collections::BTreeMap;

use observer_profile::{
    action::lets_through,
    bpf::{Table, Verdict, action_text, table::Entry},
    resolve::ActionOrConditional,
    syscall_table,
    types::{Arch, ResolvedProfile},
};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allowed,
    Denied,
    Conditional,
}

#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub action: String,
    pub outcome: Outcome,
}

pub const ABIS: [(&str, Arch); 2] = [("x86_64", Arch::X86_64), ("i386", Arch::I386)];

/// Per ABI, per syscall name: the action and whether the call gets through.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PolicyTable {
    pub abis: BTreeMap<String, BTreeMap<String, Decision>>,
    /// Per ABI, per conditional syscall: its rules (a profile's) or outcomes
    /// (a filter's), as JSON, for `filter --json` to print.
    pub conditions: Conditions,
}

/// ABI -> syscall name -> its conditions as JSON.
pub type Conditions = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

impl PolicyTable {
    pub fn from_filter(table: &Table) -> Self {
        let mut abis = BTreeMap::new();
        for (abi, arch) in ABIS {
            abis.insert(abi.to_owned(), decisions(table.entries(arch)));
        }
        let conditions = ABIS
            .iter()
            .map(|(abi, arch)| {
                let per_name = table
                    .conditions(*arch)
                    .into_iter()
                    .map(|(name, outcomes)| (name, serde_json::to_value(outcomes).unwrap_or_default()));
                ((*abi).to_owned(), per_name.collect())
            })
            .collect();
        Self { abis, conditions }
    }

    /// One ABI's evaluated entries (arm64's, evaluated apart from the x86
    /// table), conditions under `conditions.<abi>`, in the shape
    /// [`Table::conditions`] gives them.
    pub fn from_abi_entries(abi: &str, entries: &[Entry]) -> Self {
        let conds = entries
            .iter()
            .filter_map(|e| match &e.verdict {
                Verdict::Conditional { outcomes } => {
                    let list: Vec<observer_profile::bpf::table::Outcome> = outcomes
                        .iter()
                        .map(|(when, action)| observer_profile::bpf::table::Outcome {
                            when,
                            action: action_text(*action),
                        })
                        .collect();
                    Some((e.name.clone(), serde_json::to_value(list).unwrap_or_default()))
                }
                Verdict::Fixed(_) => None,
            })
            .collect();
        Self { abis: [(abi.to_owned(), decisions(entries))].into(), conditions: [(abi.to_owned(), conds)].into() }
    }

    pub fn from_profile(profile: &ResolvedProfile) -> Self {
        Self::from_profile_for(profile, &ABIS)
    }

    /// What `profile` does on each of `abis`.
    pub fn from_profile_for(profile: &ResolvedProfile, abis_wanted: &[(&str, Arch)]) -> Self {
        let mut abis = BTreeMap::new();
        let mut conditions = Conditions::new();
        for &(abi, arch) in abis_wanted {
            let mut names = BTreeMap::new();
            let mut conds = BTreeMap::new();
            for (_, name) in syscall_table::all(arch) {
                let decision = profile.action_for(arch, name);
                let outcome = match &decision {
                    ActionOrConditional::Action(a) => {
                        if lets_through(*a) {
                            Outcome::Allowed
                        } else {
                            Outcome::Denied
                        }
                    }
                    ActionOrConditional::Conditional(rules) => {
                        conds.insert(name.to_owned(), serde_json::to_value(rules).unwrap_or_default());
                        if decision.always_runs() {
                            Outcome::Allowed
                        } else if decision.may_run() {
                            Outcome::Conditional
                        } else {
                            Outcome::Denied
                        }
                    }
                };
                names.insert(name.to_owned(), Decision { action: decision.to_string(), outcome });
            }
            abis.insert(abi.to_owned(), names);
            conditions.insert(abi.to_owned(), conds);
        }
        Self { abis, conditions }
    }

    pub fn get(&self, abi: &str, name: &str) -> Option<&Decision> {
        self.abis.get(abi)?.get(name)
    }

    /// `{"x86_64": {"<name>": "<action>"}, "i386": {...}}`.
    pub fn actions(&self) -> BTreeMap<&str, BTreeMap<&str, &str>> {
        self.abis
            .iter()
            .map(|(abi, names)| (abi.as_str(), names.iter().map(|(n, d)| (n.as_str(), d.action.as_str())).collect()))
            .collect()
    }
}

/// What each evaluated entry of one ABI does.
fn decisions(entries: &[Entry]) -> BTreeMap<String, Decision> {
    let mut names = BTreeMap::new();
    for e in entries {
        let outcome = match &e.verdict {
            Verdict::Fixed(a) => {
                if lets_through(*a) {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                }
            }
            Verdict::Conditional { outcomes } => {
                if outcomes.iter().all(|(_, a)| lets_through(*a)) {
                    Outcome::Allowed
                } else if outcomes.iter().all(|(_, a)| !lets_through(*a)) {
                    Outcome::Denied
                } else {
                    Outcome::Conditional
                }
            }
        };
        names.insert(e.name.clone(), Decision { action: e.verdict.text(), outcome });
    }
    names
}
