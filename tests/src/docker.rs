//! Real Docker containers for tests: the local busybox image, no network.

use std::process::{Command, Output};

use crate::unique;

pub const IMAGE: &str = "observer-busybox:latest";

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("the docker CLI is needed (cargo xtask test installs Docker)")
}

/// `docker run --rm --network none` (detached or not); panics with dockerd's message when it cannot start.
pub fn run(extra: &[&str], cmd: &[&str]) -> Output {
    let mut args = vec!["run", "--network", "none"];
    args.extend_from_slice(extra);
    args.push(IMAGE);
    args.extend_from_slice(cmd);
    docker(&args)
}

pub fn name(prefix: &str) -> String {
    format!("obs-{prefix}-{}", unique() % 1_000_000_000)
}

/// Removes the named containers when dropped (also when a test fails).
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = docker(&["rm", "-f", n]);
        }
    }
}

pub fn require_docker() {
    let o = Command::new("docker").args(["image", "inspect", IMAGE]).output();
    match o {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "Docker or the image {IMAGE} is missing (cargo xtask test sets both up): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("the docker CLI is missing (cargo xtask test installs it): {e}"),
    }
}

pub fn profile_path(rel: &str) -> String {
    format!("{}/../profiles/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// Docker's current default profile without `names`, written to a temporary file.
pub fn moby_default_without(names: &[&str]) -> std::path::PathBuf {
    let moby = std::fs::read_to_string(profile_path("moby/default.json")).expect("profiles/moby/default.json");
    let mut p: serde_json::Value = serde_json::from_str(&moby).expect("JSON");
    for rule in p["syscalls"].as_array_mut().expect("syscalls") {
        if let Some(list) = rule["names"].as_array_mut() {
            list.retain(|n| !names.iter().any(|x| n == x));
        }
    }
    let file = std::env::temp_dir().join(format!("observer-moby-without-{}-{}.json", names.join("-"), unique()));
    std::fs::write(&file, p.to_string()).expect("write profile");
    file
}
