//! Reads of the current task_struct. Field offsets differ between kernel builds,
//! so the agent reads them from the kernel's BTF and sets them at load time.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};

/// Offset of `thread_info.status` in `task_struct` (thread_info is embedded first on x86).
#[unsafe(no_mangle)]
static TASK_STATUS_OFFSET: u64 = 16;
/// Offset of `self_exec_id`.
#[unsafe(no_mangle)]
static TASK_EXEC_ID_OFFSET: u64 = 0;
/// Offset of `seccomp.mode`.
#[unsafe(no_mangle)]
static TASK_SECCOMP_MODE_OFFSET: u64 = 0;

/// `TS_COMPAT`: the task is in a 32-bit syscall (int 0x80, or an i386 binary).
/// arch/x86/include/asm/thread_info.h (v6.18).
const TS_COMPAT: u32 = 0x0002;
pub const SECCOMP_MODE_FILTER: u32 = 2;

#[inline(always)]
fn setting(value: &'static u64) -> u64 {
    // Volatile, so the compiler keeps the load that the loader's value lands in.
    unsafe { core::ptr::read_volatile(value) }
}

#[inline(always)]
fn read<T: Copy>(task: u64, offset: u64) -> Option<T> {
    unsafe { bpf_probe_read_kernel((task + offset) as *const T).ok() }
}

#[inline(always)]
pub fn current() -> u64 {
    unsafe { bpf_get_current_task() }
}

/// ABI index of the current syscall: 1 (i386) when TS_COMPAT is set, else 0.
#[inline(always)]
pub fn abi(task: u64) -> u32 {
    let status: u32 = read(task, setting(&TASK_STATUS_OFFSET)).unwrap_or(0);
    u32::from(status & TS_COMPAT != 0)
}

#[inline(always)]
pub fn exec_id(task: u64) -> u64 {
    read(task, setting(&TASK_EXEC_ID_OFFSET)).unwrap_or(0)
}

#[inline(always)]
pub fn seccomp_mode(task: u64) -> u32 {
    read(task, setting(&TASK_SECCOMP_MODE_OFFSET)).unwrap_or(0)
}
