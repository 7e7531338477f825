//! `observer top` as a person uses it: run in a terminal (tmux), against a real
//! agent and real Docker containers (busybox, --network none), driven with
//! keys (`tmux send-keys`) and read from the screen (`tmux capture-pane`).
//! And the feed under it (`{"cmd": "subscribe"}`), read as a client would.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    process::{Command, Output},
    time::{Duration, Instant},
};

use observer_contract::views::TopFrame;
use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, docker, moby_default_without, name, require_docker, run},
    observer_bin, require_root, unique,
};

/// A tmux server of the test's own (`-L`), with one session running a command
/// in a terminal of a fixed size; killed on drop.
struct Tmux {
    server: String,
}

impl Tmux {
    fn start(width: u16, height: u16, command: &str) -> Self {
        let tmux = Tmux { server: format!("observer-test-{}", unique()) };
        let o =
            tmux.run(&["new-session", "-d", "-s", "top", "-x", &width.to_string(), "-y", &height.to_string(), command]);
        assert!(o.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&o.stderr));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.server, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux is needed (cargo xtask setup test installs it)")
    }

    /// Keys as tmux names them (`Enter`, `Escape`, `q`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "tmux send-keys {keys:?}");
    }

    /// Text typed as it is (`-l`: no key names).
    fn type_text(&self, text: &str) {
        assert!(self.run(&["send-keys", "-t", "top", "-l", "--", text]).status.success(), "tmux send-keys -l {text:?}");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    /// Waits until the screen shows what `f` looks for; fails with the screen.
    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if f(&screen) {
                return screen;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn require_tmux() {
    match Command::new("tmux").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("tmux is missing: cargo xtask setup test installs it (these tests drive observer top in it)"),
    }
}

/// The screen line holding `text`.
fn line_of(screen: &str, text: &str) -> Option<usize> {
    screen.lines().position(|l| l.contains(text))
}

/// Sockets the agent has open: the API listener, its own, and one per client.
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn top_lists_sorts_filters_opens_a_profile_shows_alerts_and_quits() {
    require_root();
    require_docker();
    require_tmux();
    let prefix = name("top");
    // By name the idle one comes first; by rate the busy one does.
    let (idle, busy) = (format!("{prefix}-a-idle"), format!("{prefix}-z-busy"));
    let cleanup = Cleanup(vec![idle.clone(), busy.clone()]);
    // The busy container's baseline: Docker's default without chmod.
    let baseline = moby_default_without(&["chmod"]);
    let agent = TestAgent::start(&["--baseline", &format!("{busy}={}", baseline.display())]);
    let loop_script = "while :; do cat /dev/null; if [ -e /tmp/go ]; then rm /tmp/go; chmod 600 /etc/passwd; fi; done";
    let o = run(&["-d", "--name", &busy], &["sh", "-c", loop_script]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["-d", "--name", &idle], &["sleep", "600"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    for n in [&idle, &busy] {
        agent.wait_for(&format!("{n} named in ps"), || {
            agent.container(n).filter(|c| c["image"] != "" && c["calls"].as_u64().unwrap_or(0) > 0)
        });
    }
    let agent_pid = agent.child.as_ref().expect("agent running").id();
    let sockets_before = sockets_of(agent_pid);

    let command = format!(
        "{} top --socket {}; echo \"observer top exited with $?\"; sleep 60",
        observer_bin().display(),
        agent.socket.display()
    );
    let tmux = Tmux::start(160, 40, &command);

    // The busy container near the top (sorted by calls/s).
    tmux.wait_for("the busy container", |s| s.contains("sort: calls/s") && line_of(s, &busy).is_some());

    // /: a filter, typed; only this test's containers stay (the host may run others).
    tmux.keys(&["/"]);
    tmux.type_text(&prefix);
    tmux.wait_for("the filter being typed", |s| s.contains(&format!("filter: {prefix}")));
    tmux.keys(&["Enter"]);
    // The busy one first once two frames gave rates (before that, unknown
    // rates tie and the names decide).
    let screen = tmux.wait_for(
        "both containers, the busy one first",
        |s| matches!((line_of(s, &busy), line_of(s, &idle)), (Some(b), Some(i)) if b < i),
    );
    let busy_line = screen.lines().find(|l| l.contains(&busy)).unwrap_or_default();
    for part in ["observer-busybox", "runc", "running", "baseline"] {
        assert!(busy_line.contains(part), "{part:?} missing from the busy container's line: {busy_line}");
    }

    // n: by name.
    tmux.keys(&["n"]);
    tmux.wait_for("the list sorted by name", |s| {
        s.contains("sort: name") && matches!((line_of(s, &busy), line_of(s, &idle)), (Some(b), Some(i)) if i < b)
    });

    // /: more of the filter, which keeps the busy one only.
    tmux.keys(&["/"]);
    tmux.type_text("-z-busy");
    tmux.keys(&["Enter"]);
    tmux.wait_for("only the busy container", |s| {
        s.contains(&format!("filter: {busy}")) && line_of(s, &busy).is_some() && line_of(s, &idle).is_none()
    });

    // An alert while top runs: the busy container leaves its baseline.
    assert!(docker(&["exec", &busy, "touch", "/tmp/go"]).status.success());
    let screen = tmux.wait_for("the chmod alert in the alerts panel", |s| {
        s.lines().any(|l| l.contains("outside_baseline") && l.contains(&busy) && l.contains("chmod (x86_64)"))
    });
    assert!(line_of(&screen, "latest alerts").is_some(), "{screen}");

    // Enter: the selected (only) container's profile, with a syscall it made.
    let profile = agent.profile(&busy);
    assert!(profile["syscalls"].as_array().expect("syscalls").iter().any(|r| r["name"] == "wait4"), "{profile}");
    tmux.keys(&["Enter"]);
    // Table rows start at the border: `│wait4 ...`.
    let row = |s: &str, syscall: &str| s.lines().find(|l| l.starts_with(&format!("│{syscall} "))).map(str::to_owned);
    let screen = tmux.wait_for("the busy container's profile", |s| {
        s.contains("profile (esc: back)")
            && row(s, "wait4").is_some_and(|l| l.contains("x86_64") && l.contains("container"))
    });
    assert!(line_of(&screen, &busy) == Some(0), "the header names the container: {screen}");
    // Sorted by name, then filtered to the syscall that alerted.
    tmux.keys(&["n", "/"]);
    tmux.type_text("chmod");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the profile filtered to chmod", |s| {
        s.contains("sort: name")
            && s.contains("filter: chmod")
            && row(s, "chmod").is_some()
            && row(s, "wait4").is_none()
    });
    let chmod = row(&screen, "chmod").unwrap_or_default();
    assert!(chmod.contains("x86_64") && chmod.contains("container"), "{chmod}");

    // Esc: back to the list (its filter kept).
    tmux.keys(&["Escape"]);
    tmux.wait_for("the container list again", |s| s.contains("┌ containers ") && line_of(s, &busy).is_some());
    // Esc again clears the filter.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the filter cleared", |s| s.contains("┌ containers ") && !s.contains("filter:"));

    // q: top ends with status 0 and gives the terminal back.
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("top to exit", |s| s.contains("observer top exited with"));
    assert!(screen.contains("observer top exited with 0"), "{screen}");
    assert!(!screen.contains("NAME"), "the alternate screen is gone: {screen}");

    // The agent dropped the feed when top went away.
    agent.wait_for("the agent to close top's connection", || (sockets_of(agent_pid) <= sockets_before).then_some(()));
    assert!(!agent.stderr().contains("panicked"), "{}", agent.stderr());
    drop(tmux);
    drop(cleanup);
    drop(agent);
}

/// The profile screen says whose each row is (issue 29): a busybox container
/// looping over `ls /` and `cat /etc/passwd`; its loop's rows are the
/// container's although runc's init made some of them first, and rows only
/// runc's init made are the runtime's.
#[test]
fn top_shows_a_containers_loop_as_its_own_and_runcs_start_as_the_runtimes() {
    require_root();
    require_docker();
    require_tmux();
    let n = name("top-phases");
    let _cleanup = Cleanup(vec![n.clone()]);
    let agent = TestAgent::start(&[]);
    let o = run(
        &["-d", "--name", &n],
        &["sh", "-c", "while :; do ls / > /dev/null; cat /etc/passwd > /dev/null; sleep 0.2; done"],
    );
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("the loop's rows in the container's phase", || {
        let p = agent.try_profile(&n)?;
        let rows = observer_tests::agent::rows(&p);
        ["getdents64", "newfstatat", "sendfile"]
            .iter()
            .all(|s| rows.iter().any(|(name, _, phases, ..)| name == s && phases.iter().any(|p| p == "container")))
            .then_some(())
    });

    let command = format!("{} top --socket {}; sleep 60", observer_bin().display(), agent.socket.display());
    let tmux = Tmux::start(160, 40, &command);
    tmux.wait_for("the container list", |s| s.contains("┌ containers "));
    tmux.keys(&["/"]);
    tmux.type_text(&n);
    tmux.keys(&["Enter"]);
    tmux.wait_for("the container alone", |s| s.contains(&format!("filter: {n}")) && line_of(s, &n).is_some());
    tmux.keys(&["Enter"]);
    tmux.wait_for("its profile", |s| s.contains("profile (esc: back)") && s.contains("│wait4 "));

    // Columns of a syscall's row: SYSCALL ABI USED-BY CALLS CALLS/S ERRORS DENIED PHASES FIRST-USE.
    let columns = |s: &str, syscall: &str| -> Option<Vec<String>> {
        let line = s.lines().find(|l| l.starts_with(&format!("│{syscall} ")))?;
        Some(line.trim_matches('│').split_whitespace().map(str::to_owned).collect())
    };
    // One syscall at a time (the screen holds fewer rows than the profile has):
    // `/`, backspaces over the last filter (not Esc: an Esc the next key follows
    // at once reads as Alt and that key), the next name.
    let show = |syscall: &str| -> (String, Vec<String>) {
        let mut keys = vec!["/"];
        keys.extend(["BSpace"; 24]);
        tmux.keys(&keys);
        tmux.type_text(syscall);
        tmux.keys(&["Enter"]);
        let screen = tmux.wait_for(&format!("the {syscall} row"), |s| {
            s.contains(&format!("filter: {syscall}")) && columns(s, syscall).is_some()
        });
        let row = columns(&screen, syscall).unwrap_or_default();
        (screen, row)
    };
    for syscall in ["getdents64", "newfstatat", "sendfile"] {
        let (screen, row) = show(syscall);
        assert_eq!(row.get(2).map(String::as_str), Some("container"), "{syscall}: the loop's row:\n{screen}");
        assert!(row.iter().any(|c| c.split(',').any(|p| p == "container")), "{syscall}: its phases:\n{screen}");
    }
    // Every phase: runc's init made newfstatat before its filter, the loop after.
    let (screen, row) = show("newfstatat");
    assert!(row.iter().any(|c| c.starts_with("init,") && c.ends_with(",container")), "{row:?}\n{screen}");
    for syscall in ["pivot_root", "mount"] {
        let (screen, row) = show(syscall);
        assert_eq!(row.get(2).map(String::as_str), Some("runtime"), "{syscall}: runc's init alone:\n{screen}");
        assert!(!row.iter().any(|c| c.contains("container")), "{syscall}:\n{screen}");
    }
    // Counts are totals over every phase, and the screen says so.
    assert!(screen.contains("totals over every phase"), "{screen}");
    tmux.keys(&["q"]);
    drop(tmux);
    assert!(!agent.stderr().contains("panicked"), "{}", agent.stderr());
}

/// One subscription on a raw connection, as any client would use it.
struct Subscriber {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Subscriber {
    fn open(agent: &TestAgent, request: &str) -> Self {
        let stream = UnixStream::connect(&agent.socket).expect("connecting to the agent");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut s = Subscriber { stream, reader };
        s.send(request);
        s
    }

    fn send(&mut self, line: &str) {
        self.stream.write_all(format!("{line}\n").as_bytes()).expect("writing to the agent");
    }

    fn answer(&mut self) -> serde_json::Value {
        let mut line = String::new();
        assert!(self.reader.read_line(&mut line).expect("reading a frame") > 0, "the agent closed the feed");
        serde_json::from_str(&line).expect("JSON")
    }

    fn frame(&mut self) -> TopFrame {
        let answer = self.answer();
        assert_eq!(answer["ok"], true, "{answer}");
        serde_json::from_value(answer["data"].clone()).expect("a frame of the contract's type")
    }
}

#[test]
fn the_feed_pushes_typed_frames_switches_container_and_ends_with_its_client() {
    require_root();
    require_docker();
    let n = name("feed");
    let _cleanup = Cleanup(vec![n.clone()]);
    let agent = TestAgent::start(&[]);
    let o = run(&["-d", "--name", &n], &["sh", "-c", "while :; do cat /dev/null; done"]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    agent.wait_for("the container in ps", || agent.container(&n).filter(|c| c["image"] != ""));
    let agent_pid = agent.child.as_ref().expect("agent running").id();
    let sockets_before = sockets_of(agent_pid);

    let mut feed = Subscriber::open(&agent, r#"{"cmd":"subscribe","every_ms":200}"#);
    let started = Instant::now();
    let frames: Vec<TopFrame> = (0..4).map(|_| feed.frame()).collect();
    // Four frames, 200 ms apart (the first at once): pushed, not polled.
    assert!(started.elapsed() >= Duration::from_millis(500), "{:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(frames.windows(2).all(|w| w[1].at_ns > w[0].at_ns), "frames read later have later times");
    let row = |f: &TopFrame| f.containers.iter().find(|c| c.name == n).cloned().expect("the container in the frame");
    let (first, last) = (row(&frames[0]), row(&frames[3]));
    assert!(last.calls > first.calls, "the busy container's calls grow: {first:?} {last:?}");
    assert!(last.syscalls > 10 && last.new_syscalls > 0, "{last:?}");
    assert!(frames.iter().all(|f| f.profile.is_none() && f.profile_error.is_none()));

    // Another subscription on the same connection: the profile comes, at once.
    feed.send(&format!(r#"{{"cmd":"subscribe","every_ms":60000,"container":"{n}"}}"#));
    let asked = Instant::now();
    let frame = std::iter::repeat_with(|| feed.frame()).find(|f| f.profile.is_some()).expect("a frame");
    assert!(asked.elapsed() < Duration::from_secs(5), "answered at once, not after the 60 s period");
    let profile = frame.profile.expect("profile");
    assert_eq!(profile.name, n);
    assert!(profile.syscalls.iter().any(|s| s.name == "wait4" && s.calls > 0), "{:?}", profile.syscalls);

    // An unknown container: said in the frame, the feed goes on.
    feed.send(r#"{"cmd":"subscribe","container":"no-such-container"}"#);
    let frame = std::iter::repeat_with(|| feed.frame()).find(|f| f.profile_error.is_some()).expect("a frame");
    assert!(frame.profile_error.unwrap().contains("no-such-container"));

    // Anything but a subscription ends the feed with an error line.
    feed.send(r#"{"cmd":"ps"}"#);
    let answer = std::iter::repeat_with(|| feed.answer()).find(|a| a["ok"] == false).expect("an error");
    assert!(answer["error"].as_str().unwrap_or("").contains("only subscribe"), "{answer}");
    let mut rest = String::new();
    assert_eq!(feed.reader.read_line(&mut rest).expect("EOF"), 0, "the agent closed the feed: {rest}");

    // A bad period is refused at once.
    let mut bad = Subscriber::open(&agent, r#"{"cmd":"subscribe","every_ms":5}"#);
    let answer = bad.answer();
    assert!(answer["error"].as_str().unwrap_or("").contains("every_ms 5 is out of range"), "{answer}");

    // A client that goes away mid-feed: the agent lets go of the connection.
    let mut gone = Subscriber::open(&agent, r#"{"cmd":"subscribe","every_ms":100}"#);
    gone.frame();
    drop(gone);
    drop(bad);
    drop(feed);
    agent.wait_for("the agent to close every feed", || (sockets_of(agent_pid) <= sockets_before).then_some(()));
    // And it still answers.
    assert!(agent.ps().iter().any(|c| c["name"] == n.as_str()));
}

#[test]
fn top_refuses_what_it_cannot_do_with_a_message() {
    let o = Command::new(observer_bin()).args(["top", "--every", "5ms", "--socket", "/nonexistent"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("observer: --every 5ms: the feed's period is 100ms to 60s"), "{err}");
    // Not a terminal (stdout is a pipe here).
    let o = Command::new(observer_bin()).args(["top", "--socket", "/nonexistent"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("observer top draws on a terminal"), "{err}");
}
