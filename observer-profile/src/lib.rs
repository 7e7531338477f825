//! Seccomp profiles and filters as data: parsing Docker/moby, OCI and Security
//! Profiles Operator profiles, resolving them, evaluating classic-BPF filters,
//! exporting, merging, diffing and checking. Pure logic: no root, no kernel.

pub mod action;
pub mod arch_map;
pub mod args;
pub mod bpf;
pub mod check;
pub mod diff;
mod error;
pub mod export;
pub mod intersect;
pub mod merge;
pub mod model;
pub mod reach_tier;
pub mod resolve;
pub mod syscall_table;
pub mod tiers;
pub mod types;
pub mod within;

pub use error::Error;
