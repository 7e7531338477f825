//! observer's kernel side: two raw tracepoint programs on `sys_enter` and
//! `sys_exit` that count, per cgroup v2, the syscalls made, the errors returned
//! and the calls seccomp denied, and stream only rare events to user space.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

mod args;
mod events;
mod failures;
mod fingerprint;
mod maps;
mod sys_enter;
mod sys_exit;
mod task;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

/// Empty programs on the same attach points: the benchmark's floor (what
/// any program on these tracepoints costs before it does anything).
mod floor {
    use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

    #[raw_tracepoint(tracepoint = "sys_enter")]
    pub fn floor_enter(_ctx: RawTracePointContext) -> i32 {
        0
    }

    #[raw_tracepoint(tracepoint = "sys_exit")]
    pub fn floor_exit(_ctx: RawTracePointContext) -> i32 {
        0
    }
}
