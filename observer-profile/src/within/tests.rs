use std::path::Path;

use super::*;

fn opts() -> ResolveOptions {
    ResolveOptions::docker_default_for_kernel((6, 1))
}

fn moby_default() -> Profile {
    model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/moby/default.json")).expect("moby default")
}

fn looser(profile: &str, baseline: &Profile) -> Vec<(String, String, Reason)> {
    let report = check_within(profile, "pulled.json", baseline, &opts()).expect("parses");
    report.looser.into_iter().map(|l| (arch::short_name(l.arch).to_owned(), l.name, l.reason)).collect()
}

fn allow(names: &str) -> String {
    format!(r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":[{names}],"action":"SCMP_ACT_ALLOW"}}]}}"#)
}

#[test]
fn a_call_the_baseline_denies_is_refused() {
    let base = moby_default();
    assert_eq!(looser(&allow(r#""read","write","openat""#), &base), []);
    assert_eq!(looser(&allow(r#""read","mount""#), &base), [("x86_64".into(), "mount".into(), Reason::BaselineDenies)]);
}

#[test]
fn argument_conditions_are_compared() {
    let base = moby_default();
    // Docker's default allows clone only without namespace flags
    // (args[0] & 0x7e020000 == 0).
    assert_eq!(
        looser(&allow(r#""clone""#), &base),
        [("x86_64".into(), "clone".into(), Reason::BaselineOnlyWithConditions)]
    );
    let clone = |cond: &str| {
        format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{cond}]}}]}}"#
        )
    };
    // Stricter than the baseline's condition: within.
    let stricter = clone(r#"{"index":0,"value":2114060544,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}"#);
    assert_eq!(looser(&stricter, &base), []);
    // CLONE_NEWNS alone: a namespace flag the baseline refuses.
    let newns = clone(r#"{"index":0,"value":131072,"op":"SCMP_CMP_EQ"}"#);
    let got = looser(&newns, &base);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, Reason::ConditionsBeyondBaseline { when: vec!["args[0] == 0x20000".into()] });
}

#[test]
fn every_abi_the_profile_accepts_is_compared() {
    let base = model::parse(&allow(r#""read""#), "baseline.json").expect("baseline");
    let both = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                   "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#;
    // The baseline lists no i386: its filter kills i386 calls.
    assert_eq!(looser(both, &base), [("i386".into(), "read".into(), Reason::BaselineDenies)]);
}

#[test]
fn a_deny_list_baseline_and_a_permissive_default() {
    let base = model::parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
              {"names":["chmod"],"action":"SCMP_ACT_ERRNO"},
              {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
        "baseline.json",
    )
    .expect("baseline");
    assert_eq!(
        looser(&allow(r#""fchmod","personality""#), &base),
        [("x86_64".into(), "personality".into(), Reason::BaselineOnlyWithConditions)]
    );
    let personality_zero = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
          {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#;
    assert_eq!(looser(personality_zero, &base), []);
    let got = looser(&allow(r#""chmod""#), &base);
    assert_eq!(got, [("x86_64".into(), "chmod".into(), Reason::BaselineDenies)]);
    // A permissive default is looser than a denying one, names or not.
    let strict = model::parse(&allow(r#""read""#), "baseline.json").expect("baseline");
    let got = looser(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#, &strict);
    assert_eq!(got[0], ("x86_64".into(), "(default)".into(), Reason::DefaultAction));
    assert!(got.iter().any(|l| l.1 == "mount"));
    assert!(!got.iter().any(|l| l.1 == "read"));
}

#[test]
fn limits_runtimes_enforce_on_pulled_profiles() {
    let codes = |text: &str| {
        let report = check_within(text, "pulled.json", &moby_default(), &opts()).expect("parses");
        report.limits.iter().map(|l| l.code).collect::<Vec<_>>()
    };
    assert_eq!(codes(&allow(r#""read""#)), Vec::<&str>::new());
    let notify = r#"{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/run/agent.sock",
                     "flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                     "syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#;
    assert_eq!(codes(notify), ["notify", "listener", "listener"]);
    // An errno past the kernel's largest is refused when the file is read.
    let errno = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":5000}"#;
    let e = check_within(errno, "pulled.json", &moby_default(), &opts()).expect_err("errno 5000");
    assert!(e.to_string().contains("4095"), "{e}");
    let many: Vec<String> = (0..129)
        .map(|i| format!(r#"{{"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{{"index":1,"value":{i},"op":"SCMP_CMP_EQ"}}]}}"#))
        .collect();
    let text = format!(r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{}]}}"#, many.join(","));
    assert_eq!(codes(&text), ["entries_per_syscall"]);
    let padded = format!("{}{}", allow(r#""read""#), " ".repeat(MAX_ARTIFACT_BYTES_FOR_TEST));
    assert_eq!(codes(&padded), ["size"]);
}

const MAX_ARTIFACT_BYTES_FOR_TEST: usize = limits::MAX_ARTIFACT_BYTES;

#[test]
fn bad_input_names_the_file() {
    let e = check_within("{\"defaultAction\": 3}", "oci://127.0.0.1:5000/p:sha256-ab", &moby_default(), &opts())
        .expect_err("not a profile");
    assert!(e.to_string().contains("oci://127.0.0.1:5000/p:sha256-ab"), "{e}");
}
