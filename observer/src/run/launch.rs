//! Starting the command under the filter: what the child does between fork
//! and exec (capabilities, no_new_privs, the filter, in runc's order), and how
//! a failure there reaches the parent.

use std::{
    io::{self, Read},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::{CommandExt, ExitStatusExt},
    },
    process::{Child, Command, ExitStatus},
};

use observer_profile::bpf::Insn;

use super::caps::{self, CapSet};

/// What the child sets up before exec, decided in the parent.
#[derive(Clone, Debug)]
pub struct ChildSetup {
    pub filter: Vec<Insn>,
    /// Capabilities to keep (`--caps`); `None` keeps the caller's.
    pub caps: Option<CapSet>,
    /// Set no_new_privs: only when the caller lacks CAP_SYS_ADMIN, without
    /// which the kernel refuses a filter otherwise (runc does the same).
    pub no_new_privs: bool,
}

/// The steps of the child's set-up, as reported through the pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    Bounding = 1,
    NoNewPrivs = 2,
    Filter = 3,
    Caps = 4,
}

impl Step {
    fn from_byte(b: u8) -> Option<Self> {
        [Self::Bounding, Self::NoNewPrivs, Self::Filter, Self::Caps].into_iter().find(|s| *s as u8 == b)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Bounding => "dropping capabilities from the bounding set",
            Self::NoNewPrivs => "setting no_new_privs",
            Self::Filter => "loading the seccomp filter",
            Self::Caps => "setting the capability sets (capset)",
        }
    }
}

/// Why the child did not exec.
#[derive(Debug)]
pub enum SpawnFailure {
    /// A set-up step failed; nothing was executed.
    Setup(Step, io::Error),
    /// execve itself failed (the filter was in place).
    Exec(io::Error),
}

impl ChildSetup {
    /// `command` with the set-up installed as its `pre_exec` hook. The filter
    /// is loaded last, unless capabilities must go after it: without
    /// no_new_privs loading needs CAP_SYS_ADMIN, so when `--caps` drops it
    /// the filter comes first and capset after (runc's order).
    fn install(&self, command: &mut Command, report: i32) {
        let prog: Vec<libc::sock_filter> =
            self.filter.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
        let caps = self.caps;
        let nnp = self.no_new_privs;
        let filter_first = !nnp && caps.is_some_and(|c| !c.has(caps::CAP_SYS_ADMIN));
        let last_cap = caps::last_cap();
        // Everything below runs in the forked child: no allocation, only
        // system calls, errors written to `report` as [step, errno (4 bytes)].
        let setup = move || -> io::Result<()> {
            let fail = |step: Step, e: io::Error| {
                let errno = e.raw_os_error().unwrap_or(0).to_ne_bytes();
                let msg = [step as u8, errno[0], errno[1], errno[2], errno[3]];
                // SAFETY: writing a stack buffer to our own pipe.
                unsafe { libc::write(report, msg.as_ptr().cast(), msg.len()) };
                e
            };
            let load = || -> io::Result<()> {
                let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
                // SAFETY: `fprog` points at `prog`, alive for the call.
                let r = unsafe {
                    libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const libc::sock_fprog)
                };
                if r != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
            };
            if let Some(c) = caps {
                caps::drop_bounding(c, last_cap).map_err(|e| fail(Step::Bounding, e))?;
            }
            if nnp {
                // SAFETY: prctl with integer arguments.
                if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                    return Err(fail(Step::NoNewPrivs, io::Error::last_os_error()));
                }
            }
            if filter_first {
                load().map_err(|e| fail(Step::Filter, e))?;
            }
            if let Some(c) = caps {
                caps::set_caps(c).map_err(|e| fail(Step::Caps, e))?;
            }
            if !filter_first {
                load().map_err(|e| fail(Step::Filter, e))?;
            }
            Ok(())
        };
        // SAFETY: the hook only makes system calls on memory prepared before
        // fork (see above).
        unsafe {
            command.pre_exec(setup);
        }
    }

    /// Starts `command` under the set-up.
    pub fn spawn(&self, mut command: Command) -> Result<Child, SpawnFailure> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors, owned right after.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(SpawnFailure::Setup(Step::Bounding, io::Error::last_os_error()));
        }
        // SAFETY: fresh descriptors from pipe2.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        self.install(&mut command, write.as_raw_fd());
        let spawned = command.spawn();
        drop(command);
        drop(write);
        match spawned {
            Ok(child) => Ok(child),
            Err(e) => {
                // std has collected the child by now: whatever it wrote is there.
                let mut msg = Vec::new();
                let _ = std::fs::File::from(read).read_to_end(&mut msg);
                match msg.as_slice() {
                    [step, a, b, c, d, ..] => {
                        let errno = i32::from_ne_bytes([*a, *b, *c, *d]);
                        let step = Step::from_byte(*step).unwrap_or(Step::Filter);
                        Err(SpawnFailure::Setup(step, io::Error::from_raw_os_error(errno)))
                    }
                    _ => Err(SpawnFailure::Exec(e)),
                }
            }
        }
    }
}

/// The exit code a shell would give: the status, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}
