//! `observer agent --profiles DIR`: a real Docker container (busybox,
//! --network none) bound to the profile of its image digest, found in DIR by
//! cosign's tag name (`sha256-<hex>.json`), with no `--baseline`; drift from
//! it alerts; a new image of the same workload raises `new_image`. As root.

use std::time::Duration;

use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, docker, moby_default_without, name, require_docker, run},
    require_root,
};

fn image_id(image: &str) -> String {
    let o = docker(&["image", "inspect", "-f", "{{.Id}}", image]);
    assert!(o.status.success(), "docker image inspect {image}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

#[test]
fn a_container_is_bound_to_its_images_profile_and_alerts_on_drift() {
    require_root();
    require_docker();
    let n = name("bound");
    let _cleanup = Cleanup(vec![n.clone()]);
    let digest = image_id("observer-busybox:latest");
    let hex = digest.strip_prefix("sha256:").expect("a sha256 image id");
    // The image's profile: Docker's default without chmod.
    let dir = std::env::temp_dir().join(format!("observer-bound-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("profiles dir");
    let tag_file = dir.join(format!("sha256-{hex}.json"));
    std::fs::copy(moby_default_without(&["chmod"]), &tag_file).expect("profile");
    let agent = TestAgent::start(&["--profiles", &dir.display().to_string()]);
    let o =
        run(&["-d", "--name", &n], &["sh", "-c", "sleep 1; chmod 600 /etc/passwd; chmod 600 /etc/passwd; sleep 30"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    let alert = agent.wait_for("an outside_baseline alert from the image profile", || {
        agent.alerts().into_iter().find(|a| a["name"] == n.as_str() && a["kind"] == "outside_baseline")
    });
    assert_eq!(alert["syscall"], "chmod", "{alert}");
    let rule = alert["rule"].to_string();
    assert!(rule.contains("image profile") && rule.contains(&format!("sha256-{hex}.json")), "{alert}");
    let row = agent.container(&n).expect("ps");
    let bound = row["image_profile"].as_str().unwrap_or_default();
    assert!(bound.contains(&format!("sha256-{hex}.json")), "ps: {row}");
    // Only chmod drifted: the rest of what busybox did is in Docker's default.
    std::thread::sleep(Duration::from_secs(1));
    let drift: Vec<_> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["name"] == n.as_str() && a["kind"] == "outside_baseline")
        .map(|a| a["syscall"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(drift, ["chmod"], "one alert, for chmod");
    // The text table names the profile too.
    let table = String::from_utf8_lossy(&agent.cli(&["ps"]).stdout).into_owned();
    assert!(table.lines().next().unwrap_or_default().ends_with("PROFILE"), "{table}");

    // A new image for the same workload (the container's name, for Docker):
    // one new_image alert, and `ps` says the new image has no profile.
    let committed = format!("observer-bound-test:{}", std::process::id());
    let o = docker(&["commit", &n, &committed]);
    assert!(o.status.success(), "docker commit: {}", String::from_utf8_lossy(&o.stderr));
    let _ = docker(&["rm", "-f", &n]);
    let o = docker(&["run", "--network", "none", "-d", "--name", &n, &committed, "sleep", "30"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    let new_image = agent.wait_for("a new_image alert", || {
        agent.alerts().into_iter().find(|a| a["name"] == n.as_str() && a["kind"] == "new_image")
    });
    let detail = new_image["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&digest) && detail.contains("which has none"), "{new_image}");
    let row = agent.wait_for("the new container bound to no profile", || {
        agent.ps().into_iter().find(|c| c["name"] == n.as_str() && c["image_profile"] == "none")
    });
    assert_eq!(row["state"], "running", "{row}");
    std::thread::sleep(Duration::from_secs(1));
    let count = agent.alerts().iter().filter(|a| a["name"] == n.as_str() && a["kind"] == "new_image").count();
    assert_eq!(count, 1, "one new_image alert");
    let _ = docker(&["rm", "-f", &n]);
    let _ = docker(&["rmi", &committed]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn alive(n: &str) -> bool {
    let o = docker(&["inspect", "-f", "{{.State.Running}}", n]);
    String::from_utf8_lossy(&o.stdout).trim() == "true"
}

#[test]
fn enforce_bound_kills_a_container_that_leaves_its_images_profile() {
    require_root();
    require_docker();
    let n = name("boundkill");
    let _cleanup = Cleanup(vec![n.clone()]);
    // An image of this test's own (a commit of a container that never ran):
    // the agent kills only what runs it, never another test's busybox.
    let (maker, image) = (name("boundmaker"), format!("observer-bound-kill:{}", std::process::id()));
    let o = docker(&["create", "--network", "none", "--name", &maker, "observer-busybox:latest", "true"]);
    assert!(o.status.success(), "docker create: {}", String::from_utf8_lossy(&o.stderr));
    let o = docker(&["commit", &maker, &image]);
    let _ = docker(&["rm", "-f", &maker]);
    assert!(o.status.success(), "docker commit: {}", String::from_utf8_lossy(&o.stderr));
    let hex = image_id(&image).strip_prefix("sha256:").expect("a sha256 image id").to_owned();
    let dir = std::env::temp_dir().join(format!("observer-bound-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("profiles dir");
    std::fs::copy(moby_default_without(&["chmod"]), dir.join(format!("sha256-{hex}.json"))).expect("profile");
    let agent = TestAgent::start(&["--profiles", &dir.display().to_string(), "--enforce-bound", "kill"]);
    // Waits for a file, then makes chmod, which the image's profile leaves out.
    let script = "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; sleep 30";
    let o = docker(&["run", "--network", "none", "-d", "--name", &n, &image, "sh", "-c", script]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("the container, bound", || {
        agent
            .container(&n)
            .filter(|c| c["state"] == "running" && c["image_profile"].as_str().is_some_and(|p| p != "none"))
    });
    let o = docker(&["exec", &n, "touch", "/tmp/go"]);
    assert!(
        o.status.success(),
        "its own start and a docker exec inside the profile are not killed: {}\nalerts: {:?}",
        String::from_utf8_lossy(&o.stderr),
        agent.alerts()
    );
    agent.wait_for("the container to be killed", || (!alive(&n)).then_some(()));
    let alerts = agent.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == n.as_str() && a["syscall"] == "chmod"),
        "{alerts:?}"
    );
    let _ = docker(&["rm", "-f", &n]);
    let _ = docker(&["rmi", &image]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `observer ARGS` with its credentials from `docker_config` (a directory).
fn observer_with(docker_config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(observer_tests::observer_bin())
        .args(args)
        .env("DOCKER_CONFIG", docker_config)
        .output()
        .expect("running observer")
}

#[test]
fn a_container_is_bound_to_its_images_profile_from_a_registry_and_the_agent_outlives_the_registry() {
    require_root();
    require_docker();
    let mut reg = observer_tests::registry::TestRegistry::start(None);
    let repo = format!("oci://{}/bound/profiles", reg.addr());
    let dir = std::env::temp_dir().join(format!("observer-bound-registry-{}", std::process::id()));
    let docker_config = dir.join("docker");
    std::fs::create_dir_all(&docker_config).expect("docker config dir");
    std::fs::write(docker_config.join("config.json"), r#"{"auths":{}}"#).expect("docker config");
    let digest = image_id("observer-busybox:latest");
    let hex = digest.strip_prefix("sha256:").expect("a sha256 image id").to_owned();
    // The image's profile, pushed under its digest's tag: Docker's default without chmod.
    let profile = moby_default_without(&["chmod"]);
    let o = observer_with(
        &docker_config,
        &[
            "profile",
            "push",
            profile.to_str().unwrap(),
            &format!("{repo}:v1"),
            "--image-digest",
            &digest,
            "--plain-http",
        ],
    );
    assert!(o.status.success(), "profile push: {}", String::from_utf8_lossy(&o.stderr));

    let config = docker_config.display().to_string();
    let agent = TestAgent::start(&["--profiles", &repo, "--plain-http", "--docker-config", &config]);
    let n = name("boundreg");
    let _cleanup = Cleanup(vec![n.clone(), format!("{n}-2"), format!("{n}-3")]);
    let o =
        run(&["-d", "--name", &n], &["sh", "-c", "sleep 1; chmod 600 /etc/passwd; chmod 600 /etc/passwd; sleep 30"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    let alert = agent.wait_for("an outside_baseline alert from the registry's profile", || {
        agent.alerts().into_iter().find(|a| a["name"] == n.as_str() && a["kind"] == "outside_baseline")
    });
    assert_eq!(alert["syscall"], "chmod", "{alert}");
    let rule = alert["rule"].to_string();
    assert!(
        rule.contains("image profile") && rule.contains(&format!("{}/bound/profiles:sha256-{hex}", reg.addr())),
        "{alert}"
    );
    let row = agent.container(&n).expect("ps");
    let bound = row["image_profile"].as_str().unwrap_or_default();
    assert!(bound.contains(&format!("sha256-{hex}")) && bound.contains(&reg.addr()), "ps: {row}");
    std::thread::sleep(Duration::from_secs(1));
    let drift: Vec<_> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["name"] == n.as_str() && a["kind"] == "outside_baseline")
        .map(|a| a["syscall"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(drift, ["chmod"], "one alert, for chmod");

    // The registry goes away: a container of the same image is bound from
    // the agent's cache (checked by digest); one of an image the agent never
    // fetched is said to be unavailable, and the agent goes on.
    reg.kill();
    let second = format!("{n}-2");
    let o = run(&["-d", "--name", &second], &["sleep", "30"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("the second container bound from the cache", || {
        agent.container(&second).filter(|c| c["image_profile"].as_str().is_some_and(|p| p.contains(&hex)))
    });
    let other = format!("observer-bound-registry:{}", std::process::id());
    let o = docker(&["commit", &second, &other]);
    assert!(o.status.success(), "docker commit: {}", String::from_utf8_lossy(&o.stderr));
    let third = format!("{n}-3");
    let o = docker(&["run", "--network", "none", "-d", "--name", &third, &other, "sleep", "60"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    let row = agent.wait_for("the registry said to be unavailable in ps", || {
        agent.container(&third).filter(|c| c["image_profile"].as_str().is_some_and(|p| p.starts_with("unavailable: ")))
    });
    let status = row["image_profile"].as_str().unwrap_or_default();
    assert!(status.contains("did not answer") && status.contains("4 attempts"), "ps: {row}");
    // It answers: the agent goes on.
    agent.status();

    // Back: the waiting container is bound (to no profile: none was pushed
    // for that image) at the next round, without a restart.
    reg.restart();
    let start = std::time::Instant::now();
    loop {
        if agent.container(&third).is_some_and(|c| c["image_profile"] == "none") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(75),
            "the container was not bound once the registry was back: {:?}\nagent: {}",
            agent.container(&third),
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for c in [&n, &second, &third] {
        let _ = docker(&["rm", "-f", c]);
    }
    let _ = docker(&["rmi", &other]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `observer profile push CONTAINER oci://…`: the container's learned profile,
/// tagged by its image's digest (the tag `agent --profiles oci://` looks for),
/// with the digest and its time span as annotations.
#[test]
fn a_watched_containers_learned_profile_is_pushed_under_its_images_digest() {
    require_root();
    require_docker();
    let reg = observer_tests::registry::TestRegistry::start(None);
    let repo = format!("oci://{}/learned/profiles", reg.addr());
    let dir = std::env::temp_dir().join(format!("observer-push-container-{}", std::process::id()));
    let docker_config = dir.join("docker");
    std::fs::create_dir_all(&docker_config).expect("docker config dir");
    std::fs::write(docker_config.join("config.json"), r#"{"auths":{}}"#).expect("docker config");
    let digest = image_id("observer-busybox:latest");
    let hex = digest.strip_prefix("sha256:").expect("a sha256 image id").to_owned();
    let agent = TestAgent::start(&[]);
    let n = name("pushed");
    let _cleanup = Cleanup(vec![n.clone()]);
    let o = run(&["-d", "--name", &n], &["sh", "-c", "chmod 600 /etc/passwd; sleep 60"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("the container's chmod recorded", || {
        let o = agent.cli(&["profile", "show", &n, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        v["syscalls"].as_array()?.iter().any(|r| r["name"] == "chmod").then_some(())
    });
    let socket = agent.socket.display().to_string();
    let o = observer_with(&docker_config, &["profile", "push", &n, &repo, "--plain-http", "--socket", &socket]);
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "profile push {n}: {said}");
    assert!(said.contains(&format!(":sha256-{hex}")), "pushed under the image digest's tag: {said}");

    let out = dir.join("pulled.json");
    let tagged = format!("{repo}:sha256-{hex}");
    let o = observer_with(&docker_config, &["profile", "pull", &tagged, "-o", out.to_str().unwrap(), "--plain-http"]);
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "profile pull: {said}");
    assert!(said.contains(&digest), "the image digest is an annotation: {said}");
    let pulled: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).expect("pulled")).expect("JSON");
    let allowed: Vec<&str> = pulled["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .flat_map(|r| r["names"].as_array().into_iter().flatten())
        .filter_map(|s| s.as_str())
        .collect();
    assert!(allowed.contains(&"chmod") && allowed.contains(&"clock_nanosleep"), "the learned calls: {allowed:?}");
    assert_eq!(pulled["defaultAction"], "SCMP_ACT_ERRNO", "{pulled}");

    // A name that is neither a file nor a container is an error naming it.
    let o = observer_with(
        &docker_config,
        &["profile", "push", "no-such-container-or-file", &repo, "--plain-http", "--socket", &socket],
    );
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success() && said.contains("no-such-container-or-file"), "{said}");
    let _ = docker(&["rm", "-f", &n]);
    let _ = std::fs::remove_dir_all(&dir);
}
