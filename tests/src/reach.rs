//! Soundness of `observer reach` against what really ran: every syscall a
//! container made in its own phase must be in its image's reachable set, in
//! the same ABI. The image's set is computed once per image id (cached by
//! `observer reach` in a directory shared by the tests).

use std::{collections::HashMap, sync::Mutex};

use serde_json::Value;

use crate::{agent::rows, observer};

static SETS: Mutex<Option<HashMap<String, Value>>> = Mutex::new(None);

/// `observer reach IMAGE --json`, once per image per test process.
pub fn reachable(image: &str) -> Value {
    let mut sets = SETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let sets = sets.get_or_insert_with(HashMap::new);
    if let Some(v) = sets.get(image) {
        return v.clone();
    }
    let cache = std::env::temp_dir().join("observer-tests-reach-cache");
    let out = observer(&["reach", image, "--json", "--cache-dir", cache.to_str().expect("utf-8 temp dir")]);
    assert!(out.status.success(), "observer reach {image} failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("observer reach --json prints JSON");
    sets.insert(image.to_owned(), v.clone());
    v
}

/// The syscalls of `profile` (an agent's `profile show --json`) seen in
/// the container's own phase that `image`'s binaries cannot reach, each
/// named with its ABI and the command that made it. Empty when sound.
pub fn unreachable_observed(profile: &Value, image: &str) -> Vec<String> {
    let reach = reachable(image);
    let names = |abi: &str| -> Vec<String> {
        reach["abis"][abi]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    };
    let by_abi: HashMap<&str, Vec<String>> = [("x86_64", names("x86_64")), ("i386", names("i386"))].into();
    let comms: HashMap<(String, String), String> = profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let key = (r["name"].as_str().unwrap_or("").to_owned(), r["abi"].as_str().unwrap_or("").to_owned());
            (key, r["comm"].as_str().unwrap_or("?").to_owned())
        })
        .collect();
    rows(profile)
        .into_iter()
        .filter(|(_, _, phases, calls, _)| *calls > 0 && phases.iter().any(|p| p == "container"))
        .filter(|(name, abi, ..)| !by_abi.get(abi.as_str()).is_some_and(|set| set.contains(name)))
        .map(|(name, abi, ..)| {
            let comm = comms.get(&(name.clone(), abi.clone())).cloned().unwrap_or_default();
            format!("{name} ({abi}) made by {comm} is not reachable from {image}'s binaries")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check can fail: a call busybox cannot make (kexec_load, bpf) in
    /// the container's phase is named; one it makes (getppid) or one seen
    /// only in the runtime's init (bpf there) is not.
    #[test]
    fn a_call_the_image_cannot_make_is_named() {
        let row = |name: &str, phase: &str| serde_json::json!({"name": name, "abi": "x86_64", "phases": [phase], "calls": 1, "denied": 0, "comm": "sh"});
        let profile = serde_json::json!({"syscalls": [
            row("getppid", "container"),
            row("kexec_load", "container"),
            row("bpf", "init_after_filter"),
        ]});
        let found = unreachable_observed(&profile, crate::docker::IMAGE);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("kexec_load (x86_64) made by sh"), "{found:?}");
    }
}
