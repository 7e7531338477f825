//! Seccomp profiles and filters as data: parsing Docker/moby, OCI and Security
//! Profiles Operator profiles, resolving them, evaluating classic-BPF filters,
//! exporting, merging, diffing and checking. Pure logic: no root, no kernel.

pub mod bpf;
pub mod syscall_table;
pub mod types;
