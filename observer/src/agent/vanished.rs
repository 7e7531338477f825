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

use observer_probe::pid_cgroup;

use super::core::Agent;
use crate::container::{cgroup_path, confirm::Confirmation};

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
        tracing::info!(
            cgroup_id,
            slot,
            tgid,
            "a vanished cgroup, recorded under its id: its first caller is gone, or not in a container"
        );
        let key = format!("cgroup:{cgroup_id}");
        self.adopt(&key, cgroup_id, slot, path, None, Confirmation::Pending);
    }

    /// The container record of the cgroup process `tgid` is in now, with the
    /// container's reference (for a nested adoption). That cgroup may itself
    /// be a newer one below the container (a loop that makes them one after
    /// another is already in the next, maybe not named yet): the container is
    /// guessed from its slot's owner, its known path or `/proc`'s, and then
    /// checked by id, whatever the agent's cgroup namespace: the cgroup must be
    /// the container's own or one below it, which no one outside can make.
    fn enclosing_container(&mut self, cgroup_id: u64, tgid: u32) -> Option<(String, crate::container::ContainerRef)> {
        if tgid == 0 {
            return None;
        }
        // The caller may be gone from the cgroup it was in by the check (a
        // loop moves on at once): asked again, a few times.
        (0..3).find_map(|_| self.container_of_caller(cgroup_id, tgid))
    }

    fn container_of_caller(&mut self, cgroup_id: u64, tgid: u32) -> Option<(String, crate::container::ContainerRef)> {
        let mount = self.mount();
        let now = pid_cgroup::cgroup_id_of_pid(&mount, tgid).ok().filter(|id| *id != cgroup_id)?;
        let guess = match self.slot_owner.values().find(|(_, id)| *id == now) {
            Some((key, _)) => key.clone(),
            None => {
                let proc_path = || {
                    let text = std::fs::read_to_string(format!("/proc/{tgid}/cgroup")).ok()?;
                    pid_cgroup::v2_line(&text).map(str::to_owned)
                };
                cgroup_path::parse(&self.path_of(now).or_else(proc_path)?).id
            }
        };
        let record = self.containers.get(&guess)?;
        let cref = cgroup_path::parse(&record.cgroup_path);
        if !cref.is_container() || cref.id != guess {
            return None;
        }
        pid_cgroup::is_id_at_or_below(&mount, &record.cgroup_path, now).ok()?.then_some((guess, cref))
    }
}
