//! Starting the traced command inside its cgroup.
//!
//! The child moves itself into the cgroup (writing "0" to cgroup.procs) in
//! `pre_exec`, right before execve; the program path is resolved beforehand so
//! that exactly one execve runs. What the launcher itself does inside the
//! cgroup before the command starts is therefore only: the end of that write
//! (an exit without enter, not counted), std's `rt_sigprocmask` reset of the
//! signal mask, and the `execve` that starts the command (which strace reports too).

use std::{
    ffi::OsStr,
    fs::OpenOptions,
    io::Write as _,
    os::unix::{
        fs::PermissionsExt as _,
        process::{CommandExt as _, ExitStatusExt as _},
    },
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
};

use anyhow::Context as _;

use super::TraceCgroup;

/// Finds a program the way a shell does: a name with a slash as given, else on $PATH.
pub fn resolve_program(name: &str) -> Option<PathBuf> {
    let is_exec = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_exec(p))
}

pub fn spawn_in_cgroup(
    program: &Path,
    command: &[String],
    cgroup: &TraceCgroup,
    spawn: &mut dyn FnMut(Command) -> anyhow::Result<Child>,
) -> anyhow::Result<Child> {
    let procs = OpenOptions::new()
        .write(true)
        .open(cgroup.procs_file())
        .with_context(|| format!("opening {}", cgroup.procs_file().display()))?;
    let mut cmd = Command::new(program);
    cmd.arg0(OsStr::new(&command[0])).args(&command[1..]);
    // SAFETY: the pre-exec hook only makes async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(move || {
            // "0" moves the writing process itself.
            (&procs).write_all(b"0")?;
            Ok(())
        });
    }
    spawn(cmd).with_context(|| format!("starting {}", program.display()))
}

/// The shell's convention: the exit status, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
