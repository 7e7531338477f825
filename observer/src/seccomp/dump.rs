//! Reads the seccomp filters applied to a running process with
//! `PTRACE_SECCOMP_GET_FILTER`, stopping it only for the copy.

use std::{
    io,
    time::{Duration, Instant},
};

use observer_profile::bpf::{self, DecodeError, EvalError, Insn, Table};
use thiserror::Error;

use super::status::{SeccompMode, read_status, self_has_cap_sys_admin};

/// include/uapi/linux/ptrace.h; libc does not name it.
const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

/// The filters a process runs under, as the kernel holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedFilter {
    pub pid: i32,
    /// Installation order: index 0 is the oldest filter, as
    /// `PTRACE_SECCOMP_GET_FILTER` numbers them; the kernel runs the newest first.
    pub filters: Vec<Vec<Insn>>,
    /// How long the process was held in a ptrace stop.
    pub stopped_for: Duration,
}

impl AppliedFilter {
    /// The effective action of the whole stack for every syscall number.
    pub fn table(&self) -> Result<Table, EvalError> {
        Table::build(&self.filters)
    }

    pub fn instruction_count(&self) -> usize {
        self.filters.iter().map(Vec::len).sum()
    }
}

#[derive(Debug, Error)]
pub enum DumpError {
    #[error("process {0} does not exist")]
    NoProcess(i32),
    #[error("process {0} exited while its seccomp filter was being read")]
    Exited(i32),
    #[error("process {0} runs without a seccomp filter (Seccomp: 0 in /proc/{0}/status)")]
    NoFilter(i32),
    #[error("process {0} is in seccomp strict mode (Seccomp: 1), which has no filter to read")]
    Strict(i32),
    #[error(
        "not allowed to read the seccomp filter of process {pid} ({op}: {source}); the kernel \
         requires the reader to have CAP_SYS_ADMIN ({caps}) and to run without a seccomp filter \
         itself ({own})"
    )]
    Permission {
        pid: i32,
        op: &'static str,
        source: io::Error,
        /// Filled in from observer's own /proc/self/status.
        caps: &'static str,
        own: &'static str,
    },
    #[error(
        "cannot attach to process {pid} with ptrace ({source}): it is already traced by another \
         process (TracerPid {tracer}), or a security module forbids it"
    )]
    Attach { pid: i32, tracer: i32, source: io::Error },
    #[error(
        "filter {index} of process {pid} has no classic-BPF copy (EMEDIUMTYPE): the kernel keeps \
         one only with CONFIG_CHECKPOINT_RESTORE"
    )]
    NoClassicCopy { pid: i32, index: u32 },
    #[error("ptrace {op} on process {pid}: {source}")]
    Ptrace { pid: i32, op: &'static str, source: io::Error },
    #[error("filter {index} of process {pid}: {source}")]
    Decode { pid: i32, index: u32, source: DecodeError },
}

/// Dumps every filter stacked on `pid`. The process is stopped from
/// `PTRACE_INTERRUPT` to `PTRACE_DETACH` only; it is detached on every path.
pub fn dump_filters(pid: i32) -> Result<AppliedFilter, DumpError> {
    let status = read_status(pid).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DumpError::NoProcess(pid),
        _ => DumpError::Ptrace { pid, op: "reading /proc/PID/status", source: e },
    })?;
    match status.mode {
        SeccompMode::Disabled => return Err(DumpError::NoFilter(pid)),
        SeccompMode::Strict => return Err(DumpError::Strict(pid)),
        SeccompMode::Filter => {}
    }
    // Measured from the request to stop, an upper bound of the time stopped.
    let started = Instant::now();
    let stop = Stopped::new(pid)?;
    let mut filters = Vec::with_capacity(status.filters.unwrap_or(1) as usize);
    for index in 0.. {
        match read_filter(pid, index)? {
            Some(insns) => filters.push(insns),
            None => break,
        }
    }
    drop(stop);
    let stopped_for = started.elapsed();
    if filters.is_empty() {
        // Seccomp: 2 but no filter means the mode changed under us: the
        // thread we stopped is not the one /proc showed, or it exited.
        return Err(DumpError::NoFilter(pid));
    }
    Ok(AppliedFilter { pid, filters, stopped_for })
}

/// One filter (`None` once `index` passes the last one).
fn read_filter(pid: i32, index: u32) -> Result<Option<Vec<Insn>>, DumpError> {
    let get = |buf: *mut libc::c_void| -> Result<usize, io::Error> {
        // SAFETY: with a null buffer the kernel only returns the length; with
        // a buffer it writes exactly that many `sock_filter`s, and callers
        // pass one of that size.
        let r = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index as libc::c_long, buf) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
    };
    let fail = |e: io::Error| -> DumpError {
        match e.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => permission(pid, "PTRACE_SECCOMP_GET_FILTER", e),
            Some(libc::EMEDIUMTYPE) => DumpError::NoClassicCopy { pid, index },
            Some(libc::ESRCH) => DumpError::Exited(pid),
            // EINVAL: the stopped thread is not in filter mode.
            Some(libc::EINVAL) => DumpError::NoFilter(pid),
            _ => DumpError::Ptrace { pid, op: "PTRACE_SECCOMP_GET_FILTER", source: e },
        }
    };
    let len = match get(std::ptr::null_mut()) {
        Ok(len) => len,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let mut buf = vec![0u8; len * bpf::insn::INSN_SIZE];
    let got = get(buf.as_mut_ptr().cast()).map_err(fail)?;
    buf.truncate(got.min(len) * bpf::insn::INSN_SIZE);
    bpf::decode(&buf).map(Some).map_err(|source| DumpError::Decode { pid, index, source })
}

fn permission(pid: i32, op: &'static str, source: io::Error) -> DumpError {
    let caps = if self_has_cap_sys_admin() { "observer has it" } else { "observer lacks CAP_SYS_ADMIN" };
    let own = match read_status(0).map(|s| s.mode) {
        Ok(SeccompMode::Disabled) => "observer has none",
        Ok(_) => "observer itself runs under a seccomp filter",
        Err(_) => "observer's own seccomp mode is unknown",
    };
    DumpError::Permission { pid, op, source, caps, own }
}

fn tracer_of(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("TracerPid:"))?.trim().parse().ok())
        .unwrap_or(0)
}

/// A process held in a ptrace stop; dropping it detaches.
struct Stopped {
    pid: i32,
    /// A signal that arrived as the stop happened, re-delivered on detach.
    pending_signal: libc::c_int,
    /// `PTRACE_INTERRUPT` succeeded, so a stop is coming.
    interrupted: bool,
    /// The stop was collected with `waitpid`.
    reported: bool,
}

impl Stopped {
    fn new(pid: i32) -> Result<Self, DumpError> {
        // SAFETY: SEIZE takes no pointers.
        let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0 as libc::c_long, 0 as libc::c_long) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ESRCH) => DumpError::NoProcess(pid),
                Some(libc::EPERM) => match tracer_of(pid) {
                    0 if !self_has_cap_sys_admin() => permission(pid, "PTRACE_SEIZE", e),
                    tracer => DumpError::Attach { pid, tracer, source: e },
                },
                _ => DumpError::Ptrace { pid, op: "PTRACE_SEIZE", source: e },
            });
        }
        // From here on, the guard detaches whatever happens.
        let mut stopped = Self { pid, pending_signal: 0, interrupted: false, reported: false };
        stopped.interrupt()?;
        let status = stopped.wait()?;
        if libc::WIFSTOPPED(status) && status >> 16 == 0 && libc::WSTOPSIG(status) != libc::SIGTRAP {
            // A signal-delivery stop came first: the tracee is stopped all the
            // same; give the signal back when detaching.
            stopped.pending_signal = libc::WSTOPSIG(status);
        }
        Ok(stopped)
    }

    fn interrupt(&mut self) -> Result<(), DumpError> {
        // SAFETY: INTERRUPT takes no pointers.
        let r = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, self.pid, 0 as libc::c_long, 0 as libc::c_long) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ESRCH) => DumpError::Exited(self.pid),
                _ => DumpError::Ptrace { pid: self.pid, op: "PTRACE_INTERRUPT", source: e },
            });
        }
        self.interrupted = true;
        Ok(())
    }

    /// Waits for the tracee's stop; an exit is an error.
    fn wait(&mut self) -> Result<libc::c_int, DumpError> {
        let mut status = 0;
        loop {
            // SAFETY: `status` is a valid out pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::__WALL) };
            if r == self.pid {
                break;
            }
            let e = io::Error::last_os_error();
            if r < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(DumpError::Ptrace { pid: self.pid, op: "waitpid", source: e });
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Err(DumpError::Exited(self.pid));
        }
        self.reported = true;
        Ok(status)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let pid = self.pid;
        let detach = move |sig: libc::c_int| {
            // SAFETY: DETACH takes a signal number as data, no pointer.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0 as libc::c_long, sig as libc::c_long) }
        };
        if detach(self.pending_signal) == 0 {
            return;
        }
        // DETACH needs a stopped tracee: an error came before the stop was
        // requested or collected. Get the stop, then detach; if the process
        // is gone there is nothing left to release.
        if (self.interrupted || self.interrupt().is_ok()) && (self.reported || self.wait().is_ok()) {
            detach(self.pending_signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_message_names_both_causes() {
        let err = permission(1, "PTRACE_SECCOMP_GET_FILTER", io::Error::from_raw_os_error(libc::EACCES));
        let text = err.to_string();
        assert!(text.contains("CAP_SYS_ADMIN") && text.contains("seccomp filter"), "{text}");
    }
}
