//! The set-up's check (xtask/scripts/containerd-cri.sh): through the CRI, a pod
//! sandbox and a container in it start, and the container lands in the cgroup
//! the kubelet's cgroupfs layout gives it; then both are removed.
//! Usage: observer-cri-check SOCKET

use observer_tests::cri::{BUSYBOX, Cri, Pod};

fn main() {
    let socket = std::env::args().nth(1).unwrap_or_else(|| observer_tests::cri::SOCKET.to_owned());
    let started = std::time::Instant::now();
    let result = (|| -> Result<String, String> {
        let mut cri = Cri::connect(&socket).map_err(|e| format!("connecting to {socket}: {e}"))?;
        let pod = Pod::new("observer-setup", "check", &[]);
        let sandbox = cri.run_pod(&pod).map_err(|e| format!("the pod sandbox does not start: {e}"))?;
        let outcome = (|| {
            let id = cri
                .run_container(&sandbox, &pod, "check", BUSYBOX, &["sleep", "5"])
                .map_err(|e| format!("the container does not start: {e}"))?;
            let want = format!("{}/{id}", pod.cgroup_parent());
            // The container's process, found by its cgroup in the v2 hierarchy.
            let mount = std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .find(|l| l.contains(" - cgroup2 "))
                .and_then(|l| l.split(' ').nth(4).map(str::to_owned))
                .ok_or("no cgroup v2 mount")?;
            let procs = std::fs::read_to_string(format!("{mount}{want}/cgroup.procs"))
                .map_err(|e| format!("{mount}{want}: {e}"))?;
            if procs.trim().is_empty() {
                return Err(format!("no process in {want}"));
            }
            cri.remove_container(&id);
            Ok(format!(
                "a pod and its container start through the CRI, in {}/<id>",
                pod.cgroup_parent().replace(&pod.uid, "<uid>")
            ))
        })();
        cri.remove_pod(&sandbox).map_err(|e| format!("removing the check pod: {e}"))?;
        outcome
    })();
    match result {
        Ok(msg) => println!("{msg} ({:.1} s)", started.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
