//! Profiles as a user (or a registry) hands them over: Docker/moby old and
//! current format, an OCI `linux.seccomp` object or `config.json`, a Security
//! Profiles Operator `SeccompProfile`, in JSON or YAML. Whatever parses is
//! resolved, checked, diffed and merged with itself, and exported in every
//! format; an exported profile must read back to the same resolved profile.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer_profile::{
    check::check,
    diff::diff,
    export::ExportedProfile,
    merge::{MergeInput, merge},
    model,
    resolve::ResolveOptions,
    types::Action,
};

fuzz_target!(|data: &[u8]| {
    // `model::load` refuses text that is not UTF-8 before parsing.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let profile = match model::parse(text, "fuzz.json") {
        Ok(p) => p,
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with("fuzz.json"), "an error that does not name its input: {shown}");
            return;
        }
    };
    let opts = ResolveOptions::docker_default_for_kernel((6, 1));
    let resolved = profile.resolve(&opts);
    let report = check(&resolved);
    let _ = report.has_errors();
    assert!(diff(&resolved, &resolved).is_empty(), "a profile differs from itself");
    let merged = merge(&[
        MergeInput { source: "a".into(), profile: resolved.clone() },
        MergeInput { source: "b".into(), profile: resolved.clone() },
    ]);
    let _ = merged.to_docker_json();

    let out = ExportedProfile::from_resolved(resolved.clone());
    // A SeccompProfile has no `defaultErrnoRet`: its errno default is EPERM
    // whatever the source said (documented in `to_spo_yaml`).
    let mut as_spo = resolved.clone();
    if let Action::Errno(_) = as_spo.default_action {
        as_spo.default_action = Action::Errno(1);
    }
    for (what, exported, expected) in [
        ("docker", out.to_docker_json(), &resolved),
        ("oci", out.to_oci_json(), &resolved),
        ("spo", out.to_spo_yaml("fuzz", "fuzz"), &as_spo),
    ] {
        let back = model::parse(&exported, what)
            .unwrap_or_else(|e| panic!("the exported {what} profile does not read back: {e}\n{}", cut(&exported)));
        let again = back.resolve(&opts);
        let changes = diff(expected, &again);
        assert!(
            changes.is_empty(),
            "the exported {what} profile reads back as another profile: {}\n{}",
            cut(&format!("{changes:?}")),
            cut(&exported)
        );
    }
});

/// The start of a long text, for a readable panic message.
fn cut(text: &str) -> &str {
    let end = text.char_indices().nth(2000).map_or(text.len(), |(i, _)| i);
    &text[..end]
}
