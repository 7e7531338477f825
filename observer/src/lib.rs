//! observer: watches the syscalls containers make with eBPF and turns them into
//! seccomp security. The binary (`main.rs`) is a thin CLI over these modules.

pub mod cli;
pub mod container;
pub mod export;
pub mod metrics;
pub mod probe;
pub mod run;
pub mod seccomp;
pub mod state;
pub mod trace;
