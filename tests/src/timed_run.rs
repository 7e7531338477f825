//! One `docker run` bounded in time: a named container, `--sig-proxy=false`, output
//! to files (no pipe to fill), `docker kill` once it outlives its limit. The name is
//! pushed to the caller's `Cleanup` before the run, so the container goes away even
//! when the test fails.

use std::{
    fs::File,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::docker::{Cleanup, docker, name};

/// What one bounded `docker run` did.
pub struct TimedRun {
    /// The container's name (also in the `Cleanup`).
    pub name: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub took: Duration,
    pub limit: Duration,
}

impl TimedRun {
    /// `docker run --sig-proxy=false --name NAME --network none [options] IMAGE CMD...`;
    /// stdout and stderr are kept in `dir` as NAME.stdout and NAME.stderr.
    pub fn docker(
        dir: &Path,
        cleanup: &mut Cleanup,
        label: &str,
        options: &[&str],
        image: &str,
        cmd: &[&str],
        limit: Duration,
    ) -> TimedRun {
        let n = name(label);
        cleanup.0.push(n.clone());
        let (out, err) = (dir.join(format!("{n}.stdout")), dir.join(format!("{n}.stderr")));
        let mut args = vec!["run", "--sig-proxy=false", "--name", &n, "--network", "none"];
        args.extend_from_slice(options);
        args.push(image);
        args.extend_from_slice(cmd);
        let start = Instant::now();
        let mut child = Command::new("docker")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"))
            .spawn()
            .expect("the docker CLI is needed (cargo xtask setup test installs Docker)");
        let wait_until = |child: &mut std::process::Child, deadline: Duration, since: Instant| loop {
            if let Some(s) = child.try_wait().expect("waiting for docker run") {
                return Some(s);
            }
            if since.elapsed() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut timed_out = false;
        let mut status = wait_until(&mut child, limit, start);
        if status.is_none() {
            timed_out = true;
            let _ = docker(&["kill", &n]);
            status = wait_until(&mut child, Duration::from_secs(15), Instant::now());
            if status.is_none() {
                // The CLI itself hangs: stop it (our own child, by its handle).
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        TimedRun {
            name: n,
            code: status.and_then(|s| s.code()),
            stdout: read(&out),
            stderr: read(&err),
            timed_out,
            took: start.elapsed(),
            limit,
        }
    }

    /// Exit code and stdout: what "the same result" means.
    pub fn outcome(&self) -> (Option<i32>, &str) {
        (self.code, &self.stdout)
    }

    /// For failure messages: how it ended, and all it printed.
    pub fn describe(&self) -> String {
        let status = if self.timed_out {
            format!("killed after {} s (timeout)", self.limit.as_secs())
        } else {
            format!("exit {:?}", self.code)
        };
        format!(
            "{} {status} after {:.1} s\n--- stdout:\n{}--- stderr:\n{}",
            self.name,
            self.took.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}
