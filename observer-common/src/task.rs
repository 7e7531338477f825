//! Where the kernel programs find the `task_struct` fields they read. Offsets
//! differ between kernel builds and configs, so the agent reads them from the
//! running kernel's BTF and sets them at load time, in one read-only global
//! (`GLOBAL`) that the loader freezes: the verifier then sees each offset as a
//! constant and can check the loads made with it.

/// The symbol of the `TaskOffsets` global in the kernel object.
pub const GLOBAL: &str = "TASK_OFFSETS";

/// Byte offsets of every field the programs read, from the start of the
/// struct named in each comment. All u64: each is added to a pointer, and u64
/// fields leave no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOffsets {
    /// `task_struct.thread_info.status` (TS_COMPAT lives there on x86).
    pub thread_info_status: u64,
    /// `task_struct.pid`; `tgid` directly follows it (the agent checks).
    pub pid: u64,
    /// `task_struct.seccomp.mode`.
    pub seccomp_mode: u64,
    /// The chain to the task's executable: `task_struct.mm`, `mm_struct.exe_file`, `file.f_inode`.
    pub mm: u64,
    pub mm_exe_file: u64,
    pub file_inode: u64,
    /// The chain to the task's cgroup v2 id (what `bpf_get_current_cgroup_id`
    /// returns): `task_struct.cgroups`, `css_set.dfl_cgrp`, `cgroup.kn`, `kernfs_node.id`.
    pub cgroups: u64,
    pub css_set_dfl_cgrp: u64,
    pub cgroup_kn: u64,
    pub kernfs_node_id: u64,
    /// `task_struct.seccomp.filter`: the task's newest seccomp filter.
    pub seccomp_filter: u64,
    /// `seccomp_filter.cache.allow_native` and `.allow_compat`: the kernel's
    /// action cache, one bit per syscall number that the filter and all its
    /// ancestors allow whatever the arguments (kernel/seccomp.c). 0 when this
    /// kernel's BTF has no cache (an architecture without one): every call of
    /// a filtered task is then taken as one its filter may deny.
    pub filter_allow_native: u64,
    pub filter_allow_compat: u64,
    /// `inode.i_ino` and `inode.i_generation`: with the inode's address, which
    /// file the executable is (an address alone may be a freed inode's, reused).
    pub inode_ino: u64,
    pub inode_generation: u64,
}

impl TaskOffsets {
    /// What the kernel object holds before the loader sets the real offsets
    /// (the loader always does: a program never runs with these).
    pub const UNSET: Self = Self {
        thread_info_status: 0,
        pid: 0,
        seccomp_mode: 0,
        mm: 0,
        mm_exe_file: 0,
        file_inode: 0,
        cgroups: 0,
        css_set_dfl_cgrp: 0,
        cgroup_kn: 0,
        kernfs_node_id: 0,
        seccomp_filter: 0,
        filter_allow_native: 0,
        filter_allow_compat: 0,
        inode_ino: 0,
        inode_generation: 0,
    };
}

const _: () = assert!(core::mem::size_of::<TaskOffsets>() == 15 * 8);

// SAFETY: `#[repr(C)]`, only u64 fields (no padding), and every bit pattern is
// a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for TaskOffsets {}
