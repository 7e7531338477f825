//! Whether a profile stays within a node's baseline: every call it lets
//! through, the baseline lets through too, argument conditions included.
//! A runtime that takes a pulled profile (KEP-6061) intersects it with its
//! baseline, so anything the profile allows beyond the baseline would be
//! silently denied on that node; this says so before the profile is pushed
//! or used. It also warns where a runtime would refuse the pulled profile
//! outright: its size, its rule counts and the settings such a runtime
//! rejects (see [`limits`]).
//!
//! The comparison is conservative, as the runtimes' merge is: a call is
//! within the baseline when each of the profile's allowing rules for it is
//! contained in one allowing rule of the baseline and meets none of its
//! denying rules. A profile rule covered only by several baseline rules
//! together is reported as not shown to be within.

mod conditions;
pub mod limits;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;

pub use self::limits::{Limit, limits};
use crate::{
    action::{self, lets_through},
    intersect,
    model::{self, Profile, ProfileError, arch},
    resolve::{ActionOrConditional, ConditionalRule, ResolveOptions},
    syscall_table,
    types::{Action, Arch, ArgCond, ResolvedProfile},
};

/// Why one call of the profile is not within the baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Reason {
    /// The baseline never lets it through.
    BaselineDenies,
    /// The profile lets it through whatever its arguments; the baseline
    /// only under conditions.
    BaselineOnlyWithConditions,
    /// The profile's rule with these conditions admits calls no allowing
    /// rule of the baseline admits (or that a denying one catches).
    ConditionsBeyondBaseline { when: Vec<String> },
    /// The profile lets through everything but some argument values; the
    /// baseline does not let everything through.
    DeniesOnlySomeValues,
    /// Unknown syscall numbers (newer than the tables) get the profile's
    /// default action, which lets them through; the baseline's does not.
    DefaultAction,
}

/// One call (or the default action) the profile allows beyond the baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Looser {
    #[serde(serialize_with = "arch_name")]
    pub arch: Arch,
    /// The syscall, or `(default)` for [`Reason::DefaultAction`].
    pub name: String,
    /// What the profile does, and what the baseline does.
    pub profile: String,
    pub baseline: String,
    #[serde(flatten)]
    pub reason: Reason,
}

fn arch_name<S: serde::Serializer>(arch: &Arch, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(arch::short_name(*arch))
}

impl fmt::Display for Looser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: the profile says {}, the baseline {}",
            arch::short_name(self.arch),
            self.name,
            self.profile,
            self.baseline
        )?;
        match &self.reason {
            Reason::BaselineDenies => f.write_str(": the baseline denies it"),
            Reason::BaselineOnlyWithConditions => {
                f.write_str(": the profile allows it whatever its arguments, the baseline only under conditions")
            }
            Reason::ConditionsBeyondBaseline { when } => write!(
                f,
                ": the profile's rule when {} admits calls the baseline does not (or not shown to)",
                if when.is_empty() { "always".to_owned() } else { when.join(" and ") }
            ),
            Reason::DeniesOnlySomeValues => {
                f.write_str(": the profile lets every other argument value through, the baseline does not")
            }
            Reason::DefaultAction => {
                f.write_str(": syscalls the tables do not name get the profile's default, which lets them through")
            }
        }
    }
}

/// The result of `profile check --within`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WithinReport {
    /// What the profile allows beyond the baseline: not within when any.
    pub looser: Vec<Looser>,
    /// Where a runtime would refuse the profile as a pulled artifact.
    pub limits: Vec<Limit>,
}

impl WithinReport {
    pub fn is_within(&self) -> bool {
        self.looser.is_empty()
    }
}

/// `profile_text` (a profile file's content, as pulled) against `baseline`,
/// both resolved with `opts` (capabilities, native architecture, kernel):
/// the calls it allows beyond the baseline, and the runtime limits it
/// passes. `origin` names the profile in errors. This is what
/// `observer profile check FILE --within BASELINE` and `pull --within` run.
pub fn check_within(
    profile_text: &str,
    origin: &str,
    baseline: &Profile,
    opts: &ResolveOptions,
) -> Result<WithinReport, ProfileError> {
    let profile = model::parse(profile_text, origin)?;
    let looser = looser_than(&profile.resolve(opts), &baseline.resolve(opts));
    Ok(WithinReport { looser, limits: limits(profile_text, &profile) })
}

/// What `profile` lets through that `baseline` does not, per ABI the
/// profile accepts, by every name of the ABI's table, plus the default
/// action (which decides the numbers no table names).
pub fn looser_than(profile: &ResolvedProfile, baseline: &ResolvedProfile) -> Vec<Looser> {
    let mut out = Vec::new();
    let native = profile.arches.first().copied().unwrap_or(Arch::X86_64);
    if lets_through(profile.default_action) && !lets_through(baseline.default_action) {
        out.push(Looser {
            arch: native,
            name: "(default)".into(),
            profile: profile.default_action.to_string(),
            baseline: baseline.default_action.to_string(),
            reason: Reason::DefaultAction,
        });
    }
    for &abi in &profile.arches {
        let table = if abi == Arch::X32 { Arch::X86_64 } else { abi };
        for (_, name) in syscall_table::all(table) {
            let p = profile.action_for(abi, name);
            let b = baseline.action_for(abi, name);
            if let Some(reason) = beyond(&p, profile.default_action, &b, baseline.default_action) {
                out.push(Looser {
                    arch: abi,
                    name: name.to_owned(),
                    profile: p.to_string(),
                    baseline: b.to_string(),
                    reason,
                });
            }
        }
    }
    out
}

/// Why what the profile does with one call goes beyond what the baseline
/// does, if it does.
fn beyond(p: &ActionOrConditional, p_default: Action, b: &ActionOrConditional, b_default: Action) -> Option<Reason> {
    if b.always_runs() || !p.may_run() {
        return None;
    }
    let pieces: Vec<&[ArgCond]> = match p {
        ActionOrConditional::Action(_) => vec![&[]],
        ActionOrConditional::Conditional(rules) => {
            if lets_through(p_default) {
                // Everything but what the denying rules catch: within only
                // when the baseline lets everything through (handled above).
                return Some(Reason::DeniesOnlySomeValues);
            }
            rules.iter().filter(|r| lets_through(r.action)).map(|r| r.args.as_slice()).collect()
        }
    };
    match b {
        ActionOrConditional::Action(_) => Some(Reason::BaselineDenies),
        ActionOrConditional::Conditional(rules) => {
            for piece in pieces {
                if !contained(piece, rules, b_default) {
                    if piece.is_empty() {
                        return Some(Reason::BaselineOnlyWithConditions);
                    }
                    return Some(Reason::ConditionsBeyondBaseline { when: piece.iter().map(describe).collect() });
                }
            }
            None
        }
    }
}

/// Whether every call admitted by `piece` gets through the baseline's
/// `rules` (else its default): it meets no denying rule, and one allowing
/// rule (or an allowing default) admits it all.
fn contained(piece: &[ArgCond], rules: &[ConditionalRule], b_default: Action) -> bool {
    if !intersect::satisfiable(piece.iter().copied()) {
        return true;
    }
    let (allowing, denying): (Vec<&ConditionalRule>, Vec<&ConditionalRule>) =
        rules.iter().partition(|r| action::lets_through(r.action));
    let meets_a_denial = denying.iter().any(|d| intersect::satisfiable(piece.iter().chain(&d.args).copied()));
    !meets_a_denial && (lets_through(b_default) || allowing.iter().any(|a| conditions::implies(piece, &a.args)))
}

/// `args[1] == 0x5` and the like, for messages.
fn describe(c: &ArgCond) -> String {
    let op = match c.op {
        crate::types::CmpOp::Ne => "!=",
        crate::types::CmpOp::Lt => "<",
        crate::types::CmpOp::Le => "<=",
        crate::types::CmpOp::Eq => "==",
        crate::types::CmpOp::Ge => ">=",
        crate::types::CmpOp::Gt => ">",
        crate::types::CmpOp::MaskedEq => return format!("args[{}] & {:#x} == {:#x}", c.index, c.value, c.value_two),
    };
    format!("args[{}] {op} {:#x}", c.index, c.value)
}
