//! Resolving a profile the way Docker does before handing it to runc
//! (moby/profiles `seccomp.go`, `setupSeccomp`): Docker's `includes` /
//! `excludes` against the capabilities, architecture and kernel, the
//! architectures from `archMap`, names no ABI knows set aside; then what the
//! resolved profile does with each syscall name.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use serde::Serialize;

use crate::{
    action,
    model::{Conditions, Profile, arch},
    syscall_table,
    types::{Action, Arch, ArgCond, ResolvedProfile, ResolvedRule},
};

/// What to resolve a profile for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Capabilities in the container's bounding set (`CAP_*`).
    pub caps: BTreeSet<String>,
    /// The native architecture.
    pub arch: Arch,
    /// `(major, minor)` of the kernel, compared with `minKernel`.
    pub kernel: (u32, u32),
}

/// Capabilities Docker gives a container by default (moby
/// `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// What the filter does with a syscall of an ABI the profile does not list:
/// runc leaves libseccomp's bad-architecture action at its default,
/// `SCMP_ACT_KILL` (kill the thread).
pub const UNLISTED_ARCH_ACTION: Action = Action::KillThread;

impl ResolveOptions {
    /// Docker's defaults: its default capabilities, x86_64, and the running
    /// kernel (0.0 when it cannot be read, so no `minKernel` rule applies).
    pub fn docker_default() -> Self {
        Self::docker_default_for_kernel(host_kernel().unwrap_or((0, 0)))
    }

    /// Docker's default capabilities on x86_64 with a given kernel.
    pub fn docker_default_for_kernel(kernel: (u32, u32)) -> Self {
        Self { caps: DOCKER_DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect(), arch: Arch::X86_64, kernel }
    }

    /// Adds capabilities (`CAP_*`, or without the prefix, any case).
    pub fn with_caps<'a>(mut self, caps: impl IntoIterator<Item = &'a str>) -> Self {
        self.caps.extend(caps.into_iter().map(normalize_cap));
        self
    }
}

/// `sys_admin` → `CAP_SYS_ADMIN`.
pub fn normalize_cap(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") }
}

/// The running kernel's `(major, minor)`, from /proc/sys/kernel/osrelease.
pub fn host_kernel() -> std::io::Result<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    parse_kernel_release(&release).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unrecognised kernel release {:?}", release.trim()),
        )
    })
}

/// `(major, minor)` of a release string such as `6.8.0-45-generic`.
pub fn parse_kernel_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor_text = parts.next()?;
    let digits = minor_text.find(|c: char| !c.is_ascii_digit()).map_or(minor_text, |end| &minor_text[..end]);
    Some((major, digits.parse().ok()?))
}

/// Syscall names of an ABI. x32 shares x86_64's names (its numbers are
/// x86_64's with bit 30 set), so x86_64's table stands in for it.
pub fn abi_names(arch: Arch) -> Vec<&'static str> {
    let table = match arch {
        Arch::X32 => Arch::X86_64,
        other => other,
    };
    syscall_table::all(table).into_iter().map(|(_, name)| name).collect()
}

/// Whether `name` is a syscall of the ABI (x32 as x86_64, see [`abi_names`]).
pub fn abi_knows(arch: Arch, name: &str) -> bool {
    let table = match arch {
        Arch::X32 => Arch::X86_64,
        other => other,
    };
    syscall_table::number(table, name).is_some()
}

impl Profile {
    /// The profile for one set of capabilities, architecture and kernel.
    pub fn resolve(&self, opts: &ResolveOptions) -> ResolvedProfile {
        let arches = self.resolved_arches(opts.arch);
        let mut rules = Vec::new();
        let mut unknown = BTreeSet::new();
        for rule in &self.rules {
            if !applies(&rule.includes, &rule.excludes, opts) {
                continue;
            }
            for name in &rule.names {
                if arches.iter().any(|a| abi_knows(*a, name)) {
                    rules.push(ResolvedRule { name: name.clone(), action: rule.action, args: rule.args.clone() });
                } else {
                    unknown.insert(name.clone());
                }
            }
        }
        ResolvedProfile {
            default_action: self.default_action,
            arches,
            rules,
            unknown_names: unknown.into_iter().collect(),
        }
    }

    /// The ABIs the filter accepts, native first. libseccomp always includes
    /// the native ABI, whatever the profile lists; ABIs observer does not
    /// model (arm, s390...) or of another machine are dropped.
    fn resolved_arches(&self, native: Arch) -> Vec<Arch> {
        let listed: Vec<&str> = if !self.arch_map.is_empty() {
            self.arch_map
                .iter()
                .find(|m| m.architecture == arch::scmp_name(native))
                .map(|m| {
                    std::iter::once(m.architecture.as_str())
                        .chain(m.sub_architectures.iter().map(String::as_str))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            self.architectures.iter().map(String::as_str).collect()
        };
        let mut arches = vec![native];
        // A profile written for both machines (x86 and arm64 ABIs in one
        // list) gets only the native machine's: the other's numbers never
        // reach this filter.
        for a in listed.into_iter().filter_map(arch::from_scmp_name).filter(|a| arch::same_machine(*a, native)) {
            if !arches.contains(&a) {
                arches.push(a);
            }
        }
        arches
    }
}

/// moby's test of one rule: any excluded arch, cap or kernel drops it; every
/// included cap is required, as is the arch (when listed) and `minKernel`.
fn applies(includes: &Conditions, excludes: &Conditions, opts: &ResolveOptions) -> bool {
    let has_cap = |c: &String| opts.caps.contains(&normalize_cap(c));
    let arch_named = |names: &[String]| names.iter().any(|n| arch::docker_arch_matches(n, opts.arch));
    if arch_named(&excludes.arches)
        || excludes.caps.iter().any(has_cap)
        || excludes.min_kernel.is_some_and(|k| opts.kernel >= k)
    {
        return false;
    }
    if !includes.arches.is_empty() && !arch_named(&includes.arches) {
        return false;
    }
    includes.caps.iter().all(has_cap) && includes.min_kernel.is_none_or(|k| opts.kernel >= k)
}

/// One argument-conditional rule of a syscall.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConditionalRule {
    #[serde(with = "crate::action::contract")]
    pub action: Action,
    pub args: Vec<ArgCond>,
}

/// What a profile does with a syscall name, by the profile alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionOrConditional {
    Action(Action),
    /// Decided by the arguments: these rules (any may match), else the
    /// profile's default action.
    Conditional(Vec<ConditionalRule>),
}

impl ActionOrConditional {
    /// Whether the call can reach the kernel at all.
    pub fn may_run(&self) -> bool {
        match self {
            Self::Action(a) => action::lets_through(*a),
            Self::Conditional(rules) => rules.iter().any(|r| action::lets_through(r.action)),
        }
    }

    /// Whether the call always reaches the kernel.
    pub fn always_runs(&self) -> bool {
        matches!(self, Self::Action(a) if action::lets_through(*a))
    }
}

impl fmt::Display for ActionOrConditional {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Action(a) => a.fmt(f),
            Self::Conditional(_) => f.write_str("conditional"),
        }
    }
}

impl ResolvedProfile {
    /// The effective action of `name` on `arch`. An unconditional rule wins
    /// over conditional ones for the same name (the first one, should
    /// several disagree; `check` reports that); conditional rules whose
    /// action is the default change nothing and are left out; an ABI the
    /// profile does not list gets [`UNLISTED_ARCH_ACTION`].
    pub fn action_for(&self, arch: Arch, name: &str) -> ActionOrConditional {
        if !self.arches.contains(&arch) {
            return ActionOrConditional::Action(UNLISTED_ARCH_ACTION);
        }
        let mut conditional = Vec::new();
        for rule in self.rules.iter().filter(|r| r.name == name) {
            if rule.args.is_empty() {
                return ActionOrConditional::Action(rule.action);
            }
            let c = ConditionalRule { action: rule.action, args: rule.args.clone() };
            if rule.action != self.default_action && !conditional.contains(&c) {
                conditional.push(c);
            }
        }
        if conditional.is_empty() {
            ActionOrConditional::Action(self.default_action)
        } else {
            ActionOrConditional::Conditional(conditional)
        }
    }

    /// Every syscall name of `arch` with its action string or `conditional`.
    pub fn table(&self, arch: Arch) -> BTreeMap<String, String> {
        abi_names(arch).into_iter().map(|name| (name.to_owned(), self.action_for(arch, name).to_string())).collect()
    }

    /// Names of `arch` whose calls can reach the kernel (always or under
    /// argument conditions): what `observer reach` counts against.
    pub fn runnable_names(&self, arch: Arch) -> BTreeSet<String> {
        abi_names(arch).into_iter().filter(|name| self.action_for(arch, name).may_run()).map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::tests::repo_profile, types::CmpOp};

    fn moby(kernel: (u32, u32), extra_caps: &[&str]) -> ResolvedProfile {
        let opts = ResolveOptions::docker_default_for_kernel(kernel).with_caps(extra_caps.iter().copied());
        repo_profile("moby/default.json").resolve(&opts)
    }

    fn allow() -> ActionOrConditional {
        ActionOrConditional::Action(Action::Allow)
    }

    fn denied() -> ActionOrConditional {
        ActionOrConditional::Action(Action::Errno(1))
    }

    #[test]
    fn kernel_release_parsing() {
        assert_eq!(parse_kernel_release("6.8.0-45-generic\n"), Some((6, 8)));
        assert_eq!(parse_kernel_release("5.15.153.1-microsoft-standard-WSL2"), Some((5, 15)));
        assert_eq!(parse_kernel_release("4.19"), Some((4, 19)));
        assert_eq!(parse_kernel_release("6.10-rc1"), Some((6, 10)));
        assert_eq!(parse_kernel_release("garbage"), None);
        assert_eq!(parse_kernel_release("6"), None);
    }

    #[test]
    fn moby_default_arches_come_from_arch_map() {
        let p = moby((6, 8), &[]);
        assert_eq!(p.arches, [Arch::X86_64, Arch::I386, Arch::X32]);
        assert_eq!(p.default_action, Action::Errno(1));
    }

    #[test]
    fn ptrace_needs_kernel_4_8() {
        assert_eq!(moby((4, 7), &[]).action_for(Arch::X86_64, "ptrace"), denied());
        assert_eq!(moby((4, 8), &[]).action_for(Arch::X86_64, "ptrace"), allow());
        assert_eq!(moby((6, 1), &[]).action_for(Arch::X86_64, "ptrace"), allow());
    }

    #[test]
    fn bpf_needs_sys_admin_or_bpf() {
        assert_eq!(moby((6, 8), &[]).action_for(Arch::X86_64, "bpf"), denied());
        assert_eq!(moby((6, 8), &["CAP_BPF"]).action_for(Arch::X86_64, "bpf"), allow());
        assert_eq!(moby((6, 8), &["sys_admin"]).action_for(Arch::X86_64, "bpf"), allow());
    }

    #[test]
    fn clone_is_conditional_without_sys_admin() {
        let p = moby((6, 8), &[]);
        let ActionOrConditional::Conditional(rules) = p.action_for(Arch::X86_64, "clone") else {
            panic!("clone should be conditional");
        };
        // The s390 rule (index 1) is not for x86_64.
        assert_eq!(
            rules,
            [ConditionalRule {
                action: Action::Allow,
                args: vec![ArgCond { index: 0, value: 2114060288, value_two: 0, op: CmpOp::MaskedEq }]
            }]
        );
        assert_eq!(p.action_for(Arch::X86_64, "clone3"), ActionOrConditional::Action(Action::Errno(38)));
        let admin = moby((6, 8), &["CAP_SYS_ADMIN"]);
        assert_eq!(admin.action_for(Arch::X86_64, "clone"), allow());
        assert_eq!(admin.action_for(Arch::X86_64, "clone3"), allow());
    }

    #[test]
    fn arch_specific_rules_follow_the_target() {
        let p = moby((6, 8), &[]);
        assert_eq!(p.action_for(Arch::X86_64, "arch_prctl"), allow());
        // arm-only rule: its names are unknown on x86 ABIs.
        assert!(!p.rules.iter().any(|r| r.name == "breakpoint"));
        let table = p.table(Arch::X86_64);
        assert_eq!(table["read"], "allow");
        assert_eq!(table["socket"], "conditional");
        assert_eq!(table["personality"], "conditional");
        assert_eq!(table["reboot"], "errno(1)");
        assert_eq!(table["clone3"], "errno(38)");
        assert!(!table.contains_key("socketcall"));
        assert_eq!(p.table(Arch::I386)["socketcall"], "allow");
    }

    #[test]
    fn unknown_names_are_collected() {
        let p = moby((6, 8), &[]);
        assert!(p.unknown_names.windows(2).all(|w| w[0] < w[1]));
        // libseccomp's pseudo-syscalls for socketcall(2) sub-calls are no
        // syscall of any x86 ABI.
        for pseudo in ["recv", "send"] {
            assert!(p.unknown_names.contains(&pseudo.to_owned()), "{pseudo}");
        }
        assert!(!p.unknown_names.contains(&"read".to_owned()));
        let text = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "no_such_call", "no_such_call"], "action": "SCMP_ACT_ALLOW"}]}"#;
        let p =
            crate::model::parse(text, "t.json").unwrap().resolve(&ResolveOptions::docker_default_for_kernel((6, 8)));
        assert_eq!(p.unknown_names, ["no_such_call"]);
        assert_eq!(p.arches, [Arch::X86_64]);
        assert_eq!(p.action_for(Arch::I386, "read"), ActionOrConditional::Action(UNLISTED_ARCH_ACTION));
    }

    #[test]
    fn include_caps_are_all_required_and_exclude_caps_any() {
        let p = repo_profile("moby/fixtures/conditional_include.json");
        let plain = p.resolve(&ResolveOptions::docker_default_for_kernel((6, 8)));
        assert_eq!(plain.action_for(Arch::X86_64, "syslog"), denied());
        assert_eq!(plain.action_for(Arch::X86_64, "ptrace"), allow());
        let admin =
            p.resolve(&ResolveOptions::docker_default_for_kernel((6, 8)).with_caps(["CAP_SYSLOG", "CAP_SYS_ADMIN"]));
        assert_eq!(admin.action_for(Arch::X86_64, "syslog"), allow());
        assert_eq!(admin.action_for(Arch::X86_64, "ptrace"), denied());
        let two = Conditions { caps: vec!["CAP_A".into(), "CAP_B".into()], ..Conditions::default() };
        let opts = ResolveOptions::docker_default_for_kernel((6, 8)).with_caps(["CAP_A"]);
        assert!(!applies(&two, &Conditions::default(), &opts));
        assert!(applies(&two, &Conditions::default(), &opts.with_caps(["CAP_B"])));
    }

    #[test]
    fn old_format_lists_architectures() {
        let p = repo_profile("docker-labs/default.json").resolve(&ResolveOptions::docker_default_for_kernel((6, 8)));
        assert_eq!(p.arches, [Arch::X86_64, Arch::I386, Arch::X32]);
        assert_eq!(p.action_for(Arch::X86_64, "chmod"), allow());
        assert_eq!(p.action_for(Arch::X86_64, "mount"), denied());
    }
}
