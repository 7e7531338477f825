//! What the tests on real software share (tests/tests/realsoft.rs,
//! args_roundtrip.rs, reach_pairs.rs): the image observer-realsoft (built by
//! xtask/scripts/realsoft-image.sh), reading a phase from a profile, and
//! exporting the profile an agent learned.

use std::path::Path;

use serde_json::Value;

use crate::{
    agent::{TestAgent, rows},
    scratch::text,
};

pub const IMAGE: &str = "observer-realsoft:latest";
/// The image's `observer.realsoft` label these tests were written against (the
/// stamp in xtask/scripts/realsoft-image.sh).
pub const STAMP: &str = "1";

/// Whether any of `names` was called (x86_64) in the container's own phase.
pub fn in_container_phase(profile: &Value, names: &[&str]) -> bool {
    rows(profile).iter().any(|(n, abi, phases, calls, _)| {
        names.contains(&n.as_str()) && abi == "x86_64" && *calls > 0 && phases.iter().any(|p| p == "container")
    })
}

/// `observer profile export N --format docker -o FILE [extra]`: the profile, and
/// what export said on stderr.
pub fn export_docker(agent: &TestAgent, n: &str, file: &Path, extra: &[&str]) -> (Value, String) {
    let mut args = vec!["profile", "export", n, "--format", "docker", "-o", text(file)];
    args.extend_from_slice(extra);
    let o = agent.cli(&args);
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "export {extra:?} of {n} failed ({:?}): {said}\nagent: {}",
        o.status.code(),
        agent.stderr()
    );
    let body = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let profile =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{} is not JSON ({e}): {body}", file.display()));
    (profile, said)
}
