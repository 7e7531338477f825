//! Lint for a resolved profile: mistakes runc silently tolerates (unknown
//! names, duplicates, rules that equal the default), rules that contradict
//! each other, and the 32-bit hole of deny-lists, where a call denied on
//! x86_64 is still reachable through its i386 twin or through i386's
//! `socketcall` / `ipc` multiplexers.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;

use crate::{
    action, intersect,
    resolve::{ActionOrConditional, abi_knows, abi_names},
    types::{Action, Arch, ArgCond, ResolvedProfile},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable identifier, e.g. `32bit-hole`.
    pub code: &'static str,
    pub message: String,
    /// The syscall names concerned.
    pub names: Vec<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] {}", self.severity, self.code, self.message)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether the profile should be refused (the CLI's exit decision).
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// Findings with a given code.
    pub fn with_code(&self, code: &str) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.code == code).collect()
    }
}

/// Calls i386 also reaches through `socketcall(2)`, whose real arguments sit
/// in user memory a filter cannot read (net/socket.c, `SYS_SOCKET` ..
/// `SYS_SENDMMSG`:
/// https://github.com/torvalds/linux/blob/v6.8/include/uapi/linux/net.h#L27-L46).
const SOCKETCALL_CALLS: &[&str] = &[
    "socket",
    "bind",
    "connect",
    "listen",
    "accept",
    "getsockname",
    "getpeername",
    "socketpair",
    "send",
    "recv",
    "sendto",
    "recvfrom",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "sendmsg",
    "recvmsg",
    "accept4",
    "recvmmsg",
    "sendmmsg",
];

/// Calls i386 also reaches through `ipc(2)` (ipc/syscall.c:
/// https://github.com/torvalds/linux/blob/v6.8/ipc/syscall.c#L17-L90).
const IPC_CALLS: &[&str] = &[
    "semop",
    "semget",
    "semctl",
    "semtimedop",
    "msgsnd",
    "msgrcv",
    "msgget",
    "msgctl",
    "shmat",
    "shmdt",
    "shmget",
    "shmctl",
];

/// x86_64 names whose i386 twin is not spelled by a suffix.
const RENAMED_TWINS: &[(&str, &str)] = &[
    ("mmap", "mmap2"),
    ("newfstatat", "fstatat64"),
    ("lseek", "_llseek"),
    ("select", "_newselect"),
    ("getrlimit", "ugetrlimit"),
];

/// Runs every check.
pub fn check(profile: &ResolvedProfile) -> CheckReport {
    let mut findings = Vec::new();
    unknown_names(profile, &mut findings);
    rule_shapes(profile, &mut findings);
    thirty_two_bit_hole(profile, &mut findings);
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(b.code)));
    CheckReport { findings }
}

fn unknown_names(profile: &ResolvedProfile, findings: &mut Vec<Finding>) {
    if !profile.unknown_names.is_empty() {
        findings.push(Finding {
            severity: Severity::Warning,
            code: "unknown-name",
            message: format!("no listed architecture has {}; runc skips them", profile.unknown_names.join(", ")),
            names: profile.unknown_names.clone(),
        });
    }
}

/// Duplicates, rules equal to the default, and conflicts.
fn rule_shapes(profile: &ResolvedProfile, findings: &mut Vec<Finding>) {
    let mut by_name: BTreeMap<&str, Vec<(Action, &[ArgCond])>> = BTreeMap::new();
    for rule in &profile.rules {
        by_name.entry(&rule.name).or_default().push((rule.action, &rule.args));
    }
    let mut duplicates = Vec::new();
    let mut same_as_default = Vec::new();
    let mut argument_twice = Vec::new();
    for (name, rules) in &by_name {
        if rules.iter().any(|(_, args)| intersect::tests_an_argument_twice(args)) {
            argument_twice.push((*name).to_owned());
        }
        if rules.iter().enumerate().any(|(i, r)| rules[..i].contains(r)) {
            duplicates.push((*name).to_owned());
        }
        if rules.iter().any(|(a, _)| *a == profile.default_action) {
            same_as_default.push((*name).to_owned());
        }
        let mut unconditional: Vec<Action> =
            rules.iter().filter(|(_, args)| args.is_empty()).map(|(a, _)| *a).collect();
        unconditional.dedup();
        unconditional.sort();
        unconditional.dedup();
        if unconditional.len() > 1 {
            let actions: Vec<String> = unconditional.iter().map(Action::to_string).collect();
            findings.push(Finding {
                severity: Severity::Error,
                code: "conflicting-rules",
                message: format!(
                    "{name} has unconditional rules with different actions ({}); runc fails to load it or the first wins",
                    actions.join(", ")
                ),
                names: vec![(*name).to_owned()],
            });
        }
    }
    if !argument_twice.is_empty() {
        findings.push(Finding {
            severity: Severity::Warning,
            code: "argument-tested-twice",
            message: format!(
                "a rule tests one argument more than once: runc adds each of those conditions as a rule of its own, so any one of them lets the call through (an OR, not an AND): {}",
                argument_twice.join(", ")
            ),
            names: argument_twice,
        });
    }
    if !duplicates.is_empty() {
        findings.push(Finding {
            severity: Severity::Warning,
            code: "duplicate-name",
            message: format!("listed more than once with the same action and arguments: {}", duplicates.join(", ")),
            names: duplicates,
        });
    }
    if !same_as_default.is_empty() {
        findings.push(Finding {
            severity: Severity::Warning,
            code: "rule-equals-default",
            message: format!(
                "rules with the default action ({}) change nothing and runc drops them: {}",
                profile.default_action,
                same_as_default.join(", ")
            ),
            names: same_as_default,
        });
    }
}

/// A deny-list (default lets calls through) that denies a call on x86_64
/// leaves it open on i386 when the i386 twin or the multiplexer that
/// reaches it is allowed. An ABI the profile does not list is killed by
/// the bad-architecture action, so only a listed i386 can leak.
fn thirty_two_bit_hole(profile: &ResolvedProfile, findings: &mut Vec<Finding>) {
    if !action::lets_through(profile.default_action) {
        return;
    }
    if !profile.arches.contains(&Arch::I386) {
        findings.push(Finding {
            severity: Severity::Info,
            code: "i386-not-listed",
            message: "i386 is not listed: 32-bit calls are killed by the bad-architecture action, so x86_64 denials cannot be bypassed through it".into(),
            names: Vec::new(),
        });
        return;
    }
    let mut holes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut partial: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in abi_names(Arch::X86_64) {
        let effect = profile.action_for(Arch::X86_64, name);
        if effect.always_runs() {
            continue;
        }
        for twin in twins(name) {
            let twin_effect = profile.action_for(Arch::I386, &twin);
            if twin_effect != effect && twin_effect.may_run() {
                holes.entry(twin).or_default().push(name.to_owned());
            }
        }
        for (multiplexer, calls) in [("socketcall", SOCKETCALL_CALLS), ("ipc", IPC_CALLS)] {
            if !calls.contains(&name) {
                continue;
            }
            match profile.action_for(Arch::I386, multiplexer) {
                e if e.always_runs() => holes.entry(multiplexer.into()).or_default().push(name.to_owned()),
                ActionOrConditional::Conditional(_) => {
                    partial.entry(multiplexer.into()).or_default().push(name.to_owned())
                }
                _ => {}
            }
        }
    }
    for (twin, denied) in holes {
        findings.push(Finding {
            severity: Severity::Error,
            code: "32bit-hole",
            message: format!(
                "{} denied on x86_64 but i386 {twin} is allowed, so 32-bit code bypasses the denial",
                denied.join(", ")
            ),
            names: std::iter::once(twin).chain(denied).collect(),
        });
    }
    for (multiplexer, denied) in partial {
        findings.push(Finding {
            severity: Severity::Warning,
            code: "32bit-multiplexer",
            message: format!(
                "{} denied on x86_64; i386 {multiplexer} is allowed under conditions, which cannot see the sub-call's arguments",
                denied.join(", ")
            ),
            names: std::iter::once(multiplexer).chain(denied).collect(),
        });
    }
}

/// i386 names for the same operation as x86_64 `name` under another name
/// (`chown` → `chown32`, `truncate` → `truncate64`, `futex` →
/// `futex_time64`, `mmap` → `mmap2`...). The same name is no twin: rules are
/// by name and apply to every listed ABI.
fn twins(name: &str) -> Vec<String> {
    let mut out: Vec<String> = ["32", "64", "_64", "_time64"].iter().map(|suffix| format!("{name}{suffix}")).collect();
    out.extend(RENAMED_TWINS.iter().filter(|(from, _)| *from == name).map(|(_, to)| (*to).to_owned()));
    out.retain(|twin| abi_knows(Arch::I386, twin) && !abi_knows(Arch::X86_64, twin));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{parse, tests::repo_profile},
        resolve::ResolveOptions,
    };

    fn resolved(text: &str) -> ResolvedProfile {
        parse(text, "t.json").unwrap().resolve(&ResolveOptions::docker_default_for_kernel((6, 8)))
    }

    fn codes(report: &CheckReport) -> Vec<&'static str> {
        report.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn moby_default_has_no_errors() {
        let p = repo_profile("moby/default.json").resolve(&ResolveOptions::docker_default_for_kernel((6, 8)));
        let report = check(&p);
        assert!(!report.has_errors(), "{:?}", report.findings);
        // recv/send are libseccomp pseudo-calls, no x86 syscall.
        assert_eq!(report.with_code("unknown-name")[0].severity, Severity::Warning);
        // The default-allow lab profile: nothing denied, no hole.
        let allow = repo_profile("docker-labs/allow.json").resolve(&ResolveOptions::docker_default_for_kernel((6, 8)));
        assert!(check(&allow).findings.is_empty());
    }

    #[test]
    fn duplicates_defaults_and_conflicts() {
        let p = resolved(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["write"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["no_such_call"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let report = check(&p);
        assert_eq!(codes(&report), ["conflicting-rules", "duplicate-name", "rule-equals-default", "unknown-name"]);
        assert!(report.has_errors());
        assert_eq!(report.with_code("conflicting-rules")[0].names, ["write"]);
        assert_eq!(report.with_code("duplicate-name")[0].names, ["read"]);
        assert_eq!(report.with_code("rule-equals-default")[0].names, ["mount"]);
        assert_eq!(report.with_code("unknown-name")[0].names, ["no_such_call"]);
    }

    #[test]
    fn an_argument_tested_twice_is_an_or_under_runc() {
        let p = resolved(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GT"}, {"index": 0, "value": 9, "op": "SCMP_CMP_LT"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        let report = check(&p);
        assert_eq!(codes(&report), ["argument-tested-twice"]);
        assert_eq!(report.with_code("argument-tested-twice")[0].names, ["socket"]);
    }

    #[test]
    fn deny_list_with_i386_leaks_through_twins_and_socketcall() {
        let p = resolved(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["chown", "connect", "mount"], "action": "SCMP_ACT_ERRNO"}]}"#,
        );
        let report = check(&p);
        assert!(report.has_errors());
        let holes: Vec<&Vec<String>> = report.with_code("32bit-hole").into_iter().map(|f| &f.names).collect();
        assert_eq!(
            holes,
            [&vec!["chown32".to_owned(), "chown".to_owned()], &vec!["socketcall".to_owned(), "connect".to_owned()]]
        );

        // Denying the twin and the multiplexer closes it.
        let closed = resolved(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["chown", "chown32", "connect", "socketcall", "mount"], "action": "SCMP_ACT_ERRNO"}]}"#,
        );
        assert!(!check(&closed).has_errors(), "{:?}", check(&closed).findings);
    }

    #[test]
    fn deny_list_without_i386_is_killed_not_leaked() {
        let p = resolved(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["chown", "connect"], "action": "SCMP_ACT_ERRNO"}]}"#,
        );
        let report = check(&p);
        assert!(!report.has_errors());
        assert_eq!(codes(&report), ["i386-not-listed"]);
    }

    #[test]
    fn twin_names() {
        assert_eq!(twins("chown"), ["chown32"]);
        assert_eq!(twins("truncate"), ["truncate64"]);
        assert_eq!(twins("mmap"), ["mmap2"]);
        assert_eq!(twins("futex"), ["futex_time64"]);
        assert!(twins("dup").is_empty());
        assert!(twins("read").is_empty());
    }
}
