//! The slot table from user space: handing out, releasing and ignoring
//! cgroups' slots, the run-time settings, and reading a slot's rows (with
//! their wraps past 2^32), argument values and the loss counters.

use observer_common::{
    config,
    counters::{counter, split_wrap_key, wrap_key},
    stats,
};

use super::{Probe, Wraps};
use crate::{
    RowCounts,
    error::{ProbeError, Step as _, chain},
};

impl Probe {
    /// Cgroups with a smaller id existed before these programs recorded (see
    /// `config::FIRST_NEW_CGROUP_ID`); 0 when not set (explicit mode).
    pub fn first_new_cgroup_id(&self) -> u64 {
        self.maps.config.get(&config::FIRST_NEW_CGROUP_ID, 0).unwrap_or(0)
    }

    /// Gives a free slot to a cgroup the kernel could not record from its start
    /// (it overflowed, or it was running before the programs were attached):
    /// with no init phase, so every task in it is the container's own and is
    /// enforced. Replaces a `SLOT_OVERFLOW` marker (or no entry); a cgroup
    /// that has a slot, or is ignored, is left alone. The kernel emits no
    /// `NewCgroup` event for it: the caller adopts the returned slot itself.
    /// `learn_init`: the first task without a seccomp filter that calls in
    /// the cgroup is the runtime's init, learned as such
    /// (`slot::flags::LEARN_INIT`): true when every process of the container is
    /// under a filter (Docker's default: a `docker exec`'s init is the one
    /// task there without one), or when the runtime's init itself still runs
    /// unfiltered (the container is starting); pass false when unsure (an
    /// unconfined container): then a `docker exec`'s start is enforced too.
    /// `Ok(None)`: no slot is free, or the cgroup has its own entry already.
    pub fn give_slot_without_init(&mut self, cgroup_id: u64, learn_init: bool) -> Result<Option<u32>, ProbeError> {
        use observer_common::slot::{NO_INIT, SLOT_OVERFLOW};
        const BPF_NOEXIST: u64 = 1;
        const BPF_EXIST: u64 = 2;
        if self.is_ignored(cgroup_id) {
            return Ok(None);
        }
        let flags = match self.maps.cgroups.get(&cgroup_id, 0) {
            Ok(SLOT_OVERFLOW) => BPF_EXIST,
            Ok(_) => return Ok(None),
            Err(aya::maps::MapError::KeyNotFound) => BPF_NOEXIST,
            Err(e) => return Err(e).step("reading CGROUPS"),
        };
        let Ok(slot) = self.maps.free_slots.pop(0) else { return Ok(None) };
        // Written before the slot is published: the kernel checks the owner.
        self.forget_wraps(slot);
        self.counters.reset(slot, cgroup_id, NO_INIT);
        let agent_here = cgroup_id == self.agent_cgroup_id();
        if learn_init || agent_here {
            use observer_common::slot::flags::{AGENT_HERE, LEARN_INIT};
            self.counters.with_info(slot, |i| {
                i.flags = if learn_init { LEARN_INIT } else { 0 } | if agent_here { AGENT_HERE } else { 0 };
            });
        }
        // Only user space changes an overflow marker, so BPF_EXIST replaces just
        // that; BPF_NOEXIST keeps a slot the kernel opened meanwhile.
        if let Err(e) = self.maps.cgroups.insert(cgroup_id, slot, flags) {
            self.counters.reset(slot, 0, 0);
            self.maps.free_slots.push(slot, 0).step("returning a slot to FREE_SLOTS")?;
            return match e {
                aya::maps::MapError::SyscallError(ref s)
                    if matches!(s.io_error.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOENT)) =>
                {
                    Ok(None)
                }
                e => Err(e).step("writing CGROUPS"),
            };
        }
        self.forget_cached(cgroup_id);
        Ok(Some(slot))
    }

    /// Sets one run-time setting (`config::*`) in the `CONFIG` map.
    /// Tells the programs which calls are the agent's own (never recorded):
    /// its tgid, and its cgroup, whose slot (if one is open already, from an
    /// earlier agent) gets `flags::AGENT_HERE`.
    pub(super) fn set_agent_identity(&mut self) -> Result<(), ProbeError> {
        self.set_config(config::AGENT_TGID, u64::from(crate::host_tgid()))?;
        let own = crate::own_cgroup::own_cgroup_id().unwrap_or_else(|e| {
            tracing::warn!("the agent's own cgroup: {}; its calls are told apart by tgid in no slot", chain(&e));
            0
        });
        self.set_config(config::AGENT_CGROUP_ID, own)?;
        if own != 0 {
            for slot in 0..self.slots {
                if self.counters.info(slot).cgroup_id == own {
                    self.counters.with_info(slot, |i| i.flags |= observer_common::slot::flags::AGENT_HERE);
                }
            }
        }
        Ok(())
    }

    /// `config::AGENT_CGROUP_ID`.
    fn agent_cgroup_id(&self) -> u64 {
        self.maps.config.get(&config::AGENT_CGROUP_ID, 0).unwrap_or(0)
    }

    pub fn set_config(&mut self, index: u32, value: u64) -> Result<(), ProbeError> {
        self.maps.config.set(index, value, 0).step("writing the CONFIG map")
    }

    /// Clears the kernel's cache entry for a cgroup whose `CGROUPS` entry changed.
    pub fn forget_cached(&mut self, cgroup_id: u64) {
        let index = observer_common::slot::cache_index(cgroup_id);
        if self.maps.cgroup_cache.get(&index, 0).is_ok_and(|e| e >> 32 == cgroup_id) {
            let _ = self.maps.cgroup_cache.set(index, 0, 0);
        }
    }

    /// Zeroes a slot and gives it back to the kernel.
    pub fn release_slot(&mut self, cgroup_id: u64, slot: u32) -> Result<(), ProbeError> {
        let _ = self.maps.cgroups.remove(&cgroup_id);
        self.forget_cached(cgroup_id);
        self.counters.reset(slot, 0, 0);
        self.forget_wraps(slot);
        self.maps.free_slots.push(slot, 0).step("returning a slot to FREE_SLOTS")?;
        Ok(())
    }

    /// Marks a cgroup as known but not recorded (in `IGNORED`, not in
    /// `CGROUPS`), freeing its slot when it still owns `slot`.
    pub fn ignore(&mut self, cgroup_id: u64, slot: Option<u32>) -> Result<(), ProbeError> {
        // IGNORED first: in between, the kernel still finds the slot, never nothing
        // (which would open another one).
        self.maps.ignored.insert(cgroup_id, observer_common::slot::SLOT_IGNORED, 0).step("writing IGNORED")?;
        let _ = self.maps.cgroups.remove(&cgroup_id);
        self.forget_cached(cgroup_id);
        if let Some(slot) = slot
            && slot < self.slots
            && self.counters.info(slot).cgroup_id == cgroup_id
        {
            self.counters.reset(slot, 0, 0);
            self.forget_wraps(slot);
            self.maps.free_slots.push(slot, 0)?;
        }
        Ok(())
    }

    /// Forgets ignored cgroups for which `alive` is false (removed cgroups);
    /// returns how many. The map is an LRU, so this only keeps it tidy.
    pub fn sweep_ignored(&mut self, alive: impl Fn(u64) -> bool) -> usize {
        let dead: Vec<u64> = self.maps.ignored.keys().filter_map(Result::ok).filter(|id| !alive(*id)).collect();
        for id in &dead {
            let _ = self.maps.ignored.remove(id);
            self.forget_cached(*id);
        }
        dead.len()
    }

    /// Whether a cgroup is in `IGNORED`.
    pub fn is_ignored(&self, cgroup_id: u64) -> bool {
        self.maps.ignored.get(&cgroup_id, 0).is_ok()
    }

    /// Records `cgroup_id` in `slot` (explicit mode). `init_exe` is the
    /// exec id that marks the runtime's init (u64::MAX: nothing is init).
    pub fn watch(&mut self, cgroup_id: u64, slot: u32, init_exe: u64) -> Result<(), ProbeError> {
        self.forget_wraps(slot);
        self.counters.reset(slot, cgroup_id, init_exe);
        self.maps.cgroups.insert(cgroup_id, slot, 0)?;
        Ok(())
    }

    /// Every counter cell's wraps past 2^32 and every spilled row's counts
    /// (`WRAPS`), read once for a round of slot reads. Almost always empty:
    /// one syscall.
    pub fn wraps(&self) -> Wraps {
        let mut out = Wraps::default();
        for entry in self.maps.wraps.iter().filter_map(Result::ok) {
            let (key, wraps) = entry;
            out.0.insert(key, wraps);
        }
        out
    }

    /// A slot's rows with exact totals: each cell plus its wraps times 2^32.
    /// `wraps` must have been read before the cells (a wrap in between then
    /// reads low, never high; `RowTotals::update` skips such a reading).
    pub fn rows(&self, slot: u32, wraps: &Wraps) -> Vec<RowCounts> {
        let mut rows = self.counters.cells(slot);
        if wraps.0.is_empty() {
            return rows;
        }
        for (&key, &n) in wraps.0.range(wrap_key(slot, 0, 0)..wrap_key(slot + 1, 0, 0)) {
            let (_, counter, row) = split_wrap_key(key);
            let i = match rows.binary_search_by_key(&row, |r| r.row) {
                Ok(i) => i,
                Err(i) => {
                    // A spilled row has no cell, and a cell that wrapped to
                    // exactly 0 is not among the cells read.
                    rows.insert(i, RowCounts { row, ..RowCounts::default() });
                    i
                }
            };
            let r = &mut rows[i];
            let cell = match counter & !counter::SPILL {
                counter::CALLS => &mut r.calls,
                counter::ERRORS => &mut r.errors,
                counter::DENIED => &mut r.denied,
                _ => continue,
            };
            // A spill entry is the row's whole count; a wrap entry, its cell's high half.
            *cell = cell.saturating_add(if counter & counter::SPILL != 0 { n } else { n << 32 });
        }
        rows
    }

    /// A slot's argument value sets, decoded.
    pub fn args(&self, slot: u32) -> observer_profile::args::SeenArgs {
        observer_profile::args::SeenArgs::from_sets(&self.counters.args(slot))
    }

    /// Deletes a slot's `WRAPS` entries: before it records another cgroup.
    fn forget_wraps(&mut self, slot: u32) {
        let keys: Vec<u64> =
            self.maps.wraps.keys().filter_map(Result::ok).filter(|k| split_wrap_key(*k).0 == slot).collect();
        for key in keys {
            let _ = self.maps.wraps.remove(&key);
        }
    }

    /// Totals of the per-CPU loss counters (`stats::*`).
    pub fn stats(&self) -> Result<[u64; stats::LEN as usize], ProbeError> {
        let mut out = [0u64; stats::LEN as usize];
        for (i, total) in out.iter_mut().enumerate() {
            *total = self.maps.stats.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }
}
