//! `observer profile export|merge|diff|check` end to end: profiles learned by a
//! real agent from real Docker containers (busybox, --network none), under runc
//! and under crun, replayed with `docker run --security-opt seccomp=FILE`; as root.

use std::{collections::BTreeSet, path::Path, process::Output};

use observer_tests::{
    agent::{TestAgent, rows},
    docker::{Cleanup, name, profile_path, require_docker, run},
    observer, require_root,
    scratch::{Dir, text},
};
use serde_json::Value;

/// A workload as a `sh -c` script, what shows the agent saw its work, what to take
/// out of its exported profile to break it, and what its output must contain.
struct Workload {
    label: &'static str,
    script: &'static str,
    /// The profile has one of these in the container phase once the work was done.
    key: &'static [&'static str],
    /// Removed from the exported profile (those present; at least one must be).
    remove: &'static [&'static str],
    expect: &'static str,
    /// `ls -l` prints times (of /dev, /proc, /etc: they change per container).
    listing: bool,
}

const WHOAMI: Workload = Workload {
    label: "whoami",
    script: "whoami",
    key: &["geteuid"],
    remove: &["geteuid"],
    expect: "root",
    listing: false,
};
const LS: Workload = Workload {
    label: "ls",
    script: "ls -l /",
    key: &["getdents64"],
    remove: &["newfstatat"],
    expect: " bin",
    listing: true,
};
const CHMOD: Workload = Workload {
    label: "chmod",
    script: "touch /tmp/f && chmod 600 /tmp/f && stat -c %a /tmp/f",
    key: &["chmod", "fchmodat"],
    remove: &["chmod", "fchmodat", "fchmodat2"],
    expect: "600",
    listing: false,
};
const PIPELINE: Workload = Workload {
    label: "pipeline",
    script: "cat /etc/passwd | grep root | wc -l",
    key: &["pipe", "pipe2"],
    remove: &["pipe", "pipe2"],
    expect: "1",
    listing: false,
};
// httpd binds before it daemonizes, so the wget after `&&` finds it listening.
const SERVER: Workload = Workload {
    label: "server",
    script: "httpd -p 127.0.0.1:8080 -h /etc && wget -qO- http://127.0.0.1:8080/group",
    key: &["accept", "accept4"],
    remove: &["connect"],
    expect: "root:x:0:",
    listing: false,
};

/// The script as run in every container: its exit code kept, the container kept a moment.
fn wrapped(script: &str) -> String {
    format!("{script}; rc=$?; sleep 1; exit $rc")
}

/// Exit code and stdout (for a listing: mode, owner, group and name of each entry).
fn outcome(o: &Output, listing: bool) -> (i32, String) {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let out = if listing {
        out.lines()
            .filter(|l| !l.starts_with("total "))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() < 9 { l.to_owned() } else { format!("{} {} {} {}", f[0], f[2], f[3], f[8..].join(" ")) }
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        out
    };
    (o.status.code().unwrap_or(-1), out)
}

fn in_container_phase(profile: &Value, names: &[&str]) -> bool {
    rows(profile).iter().any(|(n, abi, phases, calls, _)| {
        names.contains(&n.as_str()) && abi == "x86_64" && *calls > 0 && phases.iter().any(|p| p == "container")
    })
}

/// The agent's profile of an ended container, once it has the workload's key syscall
/// and the closing sleep (`profile show` fails until the agent knows the name).
fn learned_profile(agent: &TestAgent, n: &str, key: &[&str]) -> Value {
    agent.wait_for(&format!("{n}: ended, with {key:?} and the closing sleep"), || {
        let c = agent.container(n)?;
        if c["state"] != "exited" {
            return None;
        }
        let o = agent.cli(&["profile", "show", n, "--json"]);
        let p: Value = serde_json::from_slice(&o.stdout).ok()?;
        (in_container_phase(&p, key) && in_container_phase(&p, &["nanosleep", "clock_nanosleep"])).then_some(p)
    })
}

/// Runs `w` under `runtime` while the agent learns; returns the container's name and outcome.
fn learn(agent: &TestAgent, cleanup: &mut Cleanup, runtime: &str, w: &Workload) -> (String, (i32, String)) {
    let n = name(w.label);
    cleanup.0.push(n.clone());
    let o = run(&["--runtime", runtime, "--name", &n], &["sh", "-c", &wrapped(w.script)]);
    let seen = outcome(&o, w.listing);
    assert_eq!(
        seen.0,
        0,
        "{} under {runtime} without observer's profile: {}",
        w.label,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(seen.1.contains(w.expect), "{}: {:?} does not contain {:?}", w.label, seen.1, w.expect);
    learned_profile(agent, &n, w.key);
    (n, seen)
}

/// `observer profile export N --format docker -o FILE`; returns the profile.
fn export(agent: &TestAgent, n: &str, file: &Path) -> Value {
    let o = agent.cli(&["profile", "export", n, "--format", "docker", "-o", text(file)]);
    assert!(
        o.status.success(),
        "export of {n} failed ({:?}): {}\nagent: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr),
        agent.stderr()
    );
    let body = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{} is not JSON ({e}): {body}", file.display()))
}

/// `docker run --rm --network none --runtime R --security-opt seccomp=FILE` of the workload.
fn replay(runtime: &str, profile: &Path, script: &str, extra: &[&str]) -> Output {
    let opt = format!("seccomp={}", text(profile));
    let mut args = vec!["--rm", "--runtime", runtime, "--security-opt", &opt];
    args.extend_from_slice(extra);
    run(&args, &["sh", "-c", &wrapped(script)])
}

/// Distinct syscall names across the SCMP_ACT_ALLOW rules of a Docker profile.
fn allowed(profile: &Value) -> BTreeSet<String> {
    profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| {
            let names = r["names"].as_array().cloned().unwrap_or_default();
            names.into_iter().chain(r.get("name").cloned()).filter_map(|n| n.as_str().map(str::to_owned))
        })
        .collect()
}

/// What Docker's default allows an x86_64 container with Docker's default capabilities.
fn moby_allowed_here(moby: &Value) -> BTreeSet<String> {
    // Docker's default capability set, as observer-profile's resolver knows it.
    const CAPS: &[&str] = observer_profile::resolve::DOCKER_DEFAULT_CAPS;
    let list = |v: &Value, k: &str| -> Vec<String> {
        v[k].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
    };
    let applies = |r: &Value| {
        let (inc, exc) = (&r["includes"], &r["excludes"]);
        let arches_in = list(inc, "arches");
        (arches_in.is_empty() || arches_in.iter().any(|a| a == "amd64"))
            && list(inc, "caps").iter().all(|c| CAPS.contains(&c.as_str()))
            && !list(exc, "arches").iter().any(|a| a == "amd64")
            && !list(exc, "caps").iter().any(|c| CAPS.contains(&c.as_str()))
    };
    let rules: Vec<Value> = moby["syscalls"].as_array().into_iter().flatten().filter(|r| applies(r)).cloned().collect();
    allowed(&serde_json::json!({ "syscalls": rules }))
}

fn moby_default() -> Value {
    let text = std::fs::read_to_string(profile_path("moby/default.json")).expect("profiles/moby/default.json");
    serde_json::from_str(&text).expect("moby default is JSON")
}

/// The profile without `names` (rules left empty are dropped); returns the names it had.
fn without(profile: &Value, names: &[&str]) -> (Value, Vec<String>) {
    let mut p = profile.clone();
    let mut removed = Vec::new();
    let rules = p["syscalls"].as_array_mut().expect("syscalls");
    for r in rules.iter_mut() {
        if let Some(list) = r["names"].as_array_mut() {
            list.retain(|n| {
                let drop = n.as_str().is_some_and(|s| names.contains(&s));
                if drop {
                    removed.push(n.as_str().unwrap_or_default().to_owned());
                }
                !drop
            });
        }
    }
    rules.retain(|r| r["names"].as_array().is_none_or(|l| !l.is_empty()));
    (p, removed)
}

fn write_json(file: &Path, v: &Value) {
    std::fs::write(file, serde_json::to_string_pretty(v).expect("JSON")).expect("write profile");
}

fn round_trip(runtime: &str) {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let dir = Dir::new("export", runtime);
    let mut cleanup = Cleanup(Vec::new());
    let moby = moby_default();
    let (moby_all, moby_here) = (allowed(&moby).len(), moby_allowed_here(&moby).len());
    for w in [&WHOAMI, &LS, &CHMOD, &PIPELINE, &SERVER] {
        let (n, learned) = learn(&agent, &mut cleanup, runtime, w);
        let file = dir.file(&format!("{}.json", w.label));
        let profile = export(&agent, &n, &file);
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO", "{}: {profile}", w.label);
        let o = observer(&["profile", "check", text(&file), "--json"]);
        assert_eq!(o.status.code(), Some(0), "check of {}: {}", w.label, String::from_utf8_lossy(&o.stdout));

        let o = replay(runtime, &file, w.script, &[]);
        assert_eq!(
            outcome(&o, w.listing),
            learned,
            "{} under {runtime} with its exported profile: {}\nprofile: {profile}",
            w.label,
            String::from_utf8_lossy(&o.stderr)
        );

        let (broken, removed) = without(&profile, w.remove);
        assert!(!removed.is_empty(), "{}: none of {:?} is in the exported profile: {profile}", w.label, w.remove);
        let broken_file = dir.file(&format!("{}-without.json", w.label));
        write_json(&broken_file, &broken);
        // observer's own view of the two files agrees: only the removed names differ.
        let o = observer(&["profile", "diff", text(&file), text(&broken_file), "--json"]);
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
        let d = json_of(&o);
        let x86_64 = d["abis"].as_array().into_iter().flatten().find(|a| a["arch"] == "x86_64");
        let gone = x86_64.map(|a| strings(&a["removed"])).unwrap_or_default();
        assert_eq!(gone, removed.iter().cloned().collect(), "{d}");
        let o = replay(runtime, &broken_file, w.script, &[]);
        let now = outcome(&o, w.listing);
        assert_ne!(now, learned, "{} still works under {runtime} without {removed:?}: not enforced?", w.label);
        let err = String::from_utf8_lossy(&o.stderr);
        eprintln!(
            "{runtime} {:<8}: exported profile allows {:>3} syscalls, Docker's default {moby_all} ({moby_here} for x86_64 \
             with its default caps); without {removed:?}: exit {} ({})",
            w.label,
            allowed(&profile).len(),
            now.0,
            err.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim()
        );
    }
}

#[test]
fn runc_exported_profiles_round_trip() {
    round_trip("runc");
}

#[test]
fn crun_exported_profiles_round_trip() {
    round_trip("crun");
}

/// A static x86_64 program: clone(CLONE_NEWUSER | SIGCHLD); exit 1 when it fails,
/// else 0 (parent and child). No libraries, so it runs in the busybox image.
fn clone_newuser_elf() -> Vec<u8> {
    let code: &[u8] = &[
        0xb8, 0x38, 0, 0, 0, // mov eax, 56 (clone)
        0xbf, 0x11, 0, 0, 0x10, // mov edi, CLONE_NEWUSER | SIGCHLD
        0x31, 0xf6, // xor esi, esi
        0x31, 0xd2, // xor edx, edx
        0x45, 0x31, 0xd2, // xor r10d, r10d
        0x45, 0x31, 0xc0, // xor r8d, r8d
        0x0f, 0x05, // syscall
        0x31, 0xff, // xor edi, edi
        0x48, 0x85, 0xc0, // test rax, rax
        0x79, 0x05, // jns +5
        0xbf, 0x01, 0, 0, 0, // mov edi, 1
        0xb8, 0xe7, 0, 0, 0, // mov eax, 231 (exit_group)
        0x0f, 0x05, // syscall
    ];
    let base: u64 = 0x40_0000;
    let total = (64 + 56 + code.len()) as u64;
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(base + 120).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&v.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R X
    for v in [0u64, base, base, total, total, 0x1000] {
        elf.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(elf.len(), 120);
    elf.extend_from_slice(code);
    elf
}

#[test]
fn clone_conditions_survive_export() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let dir = Dir::new("export", "clone");
    let mut cleanup = Cleanup(Vec::new());
    let forks = Workload {
        label: "forks",
        script: "ls / | cat",
        key: &["pipe", "pipe2"],
        remove: &[],
        expect: "bin",
        listing: false,
    };
    let (n, learned) = learn(&agent, &mut cleanup, "runc", &forks);
    let file = dir.file("forks.json");
    let profile = export(&agent, &n, &file);

    // moby's namespace-flags condition on clone is kept: arg 0 masked with the namespace flags is 0.
    let clone_rules: Vec<&Value> = profile["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|r| r["names"].as_array().is_some_and(|l| l.iter().any(|n| n == "clone")))
        .collect();
    assert!(!clone_rules.is_empty(), "no clone rule: {profile}");
    for r in &clone_rules {
        assert_eq!(r["action"], "SCMP_ACT_ALLOW", "{r}");
        let args =
            r["args"].as_array().filter(|a| !a.is_empty()).unwrap_or_else(|| panic!("clone allowed with no args: {r}"));
        assert!(
            args.iter().any(|a| a["index"] == 0 && a["op"] == "SCMP_CMP_MASKED_EQ" && a["value"] == 0x7E02_0000_u64),
            "clone's namespace-flags condition is lost: {r}"
        );
    }
    assert!(!allowed(&profile).contains("unshare"), "the container never called unshare: {profile}");
    // With docker-labs' default as the base, whose clone mask (0x7C020000) lacks
    // CLONE_NEWCGROUP, the export still carries Docker's mask: a base only narrows.
    let based_file = dir.file("forks-labs-base.json");
    let o = agent.cli(&[
        "profile",
        "export",
        &n,
        "--format",
        "docker",
        "--base",
        &profile_path("docker-labs/default.json"),
        "-o",
        text(&based_file),
    ]);
    assert!(o.status.success(), "export --base: {}", String::from_utf8_lossy(&o.stderr));
    let based: Value = serde_json::from_str(&std::fs::read_to_string(&based_file).expect("based export"))
        .expect("based export is JSON");
    let based_clone: Vec<&Value> = based["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|r| r["names"].as_array().is_some_and(|l| l.iter().any(|n| n == "clone")))
        .collect();
    assert!(!based_clone.is_empty(), "no clone rule with --base: {based}");
    for r in &based_clone {
        let args = r["args"].as_array().unwrap_or_else(|| panic!("clone allowed with no args under --base: {r}"));
        assert!(
            args.iter().all(|a| a["index"] != 0 || (a["op"] == "SCMP_CMP_MASKED_EQ" && a["value"] == 0x7E02_0000_u64)),
            "clone under docker-labs' base is looser than Docker's default (CLONE_NEWCGROUP): {r}"
        );
    }

    let o = replay("runc", &file, forks.script, &[]);
    assert_eq!(outcome(&o, false), learned, "{}", String::from_utf8_lossy(&o.stderr));

    // Namespace attempts in that container: busybox `unshare -U`, and a raw clone(CLONE_NEWUSER).
    let elf = dir.file("clone-newuser");
    std::fs::write(&elf, clone_newuser_elf()).expect("write program");
    std::fs::set_permissions(&elf, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod program");
    let mount = format!("{}:/clone-newuser:ro", text(&elf));
    let script = "ls / | cat > /dev/null; unshare -U true; echo unshare=$?; /clone-newuser; echo clone=$?";
    let attempt = |seccomp: &str| {
        let opt = format!("seccomp={seccomp}");
        let o = run(&["--rm", "--security-opt", &opt, "-v", &mount], &["sh", "-c", script]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Without a filter both work here, so a failure below is the filter's.
    let free = attempt("unconfined");
    assert!(free.contains("unshare=0") && free.contains("clone=0"), "a user namespace without seccomp: {free}");
    let under = attempt(text(&file));
    assert!(under.contains("unshare=1"), "unshare(CLONE_NEWUSER) under the exported profile: {under}");
    assert!(under.contains("clone=1"), "clone(CLONE_NEWUSER) under the exported profile: {under}");
    // And it is the condition that stops clone: without the args, it goes through.
    let mut loose = profile.clone();
    for r in loose["syscalls"].as_array_mut().expect("syscalls") {
        if r["names"].as_array().is_some_and(|l| l.iter().any(|n| n == "clone")) {
            r.as_object_mut().expect("rule").remove("args");
        }
    }
    let loose_file = dir.file("loose.json");
    write_json(&loose_file, &loose);
    let without_condition = attempt(text(&loose_file));
    assert!(without_condition.contains("clone=0"), "clone without its condition: {without_condition}");
}

#[test]
fn merged_profile_runs_both_workloads() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let dir = Dir::new("export", "merge");
    let mut cleanup = Cleanup(Vec::new());
    let (a, learned_a) = learn(&agent, &mut cleanup, "runc", &CHMOD);
    let (b, learned_b) = learn(&agent, &mut cleanup, "runc", &PIPELINE);
    let (fa, fb, merged) = (dir.file("chmod.json"), dir.file("pipeline.json"), dir.file("merged.json"));
    let (pa, pb) = (export(&agent, &a, &fa), export(&agent, &b, &fb));
    // Each alone lacks what the other needs, so the merge has something to do.
    assert!(!allowed(&pb).contains("chmod") && !allowed(&pb).contains("fchmodat"), "{pb}");
    assert!(!allowed(&pa).contains("pipe2") && !allowed(&pa).contains("pipe"), "{pa}");
    let o = replay("runc", &fb, CHMOD.script, &[]);
    assert_ne!(outcome(&o, false), learned_a, "the chmod workload under the pipeline's profile");
    let o = replay("runc", &fa, PIPELINE.script, &[]);
    assert_ne!(outcome(&o, false), learned_b, "the pipeline under the chmod workload's profile");

    let o = observer(&["profile", "merge", text(&fa), text(&fb), "-o", text(&merged)]);
    assert!(o.status.success(), "merge: {}", String::from_utf8_lossy(&o.stderr));
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).expect("merged file")).expect("merged is JSON");
    assert_eq!(m["defaultAction"], "SCMP_ACT_ERRNO", "{m}");
    let all = allowed(&m);
    assert!(allowed(&pa).is_subset(&all) && allowed(&pb).is_subset(&all), "the merge lost names: {m}");
    for (w, learned) in [(&CHMOD, &learned_a), (&PIPELINE, &learned_b)] {
        let o = replay("runc", &merged, w.script, &[]);
        assert_eq!(
            &outcome(&o, false),
            learned,
            "{} under the merged profile: {}",
            w.label,
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    })
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

// Pure file commands: no agent, no containers (root is not needed).
#[test]
fn diff_and_check_on_the_seed_lab_profiles() {
    let (default, no_chmod) =
        (profile_path("docker-labs/default.json"), profile_path("docker-labs/default-no-chmod.json"));
    let o = observer(&["profile", "diff", &default, &no_chmod, "--json"]);
    assert_eq!(o.status.code(), Some(1), "they differ: {}", String::from_utf8_lossy(&o.stderr));
    let d = json_of(&o);
    let abis = d["abis"].as_array().expect("abis");
    let x86_64 = abis.iter().find(|a| a["arch"] == "x86_64").unwrap_or_else(|| panic!("no x86_64 in {d}"));
    let want: BTreeSet<String> = ["chmod", "fchmod", "fchmodat"].map(String::from).into();
    assert_eq!(strings(&x86_64["removed"]), want, "{d}");
    assert!(strings(&x86_64["added"]).is_empty() && strings(&x86_64["changed"]).is_empty(), "{d}");

    let o = observer(&["profile", "diff", &default, &default, "--json"]);
    assert_eq!(o.status.code(), Some(0), "a file and itself: {}", String::from_utf8_lossy(&o.stdout));
    let d = json_of(&o);
    for abi in d["abis"].as_array().expect("abis") {
        for k in ["added", "removed", "changed"] {
            assert!(strings(&abi[k]).is_empty(), "{d}");
        }
    }

    let o = observer(&["profile", "check", &default, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let r = json_of(&o);
    assert!(r["findings"].as_array().expect("findings").iter().all(|f| f["severity"] != "error"), "{r}");

    let dir = Dir::new("export", "check");
    let deny_list = |arches: &[&str]| {
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": arches,
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO"}],
        })
    };
    let hole = dir.file("deny-socket.json");
    write_json(&hole, &deny_list(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]));
    let o = observer(&["profile", "check", text(&hole), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    let r = json_of(&o);
    let f = r["findings"].as_array().expect("findings").iter().find(|f| f["code"] == "32bit-hole").cloned();
    let f = f.unwrap_or_else(|| panic!("no 32bit-hole finding: {r}"));
    assert_eq!(f["severity"], "error", "{f}");
    assert!(strings(&f["names"]).contains("socketcall"), "{f}");
    // x86_64 alone: 32-bit calls are killed by the bad-arch action, so there is no hole.
    let no_hole = dir.file("deny-socket-64.json");
    write_json(&no_hole, &deny_list(&["SCMP_ARCH_X86_64"]));
    let o = observer(&["profile", "check", text(&no_hole), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(!json_of(&o)["findings"].as_array().expect("findings").iter().any(|f| f["code"] == "32bit-hole"));
}

fn clean_error(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{what}: exit status {:?}; stderr: {err}", o.status.code());
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{what} panicked: {err}");
    assert!(err.lines().any(|l| l.starts_with("observer: ")), "{what}: no `observer:` line: {err}");
    err
}

#[test]
fn export_errors_are_clean_and_leave_nothing() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let dir = Dir::new("export", "errors");
    let mut cleanup = Cleanup(Vec::new());

    let unknown = name("never-ran");
    let out = dir.file("unknown.json");
    let o = agent.cli(&["profile", "export", &unknown, "--format", "docker", "-o", text(&out)]);
    let err = clean_error(&o, "export of an unknown container");
    assert!(err.contains(&unknown), "the message names the container: {err}");
    assert!(!out.exists(), "nothing is written for an unknown container");

    let (n, _) = learn(&agent, &mut cleanup, "runc", &WHOAMI);
    let o = agent.cli(&["profile", "export", &n, "--format", "docker", "-o", "/proc/nope/x.json"]);
    let err = clean_error(&o, "export to /proc/nope/x.json");
    assert!(err.contains("/proc/nope/x.json"), "the message names the path: {err}");
    assert!(!Path::new("/proc/nope").exists());

    // The target is a directory: the rename fails after the write; no temporary file may stay.
    let target = dir.file("a-directory");
    std::fs::create_dir(&target).expect("mkdir");
    let listing = || {
        let mut l: Vec<String> =
            std::fs::read_dir(dir.path()).expect("ls").filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        l.sort();
        l
    };
    let before = listing();
    let o = agent.cli(&["profile", "export", &n, "--format", "docker", "-o", text(&target)]);
    clean_error(&o, "export onto a directory");
    assert_eq!(listing(), before, "something was left behind");
    assert!(target.is_dir() && std::fs::read_dir(&target).expect("ls").next().is_none());

    // The same export to a writable path works: the failures above were the paths'.
    let good = dir.file("good.json");
    export(&agent, &n, &good);
}
