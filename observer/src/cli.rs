//! Command-line interface: one subcommand per job. Commands that talk to the
//! agent go through its unix socket (`api`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{agent::AgentArgs, trace::TraceArgs};

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
    Top(crate::top::TopArgs),
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
    match cli.command {
        Command::Trace(args) => crate::trace::run(&args),
        Command::Agent(args) => {
            // Before the runtime starts: its threads inherit the main thread's
            // nice, and find the arena limit set.
            crate::agent::priority::set_nice(args.nice);
            crate::agent::heap::limit_arenas();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(crate::agent::run(args))
        }
        Command::Status { socket } => {
            let status: crate::views::StatusView =
                crate::api::call_as(&crate::api::socket_path(socket.as_deref()), &crate::api::Request::Status)?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(0)
        }
        Command::Ps { json, socket } => crate::commands::ps::run(json, socket.as_deref()),
        Command::Top(args) => crate::top::run(&args),
        Command::Profile(cmd) => crate::commands::profile::run(cmd),
        Command::Filter(args) => crate::commands::filter::run(&args),
        Command::Compare(args) => crate::commands::compare::run(&args),
        Command::Run(args) => crate::commands::run::run(&args),
        Command::Enforce(args) => crate::commands::enforce::run(&args),
        Command::Reach(args) => crate::commands::reach::run(&args),
        Command::Floor { enter_only } => {
            let _programs = crate::probe::load_floor(!enter_only)?;
            eprintln!("observer: empty programs attached; waiting for SIGINT or SIGTERM");
            // SAFETY: sigset_t is plain old data; sigemptyset initialises it next.
            let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
            let mut sig = 0;
            // SAFETY: `set` and `sig` are valid for the calls; the mask only
            // blocks the two signals this thread then waits for.
            unsafe {
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::sigwait(&set, &mut sig);
            }
            Ok(0)
        }
    }
}
