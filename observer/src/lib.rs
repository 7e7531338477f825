//! observer: watches the syscalls containers make with eBPF and turns them into
//! seccomp security. The binary (`main.rs`) is a thin CLI over these modules.

pub mod agent;
pub mod api;
pub mod cli;
pub(crate) mod clock;
pub(crate) mod commands;
pub mod container;
pub(crate) mod export_arch;
pub(crate) mod learned;
pub(crate) mod metrics;
pub(crate) mod printable;
pub(crate) mod profile_rows;
pub(crate) mod reach_rows;
pub(crate) mod rows;
pub mod run;
pub mod seccomp;
pub(crate) mod state;
pub(crate) mod top;
pub(crate) mod trace;
