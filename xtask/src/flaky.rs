//! `cargo xtask flaky N`: runs every root test binary (tests/tests/*.rs) N
//! times in a row, each run as `cargo test` runs it (one binary at a time,
//! its tests on concurrent threads), and reports every failure with its
//! message: a test that passes on one run and fails on another is a flake.
//! With `--report` it writes the flaky section of docs/reliability.md.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

const REPORT: &str = "docs/reliability.md";
const BEGIN: &str = "<!-- flaky:begin (written by `cargo xtask flaky --report`) -->";
const END: &str = "<!-- flaky:end -->";

#[derive(Args, Debug)]
pub struct FlakyArgs {
    /// How many times each test binary runs.
    pub runs: u32,
    /// Only these test binaries (file names under tests/tests, without `.rs`);
    /// every one when none is given.
    #[arg(long = "test")]
    pub tests: Vec<String>,
    /// Write the result in the flaky section of docs/reliability.md.
    #[arg(long)]
    pub report: bool,
}

/// One test binary of observer-tests.
struct Binary {
    name: String,
    exe: PathBuf,
}

/// What went wrong in one run of one binary.
#[derive(Debug, PartialEq, Eq)]
struct Failure {
    /// The test's name, or `(binary)` when the binary itself died.
    test: String,
    message: String,
}

pub fn run(args: &FlakyArgs, root: &Path) -> anyhow::Result<()> {
    if args.runs == 0 {
        bail!("flaky: give a number of runs of at least 1");
    }
    // What the tests start: the agent and the test programs.
    super::cargo(&["build", "-p", "observer", "-p", "observer-tests", "--bins"])?;
    let mut binaries = test_binaries(root)?;
    if !args.tests.is_empty() {
        if let Some(missing) = args.tests.iter().find(|t| !binaries.iter().any(|b| &b.name == *t)) {
            bail!("flaky: no test binary {missing} in tests/tests");
        }
        binaries.retain(|b| args.tests.contains(&b.name));
    }
    let started = Instant::now();
    // (binary, test) -> the runs it failed in, with their messages.
    let mut failed: BTreeMap<(String, String), Vec<(u32, String)>> = BTreeMap::new();
    let mut durations: BTreeMap<String, Duration> = BTreeMap::new();
    for run in 1..=args.runs {
        for b in &binaries {
            let t = Instant::now();
            let out = Command::new(&b.exe)
                // As cargo runs a test binary: from its package's directory.
                .current_dir(root.join("tests"))
                .output()
                .with_context(|| format!("running {}", b.exe.display()))?;
            *durations.entry(b.name.clone()).or_default() += t.elapsed();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            let mut failures = parse_failures(&text);
            if failures.is_empty() && !out.status.success() {
                failures.push(Failure { test: "(binary)".into(), message: format!("exited with {}", out.status) });
            }
            for f in &failures {
                eprintln!("flaky: run {run}/{}: {}::{} FAILED: {}", args.runs, b.name, f.test, f.message);
            }
            for f in failures {
                failed.entry((b.name.clone(), f.test)).or_default().push((run, f.message));
            }
        }
        eprintln!(
            "flaky: run {run}/{} done ({} s so far, {} failure(s))",
            args.runs,
            started.elapsed().as_secs(),
            failed.values().map(Vec::len).sum::<usize>()
        );
    }
    let text = report(args, &binaries, &failed, &durations, started.elapsed());
    println!("{text}");
    if args.report {
        write_report(root, &text)?;
    }
    if !failed.is_empty() {
        bail!("flaky: {} test(s) failed at least once in {} run(s)", failed.len(), args.runs);
    }
    Ok(())
}

/// The test executables of observer-tests, built (as `cargo test` builds them) and listed by cargo.
fn test_binaries(root: &Path) -> anyhow::Result<Vec<Binary>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "-p", "observer-tests", "--tests", "--no-run", "--message-format=json"])
        .current_dir(root)
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the tests failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let is_test_target = v["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "test"));
        if v["reason"] == "compiler-artifact"
            && is_test_target
            && let (Some(name), Some(exe)) = (v["target"]["name"].as_str(), v["executable"].as_str())
        {
            binaries.push(Binary { name: name.to_owned(), exe: exe.into() });
        }
    }
    if binaries.is_empty() {
        bail!("cargo listed no test binary of observer-tests");
    }
    binaries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(binaries)
}

/// The failed tests of one libtest run, each with its panic message (the lines
/// after `panicked at FILE:LINE:COL:`, up to the backtrace note).
fn parse_failures(output: &str) -> Vec<Failure> {
    let failed: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .map(|name| name.trim())
        .collect();
    failed
        .into_iter()
        .map(|test| {
            let section = format!("---- {test} stdout ----");
            let message = output
                .split_once(&section)
                .map(|(_, rest)| panic_message(rest))
                .unwrap_or_else(|| "(no output captured)".into());
            Failure { test: test.to_owned(), message }
        })
        .collect()
}

fn panic_message(section: &str) -> String {
    let mut lines = section.lines().skip_while(|l| !l.contains("panicked at"));
    let Some(at) = lines.next() else { return "(no panic message)".into() };
    let place = at.split_once("panicked at ").map_or("", |(_, p)| p.trim_end_matches(':'));
    let text: Vec<&str> = lines
        // RUST_BACKTRACE (set for the tests) prints the trace after the message.
        .take_while(|l| {
            !l.starts_with("note: ") && !l.starts_with("---- ") && *l != "failures:" && *l != "stack backtrace:"
        })
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    // A message may quote a whole agent log: its first lines name the problem.
    let mut message = text.iter().take(6).copied().collect::<Vec<_>>().join(" / ");
    if text.len() > 6 {
        message.push_str(" / …");
    }
    format!("{message} ({place})")
}

fn report(
    args: &FlakyArgs,
    binaries: &[Binary],
    failed: &BTreeMap<(String, String), Vec<(u32, String)>>,
    durations: &BTreeMap<String, Duration>,
    elapsed: Duration,
) -> String {
    let mut s = String::new();
    let which = if args.tests.is_empty() {
        "every test binary of tests/tests".to_owned()
    } else {
        format!("the test binaries {}", args.tests.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "))
    };
    let command = if args.tests.is_empty() {
        format!("cargo xtask flaky {}", args.runs)
    } else {
        format!(
            "cargo xtask flaky {} {}",
            args.runs,
            args.tests.iter().map(|t| format!("--test {t}")).collect::<Vec<_>>().join(" ")
        )
    };
    let _ = writeln!(
        s,
        "Last run: `{command}`: {which}, {} time(s) each in a row, each run as `cargo test` runs it (its tests on concurrent threads), in {} min on this project's 2-core machine.\n",
        args.runs,
        elapsed.as_secs() / 60
    );
    let _ = writeln!(s, "| test binary | runs | seconds per run | failures |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for b in binaries {
        let n: usize = failed.iter().filter(|((bin, _), _)| *bin == b.name).map(|(_, f)| f.len()).sum();
        let per_run = durations.get(&b.name).map_or(0, |d| d.as_secs() / u64::from(args.runs));
        let _ = writeln!(s, "| `{}` | {} | {per_run} | {n} |", b.name, args.runs);
    }
    if failed.is_empty() {
        let _ = writeln!(s, "\nNo test failed in any run.");
    } else {
        let _ = writeln!(s, "\n| test | failed in runs | message (first failure) |");
        let _ = writeln!(s, "|---|---|---|");
        for ((bin, test), runs) in failed {
            let which: Vec<String> = runs.iter().map(|(r, _)| r.to_string()).collect();
            let message = runs[0].1.replace('|', "\\|");
            let _ =
                writeln!(s, "| `{bin}::{test}` | {} of {}: {} | {message} |", runs.len(), args.runs, which.join(", "));
        }
    }
    s
}

fn write_report(root: &Path, text: &str) -> anyhow::Result<()> {
    let path = root.join(REPORT);
    let doc = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        bail!("{} has no {BEGIN} ... {END} section", path.display());
    };
    let new = format!("{}{BEGIN}\n{text}{}", &doc[..b], &doc[e..]);
    std::fs::write(&path, new).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\nrunning 2 tests\ntest a_slot_lost_in_a_race_owns_no_cgroup ... FAILED\ntest ignored_cgroups_leave_the_table_to_containers ... ok\n\nfailures:\n\n---- a_slot_lost_in_a_race_owns_no_cgroup stdout ----\n\nthread 'a_slot_lost_in_a_race_owns_no_cgroup' panicked at tests/tests/slots.rs:91:37:\nslot 7 names cgroup 74942, which CGROUPS maps to None\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\n\nfailures:\n    a_slot_lost_in_a_race_owns_no_cgroup\n\ntest result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 11.12s\n";

    #[test]
    fn a_failure_is_named_with_its_message() {
        assert_eq!(
            parse_failures(OUTPUT),
            vec![Failure {
                test: "a_slot_lost_in_a_race_owns_no_cgroup".into(),
                message: "slot 7 names cgroup 74942, which CGROUPS maps to None (tests/tests/slots.rs:91:37)".into(),
            }]
        );
    }

    #[test]
    fn a_backtrace_is_not_part_of_the_message() {
        let out = "test t ... FAILED\n\nfailures:\n\n---- t stdout ----\nthread 't' panicked at x.rs:1:2:\nboom\nstack backtrace:\n   0: __rustc::rust_begin_unwind\n";
        assert_eq!(parse_failures(out)[0].message, "boom (x.rs:1:2)");
    }

    #[test]
    fn a_passing_run_has_no_failure() {
        let ok = "running 1 test\ntest x ... ok\n\ntest result: ok. 1 passed; 0 failed\n";
        assert!(parse_failures(ok).is_empty());
    }

    #[test]
    fn a_long_message_is_cut_to_its_first_lines() {
        let out = "test t ... FAILED\n\nfailures:\n\n---- t stdout ----\nthread 't' panicked at x.rs:1:2:\n1\n2\n3\n4\n5\n6\n7\n8\n";
        assert_eq!(parse_failures(out)[0].message, "1 / 2 / 3 / 4 / 5 / 6 / … (x.rs:1:2)");
    }
}
