//! Narrow→broad pairs (issue 25): a learned profile holds what ran while it was
//! learned; `--reachable` adds what the image's code can make. For each real
//! program of the image observer-realsoft:latest (xtask/scripts/realsoft-image.sh):
//!
//! 1. learn it from a narrow run (start it, one request, stop it) under Docker's
//!    default profile, the agent watching;
//! 2. export three profiles: plain, `--reachable allow`, `--reachable log`;
//! 3. run a broad, everyday workload (its benchmark, reloads, persistence, threads,
//!    subprocesses...) under Docker's default: the reference outcome (exit 0);
//! 4. the broad run under the `allow` and the `log` exports must give the same exit
//!    status and output; every call it made outside the learned set must be one the
//!    `log` export logs (the agent watches that run);
//! 5. the broad run under the plain export must NOT give that outcome: the pair shows
//!    that learning alone breaks the program, and that the test can fail.
//!
//! Every syscall the broad runs made in the container's phase must be in the image's
//! reachable set (soundness, tests/src/reach.rs). As root, with Docker and runc.

use std::{
    collections::BTreeSet,
    path::Path,
    process::Command,
    sync::Mutex,
    time::{Duration, Instant},
};

use observer_tests::{
    agent::{TestAgent, rows},
    docker::Cleanup,
    reach::unreachable_observed,
    realsoft::{IMAGE, STAMP, export_docker, in_container_phase},
    require_root,
    scratch::{Dir, text},
    timed_run::TimedRun,
};
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// A broad run under the plain export may hang (a denied call retried forever):
/// bounded tighter, a timeout counts as "did not behave as under Docker's default".
const PLAIN_TIMEOUT: Duration = Duration::from_secs(45);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Pair {
    label: &'static str,
    /// Start the program, one request, stop it.
    narrow: &'static str,
    /// Everyday use: the last line of its output when it passed is `ok`.
    broad: &'static str,
    ok: &'static str,
}

/// The drivers' helpers (wait_for, stop, die), and nginx's site configuration.
const COMMON: &str = r#". /etc/observer-realsoft/common.sh
nginx_conf() {
  cat >/tmp/site.conf <<'CONF'
worker_processes 2;
pid /tmp/nginx.pid;
error_log /tmp/server.log warn;
events { worker_connections 64; }
http {
  access_log /tmp/access.log;
  sendfile on;
  aio threads;
  client_body_temp_path /tmp/nginx-body;
  proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fastcgi;
  uwsgi_temp_path /tmp/nginx-uwsgi;
  scgi_temp_path /tmp/nginx-scgi;
  server {
    listen 127.0.0.1:8080;
    root /srv/www;
    location /status { return 200 "status ok\n"; }
  }
}
CONF
}"#;

/// memcached: narrow is one ping; broad is the image's driver (memcslap with 4
/// client threads, memccp/memccat/memcrm).
const MEMCACHED: Pair = Pair {
    label: "memcached",
    narrow: "memcached -u nobody -l 127.0.0.1 -p 11211 -U 0 -t 4 -m 16 >$log 2>&1 & pid=$!; \
             wait_for memcached $pid timeout 2 memcping --servers=127.0.0.1:11211; stop $pid memcached; echo ok",
    broad: "workload-memcached",
    ok: "memcached: OK",
};

/// redis: narrow is one PING with persistence off; broad is the benchmark, then an
/// append-only file, SAVE, BGSAVE (a forked child), BGREWRITEAOF, and a restart that
/// loads the data back.
const REDIS: Pair = Pair {
    label: "redis",
    narrow: "cd /tmp; redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --dir /tmp --logfile $log & \
             pid=$!; wait_for redis-server $pid timeout 2 redis-cli -p 6379 ping; \
             timeout 5 redis-cli -p 6379 shutdown nosave >/dev/null 2>&1; wait $pid; echo ok",
    broad: "workload-redis >/dev/null || exit 1; cd /tmp; \
            r() { timeout 10 redis-cli -p 6379 \"$@\"; }; \
            redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly yes --appendfsync always --dir /tmp \
              --logfile $log & pid=$!; wait_for redis-server $pid r ping; \
            for i in $(seq 1 50); do r rpush items $i >/dev/null; done; \
            echo \"save: $(r save)\"; \
            r bgsave >/dev/null; \
            i=0; until r info persistence | grep -q 'rdb_bgsave_in_progress:0'; do i=$((i+1)); [ $i -lt 100 ] || die bgsave; sleep 0.1; done; \
            r bgrewriteaof >/dev/null; \
            i=0; until r info persistence | grep -q 'aof_rewrite_in_progress:0'; do i=$((i+1)); [ $i -lt 100 ] || die bgrewriteaof; sleep 0.1; done; \
            r shutdown save >/dev/null 2>&1; wait $pid; \
            redis-server --bind 127.0.0.1 --port 6379 --appendonly yes --dir /tmp --logfile $log & pid=$!; \
            wait_for redis-server $pid r ping; echo \"items after restart: $(r llen items)\"; \
            r shutdown nosave >/dev/null 2>&1; wait $pid; echo 'redis broad: OK'",
    ok: "redis broad: OK",
};

/// nginx, configured as a site would be (access log, sendfile, a thread pool for
/// reads): narrow is one GET of a fixed answer; broad is files served to several
/// clients at once, a configuration reload (new workers) and a log reopen.
const NGINX: Pair = Pair {
    label: "nginx",
    narrow: "nginx_conf; nginx -c /tmp/site.conf 2>>$log || die start; master=$(cat /tmp/nginx.pid); \
             wait_for nginx $master curl -sf --max-time 2 http://127.0.0.1:8080/status; \
             nginx -c /tmp/site.conf -s quit; while kill -0 $master 2>/dev/null; do sleep 0.1; done; echo ok",
    broad: "nginx_conf; nginx -c /tmp/site.conf 2>>$log || die start; master=$(cat /tmp/nginx.pid); \
            wait_for nginx $master curl -sf --max-time 2 http://127.0.0.1:8080/status; \
            for f in index.html numbers.txt sub/file.txt; do \
              timeout 10 curl -sf --max-time 5 http://127.0.0.1:8080/$f -o /tmp/got-$(basename $f) & done; wait; \
            for f in index.html numbers.txt sub/file.txt; do \
              cmp -s /srv/www/$f /tmp/got-$(basename $f) || die \"GET /$f returned other bytes\"; echo \"GET /$f: same as on disk\"; done; \
            nginx -c /tmp/site.conf -s reload 2>>$log || die reload; sleep 1; \
            echo \"after reload: $(timeout 10 curl -s --max-time 5 http://127.0.0.1:8080/numbers.txt | wc -l) lines\"; \
            nginx -c /tmp/site.conf -s reopen 2>>$log || die reopen; sleep 0.5; \
            echo \"after reopen: $(timeout 10 curl -s --max-time 5 http://127.0.0.1:8080/index.html)\"; \
            nginx -c /tmp/site.conf -s quit; while kill -0 $master 2>/dev/null; do sleep 0.1; done; \
            echo \"access log: $(wc -l </tmp/access.log) requests\"; echo 'nginx broad: OK'",
    ok: "nginx broad: OK",
};

/// socat: narrow is one TCP client; broad is the image's driver (5 clients at once,
/// a forked child per connection exec'ing tr, 3000 lines), then a UNIX-socket relay,
/// a UDP service and a file copy.
const SOCAT: Pair = Pair {
    label: "socat",
    narrow: "socat -t 5 TCP-LISTEN:7000,bind=127.0.0.1,fork,reuseaddr EXEC:'tr a-z A-Z' >$log 2>&1 & pid=$!; \
             wait_for socat $pid sh -c 'echo ping | timeout 2 socat -t 2 -T 2 - TCP:127.0.0.1:7000 | grep -q PING'; \
             stop $pid socat; echo ok",
    broad: "workload-socat >/dev/null || exit 1; \
            socat UNIX-LISTEN:/tmp/s.sock,fork EXEC:'tr a-z A-Z' >$log 2>&1 & pid=$!; \
            wait_for socat-unix $pid sh -c 'echo ping | timeout 2 socat -t 2 - UNIX-CONNECT:/tmp/s.sock | grep -q PING'; \
            echo \"unix: $(echo hello unix | timeout 5 socat -t 2 - UNIX-CONNECT:/tmp/s.sock)\"; stop $pid socat; \
            socat -T 5 UDP-RECVFROM:7001,bind=127.0.0.1,fork EXEC:'tr a-z A-Z' >>$log 2>&1 & pid=$!; sleep 0.5; \
            echo \"udp: $(echo hello udp | timeout 5 socat -t 2 - UDP:127.0.0.1:7001)\"; stop $pid socat; \
            seq 1 1000 >/tmp/in; timeout 10 socat -u OPEN:/tmp/in CREATE:/tmp/out,perm=0600 || die copy; \
            echo \"copied: $(wc -l </tmp/out) lines\"; echo 'socat broad: OK'",
    ok: "socat broad: OK",
};

/// perl: narrow prints a line; broad is the image's driver (ithreads, fork/exec,
/// backticks, a TCP server thread).
const PERL: Pair =
    Pair { label: "perl", narrow: "perl -e 'print qq(hello\\n)'", broad: "workload-perl", ok: "perl: OK" };

/// python3: narrow prints a line; broad is the image's driver (threads, subprocess,
/// a threading socketserver).
const PYTHON: Pair =
    Pair { label: "python", narrow: "python3 -c 'print(\"hello\")'", broad: "workload-python", ok: "python: OK" };

/// A database: SQLite (through Python's sqlite3). Narrow is one query on an
/// in-memory database; broad is a file database in WAL mode written by 4 threads,
/// a backup, VACUUM and an integrity check.
const SQLITE: Pair = Pair {
    label: "sqlite",
    narrow: "python3 -c 'import sqlite3; print(sqlite3.connect(\":memory:\").execute(\"select 1+1\").fetchone())'",
    // The script as python3's argument: a here-document would need a pipe, and
    // writing a file a write, that the plain export may deny to the shell before the
    // program starts.
    broad: r#"python3 -c 'import sqlite3, threading
path = "/tmp/db.sqlite"
db = sqlite3.connect(path)
print("journal:", db.execute("pragma journal_mode=wal").fetchone()[0])
db.execute("create table t (k integer primary key, v text)")
db.commit()
def writer(n):
    c = sqlite3.connect(path, timeout=30)
    for i in range(200):
        with c:
            c.execute("insert into t (v) values (?)", ("w%d-%d" % (n, i),))
    c.close()
ts = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("rows:", db.execute("select count(*) from t").fetchone()[0])
backup = sqlite3.connect("/tmp/backup.sqlite")
db.backup(backup)
print("backup rows:", backup.execute("select count(*) from t").fetchone()[0])
db.execute("delete from t where k % 2 = 0"); db.commit()
db.execute("vacuum")
print("after delete:", db.execute("select count(*) from t").fetchone()[0])
print("integrity:", db.execute("pragma integrity_check").fetchone()[0])
db.close()
print("sqlite broad: OK")
'"#,
    ok: "sqlite broad: OK",
};

fn wrapped(command: &str) -> String {
    format!("{COMMON}\nlog=/tmp/server.log; {command}\nrc=$?; sleep 1; exit $rc")
}

fn docker_run(dir: &Dir, cleanup: &mut Cleanup, extra: &[&str], command: &str, limit: Duration) -> TimedRun {
    let mut options = vec!["--runtime", "runc"];
    options.extend_from_slice(extra);
    let script = wrapped(command);
    TimedRun::docker(dir.path(), cleanup, "reachpair", &options, IMAGE, &["sh", "-c", &script], limit)
}

/// The ended container's profile, once the agent has read its closing sleep.
fn ended_profile(agent: &TestAgent, n: &str) -> Value {
    agent.wait_for(&format!("{n}: ended, with the closing sleep"), || {
        let c = agent.container(n)?;
        if c["state"] != "exited" {
            return None;
        }
        let p = agent.try_profile(n)?;
        in_container_phase(&p, &["nanosleep", "clock_nanosleep"]).then_some(p)
    })
}

/// Names seen in the container's own phase (x86_64).
fn container_names(profile: &Value) -> BTreeSet<String> {
    rows(profile)
        .into_iter()
        .filter(|(_, abi, phases, calls, _)| abi == "x86_64" && *calls > 0 && phases.iter().any(|p| p == "container"))
        .map(|(n, ..)| n)
        .collect()
}

/// Distinct names of a Docker profile's rules with `action` (conditional rules too).
fn names_with(profile: &Value, action: &str) -> BTreeSet<String> {
    profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == action)
        .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

fn require_image() {
    let o = Command::new("docker")
        .args(["image", "inspect", "--format", "{{ index .Config.Labels \"observer.realsoft\" }}", IMAGE])
        .output()
        .unwrap_or_else(|e| panic!("the docker CLI is missing (cargo xtask setup test installs it): {e}"));
    assert!(
        o.status.success(),
        "the image {IMAGE} is missing: build it with `bash xtask/scripts/realsoft-image.sh`: {}",
        String::from_utf8_lossy(&o.stderr).trim()
    );
    let stamp = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert_eq!(stamp, STAMP, "{IMAGE} has stamp {stamp:?}, these pairs need {STAMP:?}: rebuild it");
}

fn pair(p: &Pair) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    require_root();
    require_image();
    let started = Instant::now();
    let agent = TestAgent::start(&[]);
    let pin_dir = agent.pin_dir.clone();
    let dir = Dir::new("reach_pairs", p.label);
    let mut cleanup = Cleanup(Vec::new());
    let label = p.label;
    let mut failures = Vec::new();

    // 1. Learn from the narrow run.
    let narrow = docker_run(&dir, &mut cleanup, &[], p.narrow, RUN_TIMEOUT);
    assert!(narrow.code == Some(0), "{label}, narrow run under Docker's default: {}", narrow.describe());
    let n = cleanup.0.last().expect("the narrow container").clone();
    let narrow_profile = ended_profile(&agent, &n);
    failures.extend(unreachable_observed(&narrow_profile, IMAGE));

    // 2. Three exports.
    let plain_file = dir.file("plain.json");
    let (plain, _) = export_docker(&agent, &n, &plain_file, &[]);
    let allow_file = dir.file("allow.json");
    let (allow, said_allow) = export_docker(&agent, &n, &allow_file, &["--reachable", "allow"]);
    let log_file = dir.file("log.json");
    let (log, said_log) = export_docker(&agent, &n, &log_file, &["--reachable", "log"]);
    let learned = names_with(&plain, "SCMP_ACT_ALLOW");
    let logged = names_with(&log, "SCMP_ACT_LOG");
    assert!(!logged.is_empty(), "{label}: the log export logs nothing: {said_log}\n{log}");
    assert_eq!(
        names_with(&allow, "SCMP_ACT_ALLOW"),
        &learned | &logged,
        "{label}: the allow export must allow what the log export allows or logs"
    );
    assert!(said_allow.contains("tiers:"), "{label}: export does not say its tiers: {said_allow}");
    assert_eq!(log["x-observer"]["tiers"]["reachable"].as_u64(), Some(logged.len() as u64), "{label}: {log}");

    // 3. The broad run under Docker's default: the reference.
    let reference = docker_run(&dir, &mut cleanup, &["--rm"], p.broad, RUN_TIMEOUT);
    assert!(
        reference.code == Some(0) && reference.stdout.lines().last() == Some(p.ok),
        "{label}, broad run under Docker's default profile: {}",
        reference.describe()
    );

    // 4. Under the tiered exports: the same outcome.
    let mut under = |file: &Path, limit: Duration, rm: bool| {
        let opt = format!("seccomp={}", text(file));
        let mut extra = vec!["--security-opt", opt.as_str()];
        if rm {
            extra.push("--rm");
        }
        docker_run(&dir, &mut cleanup, &extra, p.broad, limit)
    };
    let with_allow = under(&allow_file, RUN_TIMEOUT, true);
    if with_allow.outcome() != reference.outcome() {
        failures.push(format!(
            "under --reachable allow it does not behave as under Docker's default: {}",
            with_allow.describe()
        ));
    }
    let with_log = under(&log_file, RUN_TIMEOUT, false);
    let log_name = with_log.name.clone();
    if with_log.outcome() != reference.outcome() {
        failures.push(format!(
            "under --reachable log it does not behave as under Docker's default: {}",
            with_log.describe()
        ));
    }
    // 5. Under the plain learned export: it must break.
    let with_plain = under(&plain_file, PLAIN_TIMEOUT, true);
    if with_plain.outcome() == reference.outcome() {
        failures.push(format!(
            "the broad run passes under the plain learned export too: this pair shows nothing ({} names learned)",
            learned.len()
        ));
    }

    // What the broad run made outside the learned set was let through by the log tier,
    // and is in the image's reachable set.
    let log_profile = ended_profile(&agent, &log_name);
    failures.extend(unreachable_observed(&log_profile, IMAGE));
    let seen = container_names(&log_profile);
    let unlearned: BTreeSet<&String> = seen.iter().filter(|s| !learned.contains(*s)).collect();
    let not_logged: Vec<&&String> = unlearned.iter().filter(|s| !logged.contains(**s)).collect();
    if !not_logged.is_empty() {
        failures.push(format!("the broad run made {not_logged:?}: neither learned nor logged by the log export"));
    }

    drop(agent);
    if pin_dir.exists() {
        failures.push(format!("{} is still there after the agent's uninstall", pin_dir.display()));
    }
    let last = |r: &TimedRun| r.stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
    eprintln!(
        "PAIR {label}: learned {} (narrow {:.1} s); log tier {} names; broad made {} names, {} unlearned {:?}; \
         allow: exit {:?} {:.1} s; log: exit {:?} {:.1} s; plain: exit {:?}{} ({:?}; stderr: {}); {:.0} s in all",
        learned.len(),
        narrow.took.as_secs_f64(),
        logged.len(),
        seen.len(),
        unlearned.len(),
        unlearned,
        with_allow.code,
        with_allow.took.as_secs_f64(),
        with_log.code,
        with_log.took.as_secs_f64(),
        with_plain.code,
        if with_plain.timed_out { " (timed out)" } else { "" },
        last(&with_plain),
        with_plain.stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(""),
        started.elapsed().as_secs_f64(),
    );
    assert!(failures.is_empty(), "{label}:\n{}", failures.join("\n\n"));
}

macro_rules! pairs {
    ($($test:ident: $pair:ident;)*) => {
        $(
            #[test]
            fn $test() {
                pair(&$pair);
            }
        )*
    };
}

pairs! {
    memcached: MEMCACHED;
    redis: REDIS;
    nginx: NGINX;
    socat: SOCAT;
    perl: PERL;
    python: PYTHON;
    sqlite: SQLITE;
}
