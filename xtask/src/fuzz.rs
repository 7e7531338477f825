//! `cargo xtask fuzz`: every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) run
//! long, and the fuzz section of docs/reliability.md written from the run.
//! `cargo xtask test` runs each target for a few seconds through [`quick`].
//!
//! The targets are built with `OBSERVER_SKIP_EBPF_BUILD=fuzz` (observer-probe/build.rs
//! then skips the nested eBPF build: see fuzz/Cargo.toml for why). The short
//! run builds `--dev` (fast to compile, for CI); the long run builds release.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};
use clap::Args;

/// Every target in fuzz/Cargo.toml, with what it reads.
pub const TARGETS: [(&str, &str); 7] = [
    (
        "profile",
        "profiles: Docker old/new, OCI, OCI config.json, SPO; JSON and YAML; resolve, check, diff, merge, export round trip",
    ),
    (
        "bpf",
        "classic-BPF filters as dumped from a process: decode, disassemble, Table::build, evaluate_call (symbolic and concrete must agree)",
    ),
    (
        "docker_api",
        "dockerd's HTTP answer through the agent's own client (stand-in dockerd), inspect JSON, podman inspect JSON",
    ),
    ("cgroup_path", "cgroup v2 paths (owner naming, idempotent), mountinfo"),
    ("api_request", "API socket request lines: Request, match rules"),
    ("state_files", "state directory: containers/<id>.json records, enforce.json rules"),
    (
        "elf",
        "ELF files of an image: parse, decode every code section, syscall sites and wrappers, facts JSON, reachability walk",
    ),
];

/// Seconds each target runs inside `cargo xtask test`.
pub const QUICK_SECONDS: u64 = 5;

const REPORT: &str = "docs/reliability.md";
const BEGIN: &str = "<!-- fuzz:begin (written by `cargo xtask fuzz`) -->";
const END: &str = "<!-- fuzz:end -->";

#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 300)]
    pub seconds: u64,
    /// Only these targets (default: all).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Print the results only; leave docs/reliability.md as it is.
    #[arg(long)]
    pub no_report: bool,
    /// Only the short run `cargo xtask test` makes (dev build, a few seconds each).
    #[arg(long)]
    pub quick: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Build {
    Dev,
    Release,
}

impl Build {
    fn dir(self) -> &'static str {
        match self {
            Build::Dev => "debug",
            Build::Release => "release",
        }
    }
}

/// What one target's run did.
struct Outcome {
    target: &'static str,
    seconds: f64,
    executions: u64,
    corpus_units: u64,
    corpus_bytes: u64,
    coverage: u64,
    peak_rss_mb: u64,
    slowest_unit_s: Option<f64>,
    /// Crash, timeout, out-of-memory and slow-unit files this run wrote.
    artifacts: Vec<PathBuf>,
    exit: Option<i32>,
}

pub fn run(args: &FuzzArgs, root: &Path) -> anyhow::Result<()> {
    if args.quick {
        return quick(root);
    }
    let targets = chosen(&args.targets)?;
    ensure_cargo_fuzz(root)?;
    let started = Instant::now();
    build(root, Build::Release)?;
    let build_seconds = started.elapsed().as_secs_f64();
    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run_target(root, Build::Release, target, args.seconds)?);
    }
    print_summary(&outcomes);
    if !args.no_report {
        write_report(root, &outcomes, args.seconds, build_seconds)?;
        eprintln!("[xtask fuzz] wrote the fuzz section of {REPORT}");
    }
    fail_on_findings(root, &outcomes)
}

/// The short run of `cargo xtask test`: each target for [`QUICK_SECONDS`].
pub fn quick(root: &Path) -> anyhow::Result<()> {
    ensure_cargo_fuzz(root)?;
    let started = Instant::now();
    build(root, Build::Dev)?;
    let mut outcomes = Vec::new();
    for (target, _) in TARGETS {
        outcomes.push(run_target(root, Build::Dev, target, QUICK_SECONDS)?);
    }
    print_summary(&outcomes);
    eprintln!("[xtask fuzz] fuzz build and runs took {:.0} s", started.elapsed().as_secs_f64());
    fail_on_findings(root, &outcomes)
}

fn chosen(names: &[String]) -> anyhow::Result<Vec<&'static str>> {
    if names.is_empty() {
        return Ok(TARGETS.iter().map(|(t, _)| *t).collect());
    }
    names
        .iter()
        .map(|n| {
            TARGETS.iter().map(|(t, _)| *t).find(|t| t == n).with_context(|| {
                format!("no fuzz target {n:?}; the targets are {}", TARGETS.map(|(t, _)| t).join(", "))
            })
        })
        .collect()
}

/// cargo-fuzz, installed by xtask/scripts/fuzz-setup.sh when missing.
fn ensure_cargo_fuzz(root: &Path) -> anyhow::Result<()> {
    let status = Command::new("bash")
        .arg(root.join("xtask/scripts/fuzz-setup.sh"))
        .status()
        .context("running xtask/scripts/fuzz-setup.sh")?;
    if !status.success() {
        bail!("installing cargo-fuzz failed ({status}); see the messages above");
    }
    Ok(())
}

/// `cargo +nightly fuzz build`, with nothing of the calling cargo's environment.
fn nightly_cargo_fuzz(root: &Path) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "fuzz"])
        .env("OBSERVER_SKIP_EBPF_BUILD", "fuzz")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(root.join("fuzz"));
    cmd
}

fn build(root: &Path, kind: Build) -> anyhow::Result<()> {
    let mut cmd = nightly_cargo_fuzz(root);
    cmd.arg("build");
    if kind == Build::Dev {
        cmd.arg("--dev");
    } else {
        // cargo-fuzz defaults to one codegen unit: minutes more for observer's tree.
        cmd.args(["--codegen-units", "16"]);
    }
    eprintln!("[xtask fuzz] building the fuzz targets ({} build, nightly, libFuzzer + AddressSanitizer)", kind.dir());
    let status = cmd.status().context("running cargo +nightly fuzz build (is cargo-fuzz installed?)")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    Ok(())
}

fn binary(root: &Path, kind: Build, target: &str) -> PathBuf {
    root.join("fuzz/target/x86_64-unknown-linux-gnu").join(kind.dir()).join(target)
}

fn run_target(root: &Path, kind: Build, target: &'static str, seconds: u64) -> anyhow::Result<Outcome> {
    let fuzz = root.join("fuzz");
    let corpus = fuzz.join("corpus").join(target);
    let seeds = fuzz.join("seeds").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let before = list(&artifacts);
    eprintln!("[xtask fuzz] {target}: {seconds} s");
    let dict = fuzz.join("dicts").join(format!("{target}.dict"));
    let started = Instant::now();
    let mut cmd = Command::new(binary(root, kind, target));
    if dict.exists() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    let output = cmd
        .arg(&corpus)
        .arg(&seeds)
        .arg(format!("-max_total_time={seconds}"))
        // Every input must be answered quickly: the parsers and the BPF
        // evaluator have budgets. A unit past 10 s is a finding.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-report_slow_units=1")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .current_dir(&fuzz)
        .output()
        .with_context(|| format!("running fuzz target {target}"))?;
    let seconds_run = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&output.stderr);
    let log_file = fuzz.join("artifacts").join(format!("{target}.log"));
    std::fs::write(&log_file, log.as_bytes()).with_context(|| format!("writing {}", log_file.display()))?;

    let stat = |name: &str| -> u64 {
        log.lines()
            .filter_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .filter_map(|v| v.trim().parse().ok())
            .next_back()
            .unwrap_or(0)
    };
    // The last status line: `#N DONE cov: C ft: F corp: U/Sb ...`.
    let field = |key: &str| -> Option<&str> {
        log.lines()
            .rev()
            .find(|l| l.starts_with('#') && l.contains(key))
            .and_then(|l| l.split(key).nth(1))
            .and_then(|rest| rest.split_whitespace().next())
    };
    let (corpus_units, corpus_bytes) = field("corp: ")
        .and_then(|c| c.split_once('/'))
        .map_or((0, 0), |(units, size)| (units.parse().unwrap_or(0), parse_size(size)));
    let slowest_unit_s = log
        .lines()
        .filter_map(|l| l.split("Slowest unit: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .reduce(f64::max);
    let artifacts_now: Vec<PathBuf> = list(&artifacts)
        .into_iter()
        .filter(|p| !before.contains(p))
        // A slow unit (over a second) is reported, not failed on.
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("slow-unit-")))
        .collect();
    Ok(Outcome {
        target,
        seconds: seconds_run,
        executions: stat("number_of_executed_units"),
        corpus_units,
        corpus_bytes,
        coverage: field("cov: ").and_then(|c| c.parse().ok()).unwrap_or(0),
        peak_rss_mb: stat("peak_rss_mb"),
        slowest_unit_s,
        artifacts: artifacts_now,
        exit: output.status.code(),
    })
}

/// libFuzzer's sizes: `123b`, `45Kb`, `6Mb`.
fn parse_size(text: &str) -> u64 {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().unwrap_or(0);
    match unit {
        "Kb" => n << 10,
        "Mb" => n << 20,
        _ => n,
    }
}

fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|entries| entries.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

fn print_summary(outcomes: &[Outcome]) {
    eprintln!(
        "[xtask fuzz] {:<12} {:>10} {:>8} {:>9} {:>8} {:>6} {:>8}  findings",
        "target", "execs", "seconds", "execs/s", "corpus", "cov", "rss MB"
    );
    for o in outcomes {
        eprintln!(
            "[xtask fuzz] {:<12} {:>10} {:>8.0} {:>9.0} {:>8} {:>6} {:>8}  {}",
            o.target,
            o.executions,
            o.seconds,
            o.executions as f64 / o.seconds.max(0.001),
            o.corpus_units,
            o.coverage,
            o.peak_rss_mb,
            o.artifacts.len()
        );
    }
}

fn fail_on_findings(root: &Path, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for o in outcomes {
        for a in &o.artifacts {
            failed.push(format!(
                "{}: {} (reproduce: cd fuzz && OBSERVER_SKIP_EBPF_BUILD=fuzz cargo +nightly fuzz run {} {})",
                o.target,
                a.display(),
                o.target,
                a.strip_prefix(root.join("fuzz")).unwrap_or(a).display()
            ));
        }
        if o.artifacts.is_empty() && o.exit != Some(0) {
            failed.push(format!(
                "{}: libFuzzer exited with {:?} (log: fuzz/artifacts/{}.log)",
                o.target, o.exit, o.target
            ));
        }
    }
    if !failed.is_empty() {
        bail!("the fuzzers found problems:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

fn write_report(root: &Path, outcomes: &[Outcome], seconds: u64, build_seconds: f64) -> anyhow::Result<()> {
    let path = root.join(REPORT);
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Reliability\n\nHow observer holds up for months on a node (issue 11): fuzzed parsers, bounded work, a soak under cgroup churn, injected faults.\n\n## Fuzzing\n\n".to_owned()
    });
    let findings = std::fs::read_to_string(root.join("fuzz/FINDINGS.md")).context("reading fuzz/FINDINGS.md")?;
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "Last run: `cargo xtask fuzz --seconds {seconds}`, {} target(s), release build with AddressSanitizer and debug assertions ({build_seconds:.0} s to build), one libFuzzer process per target on this project's 2-core machine. Each target starts from its working corpus (`fuzz/corpus/<target>`, kept between runs, not committed) and its seeds (`fuzz/seeds/<target>`, committed). A unit that takes over 10 s, a panic, an overflow, a sanitizer report or more than 2 GiB of memory is a finding.\n",
        outcomes.len()
    );
    let _ = writeln!(
        s,
        "| target | what it reads | executions | time (s) | execs/s | corpus (units, size) | coverage | peak RSS (MB) | slowest unit (s) | found in this run |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---|---:|---:|---:|---:|");
    for o in outcomes {
        let what = TARGETS.iter().find(|(t, _)| *t == o.target).map_or("", |(_, w)| w);
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {:.0} | {:.0} | {} units, {} KiB | {} | {} | {} | {} |",
            o.target,
            what,
            o.executions,
            o.seconds,
            o.executions as f64 / o.seconds.max(0.001),
            o.corpus_units,
            o.corpus_bytes.div_ceil(1024),
            o.coverage,
            o.peak_rss_mb,
            o.slowest_unit_s.map_or("under 1".to_owned(), |v| format!("{v:.1}")),
            o.artifacts.len()
        );
    }
    let _ = writeln!(s);
    s.push_str(findings.trim_end());
    let _ = writeln!(s, "\n{END}");

    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => {
            let rest = old[e + END.len()..].trim_start_matches('\n');
            let gap = if rest.is_empty() { "" } else { "\n" };
            format!("{}{s}{gap}{rest}", &old[..b])
        }
        _ => format!("{}\n\n{s}", old.trim_end()),
    };
    std::fs::write(&path, new).with_context(|| format!("writing {}", path.display()))
}
