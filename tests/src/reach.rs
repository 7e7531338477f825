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
