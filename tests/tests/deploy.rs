//! deploy/: the DaemonSet validates offline against the Kubernetes schemas;
//! exported SeccompProfile objects validate against the Security Profiles
//! Operator's CRD (tests/data/spo); the agent runs with exactly the DaemonSet's
//! capabilities; and the image runs under Docker with the DaemonSet's
//! privileges, mounts and seccomp profile and profiles its neighbours.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use observer_tests::{
    docker::{Cleanup, docker, name, require_docker, run},
    observer_bin, require_root, unique,
};
use serde_yaml::Value;

const VENV: &str = "/var/lib/observer-setup/venv";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn tool(name: &str) -> PathBuf {
    let p = Path::new(VENV).join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: `cargo xtask setup test` installs it (xtask/scripts/k8s-validate.sh)",
        p.display()
    );
    p
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn validate_spo(files: &[&Path]) -> Output {
    Command::new(tool("python"))
        .arg(repo("xtask/scripts/validate-spo.py"))
        .arg(repo("tests/data/spo/seccompprofile.crd.yaml"))
        .args(files)
        .output()
        .expect("python")
}

fn daemonset() -> Value {
    let text = std::fs::read_to_string(repo("deploy/observer.yaml")).expect("deploy/observer.yaml");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet in deploy/observer.yaml")
}

use serde::Deserialize as _;

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

#[test]
fn manifests_validate_offline_against_the_kubernetes_schemas() {
    let validate = tool("kubernetes-validate");
    for version in ["1.30.0", "1.37.0"] {
        let o = Command::new(&validate)
            .args(["--strict", "-k", version])
            .arg(repo("deploy/observer.yaml"))
            .output()
            .expect("kubernetes-validate");
        assert!(o.status.success(), "kubernetes-validate {version}: {}", text(&o));
        let out = text(&o);
        for kind in ["namespace/observer-system", "serviceaccount/observer-agent", "daemonset/observer-agent"] {
            assert!(out.contains(&format!("passed for resource {kind}")), "{kind} validated with {version}: {out}");
        }
    }
    // The validator does reject what it should: a misspelt field, in strict mode.
    let bad = std::env::temp_dir().join(format!("observer-bad-{}.yaml", unique()));
    let broken =
        std::fs::read_to_string(repo("deploy/observer.yaml")).unwrap().replace("hostPID: true", "hostPid: true");
    std::fs::write(&bad, broken).unwrap();
    let o = Command::new(&validate).arg("--strict").arg(&bad).output().expect("kubernetes-validate");
    let _ = std::fs::remove_file(&bad);
    assert!(!o.status.success(), "a misspelt field must fail: {}", text(&o));
}

/// What the DaemonSet exposes by default: metrics on the node's loopback
/// only, no port declared, no scrape annotations; the runtimes reached
/// through their socket files, read-only, never their directories; every
/// other host mount read-only but the three the agent writes.
#[test]
fn the_daemonset_exposes_nothing_by_default() {
    let ds = daemonset();
    let spec = &ds["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    let args = strings(&c["args"]);
    let metrics: Vec<&String> = args.iter().filter(|a| a.starts_with("--metrics")).collect();
    assert_eq!(metrics.len(), 1, "{args:?}");
    let addr = metrics[0].strip_prefix("--metrics=").expect("--metrics=ADDR");
    let addr: std::net::SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
    assert!(addr.ip().is_loopback(), "metrics must be on the node's loopback by default: {addr}");
    assert!(c["ports"].is_null(), "no port is declared (hostNetwork makes it a host port): {:?}", c["ports"]);
    let annotations = &ds["spec"]["template"]["metadata"]["annotations"];
    assert!(annotations["prometheus.io/scrape"].is_null(), "no scrape annotation for a loopback address");

    let volumes = spec["volumes"].as_sequence().expect("volumes");
    let writable = ["bpffs", "cgroup", "state"];
    let mut sockets = 0;
    for m in c["volumeMounts"].as_sequence().expect("volumeMounts") {
        let name = m["name"].as_str().unwrap();
        let v = volumes.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("volume {name}"));
        let Some(host) = v["hostPath"]["path"].as_str() else { continue };
        for dir in ["/run/containerd", "/var/run/crio", "/run/crio", "/var/run/containerd"] {
            assert_ne!(host.trim_end_matches('/'), dir, "{name}: a runtime's whole directory is mounted");
        }
        if host.ends_with(".sock") {
            sockets += 1;
            assert_eq!(v["hostPath"]["type"], "Socket", "{name}: the socket must exist, not be made a directory");
            assert_eq!(m["mountPath"].as_str(), Some(host), "{name}");
        }
        if !writable.contains(&name) {
            assert_eq!(m["readOnly"], true, "{name} ({host}) must be read-only");
        }
    }
    assert!(sockets >= 1, "the runtime's CRI socket is mounted");
    // Every --cri-socket the agent is given by default that is mounted is a socket mount.
    for a in args.iter().filter_map(|a| a.strip_prefix("--cri-socket=")) {
        let mounted = c["volumeMounts"].as_sequence().unwrap().iter().any(|m| m["mountPath"] == a);
        assert!(mounted || a.contains("crio"), "{a} is not mounted");
    }
}

#[test]
fn exported_seccomp_profiles_validate_against_the_spo_crd() {
    require_root();
    let dir = std::env::temp_dir().join(format!("observer-spo-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let spo = dir.join("true.yaml");
    let o = Command::new(observer_bin())
        .args(["trace", "--profile-out"])
        .arg(&spo)
        .args(["--format", "spo", "--", "sh", "-c", "mkdir -p /tmp/x; true"])
        .output()
        .expect("observer trace");
    assert!(o.status.success(), "trace --profile-out: {}", text(&o));
    let o = validate_spo(&[&spo]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("against the CRD seccompprofiles.security-profiles-operator.x-k8s.io"), "{}", text(&o));

    // The check names the CRD: another kind, a version it does not serve, a
    // wrong type and a bad label value all fail.
    let original = std::fs::read_to_string(&spo).unwrap();
    for (what, from, to) in [
        ("kind", "kind: SeccompProfile", "kind: SeccompProfil"),
        ("version", "x-k8s.io/v1beta1", "x-k8s.io/v9"),
        ("defaultAction", "defaultAction: SCMP_ACT_ERRNO", "defaultAction: SCMP_ACT_DENY"),
        ("label", "metadata:\n", "metadata:\n  labels:\n    \"observer/node\": \"a b\"\n"),
    ] {
        assert!(original.contains(from), "{what}: {from:?} in {original}");
        let bad = dir.join(format!("bad-{what}.yaml"));
        std::fs::write(&bad, original.replacen(from, to, 1)).unwrap();
        let o = validate_spo(&[&bad]);
        assert!(!o.status.success(), "{what} must be rejected: {}", text(&o));
        assert!(
            text(&o).contains("seccompprofiles.security-profiles-operator.x-k8s.io") || what == "label",
            "{what}: {}",
            text(&o)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The DaemonSet's container, as Docker arguments: the same privileges, mounts
/// and seccomp profile. Two translations, both forced by this machine: Docker
/// 20.10 cannot name CAP_BPF and CAP_PERFMON, so CAP_SYS_ADMIN (which the
/// kernel also accepts for both) stands for them here (the exact set is run in
/// `the_daemonsets_capabilities_are_enough`); and this is a Docker node, so
/// Docker's socket is the runtime socket mounted.
fn docker_args(ds: &Value, state: &Path, pin_dir: &str, metrics: &str) -> Vec<String> {
    let spec = &ds["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(spec["hostPID"], true);
    assert_eq!(sc["privileged"], false);
    let mut args: Vec<String> = vec!["run".into(), "-d".into()];
    let mut push = |a: &[&str]| args.extend(a.iter().map(|s| (*s).to_owned()));
    push(&["--pid", "host"]);
    push(&["--network", if spec["hostNetwork"] == true { "host" } else { "none" }]);
    if sc["readOnlyRootFilesystem"] == true {
        push(&["--read-only"]);
    }
    if sc["allowPrivilegeEscalation"] == false {
        push(&["--security-opt", "no-new-privileges"]);
    }
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    push(&["--cap-drop", "ALL"]);
    let mut caps: Vec<String> = strings(&sc["capabilities"]["add"])
        .into_iter()
        .map(|c| if c == "BPF" || c == "PERFMON" { "SYS_ADMIN".into() } else { c })
        .collect();
    caps.dedup();
    for cap in &caps {
        push(&["--cap-add", cap]);
    }
    assert_eq!(sc["seccompProfile"]["type"], "Localhost");
    let seccomp = repo("deploy/observer-agent-seccomp.json");
    push(&["--security-opt", &format!("seccomp={}", seccomp.display())]);
    let volumes = spec["volumes"].as_sequence().expect("volumes");
    for m in c["volumeMounts"].as_sequence().expect("volumeMounts") {
        let name = m["name"].as_str().unwrap();
        let target = m["mountPath"].as_str().unwrap();
        let v = volumes.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("volume {name}"));
        if v["emptyDir"].is_mapping() {
            push(&["--tmpfs", target]);
            continue;
        }
        let host = v["hostPath"]["path"].as_str().unwrap_or_else(|| panic!("volume {name}: hostPath or emptyDir"));
        if v["hostPath"]["type"] == "Socket" {
            // A runtime's socket: here Docker's, mounted the same way.
            assert_eq!(m["readOnly"], true, "{name}");
            push(&["-v", "/var/run/docker.sock:/var/run/docker.sock:ro"]);
            continue;
        }
        let host = if name == "state" { state.display().to_string() } else { host.to_owned() };
        if v["hostPath"]["type"] == "DirectoryOrCreate" {
            std::fs::create_dir_all(&host).unwrap();
        }
        let ro = if m["readOnly"] == true { ":ro" } else { "" };
        push(&["-v", &format!("{host}:{target}{ro}")]);
    }
    push(&["-e", "NODE_NAME=observer-test-node"]);
    args.push("observer:local-test".into());
    for a in strings(&c["args"]) {
        // Its own pin directory and metrics address, so that it never meets another agent.
        if a.starts_with("--pin-dir=") {
            args.push(format!("--pin-dir={pin_dir}"));
        } else if a.starts_with("--metrics=") {
            args.push(format!("--metrics={metrics}"));
        } else {
            args.push(a);
        }
    }
    args
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>, context: impl Fn() -> String) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}: {}", context());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_image_runs_with_the_daemonsets_privileges_and_profiles_its_neighbours() {
    require_root();
    require_docker();
    // The image `cargo xtask image` builds, from the binary under test.
    let o = Command::new("bash")
        .arg(repo("xtask/scripts/image.sh"))
        .arg(observer_bin())
        .arg("observer:local-test")
        .output()
        .expect("image.sh");
    assert!(o.status.success(), "xtask/scripts/image.sh: {}", text(&o));

    let ds = daemonset();
    let id = unique() % 1_000_000_000;
    let state = std::env::temp_dir().join(format!("observer-deploy-{id}"));
    std::fs::create_dir_all(&state).unwrap();
    let pin_dir = format!("/sys/fs/bpf/observer-deploy-{id}");
    let port = 20000 + (id % 20000);
    let agent = name("agent-image");
    let neighbour = name("neighbour");
    let _cleanup = Cleanup(vec![agent.clone(), neighbour.clone()]);
    let mut args = docker_args(&ds, &state, &pin_dir, &format!("127.0.0.1:{port}"));
    args.insert(2, format!("--name={agent}"));
    let o = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "docker {args:?}: {}", text(&o));
    let logs = || text(&docker(&["logs", &agent]));
    let exec = |cmd: &[&str]| {
        let mut a = vec!["exec", agent.as_str(), "/usr/bin/observer"];
        a.extend_from_slice(cmd);
        docker(&a)
    };
    // The liveness probe's command answers once the agent runs.
    let liveness: Vec<String> =
        strings(&ds["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"]["command"]);
    wait_for(
        "the liveness command",
        Duration::from_secs(30),
        || {
            let mut a = vec!["exec".to_owned(), agent.clone()];
            a.extend(liveness.iter().cloned());
            docker(&a.iter().map(String::as_str).collect::<Vec<_>>()).status.success().then_some(())
        },
        logs,
    );

    let o = run(&["-d", "--name", &neighbour], &["sh", "-c", "touch /tmp/f; chmod 600 /tmp/f; sleep 60"]);
    assert!(o.status.success(), "docker run: {}", text(&o));
    let row = wait_for(
        "the neighbour named by the agent in its container",
        Duration::from_secs(30),
        || {
            let o = exec(&["ps", "--json"]);
            let rows: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
            rows.as_array()?.iter().find(|c| c["name"] == neighbour.as_str() && c["image"] != "").cloned()
        },
        logs,
    );
    assert_eq!(row["image"], "observer-busybox:latest", "{row}");
    assert_eq!(row["engine"], "docker", "{row}");
    wait_for(
        "chmod in the neighbour's profile",
        Duration::from_secs(30),
        || {
            let o = exec(&["profile", "show", &neighbour, "--json"]);
            let p: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
            p["syscalls"].as_array()?.iter().any(|r| r["name"] == "chmod").then_some(())
        },
        logs,
    );
    // The agent sees itself as a container too, under its own seccomp profile.
    let me = exec(&["ps", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&me.stdout).expect("ps JSON");
    let me = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == agent.as_str())
        .cloned()
        .expect("the agent's own container");
    assert_eq!(me["seccomp_mode"], 2, "the agent runs under its seccomp profile: {me}");
    // Metrics are served where asked.
    let metrics = wait_for(
        "metrics",
        Duration::from_secs(10),
        || {
            use std::io::{Read as _, Write as _};
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port as u16)).ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
            let mut t = String::new();
            stream.read_to_string(&mut t).ok()?;
            t.contains("200 OK").then_some(t)
        },
        logs,
    );
    assert!(metrics.contains("observer_"), "{metrics}");

    let _ = docker(&["rm", "-f", &agent, &neighbour]);
    let _ = Command::new(observer_bin()).args(["agent", "--uninstall", "--pin-dir", &pin_dir]).output();
    let _ = std::fs::remove_dir_all(&state);
}

/// The DaemonSet's capability set, exactly (CAP_BPF, CAP_PERFMON,
/// CAP_DAC_OVERRIDE and CAP_SYS_NICE, nothing else): the agent loads, attaches and names a container.
#[test]
fn the_daemonsets_capabilities_are_enough() {
    require_root();
    require_docker();
    let ds = daemonset();
    let caps: Vec<String> =
        strings(&ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"]);
    let set = format!("-all,{}", caps.iter().map(|c| format!("+{}", c.to_lowercase())).collect::<Vec<_>>().join(","));
    let id = unique() % 1_000_000_000;
    let dir = std::env::temp_dir().join(format!("observer-caps-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let pin_dir = format!("/sys/fs/bpf/observer-caps-{id}");
    let socket = dir.join("api.sock");
    let mut child = Command::new("setpriv")
        .args(["--bounding-set", &set, "--inh-caps", &set])
        .arg(observer_bin())
        .args(["agent", "--pin-dir", &pin_dir, "--state-dir"])
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(&socket)
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("setpriv (util-linux)");
    let pid = child.id();
    let stderr = || std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    let neighbour = name("caps-neighbour");
    let _cleanup = Cleanup(vec![neighbour.clone()]);
    wait_for("the agent's socket", Duration::from_secs(30), || socket.exists().then_some(()), stderr);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim().to_owned();
    // CAP_DAC_OVERRIDE (1), CAP_SYS_NICE (23), CAP_PERFMON (38), CAP_BPF (39).
    assert_eq!(
        u64::from_str_radix(&eff, 16).unwrap(),
        (1 << 1) | (1 << 23) | (1 << 38) | (1 << 39),
        "the agent runs with exactly {caps:?}"
    );
    // CAP_SYS_NICE is what lets it run above the runtimes (--nice, -10 by default).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let nice: i64 = stat.rsplit(')').next().unwrap().split_whitespace().nth(16).unwrap().parse().unwrap();
    assert_eq!(nice, -10, "the agent's nice value: {}", stderr());
    let o = run(&["-d", "--name", &neighbour], &["sh", "-c", "chmod 600 /etc/passwd; sleep 30"]);
    assert!(o.status.success(), "docker run: {}", text(&o));
    wait_for(
        "the neighbour named",
        Duration::from_secs(30),
        || {
            let o = Command::new(observer_bin()).args(["ps", "--json", "--socket"]).arg(&socket).output().ok()?;
            let rows: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
            rows.as_array()?
                .iter()
                .any(|c| c["name"] == neighbour.as_str() && c["syscalls"].as_u64().unwrap_or(0) > 5)
                .then_some(())
        },
        stderr,
    );
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = Command::new(observer_bin()).args(["agent", "--uninstall", "--pin-dir", &pin_dir]).output();
    let _ = std::fs::remove_dir_all(&dir);
}

/// deploy/observer-merge.yaml, the fleet's merge CronJob (issue 28): it validates
/// against the Kubernetes schemas, touches nothing of the node (no host path, no
/// token, not root, no capability), and its arguments are ones observer accepts.
#[test]
fn the_merge_cronjob_validates_and_needs_nothing_from_the_node() {
    let validate = tool("kubernetes-validate");
    let file = repo("deploy/observer-merge.yaml");
    for version in ["1.30.0", "1.37.0"] {
        let o =
            Command::new(&validate).args(["--strict", "-k", version]).arg(&file).output().expect("kubernetes-validate");
        assert!(o.status.success(), "kubernetes-validate {version}: {}", text(&o));
        assert!(text(&o).contains("passed for resource cronjob/observer-merge-web"), "{}", text(&o));
    }
    let bad = std::env::temp_dir().join(format!("observer-bad-cron-{}.yaml", unique()));
    let broken = std::fs::read_to_string(&file).unwrap().replace("concurrencyPolicy:", "concurrencypolicy:");
    std::fs::write(&bad, broken).unwrap();
    let o = Command::new(&validate).arg("--strict").arg(&bad).output().expect("kubernetes-validate");
    let _ = std::fs::remove_file(&bad);
    assert!(!o.status.success(), "a misspelt field must fail: {}", text(&o));

    let text_of = std::fs::read_to_string(&file).unwrap();
    let cron = serde_yaml::Deserializer::from_str(&text_of)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid", "two merges of one workload never race");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());
    for v in pod["volumes"].as_sequence().expect("volumes") {
        assert!(v["hostPath"].is_null(), "no host path: {v:?}");
    }
    let c = &pod["containers"][0];
    assert_eq!(strings(&c["securityContext"]["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    // The arguments parse: with --plain-http added, observer refuses the (non-loopback)
    // registry before connecting, which it only gets to once every argument was accepted.
    let mut args = strings(&c["args"]);
    args.push("--plain-http".into());
    let o = Command::new(observer_bin()).args(&args).output().expect("observer");
    assert!(!o.status.success());
    assert!(text(&o).contains("plain http is only for a loopback registry"), "{args:?}: {}", text(&o));
}
