//! The applied filter, from the kernel: `observer filter` and `observer compare`
//! against real Docker containers, as root.

use std::time::Duration;

use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, docker, name, profile_path, require_docker, run},
    filters::{filter_json, unexpected_differences},
    observer, require_root,
};

fn container_pid(n: &str) -> String {
    let o = docker(&["inspect", "-f", "{{.State.Pid}}", n]);
    assert!(o.status.success(), "docker inspect {n}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// For each profile Docker can start a container with: the model's table for the
/// file equals the table of the filter dumped from the container, but for the
/// listed expected differences.
#[test]
fn the_model_agrees_with_the_kernel() {
    require_root();
    require_docker();
    let profiles = [
        ("moby/default.json", "errno(1)"),
        ("docker-labs/default.json", "errno(1)"),
        ("docker-labs/default-no-chmod.json", "errno(1)"),
        ("docker-labs/allow.json", "allow"),
    ];
    for (profile, default_action) in profiles {
        let n = name("model");
        let _cleanup = Cleanup(vec![n.clone()]);
        let file = profile_path(profile);
        let opt = format!("seccomp={file}");
        let o = run(&["-d", "--security-opt", &opt, "--name", &n], &["sleep", "30"]);
        assert!(o.status.success(), "{profile}: {}", String::from_utf8_lossy(&o.stderr));
        let pid = container_pid(&n);
        let kernel = filter_json(&["--pid", &pid]);
        let model = filter_json(&["--profile", &file]);
        if default_action == "allow" && kernel["mode"] == 0 {
            // Docker installs no filter for a profile that allows everything? Then
            // every syscall is allowed, as the model says.
            assert!(model["abis"]["x86_64"].as_object().expect("table").values().all(|v| v == "allow"));
            continue;
        }
        assert_eq!(kernel["mode"], 2, "{profile}: {kernel}");
        assert!(kernel["filters"].as_array().is_some_and(|f| !f.is_empty()));
        let unexpected = unexpected_differences(&model, &kernel, default_action);
        assert!(unexpected.is_empty(), "{profile}: unexpected differences:\n{}", unexpected.join("\n"));
        // The dump never leaves the target stopped.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let st = state.rsplit(')').next().and_then(|r| r.split_whitespace().next()).unwrap_or("");
        assert!(st != "t" && st != "T", "{profile}: the container is left stopped ({st})");
    }
}

#[test]
fn filter_output_for_a_pid_and_for_no_filter() {
    require_root();
    require_docker();
    let n = name("filterout");
    let _cleanup = Cleanup(vec![n.clone()]);
    let o = run(&["-d", "--name", &n], &["sleep", "30"]);
    assert!(o.status.success());
    let pid = container_pid(&n);
    let k = filter_json(&["--pid", &pid]);
    assert_eq!(k["abis"]["x86_64"]["read"], "allow");
    assert_eq!(k["abis"]["x86_64"]["clone"], "conditional", "moby's namespace-flag condition");
    assert_eq!(k["abis"]["x86_64"]["clone3"], "errno(38)");
    assert!(k["conditions"]["x86_64"]["clone"].is_array(), "{}", k["conditions"]);
    let d = observer(&["filter", "--pid", &pid, "--disasm"]);
    let text = String::from_utf8_lossy(&d.stdout);
    assert!(text.contains("A = arch") && text.contains("return ALLOW"), "{text}");
    // A process without seccomp: "no filter".
    let me = std::process::id().to_string();
    let o = observer(&["filter", "--pid", &me]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("no filter"));
    // A pid that does not exist: a clear error.
    let o = observer(&["filter", "--pid", "999999999"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("999999999") && !err.contains("panicked"), "{err}");
}

fn compare_json(agent: &TestAgent, container: &str) -> serde_json::Value {
    agent.cli_json(&["compare", container])
}

/// `compare`, or None while the agent does not know the container yet.
fn try_compare(agent: &TestAgent, container: &str) -> Option<serde_json::Value> {
    let o = agent.cli(&["compare", container, "--json"]);
    o.status.success().then(|| serde_json::from_slice(&o.stdout).ok()).flatten()
}

#[test]
fn the_seed_lab_observed() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let (a, b, c) = (name("nochmod"), name("default"), name("unconfined"));
    let _cleanup = Cleanup(vec![a.clone(), b.clone(), c.clone()]);
    let script = "sleep 1; chmod 777 /; chmod 777 /; sleep 30";
    for (n, opt) in [
        (&a, format!("seccomp={}", profile_path("docker-labs/default-no-chmod.json"))),
        (&b, format!("seccomp={}", profile_path("docker-labs/default.json"))),
        (&c, "seccomp=unconfined".to_owned()),
    ] {
        let o = run(&["-d", "--security-opt", &opt, "--name", n], &["sh", "-c", script]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    std::thread::sleep(Duration::from_secs(2));
    let v = agent.wait_for("chmod denied twice", || {
        let v = try_compare(&agent, &a)?;
        (v["denied_attempts"]["chmod"] == 2).then_some(v)
    });
    assert!(v["used_but_denied"].as_array().expect("list").iter().any(|x| x == "chmod"), "{v}");
    assert!(v["verdict"].as_str().is_some_and(|s| s.contains("chmod")));
    assert!(v["abis"]["x86_64"]["allowed_but_unused"].as_u64().unwrap_or(0) > 100, "{v}");
    let share = v["abis"]["x86_64"]["unused_share"].as_f64().expect("share");
    assert!(share > 0.0 && share < 1.0);

    let v = agent.wait_for("chmod used and allowed", || {
        let v = try_compare(&agent, &b)?;
        let p = agent.try_profile(&b)?;
        p["syscalls"].as_array()?.iter().any(|r| r["name"] == "chmod" && r["calls"] == 2).then_some(v)
    });
    assert!(!v["used_but_denied"].as_array().expect("list").iter().any(|x| x == "chmod"), "{v}");
    assert!(!v["allowed_but_unused"].as_array().expect("list").iter().any(|x| x == "chmod"), "{v}");

    let v = compare_json(&agent, &c);
    assert_eq!(v["mode"], 0, "unconfined: {v}");
    let ps = agent.container(&c).expect("ps");
    assert_eq!(ps["seccomp_mode"], 0);
    assert_eq!(agent.container(&a).expect("ps")["seccomp_mode"], 2);
}
