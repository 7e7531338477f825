//! observer: watches the syscalls containers make with eBPF and turns them into
//! seccomp security. The binary (`main.rs`) is a thin CLI over these modules.

pub mod container;
pub mod run;
pub mod seccomp;
