//! Reads of the current task_struct. Field offsets differ between kernel builds,
//! so the agent reads them from the kernel's BTF and sets them at load time.
//!
//! The task comes from `bpf_get_current_task_btf`, a BTF pointer: the verifier
//! checks each load against the kernel's BTF and turns it into a plain, guarded
//! load, much cheaper than a `bpf_probe_read_kernel` call on the per-syscall path.
//! The offsets live in read-only data that the loader freezes, so the verifier
//! sees them as constants.

use aya_ebpf::helpers::bpf_get_current_task_btf;

/// Offset of `thread_info.status` in `task_struct` (thread_info is embedded first on x86).
#[unsafe(no_mangle)]
static TASK_STATUS_OFFSET: u64 = 16;
/// The chain to the task's executable: `task->mm->exe_file->f_inode`.
#[unsafe(no_mangle)]
static TASK_MM_OFFSET: u64 = 0;
#[unsafe(no_mangle)]
static MM_EXE_FILE_OFFSET: u64 = 0;
#[unsafe(no_mangle)]
static FILE_INODE_OFFSET: u64 = 0;
/// Offset of `seccomp.mode`.
#[unsafe(no_mangle)]
static TASK_SECCOMP_MODE_OFFSET: u64 = 0;
/// Offset of `pid` (the thread id); `tgid` follows it in every kernel since 2.6.
#[unsafe(no_mangle)]
static TASK_PID_OFFSET: u64 = 0;

/// The chain to the task's cgroup v2 id: `task->cgroups->dfl_cgrp->kn->id`, what
/// `bpf_get_current_cgroup_id` returns. Read as BTF loads: the helper takes and
/// drops an RCU read lock around the same loads, which measured ~50 ns here,
/// while the program already runs inside an RCU read-side section.
#[unsafe(no_mangle)]
static TASK_CGROUPS_OFFSET: u64 = 0;
#[unsafe(no_mangle)]
static CSS_SET_DFL_CGRP_OFFSET: u64 = 0;
#[unsafe(no_mangle)]
static CGROUP_KN_OFFSET: u64 = 0;
#[unsafe(no_mangle)]
static KERNFS_NODE_ID_OFFSET: u64 = 0;

/// `TS_COMPAT`: the task is in a 32-bit syscall (int 0x80, or an i386 binary).
/// arch/x86/include/asm/thread_info.h (v6.18).
const TS_COMPAT: u32 = 0x0002;
pub const SECCOMP_MODE_FILTER: u32 = 2;

#[inline(always)]
fn setting(value: &'static u64) -> u64 {
    // Volatile, so the compiler keeps the load that the loader's value lands in.
    unsafe { core::ptr::read_volatile(value) }
}

/// The current task (never null: there is always a current task in a syscall).
#[derive(Clone, Copy)]
pub struct Task(*const u8);

#[inline(always)]
pub fn current() -> Task {
    Task(unsafe { bpf_get_current_task_btf() } as *const u8)
}

#[inline(always)]
fn load_at<T: Copy>(base: *const u8, offset: u64) -> T {
    unsafe { core::ptr::read_volatile(base.add(offset as usize) as *const T) }
}

impl Task {
    /// The BTF pointer itself, for helpers that take a task.
    #[inline(always)]
    pub fn ptr(self) -> *const u8 {
        self.0
    }

    #[inline(always)]
    fn load<T: Copy>(self, offset: u64) -> T {
        load_at(self.0, offset)
    }

    /// The cgroup v2 id of the task's cgroup (0 if the chain is broken).
    #[inline(always)]
    pub fn cgroup_id(self) -> u64 {
        let css_set: *const u8 = self.load(setting(&TASK_CGROUPS_OFFSET));
        let cgroup: *const u8 = load_at(css_set, setting(&CSS_SET_DFL_CGRP_OFFSET));
        let kn: *const u8 = load_at(cgroup, setting(&CGROUP_KN_OFFSET));
        load_at(kn, setting(&KERNFS_NODE_ID_OFFSET))
    }

    /// ABI index of the current syscall: 1 (i386) when TS_COMPAT is set, else 0.
    #[inline(always)]
    pub fn abi(self) -> u32 {
        let status: u32 = self.load(setting(&TASK_STATUS_OFFSET));
        u32::from(status & TS_COMPAT != 0)
    }

    /// (thread id, thread group id), as `bpf_get_current_pid_tgid` would give them,
    /// without the helper call.
    #[inline(always)]
    pub fn pid_tgid(self) -> (u32, u32) {
        // Two loads: the verifier checks each against its own BTF member.
        let pid = setting(&TASK_PID_OFFSET);
        (self.load(pid), self.load(pid + 4))
    }

    /// Identity of the task's executable: its inode's kernel address (0 for a
    /// task without an mm). Same binary, same value, across re-execs.
    #[inline(always)]
    pub fn exe(self) -> u64 {
        let mm: *const u8 = self.load(setting(&TASK_MM_OFFSET));
        let file: *const u8 = load_at(mm, setting(&MM_EXE_FILE_OFFSET));
        let inode: *const u8 = load_at(file, setting(&FILE_INODE_OFFSET));
        inode as u64
    }

    #[inline(always)]
    pub fn seccomp_mode(self) -> u32 {
        self.load(setting(&TASK_SECCOMP_MODE_OFFSET))
    }
}
