//! A profile written (or learned) on x86-64, rewritten for arm64: names
//! arm64 knows are kept as libseccomp resolves them there; a call arm64 does
//! not have (`open`, `stat`, `fork`...) becomes the call its C library makes
//! instead (`openat`, `newfstatat`, `clone`...), with its argument
//! conditions moved to the same argument of the new call; and the result
//! lists every name it changed, so that what a profile means on arm64 is
//! never a silent guess.
//!
//! arm64 uses the kernel's generic syscall table
//! (include/uapi/asm-generic/unistd.h), which has only the `*at` forms of
//! the path calls and only the newer forms of the rest; glibc's
//! `sysdeps/unix/sysv/linux` wrappers call those. Which name arm64 has is
//! libseccomp's answer ([`crate::syscall_table`]); which call replaces a
//! missing one is the table [`EQUIVALENTS`] below, because no table in
//! libseccomp or the kernel says it.

use std::{collections::BTreeSet, fmt};

use serde::Serialize;

use crate::{
    model::{ArchMapEntry, Conditions, Profile, Rule, arch},
    resolve::{ResolveOptions, abi_knows},
    types::{Arch, ResolvedProfile},
};

/// One x86 call arm64 lacks, the call made instead, and where each of the
/// x86 call's arguments goes in it (`None`: the new call takes that value
/// differently, so a condition on it cannot be carried over).
pub struct Equivalent {
    pub from: &'static str,
    pub to: &'static str,
    pub args: &'static [Option<u32>],
}

const fn eq(from: &'static str, to: &'static str, args: &'static [Option<u32>]) -> Equivalent {
    Equivalent { from, to, args }
}

/// The calls a C library makes on arm64 for x86-64 calls arm64 lacks. A
/// path call gains a directory fd in front (`AT_FDCWD`), so its arguments
/// move one place right; `rename` and `link` gain one before each path.
pub const EQUIVALENTS: &[Equivalent] = &[
    eq("open", "openat", &[Some(1), Some(2), Some(3)]),
    // creat(path, mode) is openat(AT_FDCWD, path, O_CREAT|O_WRONLY|O_TRUNC, mode).
    eq("creat", "openat", &[Some(1), Some(3)]),
    eq("stat", "newfstatat", &[Some(1), Some(2)]),
    eq("lstat", "newfstatat", &[Some(1), Some(2)]),
    eq("access", "faccessat", &[Some(1), Some(2)]),
    eq("pipe", "pipe2", &[Some(0)]),
    // ppoll takes a timespec pointer where poll takes milliseconds.
    eq("poll", "ppoll", &[Some(0), Some(1), None]),
    eq("dup2", "dup3", &[Some(0), Some(1)]),
    eq("fork", "clone", &[]),
    eq("vfork", "clone", &[]),
    eq("rename", "renameat", &[Some(1), Some(3)]),
    eq("mkdir", "mkdirat", &[Some(1), Some(2)]),
    eq("rmdir", "unlinkat", &[Some(1)]),
    eq("unlink", "unlinkat", &[Some(1)]),
    eq("readlink", "readlinkat", &[Some(1), Some(2), Some(3)]),
    eq("chmod", "fchmodat", &[Some(1), Some(2)]),
    eq("chown", "fchownat", &[Some(1), Some(2), Some(3)]),
    eq("lchown", "fchownat", &[Some(1), Some(2), Some(3)]),
    eq("link", "linkat", &[Some(1), Some(3)]),
    eq("symlink", "symlinkat", &[Some(0), Some(2)]),
    eq("mknod", "mknodat", &[Some(1), Some(2), Some(3)]),
    eq("epoll_wait", "epoll_pwait", &[Some(0), Some(1), Some(2), Some(3)]),
    // epoll_create's size is a hint; epoll_create1 takes flags there.
    eq("epoll_create", "epoll_create1", &[None]),
    // pselect6 takes a timespec where select takes a timeval.
    eq("select", "pselect6", &[Some(0), Some(1), Some(2), Some(3), None]),
    eq("inotify_init", "inotify_init1", &[]),
    eq("eventfd", "eventfd2", &[Some(0)]),
    eq("signalfd", "signalfd4", &[Some(0), Some(1), Some(2)]),
    eq("getdents", "getdents64", &[Some(0), Some(1), Some(2)]),
    eq("utimes", "utimensat", &[Some(1), None]),
    eq("utime", "utimensat", &[Some(1), None]),
    eq("futimesat", "utimensat", &[Some(0), Some(1), None]),
    eq("time", "clock_gettime", &[None]),
    eq("alarm", "setitimer", &[None]),
    eq("pause", "rt_sigsuspend", &[]),
    eq("getpgrp", "getpgid", &[]),
];

/// The equivalent of a call arm64 lacks, if there is one.
pub fn equivalent(name: &str) -> Option<&'static Equivalent> {
    EQUIVALENTS.iter().find(|e| e.from == name)
}

/// What happened to one name of the profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum ChangeKind {
    /// Replaced by `to`, its conditions moved to `to`'s arguments.
    Mapped { to: String },
    /// `to` already has its own rule in the profile, which decides it: the
    /// x86 name's rule was dropped.
    Covered { to: String },
    /// An x86 call with no arm64 counterpart (`arch_prctl`, `iopl`, the
    /// i386-only calls...): dropped.
    NoEquivalent,
}

/// One name the mapping changed; `rule` is its index in the input profile's
/// `syscalls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub rule: usize,
    pub from: String,
    #[serde(flatten)]
    pub kind: ChangeKind,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ChangeKind::Mapped { to } => write!(f, "{} -> {to}", self.from),
            ChangeKind::Covered { to } => {
                write!(f, "{} -> {to}: {to} has its own rule in the profile, which decides it", self.from)
            }
            ChangeKind::NoEquivalent => write!(f, "{}: no such call on this architecture: dropped", self.from),
        }
    }
}

/// A profile rewritten for another architecture, and what was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub target: Arch,
    pub profile: Profile,
    pub changes: Vec<Change>,
}

/// Why a profile cannot be mapped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchMapError {
    #[error(
        "{origin}: rule {rule} ({from}) has a condition on argument {index}, which {to} (its {arch} equivalent) takes differently: it cannot be carried over; drop the condition or write a rule for {to}"
    )]
    UnmappableArgument { origin: String, rule: usize, from: String, to: String, index: u32, arch: &'static str },
    #[error(
        "{origin}: rule {rule} ({from}) has a condition on argument {index}, which {from} does not take (its {arch} equivalent is {to})"
    )]
    NoSuchArgument { origin: String, rule: usize, from: String, to: String, index: u32, arch: &'static str },
}

/// `profile` rewritten for `target`.
///
/// For arm64: every rule that applies on arm64 (Docker's `includes.arches`
/// / `excludes.arches`) has each name arm64 lacks replaced by its
/// [`equivalent`] (conditions moved to the same argument there), dropped
/// when the equivalent already has a rule of its own, or dropped when arm64
/// has no such call; the architectures become arm64's. Names no ABI knows
/// are left as they are (runtimes skip them, with a warning). Rules that
/// only apply on other architectures are kept unchanged: they do not apply
/// on arm64.
///
/// For an x86 ABI the profile is returned unchanged: profiles are written
/// for x86-64, its sub-architectures included.
pub fn for_arch(profile: &Profile, target: Arch) -> Result<Mapped, ArchMapError> {
    if target != Arch::Aarch64 {
        return Ok(Mapped { target, profile: profile.clone(), changes: Vec::new() });
    }
    let applies = |r: &Rule| applies_on(r, target);
    let named: BTreeSet<&str> =
        profile.rules.iter().filter(|r| applies(r)).flat_map(|r| r.names.iter().map(String::as_str)).collect();
    let mut rules = Vec::new();
    let mut changes = Vec::new();
    for (index, rule) in profile.rules.iter().enumerate() {
        if !applies(rule) {
            rules.push(rule.clone());
            continue;
        }
        let mut kept = rule.clone();
        kept.names.clear();
        let mut moved = Vec::new();
        for name in &rule.names {
            if abi_knows(target, name) {
                push_unique(&mut kept.names, name);
                continue;
            }
            if let Some(e) = equivalent(name) {
                let change = |kind| Change { rule: index, from: name.clone(), kind };
                if named.contains(e.to) {
                    changes.push(change(ChangeKind::Covered { to: e.to.into() }));
                    continue;
                }
                let args = rule
                    .args
                    .iter()
                    .map(|c| {
                        let error = |unmappable: bool| {
                            let (origin, from, to) = (profile.origin.clone(), name.clone(), e.to.to_owned());
                            let arch = arch::short_name(target);
                            if unmappable {
                                ArchMapError::UnmappableArgument { origin, rule: index, from, to, index: c.index, arch }
                            } else {
                                ArchMapError::NoSuchArgument { origin, rule: index, from, to, index: c.index, arch }
                            }
                        };
                        match e.args.get(c.index as usize) {
                            Some(Some(to)) => Ok(crate::types::ArgCond { index: *to, ..*c }),
                            Some(None) => Err(error(true)),
                            None => Err(error(false)),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if args == rule.args {
                    push_unique(&mut kept.names, e.to);
                } else {
                    moved.push(Rule { names: vec![e.to.into()], args, ..rule.clone() });
                }
                changes.push(change(ChangeKind::Mapped { to: e.to.into() }));
                continue;
            }
            if abi_knows(Arch::X86_64, name) || abi_knows(Arch::I386, name) {
                changes.push(Change { rule: index, from: name.clone(), kind: ChangeKind::NoEquivalent });
                continue;
            }
            push_unique(&mut kept.names, name);
        }
        if !kept.names.is_empty() {
            rules.push(kept);
        }
        for m in moved {
            if !rules.contains(&m) {
                rules.push(m);
            }
        }
    }
    let mut out = Profile { rules, ..profile.clone() };
    retarget_architectures(&mut out, target);
    Ok(Mapped { target, profile: out, changes })
}

/// A resolved profile (what `export` writes) rewritten for `target`, and
/// what was changed; see [`for_arch`].
pub fn resolved_for_arch(
    profile: &ResolvedProfile,
    target: Arch,
) -> Result<(ResolvedProfile, Vec<Change>), ArchMapError> {
    if target != Arch::Aarch64 {
        return Ok((profile.clone(), Vec::new()));
    }
    let model = Profile {
        origin: "the exported profile".into(),
        format: crate::model::Format::Docker,
        default_action: profile.default_action,
        architectures: vec![arch::scmp_name(target).into()],
        arch_map: Vec::new(),
        flags: Vec::new(),
        rules: profile
            .rules
            .iter()
            .map(|r| Rule {
                names: vec![r.name.clone()],
                action: r.action,
                args: r.args.clone(),
                comment: None,
                includes: Conditions::default(),
                excludes: Conditions::default(),
            })
            .collect(),
        name: None,
        namespace: None,
        notes: Vec::new(),
    };
    let mapped = for_arch(&model, target)?;
    let opts = ResolveOptions { arch: target, ..ResolveOptions::docker_default_for_kernel((0, 0)) };
    let mut resolved = mapped.profile.resolve(&opts);
    // Names no ABI knows stay as the input had them.
    resolved.unknown_names = profile.unknown_names.clone();
    Ok((resolved, mapped.changes))
}

fn push_unique(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
}

/// Docker's test of a rule's `includes.arches` / `excludes.arches`.
fn applies_on(rule: &Rule, target: Arch) -> bool {
    let named = |names: &[String]| names.iter().any(|n| arch::docker_arch_matches(n, target));
    !named(&rule.excludes.arches) && (rule.includes.arches.is_empty() || named(&rule.includes.arches))
}

/// The profile's ABIs become `target`'s: an `architectures` list is
/// replaced, an `archMap` gains an entry for `target` when it has none.
fn retarget_architectures(profile: &mut Profile, target: Arch) {
    let token = arch::scmp_name(target);
    if !profile.architectures.is_empty() {
        profile.architectures = vec![token.into()];
    }
    if !profile.arch_map.is_empty() && !profile.arch_map.iter().any(|m| m.architecture == token) {
        profile.arch_map.push(ArchMapEntry { architecture: token.into(), sub_architectures: Vec::new() });
    }
}

#[cfg(test)]
mod tests;
