//! Developer tasks that cargo alone cannot run: set-up of a fresh machine,
//! the test suite as root, the agent, and benchmarks.

mod bench;
mod flaky;
mod fuzz;
mod soak;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing: `build` (nightly rust-src, bpf-linker, libseccomp-dev)
    /// or `test` (also Docker without a bridge, crun, strace, bpftrace, a busybox image).
    Setup {
        #[arg(default_value = "test")]
        what: String,
    },
    /// Set up, build and run the agent as root: `cargo xtask agent [AGENT ARGS...]`.
    Agent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build and run every test (unit, kernel, Docker) and clippy (also on the
    /// kernel crate, for the BPF target), as root.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmark observer's hot path against the floor and its peers in one run.
    Bench(bench::BenchArgs),
    /// Run every fuzz target long (default 300 s each) and write the fuzz section
    /// of docs/reliability.md.
    Fuzz(fuzz::FuzzArgs),
    /// Run every root test binary (tests/tests) N times in a row, as `cargo test`
    /// runs it, and report each failure with its message; `--report` writes the
    /// flaky section of docs/reliability.md.
    Flaky(flaky::FlakyArgs),
    /// Run the agent under cgroup churn for N minutes (plain cgroups, containers,
    /// enforcement, SIGKILL and restart) and write the soak section of docs/reliability.md.
    Soak(soak::SoakArgs),
    /// Build the container image `observer:local` (no registry) from the release
    /// binary and the libraries it links; its entrypoint is the observer binary.
    Image {
        #[arg(default_value = "observer:local")]
        name: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup { what } => setup(&what),
        Task::Agent { args } => {
            setup("build")?;
            cargo(&["build", "--release", "-p", "observer"])?;
            let bin = workspace_root().join("target/release/observer");
            // The clients (`observer ps`, ...) are the same binary: say where it is.
            eprintln!(
                "xtask: running {bin}; for `observer ps` and the other commands, as root: \
                 install -m 0755 {bin} /usr/local/bin/observer (README.md)",
                bin = bin.display()
            );
            let status = Command::new(&bin)
                .arg("agent")
                .args(&args)
                .status()
                .with_context(|| format!("running {}", bin.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Test { args } => {
            require_root("the tests load eBPF programs and start containers")?;
            // Formatting first: it needs nothing installed and fails fastest.
            if args.is_empty() {
                cargo(&["fmt", "--all", "--check"])?;
                fmt_fuzz()?;
            }
            setup("test")?;
            cargo(&["build", "--all-targets"])?;
            if args.is_empty() {
                // Lints before the long root tests, so that a lint error is never
                // hidden behind (or waits for) a red test.
                cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
                clippy_ebpf()?;
            }
            let mut test = vec!["test", "--no-fail-fast"];
            if !args.is_empty() {
                test.push("--");
                test.extend(args.iter().map(String::as_str));
            }
            cargo(&test)?;
            if args.is_empty() {
                // Each fuzz target for a few seconds (fuzz/, docs/reliability.md).
                fuzz::quick(&workspace_root())?;
                // A one-minute soak under churn; fails when a figure is off.
                soak::quick(&workspace_root())?;
            }
            Ok(())
        }
        Task::Image { name } => {
            setup("build")?;
            cargo(&["build", "--release", "-p", "observer"])?;
            let script = workspace_root().join("xtask/scripts/image.sh");
            let bin = workspace_root().join("target/release/observer");
            let status = Command::new("bash")
                .arg(&script)
                .arg(&bin)
                .arg(&name)
                .status()
                .context("running xtask/scripts/image.sh")?;
            if !status.success() {
                bail!("building the image failed ({status}); see the messages above");
            }
            Ok(())
        }
        Task::Fuzz(args) => {
            setup("build")?;
            fuzz::run(&args, &workspace_root())
        }
        Task::Flaky(args) => {
            require_root("the tests load eBPF programs and start containers")?;
            setup("test")?;
            flaky::run(&args, &workspace_root())
        }
        Task::Soak(args) => {
            require_root("the soak loads eBPF programs, makes cgroups and starts containers")?;
            setup("test")?;
            soak::run(&args, &workspace_root())
        }
        Task::Bench(args) => {
            require_root("the benchmark loads eBPF programs")?;
            setup("test")?;
            // Binaries given from elsewhere are measured as they are.
            if std::env::var_os(bench::BIN_DIR_VAR).is_none() {
                cargo(&["build", "--release", "-p", "observer", "-p", "observer-tests"])?;
            }
            bench::run(&args, &workspace_root())
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn setup(what: &str) -> anyhow::Result<()> {
    let script = workspace_root().join("xtask/scripts/setup.sh");
    let status = Command::new("bash").arg(&script).arg(what).status().context("running the set-up script")?;
    if !status.success() {
        bail!("set-up failed ({status}); see the messages above");
    }
    Ok(())
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo).args(args).current_dir(workspace_root()).status()?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// rustfmt on the fuzz workspace, which `cargo fmt --all` never sees (it is a
/// workspace of its own, excluded from this one).
fn fmt_fuzz() -> anyhow::Result<()> {
    let manifest = workspace_root().join("fuzz/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["fmt", "--check", "--manifest-path"])
        .arg(&manifest)
        .current_dir(workspace_root())
        .status()
        .context("running cargo fmt on the fuzz workspace")?;
    if !status.success() {
        bail!(
            "rustfmt: the fuzz workspace ({}) is not formatted; run `cargo fmt --manifest-path fuzz/Cargo.toml`",
            manifest.display()
        );
    }
    Ok(())
}

/// Clippy on the kernel crate, which the workspace's clippy never sees (it is
/// not a default member, and it only builds for the BPF target): built as
/// observer-probe/build.rs (aya-build) builds it, on nightly with `-Z build-std=core`,
/// in a target directory of its own so that it never invalidates the host build.
fn clippy_ebpf() -> anyhow::Result<()> {
    let root = workspace_root();
    let args = [
        "run",
        "nightly",
        "cargo",
        "clippy",
        "--package",
        "observer-ebpf",
        "--bins",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--target-dir",
    ];
    let status = Command::new("rustup")
        .args(args)
        .arg(root.join("target/ebpf-clippy"))
        .args(["--", "-D", "warnings", "-D", "clippy::undocumented_unsafe_blocks"])
        // What aya-build passes (the cfg aya-ebpf needs), and nothing of the host build's.
        .env("CARGO_ENCODED_RUSTFLAGS", format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH))
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .current_dir(&root)
        .status()
        .context("running clippy on observer-ebpf (rustup run nightly cargo clippy)")?;
    if !status.success() {
        bail!("clippy on observer-ebpf (BPF target, nightly) failed ({status})");
    }
    Ok(())
}

fn require_root(why: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        bail!("run this as root: {why}");
    }
    Ok(())
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
