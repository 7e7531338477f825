//! The effective action of a filter stack for every syscall number of the
//! x86 ABIs, named from the syscall table: what a dumped filter means.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer, ser::SerializeMap};

use super::{
    eval::{Budget, Condition, EvalError, Verdict, evaluate_within},
    insn::Insn,
    ret::action_text,
};
use crate::{syscall_table, types::Arch};

/// Every number up to this one is evaluated, named or not, so a filter that
/// treats unassigned numbers differently shows it.
pub const MIN_HIGHEST_NR: u32 = 511;

/// One syscall number and what the filters do with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub nr: u32,
    /// The table's name, or `syscall_N` for a number the ABI does not assign.
    pub name: String,
    pub verdict: Verdict,
}

/// Effective actions per ABI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub x86_64: Vec<Entry>,
    pub i386: Vec<Entry>,
}

impl Table {
    /// Evaluates `stack` (installation order, oldest first) for every number
    /// of x86_64 and i386, within one work budget for the whole table (a
    /// dumped filter is outside input).
    pub fn build<P: AsRef<[Insn]>>(stack: &[P]) -> Result<Self, EvalError> {
        let mut budget = Budget::default();
        Ok(Self { x86_64: entries(stack, Arch::X86_64, &mut budget)?, i386: entries(stack, Arch::I386, &mut budget)? })
    }

    pub fn entries(&self, arch: Arch) -> &[Entry] {
        match arch {
            Arch::X86_64 => &self.x86_64,
            Arch::I386 => &self.i386,
            Arch::X32 | Arch::Aarch64 => &[],
        }
    }

    pub fn get(&self, arch: Arch, name: &str) -> Option<&Verdict> {
        self.entries(arch).iter().find(|e| e.name == name).map(|e| &e.verdict)
    }

    pub fn get_nr(&self, arch: Arch, nr: u32) -> Option<&Verdict> {
        self.entries(arch).iter().find(|e| e.nr == nr).map(|e| &e.verdict)
    }

    /// `{"<name>": "<action>"}` for one ABI; conditional ones say `conditional`.
    pub fn actions(&self, arch: Arch) -> BTreeMap<String, String> {
        self.entries(arch).iter().map(|e| (e.name.clone(), e.verdict.text())).collect()
    }

    /// The outcomes of the conditional syscalls of one ABI.
    pub fn conditions(&self, arch: Arch) -> BTreeMap<String, Vec<Outcome<'_>>> {
        self.entries(arch)
            .iter()
            .filter_map(|e| match &e.verdict {
                Verdict::Conditional { outcomes } => Some((
                    e.name.clone(),
                    outcomes.iter().map(|(when, action)| Outcome { when, action: action_text(*action) }).collect(),
                )),
                Verdict::Fixed(_) => None,
            })
            .collect()
    }
}

/// One outcome of a conditional syscall, as serialized.
#[derive(Debug, Serialize)]
pub struct Outcome<'a> {
    pub when: &'a [Condition],
    pub action: String,
}

/// The contract: `{"x86_64": {"<name>": "<action>"}, "i386": {...},
/// "conditions": {"x86_64": {"<name>": [{"when": [...], "action": "..."}]},
/// "i386": {...}}}`.
impl Serialize for Table {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("x86_64", &self.actions(Arch::X86_64))?;
        m.serialize_entry("i386", &self.actions(Arch::I386))?;
        let conditions: BTreeMap<&str, _> =
            [("x86_64", self.conditions(Arch::X86_64)), ("i386", self.conditions(Arch::I386))].into();
        m.serialize_entry("conditions", &conditions)?;
        m.end()
    }
}

/// Evaluates `stack` for every number of one ABI (what [`Table::build`]
/// does for the x86 ABIs; arm64's table is built alone, for profiles
/// compiled for arm64).
pub fn abi_entries<P: AsRef<[Insn]>>(stack: &[P], arch: Arch) -> Result<Vec<Entry>, EvalError> {
    entries(stack, arch, &mut Budget::default())
}

fn entries<P: AsRef<[Insn]>>(stack: &[P], arch: Arch, budget: &mut Budget) -> Result<Vec<Entry>, EvalError> {
    let highest = syscall_table::all(arch).last().map_or(0, |(nr, _)| *nr).max(MIN_HIGHEST_NR);
    (0..=highest)
        .map(|nr| {
            Ok(Entry {
                nr,
                name: syscall_table::display_name(arch, nr),
                verdict: evaluate_within(stack, arch, nr, budget)?,
            })
        })
        .collect()
}
