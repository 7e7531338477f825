//! Tests of learning a profile and of writing it in each format.

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
    let config = r#"{"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "linux": {"namespaces": [{"type": "pid"}]}}"#;
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
