//! What a runtime refuses in a seccomp profile it pulls as an OCI artifact
//! (KEP-6061): bounds on size and rule counts, and settings an artifact may
//! not carry. Values from KEP-6061 ("Profile size limits", "Profile
//! Merging": keps/sig-node/6061-oci-artifact-security-profiles in
//! kubernetes/enhancements) and the merge library the runtimes call,
//! kubernetes-sigs/security-profiles-merger (`ValidateArtifact`, its
//! README's "Limits" table); docs/arch.md cites both.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{intersect::tests_an_argument_twice, model::Profile, types::Action};

/// Largest artifact a runtime accepts (KEP-6061: CRI-O's default and the
/// CRI's recommended one).
pub const MAX_ARTIFACT_BYTES: usize = 1 << 20;
/// `MaxArtifactEntriesPerSyscall`: entries naming one syscall.
pub const MAX_ENTRIES_PER_SYSCALL: usize = 128;
/// `MaxArtifactClausesPerSyscall`: rules one syscall loads.
pub const MAX_CLAUSES_PER_SYSCALL: usize = 256;
/// `MaxArtifactNamesPerEntry`: names one entry lists.
pub const MAX_NAMES_PER_ENTRY: usize = 1024;
/// `MaxArtifactClauses`: rules the whole profile loads.
pub const MAX_CLAUSES: usize = 16384;

/// One limit the profile goes past; a runtime would refuse the artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// Short stable name (`size`, `entries_per_syscall`, `notify`...).
    pub code: &'static str,
    pub message: String,
}

/// The limits `profile` (read from `text`) goes past.
pub fn limits(text: &str, profile: &Profile) -> Vec<Limit> {
    let mut out = Vec::new();
    let mut push = |code, message: String| out.push(Limit { code, message });
    if text.len() > MAX_ARTIFACT_BYTES {
        push(
            "size",
            format!("{} bytes: runtimes refuse profile artifacts above {MAX_ARTIFACT_BYTES} bytes (1 MiB)", text.len()),
        );
    }
    let mut entries: BTreeMap<&str, usize> = BTreeMap::new();
    let mut clauses: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, rule) in profile.rules.iter().enumerate() {
        if rule.names.len() > MAX_NAMES_PER_ENTRY {
            push(
                "names_per_entry",
                format!("rule {i} lists {} names; runtimes accept at most {MAX_NAMES_PER_ENTRY}", rule.names.len()),
            );
        }
        // Counted as runtimes load them: none for a rule equal to the
        // default, one per condition when an argument is tested twice (runc
        // adds each as a rule), else one.
        let loads = if rule.action == profile.default_action {
            0
        } else if tests_an_argument_twice(&rule.args) {
            rule.args.len()
        } else {
            1
        };
        for name in &rule.names {
            *entries.entry(name).or_default() += 1;
            *clauses.entry(name).or_default() += loads;
        }
    }
    for (name, n) in &entries {
        if *n > MAX_ENTRIES_PER_SYSCALL {
            push(
                "entries_per_syscall",
                format!("{name} is named by {n} rules; runtimes accept at most {MAX_ENTRIES_PER_SYSCALL}"),
            );
        }
    }
    for (name, n) in &clauses {
        if *n > MAX_CLAUSES_PER_SYSCALL {
            push(
                "clauses_per_syscall",
                format!("{name} loads {n} rules; runtimes accept at most {MAX_CLAUSES_PER_SYSCALL}"),
            );
        }
    }
    let total: usize = clauses.values().sum();
    if total > MAX_CLAUSES {
        push("clauses", format!("the profile loads {total} rules; runtimes accept at most {MAX_CLAUSES}"));
    }
    let actions = std::iter::once(("the default action".to_owned(), profile.default_action))
        .chain(profile.rules.iter().enumerate().map(|(i, r)| (format!("rule {i} ({})", r.names.join(", ")), r.action)));
    for (what, _) in actions.filter(|(_, a)| *a == Action::UserNotif) {
        push(
            "notify",
            format!(
                "{what}: SCMP_ACT_NOTIFY needs a listener, which a pulled profile cannot bring: runtimes refuse it"
            ),
        );
    }
    if profile.flags.iter().any(|f| f == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") {
        push(
            "listener",
            "flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV belongs to the node's listener: runtimes refuse it in a pulled profile".into(),
        );
    }
    for key in listener_keys(text) {
        push("listener", format!("{key} names a node-local listener: runtimes refuse it in a pulled profile"));
    }
    out
}

/// `listenerPath` / `listenerMetadata` in the seccomp object (a bare
/// profile, an OCI `config.json`'s `linux.seccomp`, or an SPO `spec`). The
/// profile model leaves them out (observer never applies them), so they
/// are looked for in the text.
fn listener_keys(text: &str) -> Vec<&'static str> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(v) => serde_json::to_value(v).unwrap_or_default(),
            Err(_) => return Vec::new(),
        },
    };
    let objects = [&value, &value["linux"]["seccomp"], &value["spec"]];
    ["listenerPath", "listenerMetadata"]
        .into_iter()
        .filter(|k| objects.iter().any(|o| o.get(k).is_some_and(|v| !v.is_null())))
        .collect()
}
