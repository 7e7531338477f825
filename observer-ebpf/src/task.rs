//! Reads of the current task_struct. Field offsets differ between kernel builds,
//! so the agent reads them from the kernel's BTF and sets them at load time
//! (`observer_common::task::TaskOffsets`, one global).
//!
//! The task comes from `bpf_get_current_task_btf`, a BTF pointer: the verifier
//! checks each load against the kernel's BTF and turns it into a plain, guarded
//! load, much cheaper than a `bpf_probe_read_kernel` call on the per-syscall path.
//! The offsets live in read-only data that the loader freezes, so the verifier
//! sees them as constants.

use aya_ebpf::{Global, helpers::bpf_get_current_task_btf};
use observer_common::task::TaskOffsets;

/// Set by the loader (`EbpfLoader::override_global(task::GLOBAL, ..)`).
#[unsafe(no_mangle)]
static TASK_OFFSETS: Global<TaskOffsets> = Global::new(TaskOffsets::UNSET);

// `Global<T>` is `#[repr(transparent)]` over `MaybeUninit<T>`, which has the
// layout of `T`: `offset!` reads one field of it in place.
const _: () = assert!(core::mem::size_of::<Global<TaskOffsets>>() == core::mem::size_of::<TaskOffsets>());
const _: () = assert!(core::mem::align_of::<Global<TaskOffsets>>() == core::mem::align_of::<TaskOffsets>());

/// One field of `TASK_OFFSETS`, read on its own: one 8-byte load from the
/// frozen global, which the verifier sees as a constant. (`Global::load` reads
/// the whole struct, every field, every time: it is volatile.)
macro_rules! offset {
    ($field:ident) => {
        read_offset(core::mem::offset_of!(TaskOffsets, $field))
    };
}

/// The u64 at byte `at` of `TASK_OFFSETS`; `at` is a field's `offset_of!`
/// (every field is a u64).
#[inline(always)]
fn read_offset(at: usize) -> u64 {
    let field = core::ptr::from_ref(&TASK_OFFSETS).cast::<u8>().wrapping_add(at).cast::<u64>();
    // SAFETY: `field` points to a u64 field of the live, initialised
    // `TaskOffsets` inside `TASK_OFFSETS` (same layout, checked above), aligned
    // as the struct is. Volatile, so the compiler keeps the load that the
    // loader's value lands in instead of folding in the object's `UNSET`.
    unsafe { core::ptr::read_volatile(field) }
}

/// `TS_COMPAT`: the task is in a 32-bit syscall (int 0x80, or an i386 binary).
/// arch/x86/include/asm/thread_info.h (v6.18).
const TS_COMPAT: u32 = 0x0002;
pub const SECCOMP_MODE_FILTER: u32 = 2;

/// The current task (never null: there is always a current task in a syscall).
#[derive(Clone, Copy)]
pub struct Task(*const u8);

/// Bits of one action-cache bitmap the programs read (the loader checks the
/// kernel's is at least this long, `FILTER_BITMAP_WORDS` words).
const FILTER_BITMAP_BITS: i64 = 512;

/// The word `$at` bytes (a literal) into the bitmap at `$bitmap`: one load at a constant
/// offset. Each is its own `asm!`, so the compiler cannot merge the arms of a
/// `match` into one load at a computed offset, which the verifier rejects for
/// a BTF object (only constant offsets are checked against its type).
macro_rules! bitmap_word {
    ($bitmap:expr, $at:literal) => {{
        let out: u64;
        // SAFETY: `$bitmap` points into a BTF object the verifier tracks (a
        // filter's `cache` bitmap, whose words the loader checked exist); the
        // verifier checks this load against BTF and turns a fault into 0.
        unsafe {
            core::arch::asm!(
                concat!("{out} = *(u64 *)({p} + ", stringify!($at), ")"),
                out = lateout(reg) out,
                p = in(reg) $bitmap,
                options(nostack, readonly),
            )
        };
        out
    }};
}

/// The inode of a task's executable (a BTF pointer; null for a task without an mm).
#[derive(Clone, Copy)]
pub struct Inode(*const u8);

impl Inode {
    /// Its kernel address: equal for the same binary while it is loaded.
    #[inline(always)]
    pub fn addr(self) -> u64 {
        self.0 as u64
    }

    /// Which file it is, beyond its address: `i_ino` and `i_generation`
    /// folded into 32 bits (`SlotInfo::init_tag`). A freed inode's memory
    /// reused for another file gives the same address but, with all but a
    /// 2^-32 chance, another tag.
    #[inline(always)]
    pub fn tag(self) -> u32 {
        // SAFETY: `self.0` is the BTF inode pointer of `exe_inode`; the offsets
        // are those of `i_ino` (an unsigned long) and `i_generation` (a u32),
        // read from BTF (see `load_at`).
        let (ino, generation): (u64, u32) =
            unsafe { (load_at(self.0, offset!(inode_ino)), load_at(self.0, offset!(inode_generation))) };
        observer_common::slot::exe_tag(ino, generation)
    }
}

#[inline(always)]
pub fn current() -> Task {
    // SAFETY: a BPF helper without preconditions; the verifier checks the call.
    Task(unsafe { bpf_get_current_task_btf() } as *const u8)
}

/// The `T` at `base + offset`.
///
/// # Safety
///
/// `base` must be a BTF pointer the verifier tracks (the current task, or a
/// pointer loaded from one through this function), and `offset` the offset,
/// read from this kernel's BTF, of a field of type `T` in the struct `base`
/// points to. The verifier then checks the load against that BTF and turns a
/// fault (a NULL link in a chain) into a zero result instead of an oops; the
/// result may be 0, never undefined.
#[inline(always)]
unsafe fn load_at<T: Copy>(base: *const u8, offset: u64) -> T {
    // SAFETY: the caller's contract; volatile, so that each load stays one
    // BTF-checked instruction at the offset the verifier was given.
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize).cast::<T>()) }
}

impl Task {
    /// The BTF pointer itself, for helpers that take a task.
    #[inline(always)]
    pub fn ptr(self) -> *const u8 {
        self.0
    }

    /// The `T` at `offset` in the task.
    ///
    /// # Safety
    ///
    /// `offset` is the offset of a `task_struct` field of type `T` (see `load_at`).
    #[inline(always)]
    unsafe fn load<T: Copy>(self, offset: u64) -> T {
        // SAFETY: `self.0` comes from `bpf_get_current_task_btf`; the offset is the caller's.
        unsafe { load_at(self.0, offset) }
    }

    /// The cgroup v2 id of the task's cgroup (0 if the chain is broken).
    #[inline(always)]
    pub fn cgroup_id(self) -> u64 {
        // SAFETY: each offset is that of the next pointer in the chain (read from
        // BTF), and each base is the pointer the previous load gave (see `load_at`).
        unsafe {
            let css_set: *const u8 = self.load(offset!(cgroups));
            let cgroup: *const u8 = load_at(css_set, offset!(css_set_dfl_cgrp));
            let kn: *const u8 = load_at(cgroup, offset!(cgroup_kn));
            load_at(kn, offset!(kernfs_node_id))
        }
    }

    /// ABI index of the current syscall: 1 (i386) when TS_COMPAT is set, else 0.
    #[inline(always)]
    pub fn abi(self) -> u32 {
        // SAFETY: the offset of `thread_info.status`, a u32, read from BTF.
        let status: u32 = unsafe { self.load(offset!(thread_info_status)) };
        u32::from(status & TS_COMPAT != 0)
    }

    /// (thread id, thread group id), as `bpf_get_current_pid_tgid` would give them,
    /// without the helper call.
    #[inline(always)]
    pub fn pid_tgid(self) -> (u32, u32) {
        // Two loads: the verifier checks each against its own BTF member.
        let pid = offset!(pid);
        // SAFETY: `pid` and `tgid` are i32 fields, `tgid` right after `pid` (the
        // loader checks this in BTF before it sets the offset).
        unsafe { (self.load(pid), self.load(pid + 4)) }
    }

    /// The inode of the task's executable, as a BTF pointer (null for a task
    /// without an mm). Its address identifies the binary (the same across
    /// re-execs), together with its `tag` (see `SlotInfo::init_tag`).
    #[inline(always)]
    pub fn exe_inode(self) -> Inode {
        // SAFETY: each offset is that of the next pointer in the chain (read from
        // BTF), and each base is the pointer the previous load gave (see `load_at`).
        Inode(unsafe {
            let mm: *const u8 = self.load(offset!(mm));
            let file: *const u8 = load_at(mm, offset!(mm_exe_file));
            load_at(file, offset!(file_inode))
        })
    }

    /// The task's newest seccomp filter (null without one), as an address:
    /// a filter is freed only after every task and newer filter that holds it,
    /// so while the task has it, no other filter has this address.
    #[inline(always)]
    pub fn filter_addr(self) -> u64 {
        // SAFETY: the offset of `seccomp.filter`, a pointer, read from BTF.
        let filter: *const u8 = unsafe { self.load(offset!(seccomp_filter)) };
        filter as u64
    }

    /// Whether the task's seccomp filters allow syscall `nr` of `abi` whatever
    /// its arguments: its bit in the kernel's own action cache
    /// (`seccomp_filter.cache`, kernel/seccomp.c), which the kernel fills when
    /// a filter is attached, ANDed with its parent's, and checks before it runs
    /// the filter. Such a call is never denied, and since filters are only
    /// ever added, a bit set now was set at the call's seccomp check too.
    /// False for a task without a filter, numbers past the bitmap, and
    /// kernels without the cache (offset 0).
    #[inline(always)]
    pub fn filter_always_allows(self, abi: u32, nr: i64) -> bool {
        let base = if abi == 0 { offset!(filter_allow_native) } else { offset!(filter_allow_compat) };
        if base == 0 || !(0..FILTER_BITMAP_BITS).contains(&nr) {
            return false;
        }
        // SAFETY: the offset of `seccomp.filter`, a pointer, read from BTF.
        let filter: *const u8 = unsafe { self.load(offset!(seccomp_filter)) };
        let bitmap = filter.wrapping_add(base as usize);
        let word = match nr >> 6 {
            0 => bitmap_word!(bitmap, 0),
            1 => bitmap_word!(bitmap, 8),
            2 => bitmap_word!(bitmap, 16),
            3 => bitmap_word!(bitmap, 24),
            4 => bitmap_word!(bitmap, 32),
            5 => bitmap_word!(bitmap, 40),
            6 => bitmap_word!(bitmap, 48),
            _ => bitmap_word!(bitmap, 56),
        };
        word & (1u64 << (nr & 63)) != 0
    }

    #[inline(always)]
    pub fn seccomp_mode(self) -> u32 {
        // SAFETY: the offset of `seccomp.mode`, an int, read from BTF.
        unsafe { self.load(offset!(seccomp_mode)) }
    }
}
