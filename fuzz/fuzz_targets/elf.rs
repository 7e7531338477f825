//! ELF files as an image holds them: anything a container image's author
//! put there, so outside input. Parsed (`object`), every code section
//! decoded (`iced-x86`) into functions, syscall sites and wrappers
//! (`observer_reach::decode::analyse`, within its work bound), the facts
//! round-tripped through the cache's JSON, and the file's reachability walked
//! from its entry point and exports, as `observer reach` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer_reach::{
    decode,
    facts::FileFacts,
    graph::{Node, Walk},
};

fuzz_target!(|data: &[u8]| {
    let facts = decode::analyse(data);
    let json = serde_json::to_vec(&facts).expect("facts encode");
    let back: FileFacts = serde_json::from_slice(&json).expect("facts decode");
    assert_eq!(back.functions.len(), facts.functions.len());
    let objects = [&facts];
    let scope = [0usize];
    let mut roots: Vec<Node> = facts.entry.iter().map(|f| (0, *f)).collect();
    roots.extend(facts.exports.values().flatten().map(|f| (0, *f)));
    let reach = Walk::new(&objects, &scope, None).run(&roots);
    // Every reported site is a function of the file (or the file itself).
    for nodes in reach.syscalls.values() {
        for (o, f) in nodes {
            assert_eq!(*o, 0);
            assert!(*f == observer_reach::graph::OBJECT || (*f as usize) < facts.functions.len());
        }
    }
});
