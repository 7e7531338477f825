//! `cargo xtask soak --minutes N`: the release agent under cgroup churn for N
//! minutes (tests/src/bin/soak.rs drives it), and the soak section of
//! docs/reliability.md written from the run. `cargo xtask test` runs a
//! one-minute soak through [`quick`] and fails when a figure is off.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

const REPORT: &str = "docs/reliability.md";
const BEGIN: &str = "<!-- soak:begin (written by `cargo xtask soak`) -->";
const END: &str = "<!-- soak:end -->";
/// The soak's own pin directory: uninstalled at the end, whatever happened.
const PIN_DIR: &str = "/sys/fs/bpf/observer-soak";

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// How long the churn runs.
    #[arg(long, default_value_t = 10)]
    pub minutes: u64,
    /// Print the results only; leave docs/reliability.md as it is.
    #[arg(long)]
    pub no_report: bool,
}

/// Builds the release agent and the soak driver, runs it, reports, uninstalls.
pub fn run(args: &SoakArgs, root: &Path) -> anyhow::Result<()> {
    soak(args.minutes * 60, !args.no_report, root)
}

/// The one-minute soak of `cargo xtask test` (no report written).
pub fn quick(root: &Path) -> anyhow::Result<()> {
    soak(60, false, root)
}

fn soak(seconds: u64, report: bool, root: &Path) -> anyhow::Result<()> {
    super::cargo(&[
        "build",
        "--release",
        "-p",
        "observer",
        "-p",
        "observer-tests",
        "--bin",
        "observer",
        "--bin",
        "observer-soak",
        "--bin",
        "observer-testprog",
    ])?;
    let release = root.join("target/release");
    let out = std::env::temp_dir().join(format!("observer-soak-{}.json", std::process::id()));
    eprintln!("soak: {seconds} s of churn (plain cgroups, containers, agent SIGKILLed and restarted)");
    let status = Command::new(release.join("observer-soak"))
        .args(["--seconds", &seconds.to_string(), "--pin-dir", PIN_DIR, "--out"])
        .arg(&out)
        .status()
        .context("running observer-soak");
    // Always: nothing of the soak stays attached.
    let uninstall = Command::new(release.join("observer"))
        .args(["agent", "--uninstall", "--pin-dir", PIN_DIR])
        .status()
        .context("observer agent --uninstall")?;
    let status = status?;
    let results: Value = serde_json::from_slice(
        &std::fs::read(&out).with_context(|| format!("the soak wrote no results ({status}): see above"))?,
    )
    .context("the soak's results are not JSON")?;
    let _ = std::fs::remove_file(&out);
    if report {
        write_report(root, &results)?;
    }
    if !uninstall.success() {
        bail!("observer agent --uninstall --pin-dir {PIN_DIR} failed ({uninstall})");
    }
    if !status.success() {
        bail!("the soak failed: {}", results["failed"]);
    }
    Ok(())
}

fn write_report(root: &Path, r: &Value) -> anyhow::Result<()> {
    let mut s = String::new();
    let minutes = r["seconds"].as_u64().unwrap_or(0) / 60;
    writeln!(
        s,
        "Last run: `cargo xtask soak --minutes {minutes}` on this project's 2-core machine: {} plain cgroups v2 (each with a process making syscalls, `--watch all`) and {} Docker containers (`--network none`; {} of them under `observer enforce --match name:... --action alert`) made and removed in {:.0} s, a shell making syscalls throughout, the agent SIGKILLed and restarted every {} s ({} lives). Agent options: `--watch all --slots 4096 --max-records 2000 --alerts-max-bytes 8192`.",
        r["plain_cgroups"],
        r["containers"],
        r["enforced_containers"],
        r["churn_seconds"].as_f64().unwrap_or(0.0),
        r["kill_every_seconds"],
        r["agent_lives"],
    )?;
    writeln!(s, "\n| check | figure | ok |\n|---|---|---|")?;
    for c in r["checks"].as_array().into_iter().flatten() {
        writeln!(
            s,
            "| {} | {} | {} |",
            c["check"].as_str().unwrap_or(""),
            c["figure"].as_str().unwrap_or("").replace('|', "/"),
            if c["ok"].as_bool() == Some(true) { "yes" } else { "**no**" }
        )?;
    }
    writeln!(
        s,
        "\nThe agent over time (one row per sample; `life` counts restarts after SIGKILL; RSS and fds are checked per life, after 20 s of warm-up, from the second life on: the first, started on an empty state while thousands of records arrive, is the node's warm-up):\n"
    )?;
    writeln!(
        s,
        "| t (s) | life | RSS (KiB) | fds | slots used | records | inotify watches | cached runtime answers | cgroup paths known | events lost | plain cgroups made | containers run |"
    )?;
    writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let samples = r["samples"].as_array().cloned().unwrap_or_default();
    // At most ~40 rows: every k-th sample.
    let k = samples.len().div_ceil(40).max(1);
    for x in samples.iter().step_by(k) {
        writeln!(
            s,
            "| {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            x["t"].as_f64().unwrap_or(0.0),
            x["life"],
            x["rss_kib"],
            x["fds"],
            x["slots_used"],
            x["records"],
            x["cgroup_watches"],
            x["cached_runtime_answers"],
            x["known_cgroup_paths"],
            x["events_lost"],
            x["plain_cgroups_made"],
            x["containers_run"],
        )?;
    }
    writeln!(
        s,
        "\nWhile the agent is down the kernel programs go on counting; the ring buffer fills and drops events, which are counted (`events_lost`), alerted when the next agent starts, and made up for from the slot table (new cgroups and first uses). Known limit: a container that starts and ends entirely while no agent runs keeps its counts under its cgroup id (`cgroup:<id>`), but nothing can name it any more (its cgroup directory is gone); the soak starts no container while the agent is down."
    )?;
    let path = root.join(REPORT);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} has no soak markers ({BEGIN} ... {END})", path.display());
    };
    let new = format!("{}{BEGIN}\n{s}{}", &text[..b], &text[e..]);
    std::fs::write(&path, new).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("soak: wrote the soak section of {}", PathBuf::from(REPORT).display());
    Ok(())
}
