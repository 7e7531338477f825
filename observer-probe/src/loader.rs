//! Loads and attaches the kernel programs, or reopens the copy an earlier agent
//! pinned in bpffs, and gives typed access to their maps.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray, Queue, RingBuf},
    programs::{
        RawTracePoint,
        links::{FdLink, PinnedLink},
    },
};
use observer_common::{
    config,
    counters::{counter, split_wrap_key, wrap_key},
    layout::LAYOUT,
    stats,
};

use super::{CounterView, RowCounts, offsets::task_offsets, require_bpf_privileges};

static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/observer"));

/// The object is empty only in a build made with `OBSERVER_SKIP_EBPF_BUILD=fuzz`
/// (observer/build.rs, for the fuzz targets): such a binary must never run as
/// the agent, trace, or reopen pinned programs.
fn require_programs() -> anyhow::Result<()> {
    if PROGRAM.is_empty() {
        bail!(
            "this observer was built without its kernel programs (OBSERVER_SKIP_EBPF_BUILD=fuzz, for fuzzing only): rebuild it without that variable"
        );
    }
    Ok(())
}

/// Order matters: `from_maps` takes them positionally (SLOTS is taken out first).
/// (The per-thread `NOTES` task storage is the programs' own: nothing in user space reads it.)
const MAP_NAMES: [&str; 9] =
    ["CGROUPS", "FREE_SLOTS", "SLOTS", "CONFIG", "STATS", "EVENTS", "CGROUP_CACHE", "IGNORED", "WRAPS"];
const PROGRAMS: [&str; 2] = ["sys_enter", "sys_exit"];
/// The same programs, also timing each call (attached to the same tracepoints).
const TIMED_PROGRAMS: [&str; 2] = ["sys_enter_timed", "sys_exit_timed"];
/// Maps earlier layouts pinned that this one does not: removed when replaced.
const OLD_MAP_NAMES: [&str; 1] = ["MARKERS"];

#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// How many cgroups can be recorded at once.
    pub slots: u32,
    /// `config::mode::*`.
    pub mode: u64,
    pub count_errors: bool,
    /// Size of the event ring buffer (a power of two of pages).
    pub event_ring_bytes: u32,
    /// Attach the timed programs (`observer trace --time`): each call's time
    /// from enter to exit, per row, in `TIMES`. Private copies only.
    pub timed: bool,
}

/// `WRAPS` as read at one moment: wrap key -> wraps (see `Probe::wraps`).
#[derive(Clone, Debug, Default)]
pub struct Wraps(pub std::collections::BTreeMap<u64, u64>);

impl Wraps {
    /// Whether `slot` has any entry (a wrapped cell, a spilled row, a denial).
    pub fn has_slot(&self, slot: u32) -> bool {
        self.0.range(wrap_key(slot, 0, 0)..wrap_key(slot + 1, 0, 0)).next().is_some()
    }
}

/// The event ring of a private copy (trace, the floor): one cgroup's events.
pub const PRIVATE_EVENT_RING_BYTES: u32 = 256 * 1024;

/// The maps user space works with.
pub struct ProbeMaps {
    /// cgroup id -> slot, or `SLOT_OVERFLOW`; never `SLOT_IGNORED` (see `ignored`).
    pub cgroups: HashMap<MapData, u64, u32>,
    /// Cgroups not recorded (an LRU of its own, so that they never use up
    /// `cgroups`); see `Probe::ignore`, `Probe::sweep_ignored`.
    pub ignored: HashMap<MapData, u64, u32>,
    pub free_slots: Queue<MapData, u32>,
    pub config: Array<MapData, u64>,
    pub stats: PerCpuArray<MapData, u64>,
    /// Taken by whoever drains the events (`Probe::take_events`).
    pub events: Option<RingBuf<MapData>>,
    pub cgroup_cache: Array<MapData, u64>,
    /// How often each counter cell passed 2^32 (`counters::wrap_key`).
    pub wraps: HashMap<MapData, u64, u64>,
}

/// Reads what the kernel programs log (aya-log: rare diagnostics only).
pub type KernelLog = aya_log::EbpfLogger<&'static dyn log::Log>;

/// The loaded, attached kernel programs.
pub struct Probe {
    logger: Option<KernelLog>,
    // Kept alive so that unpinned programs stay attached (trace).
    _ebpf: Option<Ebpf>,
    pub maps: ProbeMaps,
    counters: CounterView,
    slots: u32,
    /// True when an earlier agent's pinned programs were reused.
    pub reused: bool,
    /// The flock on the pin directory (pinned copies only): one agent per pin dir.
    _pin_lock: Option<std::fs::File>,
    /// Per-row time in calls (`TIMES`), when the timed programs are attached.
    times: Option<Array<MapData, u64>>,
}

impl Probe {
    /// Loads and attaches a private copy (detached when dropped).
    pub fn load(options: LoadOptions) -> anyhow::Result<Self> {
        let (mut ebpf, slots, logger) = load_object(options)?;
        let programs = if options.timed { TIMED_PROGRAMS } else { PROGRAMS };
        for (name, tracepoint) in programs.into_iter().zip(PROGRAMS) {
            attach(&mut ebpf, name, tracepoint)?;
        }
        let times = if options.timed {
            let map = ebpf.take_map("TIMES").context("no map TIMES")?;
            Some(Array::try_from(map).context("the TIMES map is not an array")?)
        } else {
            None
        };
        let mut maps = take_maps(&mut ebpf)?;
        let slots_map = maps.remove(2);
        let mut probe = Self::from_maps(maps, slots_map, slots, false, Some(ebpf))?;
        probe.logger = logger;
        probe.times = times;
        probe.configure(options)?;
        Ok(probe)
    }

    /// Nanoseconds spent in the calls of `row`, from enter to exit, when the
    /// timed programs are attached; `None` otherwise.
    pub fn time_ns(&self, row: u32) -> Option<u64> {
        self.times.as_ref().map(|t| t.get(&row, 0).unwrap_or(0))
    }

    /// Reopens the copy pinned under `dir`, or loads, attaches and pins a new
    /// one there. A pinned copy keeps recording while no agent runs.
    pub fn load_pinned(options: LoadOptions, dir: &Path) -> anyhow::Result<Self> {
        require_programs()?;
        require_bpf_privileges()?;
        ensure_bpffs(dir)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = lock_pin_dir(dir)?;
        let mut probe = Self::open_pinned(options, dir)?;
        probe._pin_lock = Some(lock);
        Ok(probe)
    }

    fn open_pinned(options: LoadOptions, dir: &Path) -> anyhow::Result<Self> {
        if link_pin(dir, PROGRAMS[0]).exists() {
            match pinned_layout(dir) {
                Ok(found) if found == LAYOUT => {}
                found => {
                    let found = match found {
                        Ok(v) => format!("layout {v:#018x}"),
                        Err(e) => format!("no readable layout ({e:#})"),
                    };
                    tracing::warn!(
                        "the programs pinned under {} were loaded by a build with another layout ({found}, this build has {LAYOUT:#018x}): replacing them with fresh ones (what they counted is lost)",
                        dir.display()
                    );
                    Self::unpin_all(dir).context("removing the pinned programs of another layout")?;
                }
            }
        }
        if link_pin(dir, PROGRAMS[0]).exists() {
            let mut maps = Vec::new();
            for name in MAP_NAMES {
                let data = MapData::from_pin(dir.join(name))
                    .with_context(|| format!("reopening the pinned map {}", dir.join(name).display()))?;
                maps.push(Map::from_map_data(data)?);
            }
            let slots_map = maps.remove(2);
            let slots = match &slots_map {
                Map::Array(data) => data.info()?.max_entries(),
                _ => bail!("the pinned SLOTS map is not an array"),
            };
            let mut probe = Self::from_maps(maps, slots_map, slots, true, None)?;
            // The pinned programs' log ring, found through the program the link runs.
            probe.logger = PinnedLink::from_pin(link_pin(dir, PROGRAMS[0]))
                .ok()
                .and_then(|l| FdLink::from(l).info().ok())
                .and_then(|info| aya_log::EbpfLogger::init_from_id(info.program_id()).ok());
            probe.set_agent_identity()?;
            probe.set_config(config::COUNT_ERRORS, u64::from(options.count_errors))?;
            return Ok(probe);
        }
        let (mut ebpf, slots, logger) = load_object(options)?;
        {
            let mut layout: Array<&mut MapData, u64> =
                Array::try_from(ebpf.map_mut("LAYOUT").context("no map LAYOUT")?)?;
            layout.set(0, LAYOUT, 0).context("writing the LAYOUT map")?;
        }
        for name in MAP_NAMES.iter().chain([&"LAYOUT"]) {
            // Without pinned links, pinned maps are leftovers of an interrupted start.
            let _ = std::fs::remove_file(dir.join(name));
            ebpf.map(name)
                .with_context(|| format!("no map {name}"))?
                .pin(dir.join(name))
                .with_context(|| format!("pinning {name} in {}", dir.display()))?;
        }
        // Programs are loaded before the maps are taken out: loading needs their fds.
        let mut links = Vec::new();
        for name in PROGRAMS {
            let program: &mut RawTracePoint =
                ebpf.program_mut(name).with_context(|| format!("no program {name}"))?.try_into()?;
            program.load().with_context(|| format!("verifying {name}"))?;
            let id = program.attach(name).with_context(|| format!("attaching {name}"))?;
            links.push((name, FdLink::from(program.take_link(id)?)));
        }
        let mut maps = take_maps(&mut ebpf)?;
        let slots_map = maps.remove(2);
        let mut probe = Self::from_maps(maps, slots_map, slots, false, None)?;
        probe.logger = logger;
        probe.configure(options)?;
        for (name, link) in links {
            link.pin(link_pin(dir, name)).with_context(|| format!("pinning the {name} link"))?;
        }
        Ok(probe)
    }

    /// Detaches and unpins everything a pinned agent left under `dir`; refused
    /// while an agent holds the pin directory.
    pub fn uninstall(dir: &Path) -> anyhow::Result<bool> {
        if !dir.exists() {
            return Ok(false);
        }
        let _lock = lock_pin_dir(dir)?;
        let found = Self::unpin_all(dir)?;
        let _ = std::fs::remove_dir(dir);
        Ok(found)
    }

    /// Unpins the links and maps of this build and of earlier layouts.
    fn unpin_all(dir: &Path) -> anyhow::Result<bool> {
        let mut found = false;
        for name in PROGRAMS {
            let pin = link_pin(dir, name);
            if pin.exists() {
                let link = PinnedLink::from_pin(&pin).with_context(|| format!("opening {}", pin.display()))?;
                // Unpinning drops the last reference: the program detaches.
                drop(link.unpin()?);
                found = true;
            }
        }
        for name in MAP_NAMES.iter().chain(&["LAYOUT"]).chain(&OLD_MAP_NAMES) {
            let pin = dir.join(name);
            if pin.exists() {
                std::fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
                found = true;
            }
        }
        Ok(found)
    }

    fn from_maps(maps: Vec<Map>, slots_map: Map, slots: u32, reused: bool, ebpf: Option<Ebpf>) -> anyhow::Result<Self> {
        let mut it = maps.into_iter();
        let mut next = |name: &str| it.next().ok_or_else(|| anyhow!("map {name} missing"));
        let maps = ProbeMaps {
            cgroups: HashMap::try_from(next("CGROUPS")?)?,
            free_slots: Queue::try_from(next("FREE_SLOTS")?)?,
            config: Array::try_from(next("CONFIG")?)?,
            stats: PerCpuArray::try_from(next("STATS")?)?,
            events: Some(RingBuf::try_from(next("EVENTS")?)?),
            cgroup_cache: Array::try_from(next("CGROUP_CACHE")?)?,
            ignored: HashMap::try_from(next("IGNORED")?)?,
            wraps: HashMap::try_from(next("WRAPS")?)?,
        };
        let Map::Array(data) = &slots_map else {
            bail!("SLOTS is not an array map");
        };
        let counters = CounterView::map(data.fd().as_fd().as_raw_fd(), slots)
            .context("mmap of the SLOTS map (needs BPF_F_MMAPABLE)")?;
        // The mapping stays valid after the map's fd closes: it holds its own reference.
        drop(slots_map);
        Ok(Self { logger: None, _ebpf: ebpf, maps, counters, slots, reused, _pin_lock: None, times: None })
    }

    /// Settings of a fresh probe. In AUTO mode the free slots go in before the
    /// mode is switched on: a cgroup arriving earlier would find none.
    fn configure(&mut self, options: LoadOptions) -> anyhow::Result<()> {
        self.set_agent_identity()?;
        self.set_config(config::COUNT_ERRORS, u64::from(options.count_errors))?;
        self.set_config(config::DENIAL_ERRNOS, config::DEFAULT_DENIAL_ERRNOS)?;
        if options.mode == config::mode::AUTO {
            for slot in 0..self.slots {
                self.maps.free_slots.push(slot, 0)?;
            }
            // Until the boundary is known every cgroup counts as old (no init
            // phase): a slot opened in between fails closed.
            self.set_config(config::FIRST_NEW_CGROUP_ID, u64::MAX)?;
        }
        self.set_config(config::MODE, options.mode)?;
        if options.mode == config::mode::AUTO {
            // Taken after recording is on: every cgroup made later has a larger
            // id, and its first call is seen.
            let first_new = scratch_cgroup_id().context("finding where new cgroup ids start")?;
            self.set_config(config::FIRST_NEW_CGROUP_ID, first_new)?;
            tracing::debug!(first_new, "cgroups with smaller ids started before the programs were attached");
        }
        Ok(())
    }

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
    pub fn give_slot_without_init(&mut self, cgroup_id: u64, learn_init: bool) -> anyhow::Result<Option<u32>> {
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
            Err(e) => return Err(e).context("reading CGROUPS"),
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
            self.maps.free_slots.push(slot, 0).context("returning a slot to FREE_SLOTS")?;
            return match e {
                aya::maps::MapError::SyscallError(ref s)
                    if matches!(s.io_error.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOENT)) =>
                {
                    Ok(None)
                }
                e => Err(e).context("writing CGROUPS"),
            };
        }
        self.forget_cached(cgroup_id);
        Ok(Some(slot))
    }

    /// Sets one run-time setting (`config::*`) in the `CONFIG` map.
    /// Tells the programs which calls are the agent's own (never recorded):
    /// its tgid, and its cgroup, whose slot (if one is open already, from an
    /// earlier agent) gets `flags::AGENT_HERE`.
    fn set_agent_identity(&mut self) -> anyhow::Result<()> {
        self.set_config(config::AGENT_TGID, u64::from(super::host_tgid()))?;
        let own = super::own_cgroup::own_cgroup_id().unwrap_or_else(|e| {
            tracing::warn!("the agent's own cgroup: {e:#}; its calls are told apart by tgid in no slot");
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

    pub fn set_config(&mut self, index: u32, value: u64) -> anyhow::Result<()> {
        self.maps.config.set(index, value, 0).context("writing the CONFIG map")
    }

    /// Clears the kernel's cache entry for a cgroup whose `CGROUPS` entry changed.
    pub fn forget_cached(&mut self, cgroup_id: u64) {
        let index = observer_common::slot::cache_index(cgroup_id);
        if self.maps.cgroup_cache.get(&index, 0).is_ok_and(|e| e >> 32 == cgroup_id) {
            let _ = self.maps.cgroup_cache.set(index, 0, 0);
        }
    }

    /// Zeroes a slot and gives it back to the kernel.
    pub fn release_slot(&mut self, cgroup_id: u64, slot: u32) -> anyhow::Result<()> {
        let _ = self.maps.cgroups.remove(&cgroup_id);
        self.forget_cached(cgroup_id);
        self.counters.reset(slot, 0, 0);
        self.forget_wraps(slot);
        self.maps.free_slots.push(slot, 0).context("returning a slot to FREE_SLOTS")?;
        Ok(())
    }

    /// Marks a cgroup as known but not recorded (in `IGNORED`, not in
    /// `CGROUPS`), freeing its slot when it still owns `slot`.
    pub fn ignore(&mut self, cgroup_id: u64, slot: Option<u32>) -> anyhow::Result<()> {
        // IGNORED first: in between, the kernel still finds the slot, never nothing
        // (which would open another one).
        self.maps.ignored.insert(cgroup_id, observer_common::slot::SLOT_IGNORED, 0).context("writing IGNORED")?;
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

    pub fn take_logger(&mut self) -> Option<KernelLog> {
        self.logger.take()
    }

    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.maps.events.take()
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// How many entries `CGROUPS` holds at most.
    pub fn cgroups_capacity(&self) -> u32 {
        cgroups_entries(self.slots)
    }

    pub fn counters(&self) -> &CounterView {
        &self.counters
    }

    /// Records `cgroup_id` in `slot` (explicit mode). `init_exe` is the
    /// exec id that marks the runtime's init (u64::MAX: nothing is init).
    pub fn watch(&mut self, cgroup_id: u64, slot: u32, init_exe: u64) -> anyhow::Result<()> {
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
    pub fn stats(&self) -> anyhow::Result<[u64; stats::LEN as usize]> {
        let mut out = [0u64; stats::LEN as usize];
        for (i, total) in out.iter_mut().enumerate() {
            *total = self.maps.stats.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }
}

/// Empty programs on `sys_enter` (and `sys_exit` when `both`): the cost floor,
/// for benchmarks. They stay attached while the returned object lives.
pub fn load_floor(both: bool) -> anyhow::Result<Ebpf> {
    let (mut ebpf, _, _) = load_object(LoadOptions {
        slots: 1,
        mode: config::mode::EXPLICIT,
        count_errors: false,
        timed: false,
        event_ring_bytes: PRIVATE_EVENT_RING_BYTES,
    })?;
    let programs: &[(&str, &str)] = if both {
        &[("floor_enter", "sys_enter"), ("floor_exit", "sys_exit")]
    } else {
        &[("floor_enter", "sys_enter")]
    };
    for (name, tracepoint) in programs {
        let program: &mut RawTracePoint =
            ebpf.program_mut(name).with_context(|| format!("no program {name}"))?.try_into()?;
        program.load().with_context(|| format!("verifying {name}"))?;
        program.attach(tracepoint).with_context(|| format!("attaching {name}"))?;
    }
    Ok(ebpf)
}

/// Entries of `CGROUPS` for a table of `slots`: every slot's cgroup, plus
/// room for the markers of cgroups that came while every slot was taken.
pub fn cgroups_entries(slots: u32) -> u32 {
    slots.saturating_add(slots / 4).saturating_add(64)
}

/// Entries of the `IGNORED` LRU: a host's plain cgroups (systemd units,
/// pod-level cgroups), whatever the number of containers.
const IGNORED_ENTRIES: u32 = 8192;

fn load_object(options: LoadOptions) -> anyhow::Result<(Ebpf, u32, Option<KernelLog>)> {
    require_programs()?;
    require_bpf_privileges()?;
    let offsets = task_offsets()?;
    let slots = options.slots.max(1);
    let ebpf = EbpfLoader::new()
        // NOTES is task storage, which aya's user space has no type for; only
        // the programs use it.
        .allow_unsupported_maps()
        .override_global(observer_common::task::GLOBAL, &offsets, true)
        // Every slot's cgroup, plus room for the markers of cgroups that came
        // while every slot was taken.
        .map_max_entries("CGROUPS", cgroups_entries(slots))
        // Ignored cgroups are the host's own (an LRU: an evicted one only
        // costs a slot opening again), not a share of each container.
        .map_max_entries("IGNORED", IGNORED_ENTRIES)
        .map_max_entries("FREE_SLOTS", slots)
        .map_max_entries("SLOTS", slots)
        .map_max_entries("EVENTS", options.event_ring_bytes)
        .load(PROGRAM)
        .context("loading observer's eBPF object")?;
    // Before the programs load: their log map must stay open.
    let mut ebpf = ebpf;
    let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();
    Ok((ebpf, slots, logger))
}

fn attach(ebpf: &mut Ebpf, name: &str, tracepoint: &str) -> anyhow::Result<()> {
    let program: &mut RawTracePoint =
        ebpf.program_mut(name).with_context(|| format!("no program {name}"))?.try_into()?;
    program.load().with_context(|| format!("verifying {name}"))?;
    program
        .attach(tracepoint)
        .with_context(|| format!("attaching to the raw tracepoint {name} (does this kernel have raw tracepoints?)"))?;
    Ok(())
}

fn take_maps(ebpf: &mut Ebpf) -> anyhow::Result<Vec<Map>> {
    MAP_NAMES.iter().map(|name| ebpf.take_map(name).with_context(|| format!("no map {name}"))).collect()
}

fn link_pin(dir: &Path, program: &str) -> PathBuf {
    dir.join(format!("link_{program}"))
}

/// Mounts bpffs at /sys/fs/bpf when it is missing (a fresh machine has none).
fn ensure_bpffs(dir: &Path) -> anyhow::Result<()> {
    let root = Path::new("/sys/fs/bpf");
    if !dir.starts_with(root) {
        return Ok(());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let mounted = mounts.lines().any(|l| {
        l.split_once(" - ").is_some_and(|(left, right)| {
            right.starts_with("bpf ") && left.split_whitespace().nth(4) == Some("/sys/fs/bpf")
        })
    });
    if mounted {
        return Ok(());
    }
    tracing::info!("mounting bpffs at /sys/fs/bpf (it is not mounted; pinned maps live there)");
    std::fs::create_dir_all(root)?;
    let (src, target, fstype) = (c"bpf", c"/sys/fs/bpf", c"bpf");
    // SAFETY: NUL-terminated strings that outlive the call, and no mount data.
    if unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) } != 0 {
        bail!("mounting bpffs at /sys/fs/bpf: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The layout value pinned with the programs under `dir`.
fn pinned_layout(dir: &Path) -> anyhow::Result<u64> {
    let data = MapData::from_pin(dir.join("LAYOUT")).context("opening the pinned LAYOUT map")?;
    let array: Array<MapData, u64> = Array::try_from(Map::from_map_data(data)?)?;
    Ok(array.get(&0, 0)?)
}

/// An exclusive flock on the pin directory itself (bpffs holds no regular
/// files): one agent per pin directory, whatever its state directory.
fn lock_pin_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::MetadataExt as _;
    let file = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    // SAFETY: flock on an fd that `file` keeps open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let holder = file.metadata().ok().and_then(|m| flock_holder(m.dev(), m.ino()));
            bail!(
                "another observer agent{} is using the pin directory {} (one agent per pin directory, whatever its --state-dir): stop it first, or give this one another --pin-dir",
                holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                dir.display()
            );
        }
        return Err(err).with_context(|| format!("locking {}", dir.display()));
    }
    Ok(file)
}

/// The pid holding a flock on (dev, ino), from /proc/locks.
fn flock_holder(dev: u64, ino: u64) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"
        if f.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = f.get(5)?.split(':');
        let (ma, mi, i) = (id.next()?, id.next()?, id.next()?);
        (u32::from_str_radix(ma, 16).ok()? == major
            && u32::from_str_radix(mi, 16).ok()? == minor
            && i.parse::<u64>().ok()? == ino)
            .then(|| f.get(4)?.parse().ok())?
    })
}

/// The id the next cgroup would get: made and removed in the v2 hierarchy
/// (its directory's inode number is its id, as `bpf_get_current_cgroup_id` sees it).
fn scratch_cgroup_id() -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mount = crate::v2_mount::find_v2_mount()?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = mount.join(format!("observer-epoch-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("creating the scratch cgroup {}", dir.display()))?;
    let id = std::fs::metadata(&dir).map(|m| m.ino());
    let removed = std::fs::remove_dir(&dir);
    let id = id.with_context(|| format!("reading {}", dir.display()))?;
    removed.with_context(|| format!("removing the scratch cgroup {}", dir.display()))?;
    Ok(id)
}
