//! `observer run`: a command under a profile compiled to a real seccomp filter
//! (crate::run); with `--trace`, also recorded like `observer trace`, so that
//! the calls the filter denied are listed.

use anyhow::Context as _;

use crate::run::{Prepared, RunArgs, prepare};

pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    if !args.trace {
        return crate::run::run(args);
    }
    let prepared: Prepared = prepare(args)?;
    let report = crate::trace::trace_command_with(&args.command, false, &mut |cmd| {
        prepared.spawn(cmd).context("starting the command under the filter")
    })?;
    eprint!("{}", report.table());
    Ok(report.exit_code)
}
