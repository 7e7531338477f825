//! Profiles for arm64, evaluated here where no arm64 machine runs them:
//! `observer filter --profile FILE --arch aarch64` (the mapped profile, by
//! the model) against libseccomp's own compilation of the same mapped
//! profile for SCMP_ARCH_AARCH64, evaluated for every syscall number by
//! observer's evaluator. No root, no kernel: libseccomp and the evaluator only.

use std::collections::BTreeMap;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpFilterContext, ScmpSyscall};
use observer::run::compile::{export, scmp_cond};
use observer_profile::{
    arch_map, bpf,
    model::{self},
    resolve::ResolveOptions,
    types::{Action, Arch, ResolvedProfile},
};
use observer_tests::{docker::profile_path, filters::filter_json, observer};

/// A profile as a recording on x86-64 writes it: x86 names arm64 lacks,
/// argument conditions on some of them, and x86-only calls.
const LEARNED: &str = r#"{
  "defaultAction": "SCMP_ACT_ERRNO",
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  "syscalls": [
    {"names": ["read", "write", "close", "exit_group", "stat", "lstat", "fork", "epoll_wait", "select",
               "dup2", "pipe", "access", "arch_prctl", "mmap", "rt_sigreturn", "getdents"],
     "action": "SCMP_ACT_ALLOW"},
    {"names": ["open"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
    {"names": ["unlink"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
  ]
}"#;

fn scmp_action(a: Action) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        Action::Errno(e) => ScmpAction::Errno(e as i32),
        Action::KillProcess => ScmpAction::KillProcess,
        Action::KillThread => ScmpAction::KillThread,
        Action::Trap => ScmpAction::Trap,
        Action::Log => ScmpAction::Log,
        Action::Trace(t) => ScmpAction::Trace(t as u16),
        Action::UserNotif => ScmpAction::Notify,
    }
}

/// libseccomp's program for `profile` on arm64 alone (seccomp_arch_add
/// SCMP_ARCH_AARCH64, the native ABI removed, seccomp_export_bpf), its rules
/// added here with the plain library, not by observer's compiler.
fn libseccomp_arm64(profile: &ResolvedProfile) -> Vec<bpf::Insn> {
    let mut ctx = ScmpFilterContext::new_filter(scmp_action(profile.default_action)).expect("seccomp_init");
    ctx.add_arch(ScmpArch::Aarch64).expect("seccomp_arch_add");
    ctx.remove_arch(ScmpArch::Native).expect("seccomp_arch_remove");
    for rule in profile.rules.iter().filter(|r| r.action != profile.default_action) {
        // Names are given in the native ABI's numbers; libseccomp translates
        // them by name for each ABI of the filter.
        let Ok(nr) = ScmpSyscall::from_name(&rule.name) else { continue };
        let conds: Vec<ScmpArgCompare> = rule.args.iter().map(scmp_cond).collect();
        if conds.is_empty() {
            ctx.add_rule(scmp_action(rule.action), nr)
        } else {
            ctx.add_rule_conditional(scmp_action(rule.action), nr, &conds)
        }
        .unwrap_or_else(|e| panic!("seccomp_rule_add {}: {e}", rule.name));
    }
    // Read back through the same memfd helper `observer run` uses.
    export(&ctx).expect("seccomp_export_bpf, read back and decoded")
}

/// `name -> action` of libseccomp's program, by observer's evaluator, for
/// every arm64 number 0-511.
fn evaluated(insns: &[bpf::Insn]) -> BTreeMap<String, String> {
    bpf::table::abi_entries(&[insns], Arch::Aarch64)
        .expect("evaluating libseccomp's arm64 program")
        .into_iter()
        .map(|e| (e.name, e.verdict.text()))
        .collect()
}

/// Runs `observer filter` on `file` for arm64, by the model and compiled, and
/// compares both with libseccomp's own program; returns the model's table.
fn agree(file: &str) -> BTreeMap<String, String> {
    let model = filter_json(&["--profile", file, "--arch", "aarch64"]);
    let compiled = filter_json(&["--profile", file, "--arch", "aarch64", "--compiled"]);
    let table = |v: &serde_json::Value| -> BTreeMap<String, String> {
        serde_json::from_value(v["abis"]["aarch64"].clone()).expect("an aarch64 table")
    };
    let (model, compiled) = (table(&model), table(&compiled));
    let text = std::fs::read_to_string(file).expect("profile");
    let mapped = arch_map::for_arch(&model::parse(&text, file).expect("profile"), Arch::Aarch64).expect("maps");
    let opts = ResolveOptions { arch: Arch::Aarch64, ..ResolveOptions::docker_default() };
    let theirs = evaluated(&libseccomp_arm64(&mapped.profile.resolve(&opts)));
    assert!(model.len() > 250, "{file}: the model names {} arm64 calls", model.len());
    let mut differ = Vec::new();
    for (name, want) in &model {
        for (who, table) in [("libseccomp", &theirs), ("observer --compiled", &compiled)] {
            let got = table.get(name).map_or("(missing)", String::as_str);
            if got != want {
                differ.push(format!("{name}: model {want}, {who} {got}"));
            }
        }
    }
    // Numbers arm64 does not assign get the default in both programs.
    for (name, got) in &theirs {
        if !model.contains_key(name) && compiled.get(name) != Some(got) {
            differ.push(format!("{name}: libseccomp {got}, observer --compiled {:?}", compiled.get(name)));
        }
    }
    assert!(differ.is_empty(), "{file}: arm64 verdicts differ:\n{}", differ.join("\n"));
    model
}

#[test]
fn dockers_default_on_arm64_agrees_with_libseccomp() {
    let model = agree(&profile_path("moby/default.json"));
    assert_eq!(model["openat"], "allow");
    assert_eq!(model["clone"], "conditional", "clone's namespace flags are tested on arm64 too");
    assert_eq!(model["mount"], "errno(1)");
    assert!(!model.contains_key("open"), "arm64 has no open");
}

#[test]
fn a_profile_learned_on_x86_maps_to_arm64_and_agrees_with_libseccomp() {
    let dir = std::env::temp_dir().join(format!("observer-arch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("learned.json");
    std::fs::write(&file, LEARNED).expect("write");
    let path = file.display().to_string();
    let model = agree(&path);
    for (name, want) in [
        ("newfstatat", "allow"),
        ("clone", "allow"),
        ("epoll_pwait", "allow"),
        ("pselect6", "allow"),
        ("dup3", "allow"),
        ("pipe2", "allow"),
        ("faccessat", "allow"),
        ("getdents64", "allow"),
        ("openat", "conditional"),
        ("socket", "conditional"),
        ("unlinkat", "errno(13)"),
        ("mount", "errno(1)"),
    ] {
        assert_eq!(model[name], want, "{name}");
    }
    // What was mapped is said on stderr.
    let o = observer(&["filter", "--profile", &path, "--arch", "aarch64"]);
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    for line in ["open -> openat", "stat -> newfstatat", "fork -> clone", "arch_prctl: no such call"] {
        assert!(stderr.contains(line), "stderr lacks {line:?}:\n{stderr}");
    }
    // openat's condition is open's, one argument to the right.
    let json = filter_json(&["--profile", &path, "--arch", "aarch64", "--compiled"]);
    let when = json["conditions"]["aarch64"]["openat"].to_string();
    assert!(when.contains(r#""arg":2"#) && !when.contains(r#""arg":1"#), "openat's conditions: {when}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_condition_that_cannot_be_carried_is_an_error_naming_file_and_call() {
    let dir = std::env::temp_dir().join(format!("observer-arch-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("poll.json");
    std::fs::write(
        &file,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
             {"names":["poll"],"action":"SCMP_ACT_ALLOW","args":[{"index":2,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
    )
    .expect("write");
    let o = observer(&["filter", "--profile", &file.display().to_string(), "--arch", "aarch64"]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("poll.json") && stderr.contains("poll") && stderr.contains("ppoll"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
