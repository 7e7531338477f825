//! `observer agent` on a Kubernetes-shaped node: pods and containers made
//! through containerd's CRI exactly as the kubelet makes them (the test
//! containerd of xtask/scripts/containerd-cri.sh: its own socket, the cgroupfs
//! driver, pods in the node's network namespace), as root. Every container is
//! named from the CRI: pod namespace, name and uid, container name, image,
//! labels; each pod's sandbox is marked as such; `--match` pod:, namespace:,
//! label: and image: rules and image baselines apply; and the workload export
//! merges the replicas of one Deployment into one SeccompProfile.

use std::{collections::BTreeSet, path::Path};

use observer_tests::{
    agent::{TestAgent, rows},
    cri::{BUSYBOX, Cri, Pod, PodCleanup, SOCKET},
    docker::profile_path,
    require_root, unique,
};
use serde_json::Value;

fn require_cri() -> Cri {
    assert!(
        Path::new(SOCKET).exists(),
        "the test containerd's socket {SOCKET} is missing: `cargo xtask setup test` starts it (xtask/scripts/containerd-cri.sh)"
    );
    Cri::connect(SOCKET).unwrap_or_else(|e| {
        panic!("the test containerd at {SOCKET} does not answer ({e}): run xtask/scripts/containerd-cri.sh")
    })
}

/// Characters of Kubernetes' generated name suffixes.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated(n: usize, seed: u128) -> String {
    (0..n).map(|i| ALPHABET[((seed >> (i * 5)) % ALPHABET.len() as u128) as usize] as char).collect()
}

struct Replica {
    pod: Pod,
    sandbox: String,
    app: String,
    sidecar: String,
}

fn start_replica(cri: &mut Cri, cleanup: &mut PodCleanup, namespace: &str, hash: &str, i: u128) -> Replica {
    let name = format!("web-{hash}-{}", generated(5, unique() + i * 7919));
    let pod = Pod::new(namespace, &name, &[("app", "web"), ("pod-template-hash", hash)]);
    let sandbox = cri.run_pod(&pod).unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"));
    cleanup.0.push(sandbox.clone());
    let app = cri
        .run_container(&sandbox, &pod, "app", BUSYBOX, &["sh", "-c", "touch /tmp/f; chmod 600 /tmp/f; sleep 60"])
        .unwrap_or_else(|e| panic!("container app in {name}: {e}"));
    let sidecar = cri
        .run_container(&sandbox, &pod, "sidecar", BUSYBOX, &["sh", "-c", "cat /etc/passwd > /dev/null; sleep 60"])
        .unwrap_or_else(|e| panic!("container sidecar in {name}: {e}"));
    Replica { pod, sandbox, app, sidecar }
}

fn by_id(agent: &TestAgent, id: &str) -> Option<Value> {
    agent.ps().into_iter().find(|c| c["id"] == id)
}

fn enforce_count(agent: &TestAgent, matcher: &str, ids: &BTreeSet<String>) -> BTreeSet<String> {
    let profile = profile_path("moby/default.json");
    let o = agent.cli(&["enforce", "--match", matcher, "--profile", &profile, "--action", "alert"]);
    assert!(o.status.success(), "enforce --match {matcher}: {}", String::from_utf8_lossy(&o.stderr));
    let answer: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let off = agent.cli(&["enforce", "--match", matcher, "--off"]);
    assert!(off.status.success(), "enforce --off: {}", String::from_utf8_lossy(&off.stderr));
    answer["enforced"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|k| ids.contains(*k))
        .map(str::to_owned)
        .collect()
}

#[test]
fn cri_pods_are_named_matched_and_merged_by_workload() {
    require_root();
    let mut cri = require_cri();
    let baseline = profile_path("moby/default.json");
    let agent =
        TestAgent::start(&["--cri-socket", SOCKET, "--baseline", &format!("image:observer-busybox={baseline}")]);
    let namespace = format!("obs-{}", generated(6, unique()));
    let hash = generated(10, unique() / 3);
    let mut cleanup = PodCleanup(Vec::new());
    let replicas: Vec<Replica> = (0..2).map(|i| start_replica(&mut cri, &mut cleanup, &namespace, &hash, i)).collect();

    for r in &replicas {
        let uid = &r.pod.uid;
        for (id, container) in [(&r.app, "app"), (&r.sidecar, "sidecar")] {
            let c = agent.wait_for(&format!("{container} of {} named in ps", r.pod.name), || {
                by_id(&agent, id).filter(|c| c["image"] != "" && c["syscalls"].as_u64().unwrap_or(0) > 5)
            });
            assert_eq!(c["name"], format!("{namespace}/{}/{container}", r.pod.name).as_str(), "{c}");
            assert_eq!(c["container_name"], container, "{c}");
            assert_eq!(c["image"], BUSYBOX, "{c}");
            assert!(c["image_digest"].as_str().is_some_and(|d| d.contains("sha256:")), "{c}");
            assert_eq!(c["runtime"], "containerd", "{c}");
            assert_eq!(c["engine"], "containerd", "{c}");
            assert_eq!(c["cgroup_path"], format!("/kubepods/besteffort/pod{uid}/{id}").as_str(), "{c}");
            assert_eq!(c["pod"]["namespace"], namespace.as_str(), "{c}");
            assert_eq!(c["pod"]["name"], r.pod.name.as_str(), "{c}");
            assert_eq!(c["pod"]["uid"], uid.as_str(), "{c}");
            assert_eq!(c["pod"]["labels"]["app"], "web", "{c}");
            assert_eq!(c["pod"]["sandbox"], false, "{c}");
            assert_eq!(c["sandbox"], false, "{c}");
            assert_eq!(c["pod"]["workload"]["kind"], "Deployment", "{c}");
            assert_eq!(c["pod"]["workload"]["name"], "web", "{c}");
            assert_eq!(c["workload"], format!("{namespace}/Deployment/web/{container}").as_str(), "{c}");
            assert_eq!(c["labels"]["io.kubernetes.container.name"], container, "{c}");
            assert_eq!(c["state"], "running", "{c}");
        }
        let s = agent.wait_for(&format!("the sandbox of {}", r.pod.name), || {
            by_id(&agent, &r.sandbox).filter(|c| c["sandbox"] == true)
        });
        assert_eq!(s["sandbox"], true, "{s}");
        assert_eq!(s["pod"]["sandbox"], true, "{s}");
        assert_eq!(s["name"], format!("{namespace}/{}/POD", r.pod.name).as_str(), "{s}");
        assert_eq!(s["workload"], Value::Null, "a sandbox is not a workload container: {s}");
        assert_eq!(s["cgroup_path"], format!("/kubepods/besteffort/pod{uid}/{}", r.sandbox).as_str(), "{s}");
    }
    // The table names the pods and marks the sandboxes.
    let table = agent.cli(&["ps"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("(sandbox)") && table.contains(&namespace), "{table}");

    // What each container did is its own.
    let app = agent.wait_for("chmod in the app's profile", || {
        let p = agent.try_profile(&replicas[0].app)?;
        rows(&p).iter().any(|r| r.0 == "chmod" && r.2.iter().any(|ph| ph == "container")).then_some(p)
    });
    assert_eq!(app["baseline"], baseline.as_str(), "the image baseline applies on CRI: {app}");
    let sidecar = agent.try_profile(&replicas[0].sidecar).expect("the sidecar's profile");
    assert!(!rows(&sidecar).iter().any(|r| r.0 == "chmod" && r.2.iter().any(|ph| ph == "container")), "{sidecar}");

    // --match rules by pod, namespace, label and image; never the sandboxes.
    let mut ids = BTreeSet::new();
    for r in &replicas {
        ids.extend([r.app.clone(), r.sidecar.clone(), r.sandbox.clone()]);
    }
    let r0 = &replicas[0];
    let pod0: BTreeSet<String> = [r0.app.clone(), r0.sidecar.clone()].into();
    assert_eq!(enforce_count(&agent, &format!("pod:{namespace}/{}", r0.pod.name), &ids), pod0);
    let workload: BTreeSet<String> = replicas.iter().flat_map(|r| [r.app.clone(), r.sidecar.clone()]).collect();
    assert_eq!(enforce_count(&agent, &format!("namespace:{namespace}"), &ids), workload);
    assert_eq!(enforce_count(&agent, &format!("label:pod-template-hash={hash}"), &ids), workload);
    assert_eq!(enforce_count(&agent, "image:observer-busybox", &ids), workload);
    // This test's pods' cgroups: the containers' and the pods' (by uid).
    let mine: Vec<&str> = ids.iter().map(String::as_str).chain(replicas.iter().map(|r| r.pod.uid.as_str())).collect();
    let cri_impostors = agent.impostor_alerts_about(&mine);
    assert!(cri_impostors.is_empty(), "no CRI cgroup is an impostor: {cri_impostors:?}");

    workload_export(&agent, &namespace, &replicas);

    // Docker, podman and containerd-CRI containers at once: each named by its runtime.
    let (d, p) = (observer_tests::docker::name("mixed-docker"), observer_tests::docker::name("mixed-podman"));
    let _docker = observer_tests::docker::Cleanup(vec![d.clone()]);
    let o = observer_tests::docker::run(&["-d", "--name", &d], &["sleep", "30"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    let o = std::process::Command::new("podman")
        .args([
            "run",
            "-d",
            "--cgroup-manager",
            "cgroupfs",
            "--name",
            &p,
            "--network",
            "none",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
            "localhost/observer-busybox:latest",
            "sleep",
            "30",
        ])
        .output()
        .expect("podman (xtask/scripts/podman.sh installs it)");
    assert!(o.status.success(), "podman run: {}", String::from_utf8_lossy(&o.stderr));
    let all = agent.wait_for("Docker, podman and CRI containers in one ps", || {
        let ps = agent.ps();
        let engine =
            |name: &str| ps.iter().find(|c| c["name"] == name && c["image"] != "").map(|c| c["engine"].clone());
        match (engine(&d), engine(&p), by_id(&agent, &replicas[1].app).map(|c| c["engine"].clone())) {
            (Some(a), Some(b), Some(c)) => Some((a, b, c)),
            _ => None,
        }
    });
    let _ = std::process::Command::new("podman").args(["rm", "-f", "-t", "0", &p]).output();
    assert_eq!(all, (Value::from("docker"), Value::from("podman"), Value::from("containerd")));

    for r in &replicas {
        cri.remove_pod(&r.sandbox).expect("removing the pod");
    }
    agent.wait_for("the ended pods", || by_id(&agent, &replicas[0].app).filter(|c| c["state"] != "running"));
}

/// Part of the test above: `profile export --workload` merges both replicas
/// of the Deployment's container into one SeccompProfile.
fn workload_export(agent: &TestAgent, namespace: &str, replicas: &[Replica]) {
    let export = |container: &str| -> serde_yaml::Value {
        let file = agent.dir.join(format!("{container}.yaml"));
        let o = agent.cli(&[
            "profile",
            "export",
            "--workload",
            &format!("{namespace}/Deployment/web/{container}"),
            "--format",
            "spo",
            "-o",
            file.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "export --workload: {}\nagent: {}",
            String::from_utf8_lossy(&o.stderr),
            agent.stderr()
        );
        // It says which pods it merged, and why each is one of the Deployment's.
        let said = String::from_utf8_lossy(&o.stderr);
        for r in replicas {
            assert!(
                said.lines().any(|l| l.starts_with(&format!("merged pod {} ", r.pod.name))
                    && l.contains("Deployment web by label pod-template-hash=")),
                "{} not said merged: {said}",
                r.pod.name
            );
        }
        serde_yaml::from_str(&std::fs::read_to_string(&file).expect("the exported file")).expect("YAML")
    };
    let allowed = |doc: &serde_yaml::Value| -> BTreeSet<String> {
        doc["spec"]["syscalls"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|r| r["names"].as_sequence().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect()
    };
    let app = export("app");
    // Valid against the Security Profiles Operator's CRD (tests/data/spo), labels included.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = Path::new("/var/lib/observer-setup/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask setup test` installs it (xtask/scripts/k8s-validate.sh)",
        python.display()
    );
    let o = std::process::Command::new(python)
        .arg(root.join("xtask/scripts/validate-spo.py"))
        .arg(root.join("tests/data/spo/seccompprofile.crd.yaml"))
        .arg(agent.dir.join("app.yaml"))
        .output()
        .expect("validate-spo.py");
    assert!(
        o.status.success(),
        "the workload's SeccompProfile against the SPO CRD: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(app["apiVersion"], "security-profiles-operator.x-k8s.io/v1beta1", "{app:?}");
    assert_eq!(app["kind"], "SeccompProfile");
    assert_eq!(app["metadata"]["name"], "web-app");
    assert_eq!(app["metadata"]["namespace"], namespace);
    let labels = &app["metadata"]["labels"];
    assert_eq!(labels["observer/replicas"], "2", "{labels:?}");
    assert_eq!(labels["observer/nodes"], "1", "{labels:?}");
    assert_eq!(labels["observer/workload"], "web", "{labels:?}");
    assert_eq!(labels["observer/workload-kind"], "Deployment", "{labels:?}");
    assert_eq!(labels["observer/container"], "app", "{labels:?}");
    let annotations = &app["metadata"]["annotations"];
    let pods = annotations["observer/pods"].as_str().unwrap_or_default();
    for r in replicas {
        assert!(pods.split(',').any(|p| p == r.pod.name), "{} in observer/pods: {annotations:?}", r.pod.name);
    }
    assert_eq!(annotations["observer/containers"], "2", "{annotations:?}");
    let matched = annotations["observer/matched"].as_str().unwrap_or_default();
    for r in replicas {
        assert!(matched.contains(&format!("pod {} (uid {}", r.pod.name, r.pod.uid)), "{matched}");
    }
    assert!(allowed(&app).contains("chmod"), "the app's chmod: {app:?}");
    let sidecar = export("sidecar");
    assert!(!allowed(&sidecar).contains("chmod") && allowed(&sidecar).contains("read"), "{sidecar:?}");
    // An unknown workload is an error naming the known ones.
    let o =
        agent.cli(&["profile", "export", "--workload", &format!("{namespace}/Deployment/nope/app"), "--format", "spo"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains(&format!("{namespace}/Deployment/web/app")),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
