use std::path::Path;

use super::*;
use crate::{
    model::{self, parse},
    resolve::ActionOrConditional,
    syscall_table,
    types::{Action, ArgCond, CmpOp},
};

fn profile(json: &str) -> Profile {
    parse(json, "test.json").expect("profile")
}

fn changes_of(m: &Mapped) -> Vec<String> {
    m.changes.iter().map(ToString::to_string).collect()
}

#[test]
fn every_equivalent_replaces_an_x86_call_arm64_lacks_with_one_it_has() {
    for e in EQUIVALENTS {
        assert!(syscall_table::number(Arch::X86_64, e.from).is_some(), "{} is not an x86_64 call", e.from);
        assert!(syscall_table::number(Arch::Aarch64, e.from).is_none(), "arm64 has {}: no mapping needed", e.from);
        assert!(syscall_table::number(Arch::Aarch64, e.to).is_some(), "{} ({}) is not an arm64 call", e.to, e.from);
        assert!(e.args.len() <= 6 && e.args.iter().flatten().all(|i| *i < 6), "{}: argument indexes", e.from);
    }
    for name in ["open", "stat", "lstat", "access", "pipe", "poll", "dup2", "fork", "rename", "mkdir", "unlink"] {
        assert!(equivalent(name).is_some(), "{name} has no equivalent");
    }
}

#[test]
fn missing_calls_become_their_arm64_equivalents_and_say_so() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[
              {"names":["read","open","stat","lstat","fork","arch_prctl","not_a_call"],"action":"SCMP_ACT_ALLOW"},
              {"names":["access"],"action":"SCMP_ACT_ERRNO","errnoRet":13}
            ]}"#,
    );
    let m = for_arch(&p, Arch::Aarch64).expect("maps");
    assert_eq!(m.profile.architectures, ["SCMP_ARCH_AARCH64"]);
    assert_eq!(m.profile.rules[0].names, ["read", "openat", "newfstatat", "clone", "not_a_call"]);
    assert_eq!(m.profile.rules[1].names, ["faccessat"]);
    assert_eq!(m.profile.rules[1].action, Action::Errno(13));
    assert_eq!(
        changes_of(&m),
        [
            "open -> openat",
            "stat -> newfstatat",
            "lstat -> newfstatat",
            "fork -> clone",
            "arch_prctl: no such call on this architecture: dropped",
            "access -> faccessat"
        ]
    );
    let r =
        m.profile.resolve(&ResolveOptions { arch: Arch::Aarch64, ..ResolveOptions::docker_default_for_kernel((6, 1)) });
    assert_eq!(r.arches, [Arch::Aarch64]);
    assert_eq!(r.action_for(Arch::Aarch64, "openat"), ActionOrConditional::Action(Action::Allow));
    assert_eq!(r.action_for(Arch::Aarch64, "faccessat"), ActionOrConditional::Action(Action::Errno(13)));
    assert_eq!(r.unknown_names, ["not_a_call"]);
}

#[test]
fn conditions_move_to_the_same_argument_of_the_equivalent() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
              {"names":["open","read"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":0,"op":"SCMP_CMP_EQ"}]},
              {"names":["rename"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":7,"op":"SCMP_CMP_NE"}]}
            ]}"#,
    );
    let m = for_arch(&p, Arch::Aarch64).expect("maps");
    let cond = |index, value, op| vec![ArgCond { index, value, value_two: 0, op }];
    let by_name = |n: &str| m.profile.rules.iter().find(|r| r.names == [n]).unwrap_or_else(|| panic!("no rule {n}"));
    // read keeps its condition where it was; open's flags (1) are openat's 2.
    assert_eq!(by_name("read").args, cond(1, 0, CmpOp::Eq));
    assert_eq!(by_name("openat").args, cond(2, 0, CmpOp::Eq));
    // rename's new path (1) is renameat's 3.
    assert_eq!(by_name("renameat").args, cond(3, 7, CmpOp::Ne));
}

#[test]
fn a_condition_the_equivalent_cannot_carry_is_an_error_naming_the_call() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
              {"names":["poll"],"action":"SCMP_ACT_ALLOW","args":[{"index":2,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let e = for_arch(&p, Arch::Aarch64).expect_err("poll's timeout is not ppoll's");
    let text = e.to_string();
    assert!(text.starts_with("test.json: rule 0 (poll)"), "{text}");
    assert!(text.contains("argument 2") && text.contains("ppoll"), "{text}");
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
              {"names":["pipe"],"action":"SCMP_ACT_ALLOW","args":[{"index":3,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(matches!(for_arch(&p, Arch::Aarch64), Err(ArchMapError::NoSuchArgument { index: 3, .. })));
}

#[test]
fn an_equivalent_with_its_own_rule_decides_and_other_arches_rules_stay() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
              {"names":["open"],"action":"SCMP_ACT_ALLOW"},
              {"names":["openat"],"action":"SCMP_ACT_ERRNO"},
              {"names":["modify_ldt"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["amd64"]}},
              {"names":["pipe"],"action":"SCMP_ACT_ERRNO","excludes":{"arches":["arm64"]}}
            ]}"#,
    );
    let m = for_arch(&p, Arch::Aarch64).expect("maps");
    // Never looser: openat stays denied, open's allow does not widen it.
    assert_eq!(
        m.profile.rules.iter().map(|r| r.names.clone()).collect::<Vec<_>>(),
        [vec!["openat".to_owned()], vec!["modify_ldt".to_owned()], vec!["pipe".to_owned()]]
    );
    assert_eq!(changes_of(&m), ["open -> openat: openat has its own rule in the profile, which decides it"]);
    let r =
        m.profile.resolve(&ResolveOptions { arch: Arch::Aarch64, ..ResolveOptions::docker_default_for_kernel((6, 1)) });
    assert_eq!(r.action_for(Arch::Aarch64, "openat"), ActionOrConditional::Action(Action::Errno(1)));
    assert_eq!(r.action_for(Arch::Aarch64, "pipe2"), ActionOrConditional::Action(Action::Allow));
}

#[test]
fn x86_targets_are_unchanged() {
    let p = profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["open"],"action":"SCMP_ACT_ALLOW"}]}"#);
    let m = for_arch(&p, Arch::X86_64).expect("maps");
    assert_eq!(m.profile, p);
    assert!(m.changes.is_empty());
}

#[test]
fn dockers_default_already_written_for_arm64_needs_no_mapping() {
    // moby's default names both families' calls and gates the arch-specific
    // ones with includes.arches: on arm64 only calls arm64 lacks change,
    // and each of those is covered by the *at call already allowed.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/moby/default.json");
    let p = model::load(&path).expect("moby default");
    let m = for_arch(&p, Arch::Aarch64).expect("maps");
    assert!(!m.changes.is_empty());
    for c in &m.changes {
        assert!(
            matches!(c.kind, ChangeKind::Covered { .. } | ChangeKind::NoEquivalent),
            "unexpected change {c} to Docker's default"
        );
    }
    // So every arm64 call gets the same verdict before and after.
    let opts = ResolveOptions { arch: Arch::Aarch64, ..ResolveOptions::docker_default_for_kernel((6, 1)) };
    let (before, after) = (p.resolve(&opts), m.profile.resolve(&opts));
    for (_, name) in syscall_table::all(Arch::Aarch64) {
        assert_eq!(before.action_for(Arch::Aarch64, name), after.action_for(Arch::Aarch64, name), "{name}");
    }
}

#[test]
fn an_exported_profile_maps_to_one_for_arm64() {
    let x86 = ResolvedProfile {
        default_action: Action::Errno(1),
        arches: vec![Arch::X86_64, Arch::I386, Arch::X32],
        rules: ["read", "open", "socketcall", "epoll_wait"]
            .iter()
            .map(|n| crate::types::ResolvedRule { name: (*n).into(), action: Action::Allow, args: Vec::new() })
            .collect(),
        unknown_names: Vec::new(),
    };
    let (arm, changes) = resolved_for_arch(&x86, Arch::Aarch64).expect("maps");
    assert_eq!(arm.arches, [Arch::Aarch64]);
    let names: Vec<&str> = arm.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["read", "openat", "epoll_pwait"]);
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[1].kind, ChangeKind::NoEquivalent, "socketcall is i386's");
}
