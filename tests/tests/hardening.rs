//! Smaller defects a review found (issue 10): outputs that never block, a
//! Docker answer that cannot crash the agent, files and directories with the
//! right modes, the agent's own tgid as the kernel sees it, and names printed
//! safely. As root, with real processes and real containers.

use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, name, require_docker, run},
    require_root,
};

/// `profile show` prints the `comm` a container's process gave itself with its
/// control characters escaped: the terminal gets no escape sequence.
#[test]
fn profile_show_escapes_a_comm_the_container_chose() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("comm");
    let _cleanup = Cleanup(vec![n.clone()]);
    // busybox sh renames itself, then makes `times` (nothing else in the container does).
    let o = run(
        &["-d", "--name", &n],
        &[
            "sh",
            "-c",
            "printf 'x\\033[2Jy' > /proc/self/comm; times; sleep 30",
        ],
    );
    assert!(
        o.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    agent.wait_for("times in the profile", || {
        let p = agent.try_profile(&n)?;
        p["syscalls"]
            .as_array()?
            .iter()
            .any(|r| r["name"] == "times" && r["comm"] == "x\u{1b}[2Jy")
            .then_some(())
    });
    let o = agent.cli(&["profile", "show", &n]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        !table.contains('\u{1b}'),
        "an escape sequence reached the terminal: {table:?}"
    );
    let times = table
        .lines()
        .find(|l| l.starts_with("times "))
        .expect("a times row");
    assert!(times.ends_with(" x\\u{1b}[2Jy"), "{times:?}");
}
