//! observer's Docker client and resolver against the real dockerd (runc and
//! crun containers, --network none), as root.

use std::process::Command;

use observer::container::{DockerClient, DockerError, Resolver, Seccomp};
use observer_probe::v2_mount;
use observer_tests::{docker::require_docker, require_root};

/// Removes a test container when dropped, so a failed assertion still cleans up.
pub struct TestContainer {
    pub name: String,
    pub id: String,
}

impl TestContainer {
    /// `docker run -d --rm --network none --name <name> <extra...> observer-busybox sleep 30`.
    pub fn start(name: &str, extra: &[&str]) -> Self {
        let _ = Command::new("docker").args(["rm", "-f", name]).output();
        let mut args = vec!["run", "-d", "--rm", "--network", "none", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["observer-busybox", "sleep", "30"]);
        let out = Command::new("docker").args(&args).output().expect("running the docker CLI (is docker installed?)");
        assert!(
            out.status.success(),
            "`docker {}` failed (is dockerd running at /var/run/docker.sock?): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        TestContainer { name: name.to_owned(), id }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
    }
}

#[tokio::test]
async fn inspect_a_real_container() {
    require_root();
    require_docker();
    let client = DockerClient::from_env().unwrap();
    let c = TestContainer::start("obs-api-test", &[]);
    let info = client
        .inspect(&c.id)
        .await
        .unwrap_or_else(|e| panic!("inspecting {} through {}: {e}", c.id, client.socket().display()));
    assert_eq!(info.id, c.id);
    assert_eq!(info.name, "obs-api-test");
    assert_eq!(info.image, "observer-busybox");
    assert!(info.image_id.starts_with("sha256:"), "{}", info.image_id);
    assert_eq!(info.runtime, "runc");
    assert_eq!(info.seccomp, Seccomp::Default);
    assert_eq!(info.state, "running");
    assert!(info.pid > 0);
    assert!(info.started_at.starts_with("20"), "{}", info.started_at);
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", info.pid)).unwrap();
    assert!(cgroup.contains(&format!("0::/docker/{}", c.id)), "{cgroup}");

    // By name too, and a short id.
    assert_eq!(client.inspect("obs-api-test").await.unwrap().id, c.id);
    assert_eq!(client.inspect(&c.id[..12]).await.unwrap().id, c.id);

    drop(c);
    let err = client.inspect("obs-api-test").await.unwrap_err();
    assert!(matches!(err, DockerError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn inspect_a_crun_container_without_seccomp() {
    require_root();
    require_docker();
    let client = DockerClient::from_env().unwrap();
    let c = TestContainer::start("obs-api-test-crun", &["--runtime", "crun", "--security-opt", "seccomp=unconfined"]);
    let info = client.inspect(&c.id).await.unwrap();
    assert_eq!((info.runtime.as_str(), &info.seccomp), ("crun", &Seccomp::Unconfined));
}

/// End to end on this machine: a real container's cgroup id, as the probes
/// would report it, resolves to its Docker identity.
#[tokio::test]
async fn resolves_a_real_container_by_cgroup_id() {
    require_root();
    require_docker();
    let r = Resolver::from_host().expect("v2 mount and DOCKER_HOST");
    let c = TestContainer::start("obs-resolver-test", &[]);
    let rel = format!("/docker/{}", c.id);
    let cgroup_id =
        v2_mount::cgroup_id(r.mount(), &rel).unwrap_or_else(|e| panic!("{rel} in {}: {e}", r.mount().display()));

    let identity = r.resolve_id(cgroup_id).await.unwrap().expect("cgroup found by the walk");
    assert_eq!(identity.container.id, c.id);
    assert_eq!(identity.container.cgroup, rel);
    let docker = identity.docker.expect("dockerd knows the container");
    assert_eq!(docker.name, "obs-resolver-test");

    drop(c);
    // Cached: still answered after removal, until forgotten.
    assert!(r.docker_info(&identity.container.id).await.unwrap().is_some());
    r.forget(&identity.container.id);
    assert_eq!(r.docker_info(&identity.container.id).await.unwrap(), None);
}
