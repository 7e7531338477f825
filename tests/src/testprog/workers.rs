//! `cgroup-workers DIR C P`: P worker processes spread over the cgroups DIR/c0 ..
//! DIR/c{C-1} (worker i in c{i % C}), for the bench's busy-cgroup figures. Each worker
//! is born in its cgroup (clone3 with CLONE_INTO_CGROUP: no migration, which would
//! take the cgroup lock 10,000 times). They take turns: worker i sleeps on its futex
//! word, does its batch, wakes worker i+1; so one batch runs at a time and each
//! cgroup's kernel data is cold when its turn comes, as on a node with many
//! containers.
//!
//! Commands, one per line on stdin; each answers one line on stdout:
//!   run R K     R turns of every worker, K getppid calls per turn, each batch timed
//!               with clock_gettime(CLOCK_MONOTONIC): prints ns per call over the
//!               timed batches only (the hand-offs are not in it)
//!   distinct    every worker makes the ~80 distinct syscalls once: prints `ok`
//!   rate S K    for S seconds, a turn of every worker (K calls each) starting every
//!               second: prints `CALLS SECONDS` (calls made, wall time)
//! End of input (or `quit`) ends every worker. Workers die with the controller too
//! (PR_SET_PDEATHSIG).

use std::{
    io::{BufRead as _, Write as _},
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use super::distinct;

/// What a turn does.
const CMD_GETPPID: u32 = 1;
const CMD_DISTINCT: u32 = 2;

/// The state every process shares: a `MAP_SHARED` anonymous mapping made before the
/// workers, so the futex words are the same memory in all of them.
#[repr(C)]
struct Header {
    /// Bumped by the last worker when a turn round is over; the controller sleeps on it.
    done: AtomicU32,
    quit: AtomicU32,
    cmd: AtomicU32,
    per_turn: AtomicU32,
    total_ns: AtomicU64,
    total_calls: AtomicU64,
}

struct Shared {
    header: &'static Header,
    /// One word per worker: bumped to give it the turn.
    turns: &'static [AtomicU32],
}

impl Shared {
    fn new(workers: usize) -> Shared {
        let len = std::mem::size_of::<Header>() + workers * 4;
        // SAFETY: a fresh anonymous mapping, zero-filled, never unmapped (it lives as long
        // as the process); atomics of all-zero bytes are valid values.
        unsafe {
            let m = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if m == libc::MAP_FAILED {
                fail("mmap", std::io::Error::last_os_error());
            }
            let header = &*(m as *const Header);
            let words = (m as *const u8).add(std::mem::size_of::<Header>()) as *const AtomicU32;
            Shared { header, turns: std::slice::from_raw_parts(words, workers) }
        }
    }
}

/// Sleeps while `word` still holds `seen`; shared (not private) futexes, because the
/// word is in memory several processes map.
fn wait_change(word: &AtomicU32, seen: u32) -> u32 {
    loop {
        let now = word.load(Ordering::Acquire);
        if now != seen {
            return now;
        }
        // SAFETY: `word` is a live u32 in shared memory; a null timeout waits for a wake.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, seen, std::ptr::null::<libc::timespec>());
        }
    }
}

fn bump_and_wake(word: &AtomicU32) {
    word.fetch_add(1, Ordering::Release);
    // SAFETY: `word` is a live u32 in shared memory.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

fn fail(what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("cgroup-workers: {what}: {err}");
    std::process::exit(2);
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec (clock_gettime goes through the vDSO here).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The worker's life: its turns until told to quit.
fn worker(shared: &Shared, i: usize) -> ! {
    let h = shared.header;
    let mut seen = 0;
    loop {
        seen = wait_change(&shared.turns[i], seen);
        if h.quit.load(Ordering::Acquire) != 0 {
            // SAFETY: ends this process only.
            unsafe { libc::_exit(0) };
        }
        match h.cmd.load(Ordering::Acquire) {
            CMD_GETPPID => {
                let k = u64::from(h.per_turn.load(Ordering::Relaxed));
                let t0 = now_ns();
                for _ in 0..k {
                    // SAFETY: getppid takes no arguments.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                let t1 = now_ns();
                h.total_ns.fetch_add(t1 - t0, Ordering::Relaxed);
                h.total_calls.fetch_add(k, Ordering::Relaxed);
            }
            CMD_DISTINCT => distinct::make_all(),
            _ => {}
        }
        match shared.turns.get(i + 1) {
            Some(next) => bump_and_wake(next),
            None => bump_and_wake(&h.done),
        }
    }
}

/// The arguments of clone3(2), as the kernel's `struct clone_args` (v2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A child process born in the cgroup `dir`: 0 in the child, its pid in the parent.
fn spawn_into(dir: &std::path::Path) -> i32 {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path without NUL");
    // SAFETY: a plain open of a directory; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        fail(&format!("open {}", dir.display()), std::io::Error::last_os_error());
    }
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd as u64,
        ..CloneArgs::default()
    };
    // SAFETY: like fork(2) (no CLONE_VM, no new stack): the controller is single-threaded,
    // so the child may go on running this program.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if pid != 0 {
        // SAFETY: the descriptor opened above (the child closes nothing: it never returns here).
        unsafe { libc::close(fd) };
    }
    if pid < 0 {
        fail(&format!("clone3 into {}", dir.display()), std::io::Error::last_os_error());
    }
    pid as i32
}

pub fn main(dir: &str, cgroups: usize, workers: usize) {
    if cgroups == 0 || workers == 0 {
        fail("usage", "cgroup-workers DIR C P (C, P > 0)");
    }
    let shared = Shared::new(workers);
    // SAFETY: getpid takes no arguments.
    let controller = unsafe { libc::getpid() };
    let mut pids = Vec::with_capacity(workers);
    for i in 0..workers {
        let pid = spawn_into(&std::path::Path::new(dir).join(format!("c{}", i % cgroups)));
        if pid == 0 {
            // SAFETY: asks for SIGKILL when the controller dies; if it already did, go.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != controller {
                    libc::_exit(0);
                }
            }
            worker(&shared, i);
        }
        pids.push(pid);
    }
    let h = shared.header;
    let mut done = 0;
    let mut round = |cmd: u32, per_turn: u32| {
        h.cmd.store(cmd, Ordering::Relaxed);
        h.per_turn.store(per_turn, Ordering::Relaxed);
        bump_and_wake(&shared.turns[0]);
        done = wait_change(&h.done, done);
    };
    println!("ready {workers}");
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.unwrap_or_default();
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok()).unwrap_or(1);
        match words.first().copied() {
            Some("run") => {
                h.total_ns.store(0, Ordering::Relaxed);
                h.total_calls.store(0, Ordering::Relaxed);
                for _ in 0..num(1) {
                    round(CMD_GETPPID, num(2) as u32);
                }
                let (ns, calls) = (h.total_ns.load(Ordering::Relaxed), h.total_calls.load(Ordering::Relaxed));
                let _ = writeln!(out, "{:.2}", ns as f64 / calls.max(1) as f64);
            }
            Some("distinct") => {
                round(CMD_DISTINCT, 0);
                let _ = writeln!(out, "ok");
            }
            Some("rate") => {
                let start = Instant::now();
                h.total_calls.store(0, Ordering::Relaxed);
                for s in 0..num(1) {
                    round(CMD_GETPPID, num(2) as u32);
                    let next = Duration::from_secs(s + 1);
                    if let Some(wait) = next.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let calls = h.total_calls.load(Ordering::Relaxed);
                let _ = writeln!(out, "{calls} {:.3}", start.elapsed().as_secs_f64());
            }
            Some("quit") => break,
            _ => {
                let _ = writeln!(out, "error: unknown command {line:?}");
            }
        }
        let _ = out.flush();
    }
    h.quit.store(1, Ordering::Release);
    for word in shared.turns {
        bump_and_wake(word);
    }
    for pid in pids {
        // SAFETY: waits for a child of this process.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
}
