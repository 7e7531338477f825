//! Cgroups gone before they could be named. A container allowed to make
//! cgroups (privileged, podman `--systemd`, CAP_SYS_ADMIN) can make one below
//! its own, move in, make calls, move out and remove it in a millisecond,
//! or deeper than the inotify watch reaches: its id then names no directory
//! by the time its first event is read. What it did is the container's: the
//! process that made that first call has moved back to the container's
//! cgroup (a cgroup is removed only once empty, and a container's processes
//! can move only within its subtree), so the cgroup it is in now names the
//! record. Only when that process is gone too does the cgroup get a record
//! of its own, under its id.

use super::core::Agent;
use crate::container::{cgroup_path, confirm::Confirmation, pid_cgroup};

impl Agent {
    /// Records a cgroup with no known path, by its first caller's cgroup now.
    pub(super) fn adopt_vanished(&mut self, cgroup_id: u64, slot: u32, tgid: u32) {
        let path = format!("(vanished cgroup {cgroup_id})");
        if let Some((key, cref)) = self.enclosing_container(cgroup_id, tgid) {
            tracing::info!(cgroup_id, slot, tgid, container = %key, "a vanished cgroup, recorded with the container its caller is in now");
            // Never confirmed: nothing of it is left to kill, and no rule may
            // take it for the container's own running cgroup.
            self.adopt(&key, cgroup_id, slot, path, Some(&cref), Confirmation::Pending);
            self.apply_rules(&key);
            return;
        }
        let key = format!("cgroup:{cgroup_id}");
        self.adopt(&key, cgroup_id, slot, path, None, Confirmation::Pending);
    }

    /// The container record whose live cgroup process `tgid` is in now, with
    /// the container's reference (for a nested adoption).
    fn enclosing_container(&self, cgroup_id: u64, tgid: u32) -> Option<(String, crate::container::ContainerRef)> {
        if tgid == 0 {
            return None;
        }
        let now = pid_cgroup::cgroup_id_of_pid(&self.mount(), tgid).ok().filter(|id| *id != cgroup_id)?;
        let (key, _) = self.slot_owner.values().find(|(_, id)| *id == now)?;
        let record = self.containers.get(key)?;
        let cref = cgroup_path::parse(&record.cgroup_path);
        (cref.is_container() && cref.id == *key).then(|| (key.clone(), cref))
    }
}
