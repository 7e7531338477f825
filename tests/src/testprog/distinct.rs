//! About 80 distinct, harmless syscalls, each made at least once: what a container's
//! profile holds after a while, so the bench measures kernel memory with rows in use
//! (a sparse layout reports only what it holds; an idle cgroup would flatter it).
//! Every call reads the caller's own state or works on descriptors it made itself.

use libc::{SYS_getppid, c_long, syscall};

/// Makes each of 80 distinct syscalls once, through `syscall(2)` so that no libc
/// wrapper or vDSO answers in its place.
pub fn make_all() {
    // SAFETY (all calls below): arguments are valid pointers to locals, descriptors this
    // function made, or values that only ask; nothing outside this process changes.
    unsafe {
        let mut buf = [0u8; 512];
        let p = buf.as_mut_ptr();
        let mut ts: libc::timespec = std::mem::zeroed();
        let tsp = &mut ts as *mut libc::timespec;
        let zero_ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        let me = syscall(libc::SYS_getpid);
        let tid = syscall(libc::SYS_gettid);
        for nr in [
            SYS_getppid,
            libc::SYS_getuid,
            libc::SYS_geteuid,
            libc::SYS_getgid,
            libc::SYS_getegid,
            libc::SYS_getpgrp,
            libc::SYS_sched_yield,
            libc::SYS_rt_sigpending,
        ] {
            nullary(nr, p);
        }
        syscall(libc::SYS_getpgid, 0);
        syscall(libc::SYS_getsid, 0);
        syscall(libc::SYS_getgroups, 0, std::ptr::null_mut::<libc::gid_t>());
        syscall(libc::SYS_getresuid, p, p.add(4), p.add(8));
        syscall(libc::SYS_getresgid, p, p.add(4), p.add(8));
        syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0);
        syscall(libc::SYS_getrlimit, libc::RLIMIT_NOFILE, p);
        syscall(libc::SYS_prlimit64, 0, libc::RLIMIT_STACK, std::ptr::null::<u8>(), p);
        syscall(libc::SYS_getrusage, libc::RUSAGE_SELF, p);
        syscall(libc::SYS_times, p);
        syscall(libc::SYS_sysinfo, p);
        syscall(libc::SYS_uname, p);
        syscall(libc::SYS_getcwd, p, buf.len());
        let old = syscall(libc::SYS_umask, 0o022);
        syscall(libc::SYS_umask, old);
        syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, tsp);
        syscall(libc::SYS_clock_getres, libc::CLOCK_MONOTONIC, tsp);
        syscall(libc::SYS_gettimeofday, p, std::ptr::null_mut::<u8>());
        syscall(libc::SYS_time, std::ptr::null_mut::<libc::time_t>());
        syscall(libc::SYS_sched_getaffinity, 0, 128, p);
        syscall(libc::SYS_sched_getscheduler, 0);
        syscall(libc::SYS_sched_getparam, 0, p);
        let mut cap_header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
        syscall(libc::SYS_capget, cap_header.as_mut_ptr(), p);
        syscall(libc::SYS_prctl, libc::PR_GET_DUMPABLE, 0, 0, 0, 0);
        syscall(libc::SYS_personality, 0xffff_ffffu32 as c_long); // only asks
        syscall(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK, std::ptr::null::<u8>(), p, 8);
        syscall(libc::SYS_rt_sigaction, libc::SIGUSR2, std::ptr::null::<u8>(), p, 8);
        syscall(libc::SYS_sigaltstack, std::ptr::null::<u8>(), p);
        syscall(libc::SYS_arch_prctl, 0x1003, p); // ARCH_GET_FS
        syscall(libc::SYS_get_robust_list, 0, p, p.add(8));
        syscall(libc::SYS_getrandom, p, 16, libc::GRND_NONBLOCK);
        syscall(libc::SYS_brk, 0);
        syscall(libc::SYS_kill, me, 0);
        syscall(libc::SYS_tgkill, me, tid, 0);
        syscall(libc::SYS_wait4, -1, std::ptr::null_mut::<i32>(), libc::WNOHANG, std::ptr::null_mut::<u8>());
        syscall(libc::SYS_membarrier, 0, 0, 0); // MEMBARRIER_CMD_QUERY
        syscall(libc::SYS_nanosleep, &zero_ts, std::ptr::null_mut::<libc::timespec>());
        syscall(libc::SYS_clock_nanosleep, libc::CLOCK_MONOTONIC, 0, &zero_ts, std::ptr::null_mut::<u8>());
        let mut word = 0u32;
        syscall(libc::SYS_futex, &mut word as *mut u32, libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);

        // Memory of its own.
        let len = 4096;
        let m = syscall(
            libc::SYS_mmap,
            std::ptr::null_mut::<u8>(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if m != -1 {
            syscall(libc::SYS_mprotect, m, len, libc::PROT_READ);
            syscall(libc::SYS_madvise, m, len, libc::MADV_NORMAL);
            syscall(libc::SYS_munmap, m, len);
        }

        // Files: read-only looks at /proc/self and /.
        let stat = c"/proc/self/stat";
        syscall(libc::SYS_access, stat.as_ptr(), libc::R_OK);
        syscall(libc::SYS_readlink, c"/proc/self/exe".as_ptr(), p, buf.len());
        syscall(libc::SYS_newfstatat, libc::AT_FDCWD, stat.as_ptr(), p, 0);
        syscall(libc::SYS_statx, libc::AT_FDCWD, stat.as_ptr(), 0, libc::STATX_BASIC_STATS, p);
        syscall(libc::SYS_statfs, c"/".as_ptr(), p);
        let fd = syscall(libc::SYS_openat, libc::AT_FDCWD, stat.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        syscall(libc::SYS_read, fd, p, 64);
        syscall(libc::SYS_pread64, fd, p, 64, 0);
        syscall(libc::SYS_lseek, fd, 0, libc::SEEK_SET);
        syscall(libc::SYS_fstat, fd, p);
        syscall(libc::SYS_fstatfs, fd, p);
        syscall(libc::SYS_fcntl, fd, libc::F_GETFD);
        syscall(libc::SYS_flock, fd, libc::LOCK_SH | libc::LOCK_NB);
        let dup = syscall(libc::SYS_dup, fd);
        syscall(libc::SYS_dup3, fd, dup, libc::O_CLOEXEC);
        syscall(libc::SYS_close, dup);
        syscall(libc::SYS_close, fd);
        let root = syscall(libc::SYS_open, c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        syscall(libc::SYS_getdents64, root, p, buf.len());
        syscall(libc::SYS_close, root);

        // Descriptors of its own: a pipe and a socket pair.
        let mut fds = [-1i32; 2];
        syscall(libc::SYS_pipe2, fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK);
        syscall(libc::SYS_write, fds[1], c"x".as_ptr(), 1);
        syscall(libc::SYS_ioctl, fds[0], libc::FIONREAD, p);
        let mut pfd = libc::pollfd { fd: fds[0], events: libc::POLLIN, revents: 0 };
        syscall(libc::SYS_poll, &mut pfd as *mut libc::pollfd, 1, 0);
        syscall(libc::SYS_close, fds[0]);
        syscall(libc::SYS_close, fds[1]);

        let mut sv = [-1i32; 2];
        syscall(libc::SYS_socketpair, libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr());
        syscall(libc::SYS_sendto, sv[0], c"x".as_ptr(), 1, libc::MSG_DONTWAIT, std::ptr::null::<u8>(), 0);
        syscall(
            libc::SYS_recvfrom,
            sv[1],
            p,
            1,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut::<u8>(),
            std::ptr::null_mut::<u8>(),
        );
        let mut alen: libc::socklen_t = 64;
        syscall(libc::SYS_getsockname, sv[0], p, &mut alen as *mut libc::socklen_t);
        let mut olen: libc::socklen_t = 4;
        syscall(libc::SYS_getsockopt, sv[0], libc::SOL_SOCKET, libc::SO_TYPE, p, &mut olen as *mut libc::socklen_t);
        syscall(libc::SYS_shutdown, sv[0], libc::SHUT_RDWR);
        syscall(libc::SYS_close, sv[0]);
        syscall(libc::SYS_close, sv[1]);
    }
}

/// A syscall without arguments; `p` keeps the call from being folded away.
///
/// # Safety
/// `nr` must be a syscall that takes no arguments.
unsafe fn nullary(nr: c_long, p: *mut u8) {
    std::hint::black_box(p);
    // SAFETY: the caller passes a syscall that takes no arguments.
    unsafe { syscall(nr) };
}
