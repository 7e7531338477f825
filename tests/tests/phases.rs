//! Whose syscalls are whose, as `observer profile show` prints them (issue 29):
//! a busybox container looping over `ls /` and `cat /etc/passwd` under a real
//! agent. The loop's rows are the container's even where runc's init made the
//! same call first; rows only runc's init made, starting the container, are
//! the runtime's; every phase a row was seen in is printed.

use std::collections::BTreeMap;

use observer_tests::{
    agent::{TestAgent, rows},
    docker::{Cleanup, name, require_docker, run},
    require_root,
};

/// The container's own loop.
const LOOP: &str = "while :; do ls / > /dev/null; cat /etc/passwd > /dev/null; sleep 0.2; done";

/// Rows the loop makes (`getdents64` and `newfstatat`: `ls`; `sendfile`: `cat`;
/// `execve`: the shell starting both). runc's init also makes `newfstatat`
/// (before its filter) and `execve` (after it: the exec of the shell).
const LOOP_ROWS: [&str; 4] = ["getdents64", "newfstatat", "sendfile", "execve"];

/// Rows only runc's init makes, setting the container up.
const INIT_ROWS: [&str; 2] = ["pivot_root", "mount"];

/// The table's rows by syscall name, split into columns: SYSCALL ABI USED-BY
/// CALLS ERRORS DENIED PHASES FIRST-USE PID COMM.
fn table_rows(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with("SYSCALL "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let columns: Vec<String> = l.split_whitespace().map(str::to_owned).collect();
            (columns[0].clone(), columns)
        })
        .collect()
}

#[test]
fn profile_show_marks_the_containers_loop_as_its_own_and_runcs_start_as_the_runtimes() {
    require_root();
    require_docker();
    let agent = TestAgent::start(&[]);
    let n = name("phases");
    let _cleanup = Cleanup(vec![n.clone()]);
    let o = run(&["-d", "--name", &n], &["sh", "-c", LOOP]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("the loop's rows in the container's phase", || {
        let p = agent.try_profile(&n)?;
        let rows = rows(&p);
        LOOP_ROWS
            .iter()
            .all(|s| {
                rows.iter().any(|(name, abi, phases, ..)| {
                    name == s && abi == "x86_64" && phases.iter().any(|p| p == "container")
                })
            })
            .then_some(())
    });

    let o = agent.cli(&["profile", "show", &n]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let table = table_rows(&text);
    let row = |s: &str| table.get(s).unwrap_or_else(|| panic!("no {s} row in:\n{text}"));

    for s in LOOP_ROWS {
        let r = row(s);
        assert_eq!(r[2], "container", "{s}: the loop's row is the container's:\n{text}");
        assert!(r[6].split(',').any(|p| p == "container"), "{s}: its phases name the container:\n{text}");
        // Its first use is the container's own call, not runc's.
        assert!(!r[9].starts_with("runc"), "{s}: first use by {}, runc's:\n{text}", r[9]);
        assert!(["sh", "ls", "cat"].contains(&r[9].as_str()), "{s}: first use by {}:\n{text}", r[9]);
    }
    // Every phase of a row, not the first only: runc's init made these too.
    assert!(row("newfstatat")[6].starts_with("init,"), "newfstatat: {:?}", row("newfstatat"));
    assert!(row("execve")[6].contains("init-filtered,"), "execve: {:?}", row("execve"));

    for s in INIT_ROWS {
        let r = row(s);
        assert_eq!(r[2], "runtime", "{s}: only runc's init made it:\n{text}");
        assert!(!r[6].contains("container"), "{s}: {r:?}");
        assert!(r[9].starts_with("runc"), "{s}: first use by {}:\n{text}", r[9]);
    }
    let header = text.lines().find(|l| l.starts_with("SYSCALL ")).unwrap_or_else(|| panic!("no table: {text}"));
    assert!(header.contains(" USED BY ") && header.contains(" PHASES "), "{header}");
    // Counts are the kernel's totals per row, said so.
    assert!(text.contains("CALLS, ERRORS and DENIED are totals over every phase"), "{text}");

    // `ps` names the seccomp mode as /proc/PID/status users know it (Docker's default filter).
    let c = agent.container(&n).expect("the container in ps");
    assert_eq!(c["seccomp_mode"], 2, "JSON keeps the number: {c}");
    let id = c["id"].as_str().expect("id");
    let o = agent.cli(&["ps"]);
    let table = String::from_utf8_lossy(&o.stdout);
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    let line: Vec<&str> =
        table.lines().find(|l| l.starts_with(&id[..12])).expect("its line").split_whitespace().collect();
    let at = header.iter().position(|h| *h == "SECCOMP").expect("a SECCOMP column");
    // Columns after POD (`-`) line up with the header's words: count from the end.
    assert_eq!(line[line.len() - (header.len() - at)], "filter", "{table}");
}
