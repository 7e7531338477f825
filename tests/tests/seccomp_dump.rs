//! As root, on real processes: children that install hand-assembled filters
//! with `prctl(PR_SET_SECCOMP)` and sleep, dumped with ptrace.

use std::{
    os::unix::process::CommandExt,
    process::{Child, Command},
    time::Duration,
};

use observer_profile::{
    bpf::{
        Insn, Verdict,
        insn::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, OFF_ARCH, OFF_NR},
        ret::{AUDIT_ARCH_X86_64, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS},
    },
    types::{Action, Arch},
};

use observer::seccomp::*;

const CHMOD: u32 = 90;
const MKDIR: u32 = 83;

/// x86_64 only; `nr` → `ret`, everything else allowed.
fn deny_one(nr: u32, ret: u32) -> Vec<Insn> {
    vec![
        Insn::stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARCH),
        Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        Insn::stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        Insn::stmt(BPF_LD | BPF_W | BPF_ABS, OFF_NR),
        Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
        Insn::stmt(BPF_RET | BPF_K, ret),
        Insn::stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    ]
}

/// `sleep 30` under `filters`, installed oldest first.
pub(crate) fn spawn_filtered(filters: &[Vec<Insn>]) -> Child {
    let progs: Vec<Vec<libc::sock_filter>> = filters
        .iter()
        .map(|f| f.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect())
        .collect();
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    // SAFETY: only async-signal-safe prctl calls on memory prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for p in &progs {
                let fprog = libc::sock_fprog { len: p.len() as u16, filter: p.as_ptr().cast_mut() };
                if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const libc::sock_fprog) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn a filtered sleep");
    wait_for_exec(child.id() as i32);
    child
}

/// Waits until the child runs `sleep` (its filters are then in place).
fn wait_for_exec(pid: i32) {
    for _ in 0..500 {
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep") {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("child {pid} never ran sleep");
}

/// Process state letter from `/proc/PID/stat` and the `TracerPid:`.
fn state_and_tracer(pid: i32) -> (char, i32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = stat.rsplit_once(')').unwrap().1.trim_start().chars().next().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let tracer = status.lines().find_map(|l| l.strip_prefix("TracerPid:")).unwrap().trim().parse().unwrap();
    (state, tracer)
}

/// A stopped task: `T` (group stop) or `t` (ptrace stop). Any other state
/// runs: `S` sleeping, `R` running, and also `D`, a short uninterruptible
/// wait that a loaded machine shows while `sleep` pages itself in.
fn is_stopped(state: char) -> bool {
    matches!(state, 'T' | 't')
}

/// Like [`state_and_tracer`] once the tracee has left the ptrace stop:
/// detaching wakes it, and it runs again a moment later, not at once.
fn settled_state_and_tracer(pid: i32) -> (char, i32) {
    let mut seen = state_and_tracer(pid);
    for _ in 0..100 {
        if seen.0 != 't' {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        seen = state_and_tracer(pid);
    }
    seen
}

/// Kills and reaps the child even when an assertion fails first.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dumps_stacked_filters_and_evaluates_them() {
    let installed = vec![deny_one(CHMOD, SECCOMP_RET_ERRNO | 1), deny_one(MKDIR, SECCOMP_RET_ERRNO | 2)];
    let child = Reaped(spawn_filtered(&installed));
    let pid = child.0.id() as i32;
    let status = read_status(pid).unwrap();
    assert_eq!(status.mode, SeccompMode::Filter);
    assert_eq!(status.filters, Some(2));

    let applied = dump_filters(pid).unwrap();
    assert_eq!(applied.filters, installed, "the kernel hands back each program as installed, oldest first");
    assert_eq!(applied.instruction_count(), 14);
    let table = applied.table().unwrap();
    assert_eq!(table.get(Arch::X86_64, "chmod"), Some(&Verdict::Fixed(Action::Errno(1))));
    assert_eq!(table.get(Arch::X86_64, "mkdir"), Some(&Verdict::Fixed(Action::Errno(2))));
    assert_eq!(table.get(Arch::X86_64, "getpid"), Some(&Verdict::Fixed(Action::Allow)));
    assert_eq!(table.get(Arch::I386, "getpid"), Some(&Verdict::Fixed(Action::KillProcess)));
    let (state, tracer) = settled_state_and_tracer(pid);
    assert!(!is_stopped(state), "the target runs again, state {state}");
    assert_eq!(tracer, 0, "the target is untraced");
    drop(child);
}

#[test]
fn repeated_dumps_never_leave_the_target_stopped() {
    let child = Reaped(spawn_filtered(&[deny_one(CHMOD, SECCOMP_RET_ERRNO | 1)]));
    let pid = child.0.id() as i32;
    let mut stops: Vec<Duration> = (0..200)
        .map(|_| {
            let applied = dump_filters(pid).unwrap();
            let (state, tracer) = settled_state_and_tracer(pid);
            assert!(!is_stopped(state), "state {state} after a dump");
            assert_eq!(tracer, 0);
            applied.stopped_for
        })
        .collect();
    stops.sort();
    eprintln!("target stopped for: median {:?}, max {:?} over 200 dumps", stops[100], stops[199]);
    assert!(stops[100] < Duration::from_millis(5), "median stop {:?}", stops[100]);
    drop(child);
}

#[test]
fn a_process_stopped_by_sigstop_stays_stopped() {
    let child = Reaped(spawn_filtered(&[deny_one(CHMOD, SECCOMP_RET_ERRNO | 1)]));
    let pid = child.0.id() as i32;
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state_and_tracer(pid).0, 'T');
    dump_filters(pid).unwrap();
    // Detaching wakes the tracee, which re-enters its group stop by itself:
    // give it a moment to get there.
    let mut after = state_and_tracer(pid);
    for _ in 0..100 {
        if after.0 == 'T' {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        after = state_and_tracer(pid);
    }
    assert_eq!(after, ('T', 0));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    std::thread::sleep(Duration::from_millis(50));
    let resumed = state_and_tracer(pid).0;
    assert!(!is_stopped(resumed), "SIGCONT resumes the target, state {resumed}");
    drop(child);
}

#[test]
fn a_process_without_a_filter_is_reported() {
    let child = Reaped(Command::new("sleep").arg("30").spawn().unwrap());
    let pid = child.0.id() as i32;
    wait_for_exec(pid);
    let err = dump_filters(pid).unwrap_err();
    assert!(matches!(err, DumpError::NoFilter(p) if p == pid), "{err}");
    assert!(err.to_string().contains("without a seccomp filter"), "{err}");
    drop(child);
}

#[test]
fn a_missing_process_is_reported() {
    let err = dump_filters(i32::MAX).unwrap_err();
    assert!(matches!(err, DumpError::NoProcess(_)), "{err}");
    assert_eq!(err.to_string(), format!("process {} does not exist", i32::MAX));
}
