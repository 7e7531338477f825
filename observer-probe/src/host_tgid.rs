//! The agent's own tgid as the kernel programs see it. They compare
//! `task->tgid`, a number in the root pid namespace, with `AGENT_TGID`; in a
//! pod without `hostPID`, `getpid()` and the pod's `/proc` give the pid in the
//! pod's namespace instead (often 1), and the agent would exempt some other
//! process on the node while recording its own calls.
//!
//! So the kernel is asked: a three-instruction raw tracepoint program returns
//! `bpf_get_current_pid_tgid() >> 32`, run once with `BPF_PROG_TEST_RUN`, which
//! runs it in the calling task (kernel 5.10 and later). Nothing is attached.

use std::{io, os::fd::FromRawFd as _};

/// The calling process's tgid in the root pid namespace. Falls back, with a
/// warning, to the first `NSpid` of `/proc/self/status` (right when that `/proc`
/// is the host's), then to `getpid()`.
pub fn host_tgid() -> u32 {
    match tgid_from_kernel() {
        Ok(tgid) => tgid,
        Err(e) => {
            let fallback = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| outermost_nspid(&s))
                .unwrap_or_else(std::process::id);
            tracing::warn!(
                "could not ask the kernel for the agent's pid in the root pid namespace ({e}); using {fallback}: \
                 in a pid namespace of its own (a pod without hostPID) the agent may record its own syscalls"
            );
            fallback
        }
    }
}

/// The first (outermost) pid of `NSpid:`, the pid in the namespace of that `/proc`.
fn outermost_nspid(status: &str) -> Option<u32> {
    status.lines().find_map(|l| l.strip_prefix("NSpid:"))?.split_whitespace().next()?.parse().ok()
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const BPF_FUNC_GET_CURRENT_PID_TGID: i32 = 14;

/// `struct bpf_insn`: opcode, dst_reg (low nibble) and src_reg, offset, immediate.
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// The `BPF_PROG_LOAD` part of `union bpf_attr`; the rest stays zero, as the kernel requires.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    rest: [u64; 8],
}

/// The `BPF_PROG_TEST_RUN` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-padded, correctly laid out prefix of `union bpf_attr` for `cmd`.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn tgid_from_kernel() -> io::Result<u32> {
    let program = [
        // r0 = bpf_get_current_pid_tgid()
        Insn { code: 0x85, regs: 0, off: 0, imm: BPF_FUNC_GET_CURRENT_PID_TGID },
        // r0 >>= 32 (BPF_ALU64 | BPF_RSH | BPF_K): the tgid
        Insn { code: 0x77, regs: 0, off: 0, imm: 32 },
        // exit
        Insn { code: 0x95, regs: 0, off: 0, imm: 0 },
    ];
    let license = c"GPL";
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_RAW_TRACEPOINT,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    load.prog_name[..10].copy_from_slice(b"host_tgid\0");
    let fd = bpf(BPF_PROG_LOAD, &mut load)? as i32;
    // SAFETY: the kernel just returned this fd to us; the OwnedFd closes it.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut run = TestRunAttr { prog_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32, ..Default::default() };
    bpf(BPF_PROG_TEST_RUN, &mut run)?;
    match run.retval {
        0 => Err(io::Error::other("the test run returned tgid 0")),
        tgid => Ok(tgid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nspid_reads_the_outermost_pid() {
        let status = "Name:\tobserver\nTgid:\t1\nPid:\t1\nNSpid:\t48213\t77\t1\nNSsid:\t0\n";
        assert_eq!(outermost_nspid(status), Some(48213));
        assert_eq!(outermost_nspid("Name:\tx\n"), None);
    }

    /// These unit tests run as root in the root pid namespace, where both agree.
    #[test]
    fn the_kernel_says_our_tgid() {
        assert_eq!(tgid_from_kernel().expect("BPF_PROG_TEST_RUN (run as root)"), std::process::id());
        assert_eq!(host_tgid(), std::process::id());
    }
}
