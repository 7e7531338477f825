//! The cgroup v2 id of the agent's own cgroup, as the kernel programs see it
//! (`config::AGENT_CGROUP_ID`): the inode of its directory in the v2 mount.
//! `/proc/self/cgroup`'s `0::` path is relative to the cgroup namespace's
//! root, and so is a v2 mount made inside that namespace: joined, they name
//! the right directory inside a pod's cgroup namespace too.

use std::os::unix::fs::MetadataExt as _;

use anyhow::Context as _;

pub fn own_cgroup_id() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let path = v2_path(&text).context("/proc/self/cgroup has no cgroup v2 (0::) line")?;
    let mount = crate::container::v2_mount::find_v2_mount()?;
    let dir = mount.join(path.trim_start_matches('/'));
    Ok(std::fs::metadata(&dir).with_context(|| format!("{}", dir.display()))?.ino())
}

/// The path of the `0::PATH` line.
fn v2_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_line_gives_the_path() {
        let text = "12:cpu,cpuacct:/user.slice\n0::/user.slice/session-1.scope\n";
        assert_eq!(v2_path(text), Some("/user.slice/session-1.scope"));
        assert_eq!(v2_path("3:memory:/x\n"), None);
    }
}
