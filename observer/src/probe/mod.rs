//! Loading observer's kernel programs and reading what they record.

mod capabilities;
mod counters;
mod host_tgid;
mod loader;
mod offsets;
mod own_cgroup;

pub use capabilities::require_bpf_privileges;
pub use counters::{CounterView, RowCounts};
pub use host_tgid::host_tgid;
pub use loader::{KernelLog, LoadOptions, PRIVATE_EVENT_RING_BYTES, Probe, load_floor};
