//! Command-line interface: one subcommand per job. Commands that talk to the
//! agent go through its unix socket (`api`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{agent::AgentArgs, commands::trace::TraceArgs};

#[derive(Parser, Debug)]
#[command(
    name = "observer",
    version,
    about = "Watches the syscalls containers make with eBPF and turns them into seccomp security."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command in a cgroup of its own and report its syscalls (like strace -c -f).
    Trace(TraceArgs),
    /// Profile every running container, live (the node agent).
    Agent(AgentArgs),
    /// The agent's own state: slots, losses, latency, enforcements.
    Status {
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// A live terminal view of every container, its profile and the latest alerts.
    Top(crate::commands::top::TopArgs),
    /// List the containers the agent knows.
    Ps {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Learned profiles: show, export, merge, diff, check.
    #[command(subcommand)]
    Profile(crate::commands::profile::ProfileCommand),
    /// The seccomp filter a process runs under (from the kernel), or a profile's, per syscall.
    Filter(crate::commands::filter::FilterArgs),
    /// A container's live profile against its applied filter (or a profile file).
    Compare(crate::commands::compare::CompareArgs),
    /// Run a command under a profile compiled to a real seccomp filter (as docker run --security-opt seccomp=FILE).
    Run(crate::run::RunArgs),
    /// Act in the kernel when a container leaves a profile: --action alert|kill, or --off.
    Enforce(crate::commands::enforce::EnforceArgs),
    /// The syscalls an image's (or directory's, container's, file's) binaries can make, by static analysis.
    Reach(crate::commands::reach::ReachArgs),
    /// Benchmark helper: attach empty programs (the floor) until SIGINT/SIGTERM.
    #[command(hide = true)]
    Floor {
        /// Only `sys_enter` (default: `sys_enter` and `sys_exit`).
        #[arg(long)]
        enter_only: bool,
    },
}

/// Runs a parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    use crate::commands;
    match cli.command {
        Command::Trace(args) => commands::trace::run(&args),
        Command::Agent(args) => commands::agent::run(args),
        Command::Status { socket } => commands::status::run(socket.as_deref()),
        Command::Ps { json, socket } => commands::ps::run(json, socket.as_deref()),
        Command::Top(args) => commands::top::run(&args),
        Command::Profile(cmd) => commands::profile::run(cmd),
        Command::Filter(args) => commands::filter::run(&args),
        Command::Compare(args) => commands::compare::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Enforce(args) => commands::enforce::run(&args),
        Command::Reach(args) => commands::reach::run(&args),
        Command::Floor { enter_only } => commands::floor::run(enter_only),
    }
}
