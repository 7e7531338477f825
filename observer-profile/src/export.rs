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

impl ExportedProfile {
    /// A profile to write without learned metadata (e.g. a converted file).
    pub fn from_resolved(profile: ResolvedProfile) -> Self {
        Self {
            profile,
            metadata: None,
            contributors: BTreeMap::new(),
            left_out: Vec::new(),
            beyond_default: BTreeSet::new(),
            kept_by_name: BTreeMap::new(),
            side_doors: Vec::new(),
            tiers: None,
        }
    }

    /// Docker JSON: `archMap` for the native ABI with the others as
    /// sub-architectures, unconditional names grouped by action, and the
    /// metadata under `x-observer` (Docker ignores unknown fields).
    pub fn to_docker_json(&self) -> String {
        let native = self.profile.arches.first().copied().unwrap_or(Arch::X86_64);
        let (default_action, default_errno_ret) = action::to_profile(self.profile.default_action);
        let out = DockerOut {
            default_action,
            default_errno_ret,
            arch_map: vec![ArchMapOut {
                architecture: arch::scmp_name(native),
                sub_architectures: self.profile.arches.iter().skip(1).map(|a| arch::scmp_name(*a)).collect(),
            }],
            syscalls: rules_out(&self.profile),
            observer: self.observer_meta(),
        };
        to_json(&out)
    }

    /// The OCI runtime-spec `linux.seccomp` object.
    pub fn to_oci_json(&self) -> String {
        to_json(&self.oci_seccomp())
    }

    /// `config` (an OCI `config.json`) with its `linux.seccomp` replaced by
    /// this profile.
    pub fn embed_in_oci_config(&self, config: &str) -> Result<String, serde_json::Error> {
        // The rest of the config is the user's, of any shape: kept as a JSON tree.
        let empty = || serde_json::Value::Object(serde_json::Map::new());
        let mut value: serde_json::Value = serde_json::from_str(config)?;
        let seccomp = serde_json::to_value(self.oci_seccomp())?;
        if !value.is_object() {
            value = empty();
        }
        let linux = value.as_object_mut().into_iter().next().map(|o| o.entry("linux").or_insert_with(empty));
        if let Some(linux) = linux {
            if !linux.is_object() {
                *linux = empty();
            }
            if let Some(linux) = linux.as_object_mut() {
                linux.insert("seccomp".into(), seccomp);
            }
        }
        Ok(to_json(&value))
    }

    /// A `SeccompProfile` custom resource. SPO has no `defaultErrnoRet`, so
    /// the default action is written with EPERM whatever its errno; the
    /// metadata goes into annotations.
    pub fn to_spo_yaml(&self, name: &str, namespace: &str) -> String {
        self.to_spo_yaml_with(name, namespace, &BTreeMap::new(), &BTreeMap::new())
    }

    /// [`Self::to_spo_yaml`] with labels and more annotations (a workload's
    /// origin: where, when, how many replicas and nodes).
    pub fn to_spo_yaml_with(
        &self,
        name: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        extra_annotations: &BTreeMap<String, String>,
    ) -> String {
        let mut annotations: BTreeMap<String, String> = BTreeMap::new();
        if let Some(meta) = &self.metadata {
            annotations.insert("observer/container".into(), meta.container.clone());
            annotations.insert("observer/image".into(), meta.image.clone());
            annotations.insert("observer/since".into(), meta.since.clone());
            annotations.insert("observer/calls".into(), meta.calls.to_string());
            annotations.insert("observer/generator".into(), meta.generator.clone());
        }
        if let Some(tiers) = &self.tiers {
            annotations.insert("observer/tiers".into(), serde_json::to_string(tiers).unwrap_or_default());
        }
        annotations.extend(extra_annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (default_action, _) = action::to_profile(self.profile.default_action);
        let out = SpoOut {
            api_version: SPO_API_VERSION,
            kind: "SeccompProfile",
            metadata: SpoMetaOut { name, namespace, labels: labels.clone(), annotations },
            spec: SpoSpecOut {
                default_action,
                architectures: self.profile.arches.iter().map(|a| arch::scmp_name(*a)).collect(),
                syscalls: rules_out(&self.profile),
            },
        };
        // Plain data of strings, numbers and lists always serialises. Metadata
        // values are all strings for Kubernetes, but a YAML 1.1 reader (PyYAML,
        // and so kubectl's plugins and validators) takes an unquoted
        // `2026-12-01T01:00:00Z` for a timestamp: write them quoted, as JSON strings.
        let spec = serde_yaml::to_string(&SpoSpecOnly { spec: &out.spec }).unwrap_or_default();
        let q = |v: &str| serde_json::to_string(v).unwrap_or_default();
        let mut text = format!(
            "apiVersion: {}\nkind: {}\nmetadata:\n  name: {}\n  namespace: {}\n",
            out.api_version,
            out.kind,
            q(out.metadata.name),
            q(out.metadata.namespace)
        );
        for (field, map) in [("labels", &out.metadata.labels), ("annotations", &out.metadata.annotations)] {
            if !map.is_empty() {
                text.push_str(&format!("  {field}:\n"));
                for (k, v) in map {
                    text.push_str(&format!("    {}: {}\n", q(k), q(v)));
                }
            }
        }
        text + &spec
    }

    fn oci_seccomp(&self) -> OciOut {
        let (default_action, default_errno_ret) = action::to_profile(self.profile.default_action);
        OciOut {
            default_action,
            default_errno_ret,
            architectures: self.profile.arches.iter().map(|a| arch::scmp_name(*a)).collect(),
            syscalls: rules_out(&self.profile),
        }
    }

    fn observer_meta(&self) -> Option<ObserverMetaOut<'_>> {
        if self.metadata.is_none() && self.contributors.is_empty() && self.tiers.is_none() {
            return None;
        }
        let m = self.metadata.as_ref();
        Some(ObserverMetaOut {
            calls: m.map(|m| m.calls),
            container: m.map(|m| m.container.as_str()),
            contributors: &self.contributors,
            generator: m.map(|m| m.generator.as_str()),
            image: m.map(|m| m.image.as_str()),
            side_doors: self.side_doors.iter().map(ToString::to_string).collect(),
            since: m.map(|m| m.since.as_str()),
            tiers: self.tiers.as_ref(),
        })
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The `syscalls` list: unconditional names grouped per action (sorted,
/// `allow` first), then conditional rules by name in profile order.
fn rules_out(profile: &ResolvedProfile) -> Vec<RuleOut> {
    let mut grouped: BTreeMap<(u8, Action), BTreeSet<&str>> = BTreeMap::new();
    let mut conditional: Vec<&ResolvedRule> = Vec::new();
    for rule in &profile.rules {
        if rule.args.is_empty() {
            grouped.entry((action::strictness(rule.action), rule.action)).or_default().insert(&rule.name);
        } else {
            conditional.push(rule);
        }
    }
    conditional.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<RuleOut> = grouped
        .into_iter()
        .map(|((_, a), names)| RuleOut::new(names.into_iter().map(str::to_owned).collect(), a, &[]))
        .collect();
    out.extend(conditional.into_iter().map(|r| RuleOut::new(vec![r.name.clone()], r.action, &r.args)));
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DockerOut<'a> {
    default_action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    arch_map: Vec<ArchMapOut>,
    syscalls: Vec<RuleOut>,
    #[serde(rename = "x-observer", skip_serializing_if = "Option::is_none")]
    observer: Option<ObserverMetaOut<'a>>,
}

/// `x-observer`: where the profile comes from (`ExportMeta`, when known),
/// which inputs gave each syscall (a merge), and its side doors. Fields in
/// name order, as the profile always wrote them.
#[derive(Serialize)]
struct ObserverMetaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    calls: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    contributors: &'a BTreeMap<String, BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    side_doors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tiers: Option<&'a TierCounts>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapOut {
    architecture: &'static str,
    sub_architectures: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OciOut {
    default_action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    architectures: Vec<&'static str>,
    syscalls: Vec<RuleOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpoOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: SpoMetaOut<'a>,
    spec: SpoSpecOut,
}

#[derive(Serialize)]
struct SpoMetaOut<'a> {
    name: &'a str,
    namespace: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct SpoSpecOnly<'a> {
    spec: &'a SpoSpecOut,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpoSpecOut {
    default_action: &'static str,
    architectures: Vec<&'static str>,
    syscalls: Vec<RuleOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleOut {
    names: Vec<String>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<ArgOut>,
}

impl RuleOut {
    fn new(names: Vec<String>, action: Action, args: &[ArgCond]) -> Self {
        let (name, errno_ret) = action::to_profile(action);
        Self {
            names,
            action: name,
            errno_ret,
            args: args
                .iter()
                .map(|a| ArgOut { index: a.index, value: a.value, value_two: a.value_two, op: cmp_op_name(a.op) })
                .collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArgOut {
    index: u32,
    value: u64,
    #[serde(skip_serializing_if = "is_zero")]
    value_two: u64,
    op: &'static str,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{Format, parse, tests::repo_profile},
        resolve::{ResolveOptions, abi_names},
        types::CmpOp,
    };

    fn opts() -> ResolveOptions {
        ResolveOptions::docker_default_for_kernel((6, 8))
    }

    fn reference() -> ResolvedProfile {
        repo_profile("moby/default.json").resolve(&opts())
    }

    fn learned(names: &[&str]) -> Learned {
        Learned {
            syscalls: BTreeMap::from([(Arch::X86_64, names.iter().map(|n| (*n).to_owned()).collect())]),
            denied_only: BTreeSet::new(),
            args: SeenArgs::default(),
            metadata: ExportMeta {
                container: "web".into(),
                image: "nginx:1.27".into(),
                since: "2025-01-02T03:04:05Z".into(),
                calls: 1234,
                generator: "observer test".into(),
            },
        }
    }

    /// Every name of x86_64 and i386 gets the same action from both.
    fn assert_same_effect(a: &ResolvedProfile, b: &ResolvedProfile) {
        assert_eq!(a.default_action, b.default_action);
        assert_eq!(a.arches, b.arches);
        for arch in [Arch::X86_64, Arch::I386] {
            for name in abi_names(arch) {
                assert_eq!(a.action_for(arch, name), b.action_for(arch, name), "{name}");
            }
        }
    }

    #[test]
    fn keeps_reference_conditions_and_answers_clone3_enosys() {
        let out = export(
            &learned(&["read", "write", "clone", "clone3", "personality", "mount"]),
            &ExportOptions::new(reference()),
        );
        let p = &out.profile;
        assert_eq!(p.action_for(Arch::X86_64, "read"), ActionOrConditional::Action(Action::Allow));
        let ActionOrConditional::Conditional(clone) = p.action_for(Arch::X86_64, "clone") else {
            panic!("clone lost its conditions");
        };
        assert_eq!(clone[0].args[0], ArgCond { index: 0, value: 2114060288, value_two: 0, op: CmpOp::MaskedEq });
        let ActionOrConditional::Conditional(personality) = p.action_for(Arch::X86_64, "personality") else {
            panic!("personality lost its conditions");
        };
        assert_eq!(personality.len(), 5);
        assert_eq!(p.action_for(Arch::X86_64, "clone3"), ActionOrConditional::Action(Action::Errno(38)));
        // Not learned: default.
        assert_eq!(p.action_for(Arch::X86_64, "socket"), ActionOrConditional::Action(Action::Errno(1)));
        // Denied by Docker's default: left out and said why.
        assert_eq!(p.action_for(Arch::X86_64, "mount"), ActionOrConditional::Action(Action::Errno(1)));
        let names: Vec<&str> = out.left_out.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["clone3", "mount"]);
        // clone3 ran into Docker's ENOSYS: the file answers ENOSYS and says so.
        assert_eq!(out.left_out[0].reason, LeftOutReason::AnsweredEnosys);
        assert!(out.left_out[0].to_string().contains("ENOSYS"), "{}", out.left_out[0]);
        assert!(out.left_out[1].to_string().contains("--beyond-default"), "{}", out.left_out[1]);
    }

    #[test]
    fn with_args_clone3_falls_back_to_a_narrowed_clone() {
        // With CAP_SYS_ADMIN Docker's default allows clone and clone3 whatever
        // their flags; the container made its threads with clone3 and no clone.
        let admin = repo_profile("moby/default.json").resolve(&opts().with_caps(["SYS_ADMIN"]));
        let l = learned(&["read", "clone3"]);
        let mut o = ExportOptions::new(admin);
        let out = export(&l, &o);
        assert_eq!(out.profile.action_for(Arch::X86_64, "clone3"), ActionOrConditional::Action(Action::Allow));
        o.args = true;
        let out = export(&l, &o);
        let p = &out.profile;
        assert_eq!(p.action_for(Arch::X86_64, "clone3"), ActionOrConditional::Action(Action::Errno(38)));
        let ActionOrConditional::Conditional(clone) = p.action_for(Arch::X86_64, "clone") else {
            panic!("clone is not allowed under a condition: {:?}", p.action_for(Arch::X86_64, "clone"));
        };
        assert_eq!(clone.len(), 1, "{clone:?}");
        assert_eq!(clone[0].args, [ArgCond { index: 0, value: 0x7e02_0000, value_two: 0, op: CmpOp::MaskedEq }]);
        let clone3 = out.left_out.iter().find(|l| l.name == "clone3").expect("clone3 is reported");
        assert_eq!(clone3.reason, LeftOutReason::FlagsUntestable);
        assert!(clone3.to_string().contains("ENOSYS"), "{clone3}");
        // Recorded namespace flags of clone stay allowed beside none.
        let mut l = learned(&["read", "clone", "clone3"]);
        l.args = serde_json::from_value(serde_json::json!({"clone": {"values": [0x2000_0000u64]}})).unwrap();
        let out = export(&l, &o);
        let ActionOrConditional::Conditional(clone) = out.profile.action_for(Arch::X86_64, "clone") else {
            panic!("clone is not allowed under a condition");
        };
        let values: Vec<u64> = clone.iter().map(|r| r.args[0].value_two).collect();
        assert_eq!(values, [0, 0x2000_0000], "{clone:?}");
        // clone3 seen making a user namespace: it stays allowed, by name.
        let mut l = learned(&["read", "clone3"]);
        l.args = serde_json::from_value(serde_json::json!({"clone3": {"values": [0, 0x1000_0000u64]}})).unwrap();
        let out = export(&l, &o);
        assert_eq!(out.profile.action_for(Arch::X86_64, "clone3"), ActionOrConditional::Action(Action::Allow));
        assert_eq!(out.kept_by_name.get("clone3"), Some(&KeptByName::Untestable));
        // Seen with no namespace flag: it falls back like an unrecorded one.
        l.args = serde_json::from_value(serde_json::json!({"clone3": {"values": [0]}})).unwrap();
        let out = export(&l, &o);
        assert_eq!(out.profile.action_for(Arch::X86_64, "clone3"), ActionOrConditional::Action(Action::Errno(38)));
    }

    #[test]
    fn beyond_default_base_and_denied_only() {
        let mut l = learned(&["read", "mount", "chmod"]);
        l.denied_only.insert((Arch::X86_64, "unshare".into()));
        let mut o = ExportOptions::new(reference());
        o.beyond_default = true;
        o.errno = 13;
        let out = export(&l, &o);
        let p = &out.profile;
        assert_eq!(p.default_action, Action::Errno(13));
        assert_eq!(p.action_for(Arch::X86_64, "mount"), ActionOrConditional::Action(Action::Allow));
        assert_eq!(out.beyond_default, BTreeSet::from(["mount".to_owned()]));
        // clone3 never ran: it gets ENOSYS, not the default errno.
        assert_eq!(p.action_for(Arch::X86_64, "clone3"), ActionOrConditional::Action(Action::Errno(38)));

        // The base denies mount and chmod: they stay denied even beyond
        // Docker's default.
        o.base = Some(repo_profile("docker-labs/default-no-chmod.json").resolve(&opts()));
        let out = export(&l, &o);
        let p = &out.profile;
        assert_eq!(p.action_for(Arch::X86_64, "chmod"), ActionOrConditional::Action(Action::Errno(13)));
        assert_eq!(p.action_for(Arch::X86_64, "read"), ActionOrConditional::Action(Action::Allow));
        let reasons: Vec<(&str, &LeftOutReason)> = out.left_out.iter().map(|l| (l.name.as_str(), &l.reason)).collect();
        let base_denied = LeftOutReason::DeniedByBase { action: "errno(1)".into() };
        assert_eq!(
            reasons,
            [
                ("chmod", &base_denied),
                ("clone3", &LeftOutReason::AnsweredEnosys),
                ("mount", &base_denied),
                ("unshare", &LeftOutReason::OnlySeenDenied)
            ]
        );
        o.include_denied = true;
        o.base = None;
        let out = export(&l, &o);
        assert_eq!(out.profile.action_for(Arch::X86_64, "unshare"), ActionOrConditional::Action(Action::Allow));
    }

    /// Whether a call of `name` with these arguments goes through `p` as runc
    /// installs it: a rule's conditions on one argument become rules of
    /// their own (an OR), the others are ANDed.
    fn runc_lets_through(p: &ResolvedProfile, name: &str, args: [u64; 6]) -> bool {
        let holds = |c: &ArgCond| crate::intersect::holds(c, args[c.index as usize]);
        match p.action_for(Arch::X86_64, name) {
            ActionOrConditional::Action(a) => action::lets_through(a),
            ActionOrConditional::Conditional(rules) => rules.iter().any(|r| {
                action::lets_through(r.action)
                    && if crate::intersect::tests_an_argument_twice(&r.args) {
                        r.args.iter().any(holds)
                    } else {
                        r.args.iter().all(holds)
                    }
            }),
        }
    }

    const CLONE_NEWCGROUP: u64 = 0x0200_0000;
    const CLONE_NEWNET: u64 = 0x4000_0000;
    const SIGCHLD: u64 = 17;

    fn base(text: &str) -> ResolvedProfile {
        parse(text, "base.json").unwrap().resolve(&opts())
    }

    #[test]
    fn a_base_is_never_looser_than_the_reference() {
        // docker-labs' default predates CLONE_NEWCGROUP in Docker's mask:
        // its clone rule alone would let a cgroup namespace through.
        let labs = repo_profile("docker-labs/default.json").resolve(&opts());
        assert!(runc_lets_through(&labs, "clone", [CLONE_NEWCGROUP | SIGCHLD, 0, 0, 0, 0, 0]));
        let mut o = ExportOptions::new(reference());
        o.base = Some(labs);
        let out = export(&learned(&["read", "clone"]), &o);
        assert!(!runc_lets_through(&out.profile, "clone", [CLONE_NEWCGROUP | SIGCHLD, 0, 0, 0, 0, 0]));
        assert!(runc_lets_through(&out.profile, "clone", [SIGCHLD, 0, 0, 0, 0, 0]));
        let ActionOrConditional::Conditional(clone) = out.profile.action_for(Arch::X86_64, "clone") else {
            panic!("clone lost its conditions");
        };
        assert_eq!(clone[0].args, [ArgCond { index: 0, value: 0x7E02_0000, value_two: 0, op: CmpOp::MaskedEq }]);

        // A base that allows unshare under a condition: Docker's default
        // (without CAP_SYS_ADMIN) denies unshare whatever its flags.
        let unshare = base(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read", "clone"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["unshare"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1073741824, "valueTwo": 1073741824, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
        );
        o.base = Some(unshare);
        let out = export(&learned(&["read", "unshare"]), &o);
        assert!(!runc_lets_through(&out.profile, "unshare", [CLONE_NEWNET, 0, 0, 0, 0, 0]));
        let why: Vec<(&str, &LeftOutReason)> = out.left_out.iter().map(|l| (l.name.as_str(), &l.reason)).collect();
        assert!(why.contains(&("unshare", &LeftOutReason::DeniedByReference { action: "errno(1)".into() })), "{why:?}");
        // Asked for: the base's condition, not more.
        o.beyond_default = true;
        let out = export(&learned(&["read", "unshare"]), &o);
        assert!(runc_lets_through(&out.profile, "unshare", [CLONE_NEWNET, 0, 0, 0, 0, 0]));
        assert!(!runc_lets_through(&out.profile, "unshare", [0x2_0000, 0, 0, 0, 0, 0]));
        assert!(out.beyond_default.contains("unshare"));
    }

    #[test]
    fn two_open_conditions_on_one_argument_never_become_an_or() {
        // 5 < family < 9 on socket: runc would add each bound as a rule of
        // its own, allowing every family.
        let range = base(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GT"}, {"index": 0, "value": 9, "op": "SCMP_CMP_LT"}]}]}"#,
        );
        let mut o = ExportOptions::new(reference());
        o.base = Some(range);
        let out = export(&learned(&["read", "socket"]), &o);
        for family in [1, 2, 10, 16, 40] {
            assert!(!runc_lets_through(&out.profile, "socket", [family, 1, 0, 0, 0, 0]), "family {family}");
        }
        for rule in &out.profile.rules {
            assert!(!crate::intersect::tests_an_argument_twice(&rule.args), "{rule:?}");
        }
        let socket = out.left_out.iter().find(|l| l.name == "socket").expect("socket is reported");
        assert!(matches!(socket.reason, LeftOutReason::NoCommonConditions { unwritable: 3 }), "{socket:?}");
        assert!(socket.to_string().contains("OR"), "{socket}");
        // Two conditions that one condition says exactly are folded.
        let folded = base(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_GE"}, {"index": 0, "value": 2, "op": "SCMP_CMP_LE"}]}]}"#,
        );
        o.base = Some(folded);
        let out = export(&learned(&["socket"]), &o);
        assert!(runc_lets_through(&out.profile, "socket", [1, 1, 0, 0, 0, 0]));
        assert!(runc_lets_through(&out.profile, "socket", [2, 1, 0, 0, 0, 0]));
        assert!(!runc_lets_through(&out.profile, "socket", [10, 1, 0, 0, 0, 0]));
    }

    #[test]
    fn docker_json_groups_names_and_carries_metadata() {
        let out = export(&learned(&["write", "read", "clone"]), &ExportOptions::new(reference()));
        let text = out.to_docker_json();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(v["archMap"][0]["architecture"], "SCMP_ARCH_X86_64");
        assert_eq!(v["archMap"][0]["subArchitectures"], serde_json::json!(["SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
        assert_eq!(v["syscalls"][0]["names"], serde_json::json!(["read", "write"]));
        assert_eq!(v["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
        assert_eq!(v["syscalls"][1]["names"], serde_json::json!(["clone3"]));
        assert_eq!(v["syscalls"][1]["errnoRet"], 38);
        assert_eq!(v["syscalls"][2]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(v["x-observer"]["container"], "web");
        assert_eq!(v["x-observer"]["calls"], 1234);
        // Read back by our own parser, resolved like any Docker profile.
        let back = parse(&text, "learned.json").unwrap().resolve(&opts());
        assert_same_effect(&back, &out.profile);
    }

    #[test]
    fn spo_yaml_round_trips() {
        let out = export(&learned(&["read", "clone", "personality", "socket"]), &ExportOptions::new(reference()));
        let text = out.to_spo_yaml("web", "prod");
        assert!(text.contains("kind: SeccompProfile") && text.contains(r#""observer/image": "nginx:1.27""#), "{text}");
        let back = parse(&text, "web.yaml").unwrap();
        assert_eq!(back.format, Format::Spo);
        assert_eq!((back.name.as_deref(), back.namespace.as_deref()), (Some("web"), Some("prod")));
        assert_same_effect(&back.resolve(&opts()), &out.profile);
    }

    #[test]
    fn oci_config_round_trips() {
        let out = export(&learned(&["read", "clone", "socket"]), &ExportOptions::new(reference()));
        let config =
            r#"{"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "linux": {"namespaces": [{"type": "pid"}]}}"#;
        let text = out.embed_in_oci_config(config).unwrap();
        let back = parse(&text, "config.json").unwrap();
        assert_eq!(back.format, Format::OciConfig);
        assert_same_effect(&back.resolve(&opts()), &out.profile);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["linux"]["namespaces"][0]["type"], "pid");
        let alone = parse(&out.to_oci_json(), "seccomp.json").unwrap();
        assert_same_effect(&alone.resolve(&opts()), &out.profile);
    }

    #[test]
    fn converting_moby_default_keeps_its_effect() {
        let moby = reference();
        let text = ExportedProfile::from_resolved(moby.clone()).to_docker_json();
        assert!(!text.contains("x-observer"));
        let back = parse(&text, "moby-resolved.json").unwrap().resolve(&opts());
        assert_same_effect(&back, &moby);
    }
}
