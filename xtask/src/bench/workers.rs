//! Drives `observer-testprog cgroup-workers`: P processes spread over C plain cgroups
//! under one parent, taking turns (see tests/src/testprog/workers.rs). The cgroups
//! and the workers go away when the value is dropped.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

use super::env::{Env, remove_cgroup_tree};

/// The CPU the workers run on (the agent and the bench keep the other one): no
/// migrations inside a measurement.
pub const WORKER_CPU: &str = "1";

pub struct Workers {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    parent: PathBuf,
    pub cgroups: usize,
}

impl Workers {
    /// Makes `cgroups` cgroups under `parent` (which must exist and be empty) and
    /// starts `workers` processes in them, worker i in cgroup i % cgroups.
    pub fn start(env: &Env, parent: &Path, cgroups: usize, workers: usize) -> anyhow::Result<Workers> {
        let t0 = Instant::now();
        for i in 0..cgroups {
            let dir = parent.join(format!("c{i}"));
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut child = Command::new("taskset")
            .args(["-c", WORKER_CPU])
            .arg(&env.testprog)
            .arg("cgroup-workers")
            .arg(parent)
            .args([cgroups.to_string(), workers.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting observer-testprog cgroup-workers")?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut w = Workers { child, stdin, stdout, parent: parent.to_owned(), cgroups };
        let ready = w.read_line()?;
        if !ready.starts_with("ready") {
            bail!("cgroup-workers did not start: {ready:?}");
        }
        eprintln!(
            "[bench]   {workers} workers in {cgroups} cgroups under {} ({:.1} s)",
            parent.display(),
            t0.elapsed().as_secs_f64()
        );
        Ok(w)
    }

    fn read_line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("cgroup-workers ended (its message is above)");
        }
        Ok(line.trim().to_owned())
    }

    fn ask(&mut self, command: &str) -> anyhow::Result<String> {
        let stdin = self.stdin.as_mut().context("workers already stopped")?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        let answer = self.read_line()?;
        if answer.starts_with("error") {
            bail!("cgroup-workers: {answer}");
        }
        Ok(answer)
    }

    /// `turns` turns of every worker, `per_turn` getppid calls each: ns per call over
    /// the timed batches.
    pub fn run(&mut self, turns: u32, per_turn: u32) -> anyhow::Result<f64> {
        self.ask(&format!("run {turns} {per_turn}"))?.parse().context("cgroup-workers run answer")
    }

    /// Every worker makes the ~80 distinct syscalls once.
    pub fn distinct(&mut self) -> anyhow::Result<()> {
        self.ask("distinct").map(|_| ())
    }

    /// For `seconds`, a turn of every worker (`per_turn` calls each) every second:
    /// (calls made, seconds taken).
    pub fn rate(&mut self, seconds: u32, per_turn: u32) -> anyhow::Result<(u64, f64)> {
        let answer = self.ask(&format!("rate {seconds} {per_turn}"))?;
        let mut it = answer.split_whitespace();
        let calls = it.next().and_then(|v| v.parse().ok()).context("rate answer")?;
        let secs = it.next().and_then(|v| v.parse().ok()).context("rate answer")?;
        Ok((calls, secs))
    }

    /// The path of cgroup `i` as the agent names it (relative to the v2 mount).
    pub fn cgroup_path(&self, env: &Env, i: usize) -> String {
        let full = self.parent.join(format!("c{i}"));
        format!("/{}", full.strip_prefix(&env.v2).unwrap_or(&full).display())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // End of input ends every worker; the controller waits for them.
        drop(self.stdin.take());
        let _ = self.child.wait();
        remove_cgroup_tree(&self.parent);
    }
}
