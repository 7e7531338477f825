//! Alerts where people collect them: a real agent, a real container tripping
//! an enforcement rule, and receivers the test owns: a unix datagram socket
//! standing in for /dev/log, and an HTTP server on loopback for the webhook.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, docker, moby_default_without, name, profile_path, require_docker, run},
    require_root, unique,
};
use serde_json::Value;

/// A unix datagram socket where a syslog daemon's (or journald's) would be.
struct SyslogReceiver {
    path: PathBuf,
    socket: UnixDatagram,
}

impl SyslogReceiver {
    fn bind() -> Self {
        let dir = std::env::temp_dir().join(format!("observer-syslog-{}", unique()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("log");
        let socket = UnixDatagram::bind(&path).expect("binding the test's syslog socket");
        Self { path, socket }
    }

    /// The next datagram as text, within `within`.
    fn next(&self, within: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(within)).expect("timeout");
        let mut buf = vec![0u8; 65536];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8(buf[..n].to_vec()).expect("a syslog datagram is UTF-8"))
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("utf-8")
    }
}

impl Drop for SyslogReceiver {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.path.parent().expect("dir"));
    }
}

/// One request as the webhook server read it.
#[derive(Clone, Debug)]
struct Posted {
    head: String,
    body: String,
}

/// A small HTTP/1.1 server on loopback: answers each request with the status
/// `answer(request, n)` gives, where n counts the earlier requests with the
/// same body (0 for an alert's first attempt), and keeps what it read. By
/// body, not by arrival: alerts about other tests' cgroups (an impostor, a
/// denial under Docker's filter) reach every agent on the host.
struct WebhookReceiver {
    url: String,
    posted: Arc<Mutex<Vec<Posted>>>,
}

impl WebhookReceiver {
    fn start(answer: impl Fn(&Posted, usize) -> u16 + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the test's webhook");
        let url = format!("http://{}/observer/alerts", listener.local_addr().expect("addr"));
        let posted: Arc<Mutex<Vec<Posted>>> = Arc::new(Mutex::new(Vec::new()));
        let seen = posted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else { continue };
                let mut seen = seen.lock().expect("lock");
                let status = answer(&request, seen.iter().filter(|p| p.body == request.body).count());
                seen.push(request);
                drop(seen);
                let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Self { url, posted }
    }

    fn posted(&self) -> Vec<Posted> {
        self.posted.lock().expect("lock").clone()
    }

    /// The requests whose body has this text.
    fn posted_with(&self, needle: &str) -> Vec<Posted> {
        self.posted().into_iter().filter(|p| p.body.contains(needle)).collect()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Posted> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Some(Posted { head: head.to_owned(), body: body.to_owned() });
            }
        }
    }
}

/// A container that makes chmod (absent from the profile it is enforced
/// with) once /tmp/go exists, then idles.
fn chmod_container(prefix: &str) -> String {
    let n = name(prefix);
    let script = "while [ ! -e /tmp/go ]; do sleep 0.2; done; chmod 600 /tmp/go; sleep 60";
    let o = run(&["-d", "--name", &n], &["sh", "-c", script]);
    assert!(o.status.success(), "docker run: {}", String::from_utf8_lossy(&o.stderr));
    n
}

fn enforce_alert(agent: &TestAgent, container: &str, profile: &Path) {
    let o = agent.cli(&["enforce", container, "--profile", profile.to_str().expect("utf-8"), "--action", "alert"]);
    assert!(o.status.success(), "enforce: {}\nagent: {}", String::from_utf8_lossy(&o.stderr), agent.stderr());
}

fn go(container: &str) {
    let o = docker(&["exec", container, "touch", "/tmp/go"]);
    assert!(o.status.success(), "docker exec: {}", String::from_utf8_lossy(&o.stderr));
}

fn time_of(v: &Value) -> time::OffsetDateTime {
    let text = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
}

fn status(agent: &TestAgent) -> Value {
    let o = agent.cli(&["status"]);
    assert!(o.status.success(), "status: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("status is JSON")
}

/// `GET /metrics` from the agent's endpoint.
fn metrics(addr: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(addr) {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: observer\r\nConnection: close\r\n\r\n").expect("write");
            let mut body = String::new();
            s.read_to_string(&mut body).expect("read");
            return body;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no metrics endpoint at {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free loopback port for the metrics endpoint.
fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

#[test]
fn an_enforce_alert_reaches_syslog_journald_and_the_webhook_with_its_context() {
    require_root();
    require_docker();
    let syslog = SyslogReceiver::bind();
    let journal = SyslogReceiver::bind();
    let webhook = WebhookReceiver::start(|_, _| 204);
    let metrics_addr = free_addr();
    let agent = TestAgent::start(&[
        "--syslog",
        syslog.path(),
        "--journald",
        journal.path(),
        "--webhook",
        &webhook.url,
        "--metrics",
        &metrics_addr,
    ]);
    let n = chmod_container("delivered");
    let _cleanup = Cleanup(vec![n.clone()]);
    let row = agent.wait_for("the container", || agent.container(&n).filter(|c| c["state"] == "running"));
    let no_chmod = moby_default_without(&["chmod"]);
    enforce_alert(&agent, &n, &no_chmod);
    let before = time::OffsetDateTime::now_utc();
    go(&n);

    // Syslog: RFC 3164 as syslog(3) writes it, the alert's JSON as the message.
    // (Other containers on this host may raise alerts of their own: skipped.)
    let needle = format!("\"name\":\"{n}\"");
    let datagram =
        std::iter::from_fn(|| syslog.next(Duration::from_secs(20))).find(|d| d.contains(&needle)).unwrap_or_else(
            || panic!("no syslog datagram within 20 s; alerts: {:?}\nagent: {}", agent.alerts(), agent.stderr()),
        );
    let after = time::OffsetDateTime::now_utc();
    let agent_pid = agent.child.as_ref().expect("agent").id();
    let prefix = format!(" observer[{agent_pid}]: ");
    assert!(datagram.starts_with("<28>"), "facility daemon, severity warning: {datagram}");
    let (header, json) = datagram.split_once(&prefix).unwrap_or_else(|| panic!("no {prefix:?}: {datagram}"));
    // "<28>Mmm dd hh:mm:ss": a month, a space-padded day, a time.
    let stamp = &header[4..];
    assert_eq!(stamp.len(), 15, "{header:?}");
    assert!(stamp[..3].chars().all(|c| c.is_ascii_alphabetic()) && stamp.as_bytes()[9] == b':', "{header:?}");
    let alert: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("the message is not JSON ({e}): {json}"));
    assert_eq!(alert["kind"], "enforce", "{alert}");
    assert_eq!(alert["syscall"], "chmod", "{alert}");
    assert_eq!(alert["abi"], "x86_64", "{alert}");
    assert_eq!(alert["nr"], 90, "chmod is 90 on x86_64: {alert}");
    // The container's identity, as `observer ps` names it.
    for field in ["id", "name", "image", "runtime", "engine"] {
        assert_eq!(alert[field], row[field], "{field}: {alert}\nps: {row}");
    }
    assert_eq!(alert["name"], n.as_str());
    assert_eq!(alert["engine"], "docker");
    assert_eq!(alert["image"], "observer-busybox:latest");
    assert_eq!(alert["id"].as_str().map(str::len), Some(64), "{alert}");
    assert!(alert["pod"].is_null() && alert["namespace"].is_null(), "not a pod: {alert}");
    assert_eq!(alert["comm"], "chmod", "{alert}");
    // The rule that fired.
    let rule = &alert["rule"];
    assert_eq!(rule["source"], "enforce", "{alert}");
    assert_eq!(rule["action"], "alert", "{alert}");
    assert_eq!(rule["profile"], no_chmod.to_str().expect("utf-8"), "{alert}");
    assert_eq!(rule["target"]["container"], row["id"], "{alert}");
    // The kernel's time of the call: after the exec began, before the agent raised it.
    let (call, raised) = (time_of(&alert["call_time"]), time_of(&alert["time"]));
    let slack = Duration::from_millis(20);
    assert!(before - slack <= call && call <= raised + slack && raised <= after + slack, "{before} {alert} {after}");

    // journald: native fields, every field of the alert one of them.
    let native = std::iter::from_fn(|| journal.next(Duration::from_secs(20)))
        .find(|d| d.contains(&needle))
        .unwrap_or_else(|| panic!("no journald datagram within 20 s; agent: {}", agent.stderr()));
    let fields: Vec<(&str, &str)> = native.lines().filter_map(|l| l.split_once('=')).collect();
    let field = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    assert_eq!(field("MESSAGE"), Some(json), "{native}");
    assert_eq!(field("SYSLOG_IDENTIFIER"), Some("observer"), "{native}");
    assert_eq!(field("PRIORITY"), Some("4"), "{native}");
    for (key, want) in [
        ("OBSERVER_KIND", "enforce"),
        ("OBSERVER_NAME", n.as_str()),
        ("OBSERVER_SYSCALL", "chmod"),
        ("OBSERVER_ABI", "x86_64"),
        ("OBSERVER_NR", "90"),
        ("OBSERVER_ENGINE", "docker"),
        ("OBSERVER_RULE_SOURCE", "enforce"),
    ] {
        assert_eq!(field(key), Some(want), "{key}: {native}");
    }
    assert_eq!(field("OBSERVER_CALL_TIME"), alert["call_time"].as_str(), "{native}");
    assert_eq!(field("OBSERVER_ID"), alert["id"].as_str(), "{native}");

    // The webhook: the same JSON, POSTed alone.
    let posted = agent.wait_for("the webhook POST", || webhook.posted().into_iter().find(|p| p.body.contains(&needle)));
    assert!(posted.head.starts_with("POST /observer/alerts HTTP/1.1\r\n"), "{}", posted.head);
    assert!(posted.head.to_ascii_lowercase().contains("content-type: application/json"), "{}", posted.head);
    assert_eq!(serde_json::from_str::<Value>(&posted.body).expect("JSON body"), alert);
    // And the same line on stdout and in alerts.jsonl.
    assert!(agent.alerts().contains(&alert), "stdout: {:?}", agent.alerts());
    let jsonl = std::fs::read_to_string(agent.state_dir().join("alerts.jsonl")).expect("alerts.jsonl");
    assert!(jsonl.lines().any(|l| l == json), "{jsonl}");

    // Counted.
    let delivery = agent.wait_for("the counts", || {
        let d = status(&agent)["alert_delivery"].clone();
        (d["webhook"]["delivered"].as_u64() >= Some(1)).then_some(d)
    });
    for output in ["syslog", "journald", "webhook"] {
        let c = &delivery[output];
        assert!(c["delivered"].as_u64() >= Some(1), "{delivery}");
        assert_eq!((c["failed"].as_u64(), c["dropped"].as_u64(), c["retries"].as_u64()), (Some(0), Some(0), Some(0)));
    }
    assert_eq!(delivery["syslog"]["target"], syslog.path());
    assert_eq!(delivery["webhook"]["target"], webhook.url.as_str());
    // Scrapes read a copy of the numbers made once a second: wait for the copy
    // that has the deliveries `status` showed.
    let text = agent.wait_for("the deliveries in the metrics", || {
        let text = metrics(&metrics_addr);
        ["syslog", "journald", "webhook"]
            .iter()
            .all(|o| text.contains(&format!("observer_alerts_delivered_total{{output=\"{o}\"}} ")))
            .then_some(text)
            .filter(|t| !t.lines().any(|l| l.starts_with("observer_alerts_delivered_total{") && l.ends_with(" 0")))
    });
    let sample = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    for output in ["syslog", "journald", "webhook"] {
        let delivered = sample(&format!("observer_alerts_delivered_total{{output=\"{output}\"}}"));
        assert!(delivered >= Some(1), "{output}:\n{text}");
        for counter in ["dropped", "failed", "retried"] {
            let value = sample(&format!("observer_alerts_{counter}_total{{output=\"{output}\"}}"));
            assert_eq!(value, Some(0), "{output} {counter}:\n{text}");
        }
    }
    let _ = std::fs::remove_file(&no_chmod);
}

#[test]
fn a_webhook_that_fails_at_first_gets_the_alert_by_retrying() {
    require_root();
    require_docker();
    // 500, 503, then 200 for this agent's enforce alert (the only rule is
    // the test's); 200 at once for alerts about other tests' cgroups.
    let webhook = WebhookReceiver::start(|p, n| {
        if p.body.contains("\"kind\":\"enforce\"") { [500, 503].get(n).copied().unwrap_or(200) } else { 200 }
    });
    let agent = TestAgent::start(&["--webhook", &webhook.url]);
    let n = chmod_container("retried");
    let _cleanup = Cleanup(vec![n.clone()]);
    agent.wait_for("the container", || agent.container(&n).filter(|c| c["state"] == "running"));
    let no_chmod = moby_default_without(&["chmod"]);
    enforce_alert(&agent, &n, &no_chmod);
    go(&n);
    let needle = format!("\"name\":\"{n}\"");
    let posted = agent.wait_for("three attempts", || {
        let p = webhook.posted_with(&needle);
        (p.len() >= 3).then_some(p)
    });
    // The same alert each time.
    let bodies: Vec<Value> = posted.iter().map(|p| serde_json::from_str(&p.body).expect("JSON")).collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    assert_eq!((bodies[0]["kind"].as_str(), bodies[0]["syscall"].as_str()), (Some("enforce"), Some("chmod")));
    // Counted (other tests' alerts, if any, were delivered at once: no retries).
    let webhook_counts = agent.wait_for("delivered", || {
        let c = status(&agent)["alert_delivery"]["webhook"].clone();
        (c["delivered"].as_u64() >= Some(1) && c["retries"] == 2).then_some(c)
    });
    assert_eq!(webhook_counts["failed"], 0, "{webhook_counts}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(webhook.posted_with(&needle).len(), 3, "delivered once, then nothing more");
    let _ = std::fs::remove_file(&no_chmod);
}

#[test]
fn a_hung_webhook_drops_alerts_once_its_queue_is_full_and_the_agent_carries_on() {
    require_root();
    require_docker();
    // Connections complete in the kernel's backlog and are never answered:
    // every attempt waits for its timeout.
    let hung = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", hung.local_addr().expect("addr"));
    let agent = TestAgent::start(&["--webhook", &url, "--webhook-queue", "2"]);
    let n = chmod_container("hung");
    let _cleanup = Cleanup(vec![n.clone()]);
    agent.wait_for("the container", || agent.container(&n).filter(|c| c["state"] == "running"));
    // A profile that allows nothing: each syscall the container makes is an alert.
    enforce_alert(&agent, &n, Path::new(&profile_path("docker-labs/deny.json")));
    go(&n);
    let counts = agent.wait_for("alerts dropped", || {
        let s = status(&agent);
        let c = s["alert_delivery"]["webhook"].clone();
        (c["dropped"].as_u64() > Some(0)).then_some((s["alerts"].as_u64().unwrap_or(0), c))
    });
    let (alerts, webhook) = counts;
    // Full when the alerts came, less the one the worker took since (a burst
    // may come before the worker first wakes).
    let queued = webhook["queued"].as_u64().expect("queued");
    assert!((1..=2).contains(&queued), "{webhook}");
    assert_eq!(webhook["delivered"], 0, "{webhook}");
    // The alert being tried, those queued, and the dropped ones: every alert
    // is accounted for (more may have come since the status was read).
    let dropped = webhook["dropped"].as_u64().expect("dropped");
    assert!(alerts >= 1 + queued + dropped, "alerts {alerts}, {webhook}");
    // The agent answers at once and keeps writing alerts meanwhile.
    let start = Instant::now();
    let ps = agent.ps();
    assert!(start.elapsed() < Duration::from_secs(1), "ps took {:?}", start.elapsed());
    assert!(ps.iter().any(|c| c["name"] == n.as_str()));
    let lines = agent.alerts().len() as u64;
    assert!(lines >= 1 + queued + dropped, "{lines} alert lines on stdout, {dropped} dropped");
    drop(hung);
}

#[test]
fn syslog_socket_missing_at_start_is_an_error_and_one_gone_later_costs_counted_alerts() {
    require_root();
    require_docker();
    // Missing at start: a clear error, nothing attached.
    let dir = std::env::temp_dir().join(format!("observer-nosyslog-{}", unique()));
    let pin_dir = format!("/sys/fs/bpf/observer-test-nosyslog-{}", unique());
    let missing = dir.join("no-such-log");
    let o = std::process::Command::new(observer_tests::observer_bin())
        .args(["agent", "--syslog", missing.to_str().expect("utf-8"), "--pin-dir", &pin_dir, "--state-dir"])
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(dir.join("api.sock"))
        .output()
        .expect("observer agent");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--syslog") && stderr.contains("no syslog socket"), "{stderr}");
    assert!(!Path::new(&pin_dir).exists(), "programs were loaded although the agent refused to start");
    let _ = std::fs::remove_dir_all(&dir);

    // Gone later: the alert is retried, then counted as failed, and the agent
    // goes on; a daemon that binds the socket again gets the next one.
    let syslog = SyslogReceiver::bind();
    let agent = TestAgent::start(&["--syslog", syslog.path()]);
    let (first, second) = (chmod_container("syslog-gone"), chmod_container("syslog-back"));
    let _cleanup = Cleanup(vec![first.clone(), second.clone()]);
    for n in [&first, &second] {
        agent.wait_for("the containers", || agent.container(n).filter(|c| c["state"] == "running"));
    }
    let no_chmod = moby_default_without(&["chmod"]);
    enforce_alert(&agent, &first, &no_chmod);
    enforce_alert(&agent, &second, &no_chmod);
    // Alerts about other tests' cgroups reach this agent too: counts are
    // compared with those before, and only this test's alerts are awaited.
    let syslog_counts = || status(&agent)["alert_delivery"]["syslog"].clone();
    let count = |c: &Value, k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k}: {c}"));
    let before = syslog_counts();
    std::fs::remove_file(&syslog.path).expect("removing the syslog socket");
    go(&first);
    agent.wait_for("the first alert on stdout", || {
        agent.alerts().into_iter().find(|a| a["kind"] == "enforce" && a["name"] == first.as_str())
    });
    let counts = agent.wait_for("the failed delivery", || {
        let c = syslog_counts();
        (count(&c, "failed") > count(&before, "failed")).then_some(c)
    });
    assert!(count(&counts, "retries") > count(&before, "retries"), "{before} then {counts}");
    assert_eq!(counts["delivered"], before["delivered"], "nothing is delivered to a missing socket: {counts}");
    assert!(agent.alerts().iter().any(|a| a["name"] == first.as_str()), "still on stdout");
    let start = Instant::now();
    agent.ps();
    assert!(start.elapsed() < Duration::from_secs(1), "ps took {:?}", start.elapsed());

    let back = UnixDatagram::bind(&syslog.path).expect("binding the syslog socket again");
    go(&second);
    back.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut buf = vec![0u8; 65536];
    let needle = format!("\"name\":\"{second}\"");
    let text = std::iter::from_fn(|| {
        let len = back
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("the second alert never reached the new socket ({e}): {}", agent.stderr()));
        Some(String::from_utf8_lossy(&buf[..len]).into_owned())
    })
    .find(|t| t.contains(&needle))
    .expect("an endless iterator");
    assert!(text.contains("\"kind\":\"enforce\""), "{text}");
    agent.wait_for("delivered", || {
        let c = syslog_counts();
        (count(&c, "delivered") > count(&counts, "delivered")).then_some(c)
    });
    let _ = std::fs::remove_file(&no_chmod);
}
