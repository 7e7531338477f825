//! The state directory's files, read back at start: one
//! `containers/<id>.json` per container (`ContainerRecord`) and
//! `enforce.json` (the enforcement rules). A file can be torn by a crash,
//! damaged on disk or edited by hand. What the agent does with a record it
//! loaded (totals, `profile show`, `ps`, the workload key, rules matched against
//! it) is run on whatever parses, and a record must save and load again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::agent::{identity_view, model::ContainerRecord};
use observer_contract::{pod::Workload, rules::EnforceRule};

fuzz_target!(|data: &[u8]| {
    // store.rs `load_all` and agent `load_enforcements`: serde_json::from_slice.
    let record = serde_json::from_slice::<ContainerRecord>(data).ok();
    if let Some(r) = &record {
        let _ = r.totals();
        let _ = (r.calls(), r.denied());
        let _ = r.profile();
        let _ = r.own_rows();
        let _ = identity_view::workload_key(r);
        if let Some(pod) = &r.pod {
            let _ = Workload::of_pod(&pod.name, &pod.labels);
        }
        let saved = serde_json::to_vec_pretty(r).expect("a record serializes");
        if let Err(e) = serde_json::from_slice::<ContainerRecord>(&saved) {
            panic!("a saved record does not load again: {e}\n{}", String::from_utf8_lossy(&saved));
        }
    }
    match serde_json::from_slice::<Vec<EnforceRule>>(data) {
        Ok(rules) => {
            for rule in &rules {
                if let Some(r) = &record {
                    let _ = rule.target.matches(&r.subject());
                }
            }
            let saved = serde_json::to_vec(&rules).expect("rules serialize");
            serde_json::from_slice::<Vec<EnforceRule>>(&saved).expect("saved rules load again");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = e.to_string();
    }
});
