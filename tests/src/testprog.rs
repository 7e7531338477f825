//! A program that makes known syscalls, for exact-count tests.
//! Usage: observer-testprog <what> [N]
//!   calls N        N x getppid
//!   threads N      4 threads, each N x getppid
//!   fork N         N children (fork + exit), each 1 x getppid
//!   exec N         getppid once, then fork+exec `observer-testprog calls N` and wait
//!   int80          getppid through int 0x80 (i386 ABI, number 64), once
//!   invalid        syscall(-1) and syscall(5000), once each
//!   x32            getpid through the x32 ABI (number 39 | __X32_SYSCALL_BIT), once
//!   spin N         N threads making getppid until killed
//!   accept-shutdown  under a seccomp filter (deny chmod), both threads pinned to CPU 0:
//!                  accept() blocks while another thread makes syscalls, then shuts
//!                  the listening socket down: accept fails with EINVAL (exit 0 if so)
//!   deny-chmod     install a seccomp filter denying chmod with EPERM, then chmod /tmp twice
//!   deny-chmod-777  install a filter denying chmod only to mode 0777, then chmod a
//!                  file of its own: 0600 (allowed), 0777 (denied) at once, getppid,
//!                  0600, getppid, 0777, 0600: 5 chmod calls, 3 entered, 2 denied
//!   bench-getppid-filtered N  bench-getppid under a filter that allows getppid
//!                  whatever its arguments (deny-chmod's), as in a container
//!   bench-getppid-decided N   bench-getppid under a filter that decides getppid on
//!                  its first argument (allowed here): every call is one the filter
//!                  may deny, so the kernel programs leave it an enter note
//!   clone-newuser  unshare(CLONE_NEWUSER); exit 0 on success, 1 on EPERM
//!   bench-getppid N  N x getppid, then prints the ns per call
//!   bench-mix N      N x (openat, write, lseek, read, close) of a small file; prints ns per syscall
//!   rate R S         about R getppid per second for S seconds (in 10 ms batches)
//!   arg-calls      one call of each kind whose deciding argument is recorded (testprog/argcalls.rs)
//!   distinct-many K  about 150 distinct syscalls that fail harmlessly, each K times
//!   distinct-syscalls  about 80 distinct harmless syscalls, each once (testprog/distinct.rs)
//!   cgroup-workers DIR C P  P processes over C cgroups taking turns, driven on stdin
//!                  (the bench's busy-cgroup figures; testprog/workers.rs)

use std::ffi::CString;

#[path = "testprog/argcalls.rs"]
mod argcalls;
#[path = "testprog/distinct.rs"]
mod distinct;
#[path = "testprog/workers.rs"]
mod workers;

fn getppid_n(n: u64) {
    for _ in 0..n {
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

fn arg_n() -> u64 {
    std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1)
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    match what.as_str() {
        "calls" => getppid_n(arg_n()),
        "threads" => {
            let n = arg_n();
            // Every thread meets the others (and the main thread) before its
            // calls: whether a join waits on a futex would otherwise depend on
            // timing, and a run under strace (slower) would differ from one
            // under observer by a futex row. A barrier's waiters always wait.
            let start = std::sync::Arc::new(std::sync::Barrier::new(5));
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let start = start.clone();
                    std::thread::spawn(move || {
                        start.wait();
                        getppid_n(n)
                    })
                })
                .collect();
            start.wait();
            for h in handles {
                h.join().expect("thread");
            }
        }
        "fork" => {
            for _ in 0..arg_n() {
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    unsafe {
                        libc::syscall(libc::SYS_getppid);
                        libc::_exit(0);
                    }
                }
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            }
        }
        "exec" => {
            getppid_n(1);
            let me = std::env::current_exe().expect("current_exe");
            let status =
                std::process::Command::new(me).args(["calls", &arg_n().to_string()]).status().expect("exec child");
            std::process::exit(status.code().unwrap_or(1));
        }
        "int80" => int80_getppid(),
        "arg-calls" => argcalls::arg_calls(),
        "distinct-many" => argcalls::distinct_many(arg_n()),
        "list-distinct-many" => {
            let list: Vec<String> = argcalls::harmless_syscalls().iter().map(i64::to_string).collect();
            println!("{}", list.join(" "));
        }
        "invalid" => unsafe {
            libc::syscall(-1i64);
            libc::syscall(5000i64);
        },
        "x32" => unsafe {
            // ENOSYS on a kernel without CONFIG_X86_X32_ABI; it still reaches sys_enter.
            libc::syscall(0x4000_0000 | libc::SYS_getpid);
        },
        "spin" => {
            for _ in 1..arg_n() {
                std::thread::spawn(|| {
                    loop {
                        getppid_n(1000)
                    }
                });
            }
            loop {
                getppid_n(1000)
            }
        }
        "accept-shutdown" => accept_shutdown(),
        "deny-chmod" => {
            deny_chmod();
            let path = CString::new("/tmp").expect("path");
            for _ in 0..2 {
                let r = unsafe { libc::chmod(path.as_ptr(), 0o1777) };
                let err = std::io::Error::last_os_error();
                if r == 0 || err.raw_os_error() != Some(libc::EPERM) {
                    eprintln!("chmod was not denied: {r} {err}");
                    std::process::exit(2);
                }
            }
        }
        "deny-chmod-777" => deny_chmod_777(),
        "bench-getppid-filtered" | "bench-getppid-decided" => {
            if what == "bench-getppid-filtered" {
                deny_chmod();
            } else {
                install(&decide_getppid_on_arg0());
            }
            let n = arg_n();
            let start = std::time::Instant::now();
            getppid_n(n);
            println!("{:.1}", start.elapsed().as_nanos() as f64 / n as f64);
        }
        "bench-getppid" => {
            let n = arg_n();
            let start = std::time::Instant::now();
            getppid_n(n);
            println!("{:.1}", start.elapsed().as_nanos() as f64 / n as f64);
        }
        "bench-mix" => {
            let n = arg_n();
            let path = CString::new(format!("/tmp/observer-bench-{}", std::process::id())).expect("path");
            let mut buf = [0u8; 64];
            let start = std::time::Instant::now();
            for _ in 0..n {
                unsafe {
                    let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600);
                    libc::write(fd, buf.as_ptr().cast(), buf.len());
                    libc::lseek(fd, 0, libc::SEEK_SET);
                    libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                    libc::close(fd);
                }
            }
            println!("{:.1}", start.elapsed().as_nanos() as f64 / (n as f64 * 5.0));
            unsafe { libc::unlink(path.as_ptr()) };
        }
        "rate" => {
            let rate: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
            let secs: u64 = std::env::args().nth(3).and_then(|a| a.parse().ok()).unwrap_or(5);
            let start = std::time::Instant::now();
            let mut tick = 0u64;
            while start.elapsed().as_secs() < secs {
                getppid_n(rate / 100);
                tick += 1;
                let next = std::time::Duration::from_millis(tick * 10);
                if let Some(wait) = next.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        "distinct-syscalls" => distinct::make_all(),
        "cgroup-workers" => {
            let arg = |i: usize| std::env::args().nth(i).unwrap_or_default();
            workers::main(&arg(2), arg(3).parse().unwrap_or(0), arg(4).parse().unwrap_or(0));
        }
        "clone-newuser" => {
            let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
            std::process::exit(if r == 0 { 0 } else { 1 });
        }
        _ => {
            eprintln!("unknown mode {what:?}");
            std::process::exit(64);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn int80_getppid() {
    let mut ax: u64 = 64; // getppid in the i386 table
    unsafe { std::arch::asm!("int 0x80", inout("rax") ax, options(nostack)) };
    if (ax as i64) < 0 {
        eprintln!("int 0x80 getppid failed: {}", ax as i64);
        std::process::exit(3);
    }
}

/// A filter that returns EPERM for chmod (x86_64) and allows everything else.
fn deny_chmod() {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let f = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let prog = [
        f((libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, 0, 0, 4), // arch
        f((libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, 1, 0, AUDIT_ARCH_X86_64),
        f((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, libc::SECCOMP_RET_ALLOW),
        f((libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, 0, 0, 0), // nr
        f((libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, 0, 1, libc::SYS_chmod as u32),
        f((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        f((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const _) != 0
        {
            eprintln!("installing the filter failed: {}", std::io::Error::last_os_error());
            std::process::exit(4);
        }
    }
}

/// chmod of a file of its own, allowed and denied in turn by a filter that
/// decides on the mode argument: a denied call right after an allowed call of
/// the same number, and one after other calls. Exit 2 if the filter did not
/// do what it should (the kernel side is what the caller checks).
fn deny_chmod_777() {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let f = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let prog = [
        f(ld, 0, 0, 4), // arch
        f(jeq, 1, 0, AUDIT_ARCH_X86_64),
        f(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
        f(ld, 0, 0, 0), // nr
        f(jeq, 0, 3, libc::SYS_chmod as u32),
        f(ld, 0, 0, 24), // low half of args[1], the mode
        f(jeq, 0, 1, 0o777),
        f(ret, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        f(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let path = CString::new(format!("/tmp/observer-testprog-{}", std::process::id())).expect("path");
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600) };
    if fd < 0 {
        eprintln!("creating {path:?}: {}", std::io::Error::last_os_error());
        std::process::exit(3);
    }
    unsafe { libc::close(fd) };
    install(&prog);
    // No allocation or output between the calls: nothing else enters the kernel.
    let results = unsafe {
        let a = libc::chmod(path.as_ptr(), 0o600);
        let b = libc::chmod(path.as_ptr(), 0o777);
        let b_errno = *libc::__errno_location();
        libc::syscall(libc::SYS_getppid);
        let c = libc::chmod(path.as_ptr(), 0o600);
        libc::syscall(libc::SYS_getppid);
        let d = libc::chmod(path.as_ptr(), 0o777);
        let d_errno = *libc::__errno_location();
        let e = libc::chmod(path.as_ptr(), 0o600);
        [a, b, b_errno, c, d, d_errno, e]
    };
    unsafe { libc::unlink(path.as_ptr()) };
    if results != [0, -1, libc::EPERM, 0, -1, libc::EPERM, 0] {
        eprintln!("the filter did not decide as expected: {results:?}");
        std::process::exit(2);
    }
}

/// getppid with its first argument 12345 gets EPERM, any other is allowed:
/// the kernel's action cache cannot allow getppid whatever its arguments.
fn decide_getppid_on_arg0() -> Vec<libc::sock_filter> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let f = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    vec![
        f(ld, 0, 0, 4), // arch
        f(jeq, 1, 0, AUDIT_ARCH_X86_64),
        f(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
        f(ld, 0, 0, 0), // nr
        f(jeq, 0, 3, libc::SYS_getppid as u32),
        f(ld, 0, 0, 16), // low half of args[0]
        f(jeq, 0, 1, 12345),
        f(ret, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        f(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Installs `prog` as this thread's seccomp filter (no_new_privs first), or exits 4.
fn install(prog: &[libc::sock_filter]) {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const _) != 0
        {
            eprintln!("installing the filter failed: {}", std::io::Error::last_os_error());
            std::process::exit(4);
        }
    }
}

fn pin_to_cpu0() {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("sched_setaffinity: {}", std::io::Error::last_os_error());
            std::process::exit(5);
        }
    }
}

/// A blocking call that really ran and then failed with an errno a filter
/// could return, while other syscalls ran on its CPU: never a denial.
fn accept_shutdown() {
    deny_chmod();
    pin_to_cpu0();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    use std::os::fd::AsRawFd as _;
    let fd = listener.as_raw_fd();
    let other = std::thread::spawn(move || {
        pin_to_cpu0();
        // Long enough for accept to be asleep; every call here runs on CPU 0.
        for _ in 0..200 {
            getppid_n(100);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        getppid_n(1000);
    });
    let r = unsafe {
        libc::syscall(
            libc::SYS_accept,
            fd,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    let err = std::io::Error::last_os_error();
    other.join().expect("thread");
    if r != -1 || err.raw_os_error() != Some(libc::EINVAL) {
        eprintln!("accept: {r} {err}");
        std::process::exit(2);
    }
}
