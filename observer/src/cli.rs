//! Command-line interface: one subcommand per job.

use clap::{Parser, Subcommand};

use crate::trace::TraceArgs;

#[derive(Parser, Debug)]
#[command(name = "observer", version, about = "Watches the syscalls containers make with eBPF and turns them into seccomp security.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command in a cgroup of its own and report its syscalls (like strace -c -f).
    Trace(TraceArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Trace(args) => crate::trace::run(&args),
    }
}
