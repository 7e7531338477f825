//! The cgroup v2 id of the agent's own cgroup, as the kernel programs see it
//! (`config::AGENT_CGROUP_ID`). Asked by pid ([`pid_cgroup`]), not from the
//! `/proc/self/cgroup` path: in a pod's private cgroup namespace that path is
//! `/` (the namespace's root), which joined to a mount of the host's tree
//! would name the host's root cgroup instead of the agent's.

use crate::{
    error::{ProbeError, Step as _},
    pid_cgroup, v2_mount,
};

pub fn own_cgroup_id() -> Result<u64, ProbeError> {
    let mount = v2_mount::find_v2_mount()?;
    pid_cgroup::cgroup_id_of_pid(&mount, std::process::id()).step("the agent's own cgroup")
}
