//! observer: watches the syscalls containers make with eBPF and turns them into
//! seccomp security. The binary (`main.rs`) is a thin CLI over these modules.

pub mod agent;
pub mod api;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod container;
pub mod export;
pub mod learned;
pub mod metrics;
pub mod printable;
pub mod probe;
pub mod profile_rows;
pub mod rows;
pub mod run;
pub mod seccomp;
pub mod state;
pub mod trace;
pub mod views;
