//! `observer trace`: the eBPF replacement for `strace -c -f -S name`. Runs a
//! command in a fresh cgroup of its own, records every syscall made in it with
//! the kernel programs, and reports per syscall and ABI.

mod cgroup;
mod launch;
mod profile_out;
pub mod report;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Args;
use observer_common::config;
use observer_probe::{LoadOptions, Probe};

pub use self::{cgroup::TraceCgroup, report::Report};

#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// Write the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the report to FILE instead of stderr.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write a seccomp profile allowing exactly the syscalls made (and not denied).
    #[arg(long, value_name = "FILE")]
    pub profile_out: Option<PathBuf>,
    /// Add strace -c's time columns (% time, seconds, usecs/call): each call's
    /// time from its entry to its return, measured in the kernel (like
    /// `strace -c -w`, which includes time spent sleeping in the call).
    #[arg(long, short = 'w')]
    pub time: bool,
    /// Format of --profile-out: docker, oci or spo.
    #[arg(long, value_enum, default_value = "docker")]
    pub format: observer_contract::views::ExportFormat,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Runs `observer trace`; returns the exit code to exit with.
pub fn run(args: &TraceArgs) -> anyhow::Result<i32> {
    let report = &trace_command_with(&args.command, args.time, &mut |mut cmd| Ok(cmd.spawn()?))?;
    let text = if args.json { serde_json::to_string_pretty(report)? + "\n" } else { report.table() };
    match &args.output {
        Some(path) => crate::state::write_atomic(path, text.as_bytes())
            .with_context(|| format!("writing the report to {}", path.display()))?,
        None => eprint!("{text}"),
    }
    if let Some(path) = &args.profile_out {
        let profile = profile_out::trace_profile(report, args.format, &args.command)?;
        crate::state::write_atomic(path, profile.as_bytes())
            .with_context(|| format!("writing the profile to {}", path.display()))?;
    }
    Ok(report.exit_code)
}

/// Traces a command to completion (the command and every descendant), with
/// the caller starting the prepared `Command` (which already moves the child
/// into the cgroup): `observer run --trace` adds its filter that way. `timed`:
/// also measure each call's time (`--time`).
pub fn trace_command_with(
    command: &[String],
    timed: bool,
    spawn: &mut dyn FnMut(std::process::Command) -> anyhow::Result<std::process::Child>,
) -> anyhow::Result<Report> {
    if command.is_empty() || command[0].is_empty() {
        bail!("no command given: usage: observer trace [OPTIONS] -- CMD [ARGS...]");
    }
    let program = match launch::resolve_program(&command[0]) {
        Some(p) => p,
        None => {
            eprintln!("observer: {}: command not found", command[0]);
            return Ok(Report::empty(127));
        }
    };
    let mut probe = Probe::load(LoadOptions {
        slots: 1,
        mode: config::mode::EXPLICIT,
        count_errors: true,
        timed,
        event_ring_bytes: observer_probe::PRIVATE_EVENT_RING_BYTES,
    })?;
    let cgroup = TraceCgroup::create()?;
    // u64::MAX: no task counts as a runtime's init; everything is the command's own.
    probe.watch(cgroup.id(), 0, u64::MAX)?;

    INTERRUPTED.store(false, Ordering::SeqCst);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let previous = unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let result = (|| -> anyhow::Result<i32> {
        let mut child = launch::spawn_in_cgroup(&program, command, &cgroup, spawn)?;
        let pid = child.id() as i32;
        let mut forwarded = false;
        let status = loop {
            if INTERRUPTED.load(Ordering::SeqCst) && !forwarded {
                // SAFETY: kill has no memory preconditions; pid is our own child.
                unsafe { libc::kill(pid, libc::SIGINT) };
                forwarded = true;
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Like strace -f, wait for every descendant; after a SIGINT, kill what is left.
        loop {
            if INTERRUPTED.load(Ordering::SeqCst) {
                cgroup.kill();
            }
            if cgroup.is_empty()? {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(launch::exit_code(status))
    })();
    // SAFETY: puts back the handler that was there before.
    unsafe { libc::signal(libc::SIGINT, previous) };
    let exit_code = match result {
        Ok(code) => code,
        Err(e) => {
            cgroup.kill();
            drop(cgroup);
            return Err(e);
        }
    };
    let mut report = Report::from_rows(exit_code, &probe.rows(0, &probe.wraps()));
    if timed {
        report.add_times(|row| probe.time_ns(row).unwrap_or(0));
    }
    drop(probe);
    drop(cgroup);
    Ok(report)
}
