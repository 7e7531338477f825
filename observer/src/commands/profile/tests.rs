use observer_profile::{args::SeenArgs, model, resolve::ResolveOptions};

use super::{text::args_table, *};

const EVIL: &str = "x\u{1b}[2J\u{1b}]0;owned\u{7}";

#[test]
fn show_escapes_control_characters_in_names_and_comm() {
    let data = serde_json::json!({
        "name": "web", "id": "0123456789abcdef", "image": "busybox", "runtime": "runc", "state": "running",
        "first_seen": "2026-01-01T00:00:00Z", "observed_since": null, "seccomp_mode": 2, "calls": 4, "baseline": null,
        "syscalls": [
            {"name": "read", "abi": "x86_64", "phase": "container", "phases": ["container"], "owner": "container",
             "calls": 3, "errors": 0, "denied": 0, "first_seen": "2026-01-01T00:00:00Z", "pid": 42, "comm": "sh",
             "container_first_use": {"first_seen": "2026-01-01T00:00:00Z", "pid": 42, "comm": "sh"}},
            {"name": EVIL, "abi": "x86_64", "phase": "container", "phases": ["container"], "owner": "container",
             "calls": 1, "errors": 0, "denied": 0, "first_seen": "2026-01-01T00:00:00Z", "pid": 43, "comm": "x",
             "container_first_use": {"first_seen": "2026-01-01T00:00:00Z", "pid": 43, "comm": format!("evil{EVIL}\n")}},
        ],
    });
    let view: ProfileView = serde_json::from_value(data).expect("a profile view");
    let text = table(&view);
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    assert_eq!(text.lines().take_while(|l| !l.is_empty()).count(), 4, "one line per row: {text:?}");
    assert!(text.contains("x\\u{1b}[2J\\u{1b}]0;owned\\u{7}"), "{text:?}");
    assert!(text.contains("evilx\\u{1b}[2J"), "{text:?}");
    assert!(text.contains(" sh\n"), "a plain comm is unchanged: {text:?}");
}

/// Issue 29: runc's init made `newfstatat` first and the container's `ls`
/// then made it hundreds of times; `pivot_root` was runc's alone.
#[test]
fn show_says_whose_each_row_is_with_every_phase() {
    let row = |name: &str, phases: &[&str], denied: &[&str], comm: &str, own: Option<&str>| {
        let owner = if phases.iter().chain(denied).any(|p| *p == "container") { "container" } else { "runtime" };
        serde_json::json!({"name": name, "abi": "x86_64", "phase": phases.first().or(denied.first()),
            "phases": phases, "denied_phases": denied, "owner": owner, "calls": 668, "errors": 0,
            "denied": denied.len(), "first_seen": "2026-12-07T20:18:08.282870312Z", "pid": 32755, "comm": comm,
            "container_first_use": own.map(|c| serde_json::json!({"first_seen": "2026-12-07T20:18:08.501066793Z",
                "pid": 321, "comm": c}))})
    };
    let data = serde_json::json!({
        "name": "web", "id": "0123456789abcdef", "image": "busybox", "runtime": "runc", "state": "running",
        "first_seen": "2026-01-01T00:00:00Z", "observed_since": null, "seccomp_mode": 2, "calls": 4, "baseline": null,
        "syscalls": [
            row("newfstatat", &["init_before_filter", "init_after_filter", "container"], &[], "runc:[0:PARENT]", Some("ls")),
            row("pivot_root", &["init_before_filter"], &[], "runc:[2:INIT]", None),
            row("clone3", &["init_before_filter"], &["container"], "runc:[2:INIT]", Some("sh")),
            // A record saved before the container's first use was kept apart.
            row("openat", &["init_before_filter", "container"], &[], "runc", None),
        ],
    });
    let view: ProfileView = serde_json::from_value(data).expect("a profile view");
    let text = table(&view);
    let line = |name: &str| -> Vec<&str> {
        text.lines().find(|l| l.starts_with(&format!("{name} "))).expect(name).split_whitespace().collect()
    };
    let header: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["SYSCALL", "ABI", "USED", "BY", "CALLS", "ERRORS", "DENIED", "PHASES", "FIRST", "USE", "PID", "COMM"]
    );
    assert_eq!(
        line("newfstatat"),
        [
            "newfstatat",
            "x86_64",
            "container",
            "668",
            "0",
            "0",
            "init,init-filtered,container",
            "2026-12-07T20:18:08.501066793Z",
            "321",
            "ls"
        ]
    );
    assert_eq!(
        line("pivot_root"),
        [
            "pivot_root",
            "x86_64",
            "runtime",
            "668",
            "0",
            "0",
            "init",
            "2026-12-07T20:18:08.282870312Z",
            "32755",
            "runc:[2:INIT]"
        ]
    );
    assert_eq!(line("clone3")[2..7], ["container", "668", "0", "1", "init,denied:container"]);
    assert_eq!(line("clone3")[7..], ["2026-12-07T20:18:08.501066793Z", "321", "sh"]);
    // Not known: said as such, never runc's first use under the container's name.
    assert_eq!(line("openat")[2..], ["container", "668", "0", "0", "init,container", "-", "-", "-"]);
    assert!(text.contains("\nCALLS, ERRORS and DENIED are totals over every phase"), "{text}");
}

#[test]
fn show_lists_argument_values_by_name() {
    let args: SeenArgs = serde_json::from_value(serde_json::json!({
        "socket": {"values": [(1u64 << 32) | 1, (2u64 << 32) | 2]},
        "clone": {"values": [0, 0x1002_0000]},
        "ioctl": {"values": [0x5413], "overflowed": true},
        "future\u{1b}[2J": {"values": [1]},
    }))
    .expect("seen args");
    let text = args_table(&args);
    assert!(text.contains("socket       (family, type)     AF_UNIX, SOCK_STREAM; AF_INET, SOCK_DGRAM\n"), "{text}");
    assert!(text.contains("clone        (namespace flags)  0; CLONE_NEWUSER|CLONE_NEWNS\n"), "{text}");
    assert!(text.contains("TIOCGWINSZ (and more"), "{text}");
    assert!(text.contains("future\\u{1b}[2J 0x1"), "{text}");
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    assert_eq!(args_table(&SeenArgs::default()), "");
}

#[test]
fn check_escapes_control_characters_in_names() {
    let text = format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{{"names": ["read", {}], "action": "SCMP_ACT_ALLOW"}}]}}"#,
        serde_json::to_string(EVIL).unwrap()
    );
    let profile = model::parse(&text, "p.json").unwrap().resolve(&ResolveOptions::docker_default());
    let shown = check_text(&check(&profile));
    assert!(shown.contains("unknown-name"), "{shown:?}");
    assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{shown:?}");
    assert!(shown.contains("x\\u{1b}[2J"), "{shown:?}");
}

#[test]
fn diff_text_names_what_changed() {
    let parse = |text: &str| model::parse(text, "p.json").unwrap().resolve(&ResolveOptions::docker_default());
    let old = parse(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "chmod"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let new = parse(
        r#"{"defaultAction": "SCMP_ACT_KILL", "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let shown = diff_text(&observer_profile::diff::diff(&old, &new));
    assert!(shown.starts_with("default action: errno(1) -> kill_thread\n"), "{shown}");
    assert!(shown.contains("x86_64:\n  added:   write\n  removed: chmod\n"), "{shown}");
}
