//! observer's kernel seam: the kernel programs (observer-ebpf, built by this
//! crate's build.rs and embedded), loading, attaching and pinning them, and
//! reading what they record (slots, counters, events). The agent and `observer
//! trace` both stand on it; it knows nothing of containers beyond cgroups.

mod capabilities;
mod counters;
mod error;
mod host_tgid;
mod loader;
mod offsets;
mod own_cgroup;
pub mod pid_cgroup;
pub mod v2_mount;

pub use capabilities::require_bpf_privileges;
pub use counters::{CounterView, RowCounts};
pub use error::ProbeError;
pub use host_tgid::host_tgid;
pub use loader::{KernelLog, LoadOptions, PRIVATE_EVENT_RING_BYTES, Probe, load_floor};
