//! `profile export --args`: a learned name's rule narrowed to the argument
//! values the container used, never looser than the name-level rule it
//! replaces (which already carries Docker's default's, or the base's,
//! conditions).
//!
//! A seen value is kept when one of the name-level rules admits it, decided
//! by evaluating that rule's conditions over the bits the value pins
//! (`conditions::decide`). Where a rule tests bits the recording did not
//! keep, its conditions are added to the value's, so the result is the
//! intersection of both, unless they test the same argument: runc turns
//! several conditions on one argument into separate rules (an OR), so such
//! a rule cannot be written, and the name keeps its name-level rule.

use super::{
    ArgKind, ValueSet,
    conditions::{decide, known_args, rules_for},
    names::value_name,
};
use crate::{
    resolve::ConditionalRule,
    types::{Action, ArgCond},
};

/// What a name allows before its arguments are looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameLevel {
    /// Allowed whatever its arguments.
    Allow,
    /// Allowed under these rules (any may match).
    Conditional(Vec<ConditionalRule>),
}

/// Why a name keeps its name-level rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeptByName {
    /// More values than the kernel's set holds: some are unknown.
    Overflowed,
    /// No value was recorded for it (the container ran before the agent, or
    /// the name came from the runtime's known init calls).
    NotRecorded,
    /// Every value the argument can take was used.
    EveryValue,
    /// The name-level rule tests what the recording cannot tell, on the same
    /// argument, or its action is not a plain allow.
    Undecidable,
    /// clone3 made namespaces (or its flags could not be read), and no
    /// seccomp condition can test flags in memory.
    Untestable,
}

/// A name's rules after narrowing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Narrowed {
    /// These rules replace the name-level ones; `denied` are seen values no
    /// name-level rule admits (left out). Empty rules: nothing seen is allowed.
    Rules {
        rules: Vec<ConditionalRule>,
        denied: Vec<DeniedValue>,
    },
    KeptByName(KeptByName),
}

/// A seen value the name-level rule does not admit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeniedValue {
    pub value: u64,
    pub name: String,
}

/// The kind whose values decide `syscall`'s rule, if any.
pub fn kind_of_syscall(syscall: &str) -> Option<ArgKind> {
    ArgKind::ALL.into_iter().find(|k| super::syscall_names(*k).contains(&syscall))
}

/// Narrows one name of `kind` to the values in `seen`.
pub fn narrow(kind: ArgKind, seen: Option<&ValueSet>, level: &NameLevel) -> Narrowed {
    if kind == ArgKind::Clone3 {
        // Its flags are in memory: no rule can narrow it (export answers it
        // ENOSYS instead, unless it made namespaces).
        return Narrowed::KeptByName(KeptByName::Untestable);
    }
    let Some(seen) = seen.filter(|s| s.overflowed || !s.values.is_empty()) else {
        return Narrowed::KeptByName(KeptByName::NotRecorded);
    };
    let Some(ours) = rules_for(kind, seen) else {
        return Narrowed::KeptByName(KeptByName::Overflowed);
    };
    if ours.iter().any(Vec::is_empty) {
        return Narrowed::KeptByName(KeptByName::EveryValue);
    }
    let allow = |args: Vec<ArgCond>| ConditionalRule { action: Action::Allow, args };
    let refs = match level {
        NameLevel::Allow => {
            return Narrowed::Rules { rules: ours.into_iter().map(allow).collect(), denied: Vec::new() };
        }
        NameLevel::Conditional(refs) if refs.iter().all(|r| r.action == Action::Allow) => refs,
        NameLevel::Conditional(_) => return Narrowed::KeptByName(KeptByName::Undecidable),
    };
    let mut rules: Vec<ConditionalRule> = Vec::new();
    let mut denied = Vec::new();
    for (value, conds) in seen.values.iter().zip(ours) {
        let known = known_args(kind, *value);
        let mut admitted = false;
        for r in refs {
            let decisions: Vec<Option<bool>> = r.args.iter().map(|c| decide(c, &known)).collect();
            if decisions.contains(&Some(false)) {
                continue;
            }
            let open: Vec<ArgCond> =
                r.args.iter().zip(&decisions).filter(|(_, d)| d.is_none()).map(|(c, _)| *c).collect();
            if open.iter().any(|c| conds.iter().any(|o| o.index == c.index)) {
                return Narrowed::KeptByName(KeptByName::Undecidable);
            }
            admitted = true;
            let rule = allow(conds.iter().chain(&open).copied().collect());
            if !rules.contains(&rule) {
                rules.push(rule);
            }
            if open.is_empty() {
                // Fully admitted: other rules could only add narrower copies.
                break;
            }
        }
        if !admitted {
            denied.push(DeniedValue { value: *value, name: value_name(kind, *value) });
        }
    }
    Narrowed::Rules { rules, denied }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use observer_common::args::ns;

    use super::*;
    use crate::types::CmpOp;

    fn set(values: &[u64]) -> ValueSet {
        ValueSet { values: values.iter().copied().collect::<BTreeSet<_>>(), overflowed: false }
    }

    fn cond(index: u32, op: CmpOp, value: u64, value_two: u64) -> ArgCond {
        ArgCond { index, value, value_two, op }
    }

    fn docker_socket() -> NameLevel {
        NameLevel::Conditional(vec![
            ConditionalRule { action: Action::Allow, args: vec![cond(0, CmpOp::Lt, 38, 0)] },
            ConditionalRule { action: Action::Allow, args: vec![cond(0, CmpOp::Eq, 39, 0)] },
            ConditionalRule { action: Action::Allow, args: vec![cond(0, CmpOp::Gt, 40, 0)] },
        ])
    }

    #[test]
    fn kinds_of_syscalls() {
        assert_eq!(kind_of_syscall("socket"), Some(ArgKind::Socket));
        assert_eq!(kind_of_syscall("fcntl64"), Some(ArgKind::Fcntl));
        assert_eq!(kind_of_syscall("mmap2"), Some(ArgKind::Mmap));
        assert_eq!(kind_of_syscall("read"), None);
    }

    #[test]
    fn values_the_reference_denies_stay_out() {
        let unix = 1 << 32 | 1;
        let vsock = 40 << 32 | 1;
        let Narrowed::Rules { rules, denied } = narrow(ArgKind::Socket, Some(&set(&[unix, vsock])), &docker_socket())
        else {
            panic!("socket should be narrowed");
        };
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].args, [cond(0, CmpOp::Eq, 1, 0), cond(1, CmpOp::MaskedEq, 0xf, 1)]);
        assert_eq!(denied, [DeniedValue { value: vsock, name: "AF_VSOCK, SOCK_STREAM".into() }]);
    }

    #[test]
    fn unconditional_names_take_the_values_as_they_are() {
        let Narrowed::Rules { rules, denied } = narrow(ArgKind::Prctl, Some(&set(&[15, 38])), &NameLevel::Allow) else {
            panic!("prctl should be narrowed");
        };
        assert!(denied.is_empty());
        assert_eq!(rules.iter().map(|r| r.args[0].value).collect::<Vec<_>>(), [15, 38]);
    }

    #[test]
    fn conditions_on_unrecorded_bits_are_kept() {
        // A base that allows clone only without CLONE_THREAD (0x10000), a bit
        // the recording does not keep: both conditions go into the rule.
        let level = NameLevel::Conditional(vec![ConditionalRule {
            action: Action::Allow,
            args: vec![cond(1, CmpOp::Eq, 0, 0)],
        }]);
        let Narrowed::Rules { rules, .. } = narrow(ArgKind::Clone, Some(&set(&[0])), &level) else {
            panic!("clone should be narrowed");
        };
        assert_eq!(rules[0].args, [cond(0, CmpOp::MaskedEq, ns::CLONE_MASK, 0), cond(1, CmpOp::Eq, 0, 0)]);
        // The same on the recorded argument cannot be written: name level.
        let same_arg = NameLevel::Conditional(vec![ConditionalRule {
            action: Action::Allow,
            args: vec![cond(0, CmpOp::MaskedEq, 0x10000, 0)],
        }]);
        assert_eq!(narrow(ArgKind::Clone, Some(&set(&[0])), &same_arg), Narrowed::KeptByName(KeptByName::Undecidable));
    }

    #[test]
    fn fallbacks_to_the_name_level_rule() {
        let mut overflowed = set(&[0x5401]);
        overflowed.overflowed = true;
        assert_eq!(
            narrow(ArgKind::Ioctl, Some(&overflowed), &NameLevel::Allow),
            Narrowed::KeptByName(KeptByName::Overflowed)
        );
        assert_eq!(narrow(ArgKind::Ioctl, None, &NameLevel::Allow), Narrowed::KeptByName(KeptByName::NotRecorded));
        assert_eq!(
            narrow(ArgKind::Mmap, Some(&set(&[0, 4])), &NameLevel::Allow),
            Narrowed::KeptByName(KeptByName::EveryValue)
        );
        let errno = NameLevel::Conditional(vec![ConditionalRule {
            action: Action::Errno(38),
            args: vec![cond(0, CmpOp::Eq, 1, 0)],
        }]);
        assert_eq!(
            narrow(ArgKind::Socket, Some(&set(&[1 << 32])), &errno),
            Narrowed::KeptByName(KeptByName::Undecidable)
        );
    }
}

/// Whole exports with `--args`, against Docker's default profile as Docker resolves it.
#[cfg(test)]
mod export_tests {
    use std::collections::{BTreeMap, BTreeSet};

    use observer_common::args::ns;

    use crate::{
        args::{SeenArgs, ValueSet},
        export::{ExportOptions, Learned, LeftOutReason, export},
        model::{parse, tests::repo_profile},
        resolve::{ActionOrConditional, ResolveOptions},
        types::{Action, Arch, ArgCond, CmpOp, ResolvedProfile},
    };

    fn reference(caps: &[&str]) -> ResolvedProfile {
        let opts = ResolveOptions::docker_default_for_kernel((6, 8)).with_caps(caps.iter().copied());
        repo_profile("moby/default.json").resolve(&opts)
    }

    fn learned(names: &[&str], args: &[(&str, &[u64], bool)]) -> Learned {
        Learned {
            syscalls: BTreeMap::from([(Arch::X86_64, names.iter().map(|n| (*n).to_owned()).collect())]),
            args: SeenArgs(
                args.iter()
                    .map(|(k, v, o)| {
                        (
                            (*k).to_owned(),
                            ValueSet { values: v.iter().copied().collect::<BTreeSet<_>>(), overflowed: *o },
                        )
                    })
                    .collect(),
            ),
            ..Learned::default()
        }
    }

    fn with_args(caps: &[&str]) -> ExportOptions {
        let mut o = ExportOptions::new(reference(caps));
        o.args = true;
        o
    }

    fn conditions(p: &ResolvedProfile, name: &str) -> Vec<Vec<ArgCond>> {
        match p.action_for(Arch::X86_64, name) {
            ActionOrConditional::Conditional(rules) => {
                assert!(rules.iter().all(|r| r.action == Action::Allow), "{name}: {rules:?}");
                rules.into_iter().map(|r| r.args).collect()
            }
            other => panic!("{name} is not conditional: {other:?}"),
        }
    }

    const UNIX_STREAM: u64 = 1 << 32 | 1;

    #[test]
    fn socket_allows_only_the_families_seen() {
        let l = learned(&["read", "socket"], &[("socket", &[UNIX_STREAM], false)]);
        let out = export(&l, &with_args(&[]));
        let eq1 = ArgCond { index: 0, value: 1, value_two: 0, op: CmpOp::Eq };
        let stream = ArgCond { index: 1, value: 0xf, value_two: 1, op: CmpOp::MaskedEq };
        assert_eq!(conditions(&out.profile, "socket"), [vec![eq1, stream]]);
        // Without --args the same learning keeps Docker's three family ranges.
        assert_eq!(conditions(&export(&l, &ExportOptions::new(reference(&[]))).profile, "socket").len(), 3);
        // Every format carries the conditions: read back, they are the same rules.
        let docker = out.to_docker_json();
        let v: serde_json::Value = serde_json::from_str(&docker).unwrap();
        let rule = v["syscalls"].as_array().unwrap().iter().find(|r| r["names"][0] == "socket").unwrap();
        assert_eq!(
            rule["args"],
            serde_json::json!([{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                               {"index": 1, "value": 15, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}])
        );
        let opts = ResolveOptions::docker_default_for_kernel((6, 8));
        for (text, origin) in
            [(docker, "p.json"), (out.to_oci_json(), "seccomp.json"), (out.to_spo_yaml("web", "prod"), "p.yaml")]
        {
            let back = parse(&text, origin).unwrap().resolve(&opts);
            assert_eq!(conditions(&back, "socket"), [vec![eq1, stream]], "{origin}");
        }
    }

    #[test]
    fn clone_without_namespaces() {
        let l = learned(&["clone"], &[("clone", &[0], false)]);
        let out = export(&l, &with_args(&[]));
        assert_eq!(
            conditions(&out.profile, "clone"),
            [vec![ArgCond { index: 0, value: ns::CLONE_MASK, value_two: 0, op: CmpOp::MaskedEq }]]
        );
    }

    #[test]
    fn values_docker_denies_stay_out() {
        // AF_VSOCK and a user namespace: Docker's default (default caps) denies both.
        let vsock = 40 << 32 | 1;
        let l = learned(
            &["socket", "clone"],
            &[("socket", &[UNIX_STREAM, vsock], false), ("clone", &[0, ns::CLONE_NEWUSER], false)],
        );
        let out = export(&l, &with_args(&[]));
        assert_eq!(conditions(&out.profile, "socket").len(), 1);
        assert_eq!(conditions(&out.profile, "clone").len(), 1);
        let denied: Vec<(&str, &LeftOutReason)> = out.left_out.iter().map(|l| (l.name.as_str(), &l.reason)).collect();
        assert!(
            denied.contains(&(
                "socket",
                &LeftOutReason::ArgumentValueDenied { value: vsock, value_name: "AF_VSOCK, SOCK_STREAM".into() }
            )),
            "{denied:?}"
        );
        assert!(
            denied.contains(&(
                "clone",
                &LeftOutReason::ArgumentValueDenied { value: ns::CLONE_NEWUSER, value_name: "CLONE_NEWUSER".into() }
            )),
            "{denied:?}"
        );
        assert!(out.left_out.iter().any(|l| l.to_string().contains("AF_VSOCK")));
        // With CAP_SYS_ADMIN, Docker's default allows clone outright: the
        // user namespace seen is allowed, and nothing else.
        let out = export(&l, &with_args(&["CAP_SYS_ADMIN"]));
        let clone = conditions(&out.profile, "clone");
        assert_eq!(clone.iter().map(|r| r[0].value_two).collect::<Vec<_>>(), [0, ns::CLONE_NEWUSER]);
    }

    #[test]
    fn overflowed_and_unrecorded_sets_keep_the_plain_rule() {
        let l =
            learned(&["ioctl", "fcntl", "personality"], &[("ioctl", &[0x5401], true), ("personality", &[8], false)]);
        let out = export(&l, &with_args(&[]));
        assert_eq!(out.profile.action_for(Arch::X86_64, "ioctl"), ActionOrConditional::Action(Action::Allow));
        assert_eq!(out.profile.action_for(Arch::X86_64, "fcntl"), ActionOrConditional::Action(Action::Allow));
        assert_eq!(
            out.kept_by_name,
            BTreeMap::from([
                ("fcntl".to_owned(), super::KeptByName::NotRecorded),
                ("ioctl".to_owned(), super::KeptByName::Overflowed)
            ])
        );
        // personality: Docker allows five personas; PER_LINUX32 was used.
        assert_eq!(
            conditions(&out.profile, "personality"),
            [vec![ArgCond { index: 0, value: 8, value_two: 0, op: CmpOp::Eq }]]
        );
    }
}
