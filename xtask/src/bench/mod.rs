//! `cargo xtask bench`: what observer's kernel programs cost per syscall, against
//! bare, against the floor (empty programs on the same tracepoints) and against its
//! peers (bpftrace, strace), measured in one run with the configurations alternated
//! and medians taken; how that cost holds with up to 10,000 busy cgroups; kernel
//! memory per watched container; the agent with 10,000 containers; its CPU and
//! latency under load. Writes docs/bench.json, docs/bench.md and docs/bench-scale.svg.

mod agent_scale;
mod configs;
mod cpu;
mod env;
mod fleet;
mod memory;
mod plot;
mod reach;
mod report;
mod running;
mod scale;
mod workers;

use std::path::{Path, PathBuf};

pub use env::BIN_DIR_VAR;

use clap::{Args, ValueEnum};
use configs::Config;
use env::{Env, attached_count, check_nothing_attached, median};
use report::target;
use serde_json::json;

#[derive(Args)]
pub struct BenchArgs {
    /// Rounds: each configuration runs once per round, in turn.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// getppid calls per measurement.
    #[arg(long, default_value_t = 3_000_000)]
    pub calls: u64,
    /// Iterations of the file mix (5 syscalls each) per measurement.
    #[arg(long, default_value_t = 100_000)]
    pub mix: u64,
    /// Containers (plain cgroups) for the memory and agent-at-scale sections.
    #[arg(long, default_value_t = 10_000)]
    pub cgroups: usize,
    /// Busy-cgroup counts of the scaling section.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
    pub scale_cgroups: Vec<usize>,
    /// Worker processes of the scaling section, the same for every count.
    #[arg(long, default_value_t = 10_000)]
    pub scale_workers: usize,
    /// getppid calls per worker turn in the scaling section.
    #[arg(long, default_value_t = 100)]
    pub scale_batch: u32,
    /// Turns of every worker per measurement in the scaling section.
    #[arg(long, default_value_t = 3)]
    pub scale_turns: u32,
    /// Rounds (bare, then the agent) per count in the scaling section.
    #[arg(long, default_value_t = 5)]
    pub scale_rounds: usize,
    /// Only the per-syscall costs: skip the scaling, memory, agent-at-scale, CPU
    /// and latency sections.
    #[arg(long)]
    pub quick: bool,
    /// Only these sections (for trying one out); the report then goes to
    /// /tmp/observer-bench/ instead of docs/.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Section>,
    /// Run even while other programs (another agent, a test) are attached to
    /// the raw syscall tracepoints: their cost is then in every configuration,
    /// bare included, so added costs and ratios stay comparable but absolute
    /// numbers do not; the report says how many were attached.
    #[arg(long)]
    pub allow_attached: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// The per-syscall configurations and the floor targets.
    Syscalls,
    /// Cost against the number of busy cgroups.
    Scale,
    /// Kernel memory per container and the agent with many containers.
    Fleet,
    /// The agent's CPU with 100 busy cgroups, and latencies.
    Cpu,
    /// `observer reach` on the test images: cold, cached, and a directory unchanged.
    Reach,
}

impl BenchArgs {
    fn runs(&self, s: Section) -> bool {
        if self.only.is_empty() { s == Section::Syscalls || !self.quick } else { self.only.contains(&s) }
    }
}

pub fn run(args: &BenchArgs, root: &Path) -> anyhow::Result<()> {
    let env = Env::new(root)?;
    env::ensure_tracefs()?;
    let others_attached = if args.allow_attached { attached_count()? } else { check_nothing_attached().map(|()| 0)? };
    if others_attached > 0 {
        eprintln!(
            "[bench] {others_attached} other links are attached to the raw syscall tracepoints: absolute numbers include them"
        );
    }
    let mut targets = Vec::new();
    let mut report = json!({
        "machine": report::machine(),
        "other_links_attached_at_start": others_attached,
        "rounds": args.rounds,
        "calls": args.calls,
        "mix_iterations": args.mix,
    });
    if args.runs(Section::Syscalls) {
        let p = configs::measure(args, &env)?;
        syscall_targets(&p, &mut targets);
        let bare_g = median(&p.getppid[&Config::Bare]);
        report["results"] = json!(p.rows());
        report["program_ns_per_run_with_bpf_stats"] = p.program_report();
        report["strace_getppid_ns"] = json!(median(&p.strace));
        report["strace_added_ns"] = json!(median(&p.strace) - bare_g);
    }
    let mut plot = None;
    let out_dir = if args.only.is_empty() { crate::workspace_root().join("docs") } else { env.work.clone() };
    if args.runs(Section::Scale) {
        let scale = scale::measure(args, &env)?;
        plot = Some(scale_target_and_plot(&scale, &mut targets, &out_dir)?);
        report["scale"] = scale;
    }
    if args.runs(Section::Fleet) {
        let mut fleet = fleet::Fleet::start(&env, args.cgroups)?;
        let memory = memory::measure(&env, &fleet)?;
        targets.push(target(
            &format!(
                "kernel map memory <= 4 KiB per watched container ({} plain cgroups, ~80 distinct syscalls each, recorded at once)",
                args.cgroups
            ),
            memory["bytes_per_container"].as_f64().unwrap_or(f64::INFINITY),
            4096.0,
            "bytes",
        ));
        let agent = agent_scale::measure(&env, &mut fleet)?;
        drop(fleet);
        for (key, what) in [("ps_ms", "`observer ps`"), ("profile_show_ms", "`observer profile show`")] {
            targets.push(target(
                &format!("{what} answers in <= 100 ms with {} containers (median of 10)", args.cgroups),
                agent[key]["median"].as_f64().unwrap_or(f64::INFINITY),
                100.0,
                "ms",
            ));
        }
        report["memory"] = memory;
        report["agent_at_scale"] = agent;
    }
    if args.runs(Section::Cpu) {
        let cpu = cpu::cpu_target(&env)?;
        cpu_targets(&cpu, &mut targets);
        let start = cpu::start_latency(&env)?;
        targets.push(target(
            "20 containers started at once: a syscall at start to the agent knowing it, p99 <= 20 ms",
            start["first_seen_at_start_latency_p99_ms"].as_f64().unwrap_or(f64::INFINITY),
            20.0,
            "ms",
        ));
        report["extra"] = json!({"cpu": cpu, "start": start});
    }
    if args.runs(Section::Reach) {
        let reach = reach::measure(&env)?;
        for row in reach.as_array().into_iter().flatten() {
            let image = row["image"].as_str().unwrap_or_default();
            targets.push(target(
                &format!("`observer reach {image}` cold (empty cache: exported, every ELF decoded) <= 30 s"),
                row["cold_s"].as_f64().unwrap_or(f64::INFINITY),
                30.0,
                "s",
            ));
            targets.push(target(
                &format!("`observer reach DIR` on {image}'s files, nothing changed, <= 1 s"),
                row["directory_unchanged_s"].as_f64().unwrap_or(f64::INFINITY),
                1.0,
                "s",
            ));
        }
        report["reach"] = reach;
    }
    report["targets"] = json!(targets);
    write_report(&report, plot.as_deref(), &out_dir)
}

fn write_report(report: &serde_json::Value, plot: Option<&str>, out_dir: &PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(out_dir.join("bench.json"), serde_json::to_string_pretty(report)? + "\n")?;
    let md = report::markdown(report, plot);
    std::fs::write(out_dir.join("bench.md"), &md)?;
    print!("{md}");
    eprintln!("[bench] wrote {}/bench.md and bench.json", out_dir.display());
    Ok(())
}

/// The wall-clock and in-kernel targets against the floor, and against bpftrace.
fn syscall_targets(p: &configs::PerSyscall, targets: &mut Vec<serde_json::Value>) {
    let floor_both = p.added(Config::FloorBoth);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    targets.push(target(
        "watched container: added cost <= 1.2x the floor's (both programs), wall clock",
        ratio(p.added(Config::AgentWatched), floor_both),
        1.2,
        "ratio",
    ));
    targets.push(target(
        "unwatched cgroup: added cost <= 1.1x the floor's, wall clock",
        ratio(p.added(Config::AgentUnwatched), floor_both),
        1.1,
        "ratio",
    ));
    targets.push(target(
        "at most a third of bpftrace's added cost",
        ratio(p.added(Config::AgentWatched), p.added(Config::Bpftrace)),
        1.0 / 3.0,
        "ratio",
    ));
    for (config, limit, what) in [
        (Config::AgentUnwatched, 10.0, "unwatched cgroup"),
        (Config::AgentWatched, 25.0, "watched container"),
        (Config::AgentWatchedFiltered, 25.0, "watched container under a seccomp filter"),
    ] {
        let over = p.enter_over_floor(config);
        targets.push(target(
            &format!("{what}, in kernel: sys_enter <= the empty sys_enter + {limit} ns (BPF statistics)"),
            if over.is_nan() { f64::INFINITY } else { over },
            limit,
            "ns",
        ));
    }
}

fn cpu_targets(cpu: &serde_json::Value, targets: &mut Vec<serde_json::Value>) {
    targets.push(target(
        "agent CPU <= 2% of one core, 100 cgroups making 1M syscalls/s",
        cpu["agent_cpu_percent"].as_f64().unwrap_or(f64::INFINITY) / 2.0,
        1.0,
        "ratio",
    ));
    targets.push(target(
        "no first-seen event lost under that load",
        cpu["events_lost"].as_f64().unwrap_or(1.0),
        0.0,
        "count",
    ));
    targets.push(target(
        "first use of a syscall to the agent knowing it: median <= 100 ms",
        cpu["first_seen_latency_median_ms"].as_f64().unwrap_or(f64::INFINITY),
        100.0,
        "ms",
    ));
}

/// The scaling target (the most cgroups against one) and the plot; the plot's name
/// relative to the report.
fn scale_target_and_plot(
    scale: &serde_json::Value,
    targets: &mut Vec<serde_json::Value>,
    out_dir: &Path,
) -> anyhow::Result<String> {
    let points: Vec<(f64, f64)> = scale["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["cgroups"].as_f64().unwrap_or(0.0), r["added_ns"].as_f64().unwrap_or(f64::NAN)))
        .collect();
    let one = points.iter().find(|p| p.0 == 1.0).map(|p| p.1);
    if let (Some(one), Some(&(most, at_most))) = (one, points.iter().max_by(|a, b| a.0.total_cmp(&b.0))) {
        targets.push(target(
            &format!("added cost at {most:.0} busy cgroups <= 1.1x the one-cgroup figure"),
            if one > 0.0 { at_most / one } else { f64::INFINITY },
            1.1,
            "ratio",
        ));
    }
    let name = "bench-scale.svg";
    std::fs::write(out_dir.join(name), plot::scale_svg(&points, one.map(|o| o * 1.1)))?;
    Ok(name.to_owned())
}
