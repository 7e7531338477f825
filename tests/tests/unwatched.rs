//! What the kernel programs do for a cgroup the agent does not record, and how
//! they report their own failed helper calls: with the real agent, a real
//! cgroup and a real seccomp filter, as root.

use std::{process::Command, time::Duration};

use observer_tests::{agent::TestAgent, churn::Cgroup, require_root, testprog, unique};

/// A plain cgroup under `--watch containers` is unwatched: `sys_exit` stops at
/// the cgroup cache for it (issue 30), so a denial there is not looked for and
/// not counted as an unattributed one (that counter is for cgroups that found
/// every slot taken). `status` lists every helper call site, none failed.
#[test]
fn an_unwatched_cgroups_exits_stop_at_the_cache() {
    require_root();
    let agent = TestAgent::start(&["--watch", "containers"]);
    let cgroup = Cgroup::create(&format!("observer-unwatched-{}", unique()));
    // Its first calls open a slot; the agent then names it plain and ignores it.
    let status = cgroup.spawn(Command::new(testprog()).args(["calls", "1"])).expect("testprog").wait().expect("wait");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(1500));
    // Under a filter of its own: chmod is denied with EPERM twice.
    let status = cgroup.spawn(Command::new(testprog()).arg("deny-chmod")).expect("testprog").wait().expect("wait");
    assert!(status.success(), "deny-chmod: {status}");
    let status = agent.status();
    assert_eq!(status["denials_unattributed"], 0, "an unwatched cgroup's denials are not looked for: {status}");
    let sites = status["helper_failures"].as_object().unwrap_or_else(|| panic!("no helper_failures: {status}"));
    assert_eq!(sites.len(), observer_common::stats::helper::SITES.len(), "{status}");
    for (site, failed) in sites {
        assert_eq!(failed, 0, "{site} failed: {status}");
    }
}
