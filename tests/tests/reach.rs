//! `observer reach` on every kind of target, with real Docker: the local
//! busybox image (exported), the same image as a running container
//! (`pid:PID` and by name), a directory, one ELF file; the image's result
//! cached by its id; a target that is none of these.

use std::time::{Duration, Instant};

use observer_tests::{
    docker::{self, Cleanup, docker},
    observer, require_root,
    scratch::Dir,
};
use serde_json::Value;

fn reach(dir: &Dir, target: &str, extra: &[&str]) -> Value {
    let cache = dir.file("cache");
    let mut args = vec!["reach", target, "--json", "--cache-dir", cache.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let out = observer(&args);
    assert!(out.status.success(), "observer reach {target}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn names(v: &Value, abi: &str) -> Vec<String> {
    v["abis"][abi].as_array().into_iter().flatten().filter_map(|s| s["name"].as_str().map(str::to_owned)).collect()
}

#[test]
fn every_kind_of_target() {
    require_root();
    docker::require_docker();
    let dir = Dir::new("reach", "targets");

    // The image, exported: busybox's applets are in one static binary.
    let started = Instant::now();
    let image = reach(&dir, docker::IMAGE, &[]);
    let cold = started.elapsed();
    let x86 = names(&image, "x86_64");
    for call in ["execve", "getppid", "reboot", "mount", "chroot"] {
        assert!(x86.contains(&call.to_owned()), "{call} not reachable in {}: {x86:?}", docker::IMAGE);
    }
    assert_eq!(image["executables"], 1, "{image}");
    let dd = &image["docker_default"][0];
    assert_eq!(dd["abi"], "x86_64");
    assert!(dd["reachable_but_denied"].as_array().is_some_and(|d| d.iter().any(|n| n == "reboot")), "{dd}");

    // Unchanged: answered from the image id's cache, without an export.
    let started = Instant::now();
    let again = reach(&dir, docker::IMAGE, &[]);
    let cached = started.elapsed();
    assert_eq!(names(&again, "x86_64"), x86);
    assert!(cached < Duration::from_secs(1), "the cached run took {cached:?} (cold {cold:?})");

    // A running container: its root as mounted, by pid and by name.
    let mut cleanup = Cleanup(Vec::new());
    let name = docker::name("reach");
    cleanup.0.push(name.clone());
    let run = docker::run(&["-d", "--name", &name], &["sleep", "60"]);
    assert!(run.status.success(), "docker run: {}", String::from_utf8_lossy(&run.stderr));
    let pid = String::from_utf8_lossy(&docker(&["inspect", "-f", "{{.State.Pid}}", &name]).stdout).trim().to_owned();
    let by_pid = reach(&dir, &format!("pid:{pid}"), &[]);
    assert_eq!(names(&by_pid, "x86_64"), x86, "the running container's root holds the same binary");
    let by_name = reach(&dir, &name, &[]);
    assert_eq!(names(&by_name, "x86_64"), x86);

    // A directory, and one ELF file with its libraries from this machine.
    let root = format!("/proc/{pid}/root");
    let as_dir = reach(&dir, &root, &["--entry", "/bin/busybox"]);
    assert_eq!(names(&as_dir, "x86_64"), x86);
    let file = reach(&dir, "/bin/true", &[]);
    let true_names = names(&file, "x86_64");
    assert!(true_names.contains(&"exit_group".to_owned()) && !true_names.contains(&"reboot".to_owned()));

    // None of these: a clear error, exit 1.
    let bad = observer(&["reach", "no-such-image-or-dir-xyz", "--no-cache"]);
    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("no-such-image-or-dir-xyz"), "{said}");
    eprintln!("observer reach {}: cold {cold:?}, cached {cached:?}, {} x86_64 names", docker::IMAGE, x86.len());
}
