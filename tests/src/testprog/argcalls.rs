//! Calls whose deciding argument the kernel program records (issue 15), and
//! a program with more distinct syscalls than a slot has counter cells.

/// `arg-calls`: one call of each recorded kind with known values; what
/// tests/tests/args.rs expects to find in the profile's `args`.
pub fn arg_calls() {
    unsafe {
        let unix = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let inet = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(unix >= 0 && inet >= 0, "socket: {}", std::io::Error::last_os_error());
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(unix, libc::SOL_SOCKET, libc::SO_PASSCRED, (&raw const one).cast(), len);
        libc::prctl(libc::PR_GET_DUMPABLE);
        libc::fcntl(unix, libc::F_GETFD);
        let dup = libc::fcntl(unix, libc::F_DUPFD_CLOEXEC, 0);
        libc::close(dup);
        // 20 distinct requests on a pipe (each fails with ENOTTY): more than
        // the ioctl set holds, so it overflows.
        let mut pipe = [0; 2];
        libc::pipe(pipe.as_mut_ptr());
        for request in 0x5400..0x5414u64 {
            libc::syscall(libc::SYS_ioctl, pipe[0], request, 0);
        }
        libc::kill(libc::getpid(), 0);
        libc::syscall(libc::SYS_personality, 0xffff_ffffu64);
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        libc::mprotect(p, 4096, libc::PROT_READ);
        libc::munmap(p, 4096);
        // i386 socketcall(SYS_SOCKET, args): the pointer does not fit 32 bits
        // (EFAULT), but the call is made and its first argument recorded.
        let mut ax: u64 = 102;
        // rbx is LLVM's: swap the argument in and back out around the call.
        std::arch::asm!(
            "xchg {call}, rbx",
            "int 0x80",
            "xchg {call}, rbx",
            call = inout(reg) 1u64 => _,
            inout("rax") ax,
            in("rcx") 0u64,
            options(nostack),
        );
        let _ = ax;
        libc::close(unix);
        libc::close(inet);
    }
    // glibc makes threads with clone3 (flags in memory, no namespace flag).
    std::thread::spawn(|| {}).join().expect("thread");
}

/// x86_64 syscalls that fail harmlessly when their first argument is -1 (a
/// bad fd, pid or pointer) and the rest are 0: EBADF, EFAULT, EINVAL, ESRCH.
const HARMLESS: &[i64] = &[
    0, 1, 3, 4, 5, 6, 8, 16, 17, 18, 19, 20, 21, 24, 32, 36, 37, 39, 40, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,
    54, 55, 63, 72, 73, 74, 75, 77, 78, 79, 80, 81, 83, 84, 85, 86, 87, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99,
    100, 102, 104, 107, 108, 110, 111, 115, 118, 120, 121, 124, 125, 127, 128, 130, 132, 137, 138, 140, 142, 143, 145,
    146, 147, 148, 161, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199, 201, 204, 217, 221, 228,
    229, 232, 233, 254, 255, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 277, 280, 281, 286, 287,
    288, 295, 296, 299, 303, 306, 307, 316, 326, 327, 328, 332, 424, 438, 439, 440, 441,
];

/// The numbers `distinct-many` calls.
pub fn harmless_syscalls() -> &'static [i64] {
    HARMLESS
}

/// `distinct-many K`: each of `HARMLESS` K times: more distinct syscalls
/// than a slot has cells, so some rows spill.
pub fn distinct_many(k: u64) {
    for &nr in HARMLESS {
        for _ in 0..k {
            unsafe { libc::syscall(nr, -1i64, 0i64, 0i64, 0i64, 0i64, 0i64) };
        }
    }
}
