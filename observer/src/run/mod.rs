//! `observer run`: runs a command under a seccomp profile compiled the way
//! runc compiles it, with the capabilities of `--caps`, and exits with the
//! command's status.

pub mod caps;
pub mod compile;
mod enosys;
pub mod launch;

use std::{
    path::PathBuf,
    process::{Child, Command},
};

use anyhow::{Context, Result};
use observer_profile::{
    bpf::{self, Verdict},
    model,
    resolve::{ResolveOptions, host_kernel},
    syscall_table,
    types::{Action, Arch, ResolvedProfile},
};
use thiserror::Error;

pub use self::{
    caps::CapSet,
    compile::{CompiledFilter, compile},
    launch::{ChildSetup, SpawnFailure, Step, exit_code},
};

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Seccomp profile to apply (Docker/moby, OCI or SPO format).
    #[arg(long)]
    pub profile: PathBuf,
    /// Capabilities to keep, comma-separated (`CAP_CHOWN,net_raw`); the
    /// profile is resolved for them. Default: the caller's effective set.
    #[arg(long)]
    pub caps: Option<String>,
    /// Also record the syscalls the command makes.
    #[arg(long)]
    pub trace: bool,
    /// The command and its arguments (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(
        "the profile {profile} denies execve ({action}), which starting {command:?} needs: the \
         command cannot start"
    )]
    ExecDenied { profile: String, action: String, command: String },
    #[error("{command:?} could not be executed under the profile {profile}: {source}{hint}")]
    ExecFailed { profile: String, command: String, source: std::io::Error, hint: &'static str },
    #[error("setting up the command failed while {}: {source}", step.describe())]
    Setup { step: Step, source: std::io::Error },
}

/// Everything decided before fork: the resolved profile, its filter, the
/// child's set-up.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub profile: ResolvedProfile,
    pub filter: CompiledFilter,
    pub setup: ChildSetup,
    profile_path: String,
}

/// Loads, resolves and compiles the profile for `args`, and checks that exec
/// can pass it.
pub fn prepare(args: &RunArgs) -> Result<Prepared> {
    let caller = CapSet::effective().context("reading this process's capabilities")?;
    let caps = args.caps.as_deref().map(CapSet::parse).transpose()?;
    let opts = ResolveOptions {
        caps: caps.unwrap_or(caller).names(),
        arch: Arch::X86_64,
        kernel: host_kernel().unwrap_or((0, 0)),
    };
    let profile = model::load(&args.profile)
        .with_context(|| format!("loading the profile {}", args.profile.display()))?
        .resolve(&opts);
    let filter = compile(&profile)?;
    for name in &filter.skipped {
        tracing::warn!("syscall {name:?} is unknown to libseccomp on these architectures; its rule is skipped");
    }
    let profile_path = args.profile.display().to_string();
    let command = args.command.first().cloned().unwrap_or_default();
    // exec needs execve to pass: refuse up front, with a reason, rather than
    // leave a child that may not even be able to report its failure (a deny-all
    // profile also denies the write and the exit that would report it).
    let execve = syscall_table::number(Arch::X86_64, "execve").unwrap_or(59);
    if let Verdict::Fixed(action) = bpf::evaluate(&[&filter.insns], Arch::X86_64, execve)?
        && !matches!(action, Action::Allow | Action::Log)
    {
        return Err(RunError::ExecDenied { profile: profile_path, action: bpf::action_text(action), command }.into());
    }
    let setup = ChildSetup { filter: filter.insns.clone(), caps, no_new_privs: !caller.has(caps::CAP_SYS_ADMIN) };
    Ok(Prepared { profile, filter, setup, profile_path })
}

impl Prepared {
    /// A `Command` for `argv`; pass it to [`Prepared::spawn`].
    pub fn command(argv: &[String]) -> Command {
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        command
    }

    /// Starts `command` under the filter.
    pub fn spawn(&self, command: Command) -> Result<Child, RunError> {
        let program = command.get_program().to_string_lossy().into_owned();
        self.setup.spawn(command).map_err(|failure| match failure {
            SpawnFailure::Setup(step, source) => RunError::Setup { step, source },
            SpawnFailure::Exec(source) => {
                let hint = match source.raw_os_error() {
                    Some(libc::ENOENT) => "",
                    _ => " (the filter was in place: the profile may deny a syscall exec needs)",
                };
                RunError::ExecFailed { profile: self.profile_path.clone(), command: program, source, hint }
            }
        })
    }
}

/// `observer run` without `--trace` (commands/run.rs adds the recording): the
/// exit code to exit with (the command's, or 128 + the signal that killed it).
pub fn run(args: &RunArgs) -> Result<i32> {
    let prepared = prepare(args)?;
    let mut child = prepared.spawn(Prepared::command(&args.command))?;
    let status = child.wait().context("waiting for the command")?;
    Ok(exit_code(status))
}
