//! Docker containers' labels (`docker run --label`) select rules as pods'
//! labels do: `enforce --match label:KEY=VALUE` and `--baseline
//! label:KEY=VALUE=FILE`. As root, with real Docker.

use std::time::Duration;

use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, docker, moby_default_without, name, require_docker, run},
    require_root, unique,
};

fn alive(n: &str) -> bool {
    let o = docker(&["inspect", "-f", "{{.State.Running}}", n]);
    String::from_utf8_lossy(&o.stdout).trim() == "true"
}

/// Three containers make chmod, which the profile leaves out: the one whose
/// label an `enforce --match label:` rule names is killed, the one a
/// `--baseline label:` names is alerted, the unlabelled one is left alone.
#[test]
fn docker_labels_select_enforcement_and_baselines() {
    require_root();
    require_docker();
    let tag = (unique() % 1_000_000_000).to_string();
    let (killed, baselined, plain) = (name("lbl-kill"), name("lbl-base"), name("lbl-none"));
    let _cleanup = Cleanup(vec![killed.clone(), baselined.clone(), plain.clone()]);
    let no_chmod = moby_default_without(&["chmod"]);
    let nc = no_chmod.to_str().expect("utf-8");
    let baseline = format!("label:observer.test.team={tag}={nc}");
    let agent = TestAgent::start(&["--baseline", &baseline]);
    let o = agent.cli(&[
        "enforce",
        "--match",
        &format!("label:observer.test.tier={tag}"),
        "--profile",
        nc,
        "--action",
        "kill",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let script = "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; sleep 30";
    let tier = format!("observer.test.tier={tag}");
    let team = format!("observer.test.team={tag}");
    for (n, labels) in [(&killed, vec!["--label", &tier]), (&baselined, vec!["--label", &team]), (&plain, vec![])] {
        let mut extra = vec!["-d", "--name", n.as_str()];
        extra.extend(labels);
        let o = run(&extra, &["sh", "-c", script]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for n in [&killed, &baselined, &plain] {
        agent.wait_for("the containers, named", || agent.container(n).filter(|c| c["image"] != ""));
    }
    let c = agent.container(&killed).expect("in ps");
    assert_eq!(c["labels"]["observer.test.tier"], tag.as_str(), "ps shows a Docker container's labels: {c}");
    // The rules armed from the labels before the calls come.
    std::thread::sleep(Duration::from_secs(1));
    for n in [&killed, &baselined, &plain] {
        let o = docker(&["exec", n, "touch", "/tmp/go"]);
        assert!(o.status.success(), "{n}: {}", String::from_utf8_lossy(&o.stderr));
    }
    agent.wait_for("the labelled container to be killed", || (!alive(&killed)).then_some(()));
    let alert = agent.wait_for("the baseline alert", || {
        agent.alerts().into_iter().find(|a| a["kind"] == "outside_baseline" && a["name"] == baselined.as_str())
    });
    assert_eq!(alert["syscall"], "chmod", "{alert}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(&baselined), "a baseline only alerts");
    assert!(alive(&plain), "no rule names the unlabelled container");
    let alerts = agent.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == killed.as_str() && a["syscall"] == "chmod"),
        "{alerts:?}"
    );
    assert!(!alerts.iter().any(|a| a["name"] == plain.as_str()), "{alerts:?}");
    let _ = std::fs::remove_file(&no_chmod);
}
