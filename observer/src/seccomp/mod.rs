//! Reading the seccomp filter the kernel applies to a process: its mode from
//! `/proc/PID/status`, and every stacked filter dumped with ptrace, ready for
//! `observer_profile::bpf` to disassemble and evaluate.

mod dump;
mod status;

pub use dump::{AppliedFilter, DumpError, dump_filters};
pub use status::{SeccompMode, SeccompStatus, parse_status, read_status, self_has_cap_sys_admin};
