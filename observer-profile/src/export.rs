//! Turning what a container was seen calling into a seccomp profile that is
//! never looser than Docker's default (or a given base), and writing any
//! resolved profile as Docker JSON, an OCI `linux.seccomp` object or a
//! Security Profiles Operator `SeccompProfile`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use serde::Serialize;

use crate::{
    action::{self, DEFAULT_ERRNO, ENOSYS},
    args::{
        ArgKind, SeenArgs, kind_name,
        narrow::{KeptByName, NameLevel, Narrowed, kind_of_syscall, narrow},
        side_doors::{SideDoor, side_doors},
    },
    intersect,
    model::{SPO_API_VERSION, arch, cmp_op_name},
    reach_tier::{ReachableTier, TierCounts},
    resolve::{ActionOrConditional, ConditionalRule, abi_knows},
    types::{Action, Arch, ArgCond, ResolvedProfile, ResolvedRule},
};

/// Where a learned profile comes from; written into the profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExportMeta {
    pub container: String,
    pub image: String,
    /// RFC 3339 time the recording started.
    pub since: String,
    /// Syscalls counted while recording.
    pub calls: u64,
    /// `observer <version>`.
    pub generator: String,
}

/// What a container was seen doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// Names that ran, per ABI: they entered the kernel under the filter the
    /// container ran with. `clone3` among them means the container's clone3
    /// was let through; without it the profile answers clone3 with ENOSYS.
    pub syscalls: BTreeMap<Arch, BTreeSet<String>>,
    /// Names only ever seen failing under the profile the container ran
    /// with.
    pub denied_only: BTreeSet<(Arch, String)>,
    /// Values of the deciding arguments, in the phases a filter sees (what
    /// `ExportOptions::args` narrows rules to).
    pub args: SeenArgs,
    pub metadata: ExportMeta,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// Also allow names that were only seen denied.
    pub include_denied: bool,
    /// Also allow names the reference denies.
    pub beyond_default: bool,
    /// A profile whose denials stay denials, whatever was learned.
    pub base: Option<ResolvedProfile>,
    /// Docker's default profile resolved for the container's capabilities:
    /// the exported profile never allows more than it (unless
    /// `beyond_default`), and copies its argument conditions.
    pub reference: ResolvedProfile,
    /// errno of the default action.
    pub errno: u32,
    /// Narrow the rules of names with recorded argument values to those
    /// values (`--args`).
    pub args: bool,
    /// `--reachable log|allow`: the unlearned names the image can reach get
    /// the tier's action. [`export`] leaves it alone; `tiers::export_with_tier`
    /// exports and then adds it.
    pub reachable: Option<ReachableTier>,
}

impl ExportOptions {
    pub fn new(reference: ResolvedProfile) -> Self {
        Self {
            include_denied: false,
            beyond_default: false,
            base: None,
            reference,
            errno: DEFAULT_ERRNO,
            args: false,
            reachable: None,
        }
    }
}

/// Why a learned name is not allowed by the exported profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum LeftOutReason {
    /// Docker's default denies it (`--beyond-default` keeps it).
    DeniedByReference { action: String },
    /// The base profile denies it.
    DeniedByBase { action: String },
    /// Only seen failing (`--include-denied` keeps it).
    OnlySeenDenied,
    /// Not a syscall name of that ABI.
    UnknownName,
    /// The profile answers it with ENOSYS, not the default errno: glibc tries
    /// clone3 first and falls back to clone only on ENOSYS.
    AnsweredEnosys,
    /// With `--args`: answered ENOSYS although it was let through, because
    /// its flags cannot be tested (glibc falls back to clone, whose can).
    FlagsUntestable,
    /// One argument value (`--args`) that the name-level rule (Docker's
    /// default's or the base's conditions) does not admit.
    ArgumentValueDenied { value: u64, value_name: String },
    /// The base's argument conditions and the reference's admit no call in
    /// common, or only one that no runc filter can write exactly
    /// (`unwritable` rules: two conditions on one argument, which runc
    /// would turn into an OR).
    NoCommonConditions { unwritable: usize },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    pub arch: Arch,
    pub name: String,
    #[serde(flatten)]
    pub reason: LeftOutReason,
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", arch::short_name(self.arch), self.name)?;
        match &self.reason {
            LeftOutReason::DeniedByReference { action } => write!(
                f,
                "denied by Docker's default profile ({action}); --beyond-default keeps it"
            ),
            LeftOutReason::DeniedByBase { action } => {
                write!(f, "denied by the base profile ({action})")
            }
            LeftOutReason::OnlySeenDenied => {
                f.write_str("only seen denied; --include-denied keeps it")
            }
            LeftOutReason::UnknownName => f.write_str("not a syscall of this ABI"),
            LeftOutReason::AnsweredEnosys => f.write_str(
                "not allowed: the profile answers it with ENOSYS (errno 38), as Docker's default does, so that glibc falls back to clone",
            ),
            LeftOutReason::FlagsUntestable => f.write_str(
                "answered ENOSYS with --args: its flags are in memory, where no seccomp condition can test them; glibc falls back to clone, whose namespace flags are tested",
            ),
            LeftOutReason::ArgumentValueDenied { value, value_name } => write!(
                f,
                "with {value_name} ({value:#x}): denied by the argument conditions of Docker's default profile (or the base)"
            ),
            LeftOutReason::NoCommonConditions { unwritable: 0 } => f.write_str(
                "the base's argument conditions and Docker's default's admit no call in common",
            ),
            LeftOutReason::NoCommonConditions { unwritable } => write!(
                f,
                "the argument conditions of the base and Docker's default admit calls together only as {unwritable} rule(s) with two conditions on one argument, which runc would turn into an OR: left out"
            ),
        }
    }
}

/// A profile to write: the resolved rules plus where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedProfile {
    pub profile: ResolvedProfile,
    pub metadata: Option<ExportMeta>,
    /// For merged profiles: syscall name → the inputs that allowed it.
    pub contributors: BTreeMap<String, BTreeSet<String>>,
    /// Learned names the profile does not allow, with the reason.
    pub left_out: Vec<LeftOut>,
    /// Names allowed although the reference denies them (`beyond_default`).
    pub beyond_default: BTreeSet<String>,
    /// With `--args`: names that have recorded values but keep their
    /// name-level rule, and why.
    pub kept_by_name: BTreeMap<String, KeptByName>,
    /// With `--args`: calls the profile allows that go around a narrowed
    /// name's conditions (i386's old_mmap, tgkill, socketpair).
    pub side_doors: Vec<SideDoor>,
    /// With `--reachable`: how many names each tier holds.
    pub tiers: Option<TierCounts>,
}

/// What the exported profile does with one name.
pub(crate) enum Keep {
    Allow,
    Conditional(Vec<ConditionalRule>),
}

/// Builds the learned profile: what Docker's default allows outright is
/// allowed, what it allows under argument conditions keeps those
/// conditions, what it (or `base`) denies is left out and reported.
pub fn export(learned: &Learned, opts: &ExportOptions) -> ExportedProfile {
    let mut seen: Vec<(Arch, &str)> =
        learned.syscalls.iter().flat_map(|(arch, names)| names.iter().map(|n| (*arch, n.as_str()))).collect();
    let mut left_out = Vec::new();
    for (arch, name) in &learned.denied_only {
        if opts.include_denied {
            seen.push((*arch, name));
        } else if name != "clone3" {
            left_out.push(LeftOut { arch: *arch, name: name.clone(), reason: LeftOutReason::OnlySeenDenied });
        }
    }

    let mut keep: BTreeMap<String, Keep> = BTreeMap::new();
    let mut beyond = BTreeSet::new();
    for (arch, name) in seen {
        if !abi_knows(arch, name) {
            left_out.push(LeftOut { arch, name: name.to_owned(), reason: LeftOutReason::UnknownName });
            continue;
        }
        match decide(arch, name, opts) {
            Ok((decision, is_beyond)) => {
                if is_beyond {
                    beyond.insert(name.to_owned());
                }
                let slot = keep.entry(name.to_owned()).or_insert(Keep::Conditional(Vec::new()));
                match (slot, decision) {
                    (slot @ Keep::Conditional(_), Keep::Allow) => *slot = Keep::Allow,
                    (Keep::Conditional(have), Keep::Conditional(rules)) => {
                        for r in rules {
                            if !have.contains(&r) {
                                have.push(r);
                            }
                        }
                    }
                    (Keep::Allow, _) => {}
                }
            }
            Err(reason) => left_out.push(LeftOut { arch, name: name.to_owned(), reason }),
        }
    }
    // A name kept for one ABI is kept for all: rules are by name.
    left_out.retain(|l| !keep.contains_key(&l.name));
    let mut kept_by_name = BTreeMap::new();
    if opts.args {
        let mut seen = learned.args.clone();
        if clone3_falls_back_to_clone(learned, opts, &mut keep, &mut left_out, &mut kept_by_name) {
            // What was made through clone3 now goes through clone: threads
            // and children with no namespace flag (what the recording saw).
            seen.0.entry(kind_name(ArgKind::Clone).to_owned()).or_default().values.insert(0);
        }
        narrow_by_args(learned, &seen, &mut keep, &mut left_out, &mut kept_by_name);
    }
    // Whatever clone3 did, a profile that does not allow it must answer ENOSYS:
    // with the default EPERM, glibc's pthread_create fails instead of falling
    // back to clone.
    let clone3_enosys = !keep.contains_key("clone3");
    if clone3_enosys && !left_out.iter().any(|l| l.reason == LeftOutReason::FlagsUntestable) {
        left_out.retain(|l| l.name != "clone3");
        left_out.push(LeftOut { arch: Arch::X86_64, name: "clone3".into(), reason: LeftOutReason::AnsweredEnosys });
    }
    left_out.sort_by(|a, b| (a.arch, &a.name).cmp(&(b.arch, &b.name)));
    left_out.dedup();

    let mut rules = Vec::new();
    for (name, k) in keep {
        match k {
            Keep::Allow => rules.push(ResolvedRule { name, action: Action::Allow, args: Vec::new() }),
            Keep::Conditional(conditional) => rules.extend(conditional.into_iter().map(|c| ResolvedRule {
                name: name.clone(),
                action: c.action,
                args: c.args,
            })),
        }
    }
    if clone3_enosys {
        rules.push(ResolvedRule { name: "clone3".into(), action: Action::Errno(ENOSYS), args: Vec::new() });
    }
    let profile = ResolvedProfile {
        default_action: Action::Errno(opts.errno),
        arches: vec![Arch::X86_64, Arch::I386, Arch::X32],
        rules,
        unknown_names: Vec::new(),
    };
    let side_doors = if opts.args { side_doors(&profile) } else { Vec::new() };
    ExportedProfile {
        profile,
        metadata: Some(learned.metadata.clone()),
        contributors: BTreeMap::new(),
        left_out,
        beyond_default: beyond,
        kept_by_name,
        side_doors,
        tiers: None,
    }
}

/// Replaces the rules of every kept name whose arguments were recorded by
/// rules that allow only the values seen (see `args::narrow`).
fn narrow_by_args(
    learned: &Learned,
    seen: &SeenArgs,
    keep: &mut BTreeMap<String, Keep>,
    left_out: &mut Vec<LeftOut>,
    kept_by_name: &mut BTreeMap<String, KeptByName>,
) {
    let names: Vec<String> = keep.keys().filter(|n| kind_of_syscall(n).is_some()).cloned().collect();
    for name in names {
        let Some(kind) = kind_of_syscall(&name) else { continue };
        let level = match &keep[&name] {
            Keep::Allow => NameLevel::Allow,
            Keep::Conditional(rules) => NameLevel::Conditional(rules.clone()),
        };
        match narrow(kind, seen.get(kind), &level) {
            Narrowed::KeptByName(why) => {
                kept_by_name.insert(name, why);
            }
            Narrowed::Rules { rules, denied } => {
                let arch = learned
                    .syscalls
                    .iter()
                    .find(|(_, names)| names.contains(&name))
                    .map_or(Arch::X86_64, |(arch, _)| *arch);
                left_out.extend(denied.into_iter().map(|d| LeftOut {
                    arch,
                    name: name.clone(),
                    reason: LeftOutReason::ArgumentValueDenied { value: d.value, value_name: d.name },
                }));
                if rules.is_empty() {
                    keep.remove(&name);
                } else {
                    keep.insert(name, Keep::Conditional(rules));
                }
            }
        }
    }
}

/// With `--args`, clone3 is answered ENOSYS even where it was let through (as
/// Docker's default does with CAP_SYS_ADMIN): its flags sit in memory, where
/// no seccomp condition can test them, so an allowed clone3 would let any
/// namespace through whatever clone's conditions say. glibc then falls back
/// to clone, which is allowed as the reference allows it and narrowed to what
/// was seen. Only when the recording saw clone3 make a namespace (or could not
/// read its flags) does clone3 stay, by name. True when clone3 now falls back.
fn clone3_falls_back_to_clone(
    learned: &Learned,
    opts: &ExportOptions,
    keep: &mut BTreeMap<String, Keep>,
    left_out: &mut Vec<LeftOut>,
    kept_by_name: &mut BTreeMap<String, KeptByName>,
) -> bool {
    if !keep.contains_key("clone3") {
        return false;
    }
    if let Some(set) = learned.args.get(ArgKind::Clone3)
        && (set.overflowed || set.values.iter().any(|&flags| flags != 0))
    {
        kept_by_name.insert("clone3".into(), KeptByName::Untestable);
        return false;
    }
    keep.remove("clone3");
    left_out.push(LeftOut { arch: Arch::X86_64, name: "clone3".into(), reason: LeftOutReason::FlagsUntestable });
    if !keep.contains_key("clone") {
        match decide(Arch::X86_64, "clone", opts) {
            Ok((decision, _)) => {
                keep.insert("clone".into(), decision);
            }
            Err(reason) => left_out.push(LeftOut { arch: Arch::X86_64, name: "clone".into(), reason }),
        }
    }
    true
}

/// What to do with one learned name; `Ok((_, true))` when it is kept only
/// because of `beyond_default`. The base can only narrow: what it allows
/// under conditions is intersected with what the reference allows, so the
/// result is never looser than either (the reference yields only to
/// `beyond_default`, for names it denies).
pub(crate) fn decide(arch: Arch, name: &str, opts: &ExportOptions) -> Result<(Keep, bool), LeftOutReason> {
    let base = match opts.base.as_ref().map(|b| b.action_for(arch, name)) {
        Some(ActionOrConditional::Action(a)) if !action::lets_through(a) => {
            return Err(LeftOutReason::DeniedByBase { action: a.to_string() });
        }
        Some(ActionOrConditional::Conditional(rules)) => Some(rules),
        Some(ActionOrConditional::Action(_)) | None => None,
    };
    let (reference, beyond) = match opts.reference.action_for(arch, name) {
        ActionOrConditional::Action(a) if action::lets_through(a) => (None, false),
        ActionOrConditional::Conditional(rules) => (Some(rules), false),
        ActionOrConditional::Action(_) if opts.beyond_default => (None, true),
        ActionOrConditional::Action(a) => return Err(LeftOutReason::DeniedByReference { action: a.to_string() }),
    };
    let written = match (base, reference) {
        (None, None) => return Ok((Keep::Allow, beyond)),
        (Some(b), Some(r)) => intersect::intersect(&b, &r),
        (Some(rules), None) | (None, Some(rules)) => intersect::one_per_argument(&rules),
    };
    if written.rules.is_empty() {
        return Err(LeftOutReason::NoCommonConditions { unwritable: written.unwritable });
    }
    Ok((Keep::Conditional(written.rules), beyond))
}

mod formats;

#[cfg(test)]
mod tests;
