//! Loads and attaches the kernel programs, or reopens the copy an earlier agent
//! pinned in bpffs, and gives typed access to their maps.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray, Queue, RingBuf},
    programs::{
        RawTracePoint,
        links::{FdLink, PinnedLink},
    },
};
use observer_common::{config, counters::wrap_key, layout::LAYOUT};

use super::{
    CounterView,
    error::{ProbeError, Step as _, chain},
    offsets::task_offsets,
    require_bpf_privileges,
};

mod pin_dir;
mod slots;

use pin_dir::{ensure_bpffs, link_pin, lock_pin_dir, pinned_layout};

static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/observer"));

/// The object is empty only in a build made with `OBSERVER_SKIP_EBPF_BUILD=fuzz`
/// (observer/build.rs, for the fuzz targets): such a binary must never run as
/// the agent, trace, or reopen pinned programs.
fn require_programs() -> Result<(), ProbeError> {
    if PROGRAM.is_empty() {
        return Err(ProbeError::NotBuilt);
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
    pub fn load(options: LoadOptions) -> Result<Self, ProbeError> {
        let (mut ebpf, slots, logger) = load_object(options)?;
        let programs = if options.timed { TIMED_PROGRAMS } else { PROGRAMS };
        for (name, tracepoint) in programs.into_iter().zip(PROGRAMS) {
            attach(&mut ebpf, name, tracepoint)?;
        }
        let times = if options.timed {
            let map = ebpf.take_map("TIMES").step("no map TIMES")?;
            Some(Array::try_from(map).step("the TIMES map is not an array")?)
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
    pub fn load_pinned(options: LoadOptions, dir: &Path) -> Result<Self, ProbeError> {
        require_programs()?;
        require_bpf_privileges()?;
        ensure_bpffs(dir)?;
        std::fs::create_dir_all(dir).with_step(|| format!("creating {}", dir.display()))?;
        let lock = lock_pin_dir(dir)?;
        let mut probe = Self::open_pinned(options, dir)?;
        probe._pin_lock = Some(lock);
        Ok(probe)
    }

    fn open_pinned(options: LoadOptions, dir: &Path) -> Result<Self, ProbeError> {
        if link_pin(dir, PROGRAMS[0]).exists() {
            match pinned_layout(dir) {
                Ok(found) if found == LAYOUT => {}
                found => {
                    let found = match found {
                        Ok(v) => format!("layout {v:#018x}"),
                        Err(e) => format!("no readable layout ({})", chain(&e)),
                    };
                    tracing::warn!(
                        "the programs pinned under {} were loaded by a build with another layout ({found}, this build has {LAYOUT:#018x}): replacing them with fresh ones (what they counted is lost)",
                        dir.display()
                    );
                    Self::unpin_all(dir).step("removing the pinned programs of another layout")?;
                }
            }
        }
        if link_pin(dir, PROGRAMS[0]).exists() {
            let mut maps = Vec::new();
            for name in MAP_NAMES {
                let data = MapData::from_pin(dir.join(name))
                    .with_step(|| format!("reopening the pinned map {}", dir.join(name).display()))?;
                maps.push(Map::from_map_data(data)?);
            }
            let slots_map = maps.remove(2);
            let slots = match &slots_map {
                Map::Array(data) => data.info()?.max_entries(),
                _ => return Err(ProbeError::Missing("the pinned SLOTS map is not an array".to_owned())),
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
            let mut layout: Array<&mut MapData, u64> = Array::try_from(ebpf.map_mut("LAYOUT").step("no map LAYOUT")?)?;
            layout.set(0, LAYOUT, 0).step("writing the LAYOUT map")?;
        }
        for name in MAP_NAMES.iter().chain([&"LAYOUT"]) {
            // Without pinned links, pinned maps are leftovers of an interrupted start.
            let _ = std::fs::remove_file(dir.join(name));
            ebpf.map(name)
                .with_step(|| format!("no map {name}"))?
                .pin(dir.join(name))
                .with_step(|| format!("pinning {name} in {}", dir.display()))?;
        }
        // Programs are loaded before the maps are taken out: loading needs their fds.
        let mut links = Vec::new();
        for name in PROGRAMS {
            let program: &mut RawTracePoint =
                ebpf.program_mut(name).with_step(|| format!("no program {name}"))?.try_into()?;
            program.load().with_step(|| format!("verifying {name}"))?;
            let id = program.attach(name).with_step(|| format!("attaching {name}"))?;
            links.push((name, FdLink::from(program.take_link(id)?)));
        }
        let mut maps = take_maps(&mut ebpf)?;
        let slots_map = maps.remove(2);
        let mut probe = Self::from_maps(maps, slots_map, slots, false, None)?;
        probe.logger = logger;
        probe.configure(options)?;
        for (name, link) in links {
            link.pin(link_pin(dir, name)).with_step(|| format!("pinning the {name} link"))?;
        }
        Ok(probe)
    }

    /// Detaches and unpins everything a pinned agent left under `dir`; refused
    /// while an agent holds the pin directory.
    pub fn uninstall(dir: &Path) -> Result<bool, ProbeError> {
        if !dir.exists() {
            return Ok(false);
        }
        let _lock = lock_pin_dir(dir)?;
        let found = Self::unpin_all(dir)?;
        let _ = std::fs::remove_dir(dir);
        Ok(found)
    }

    /// Unpins the links and maps of this build and of earlier layouts.
    fn unpin_all(dir: &Path) -> Result<bool, ProbeError> {
        let mut found = false;
        for name in PROGRAMS {
            let pin = link_pin(dir, name);
            if pin.exists() {
                let link = PinnedLink::from_pin(&pin).with_step(|| format!("opening {}", pin.display()))?;
                // Unpinning drops the last reference: the program detaches.
                drop(link.unpin()?);
                found = true;
            }
        }
        for name in MAP_NAMES.iter().chain(&["LAYOUT"]).chain(&OLD_MAP_NAMES) {
            let pin = dir.join(name);
            if pin.exists() {
                std::fs::remove_file(&pin).with_step(|| format!("removing {}", pin.display()))?;
                found = true;
            }
        }
        Ok(found)
    }

    fn from_maps(
        maps: Vec<Map>,
        slots_map: Map,
        slots: u32,
        reused: bool,
        ebpf: Option<Ebpf>,
    ) -> Result<Self, ProbeError> {
        let mut it = maps.into_iter();
        let mut next = |name: &str| it.next().ok_or_else(|| ProbeError::Missing(format!("map {name} missing")));
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
            return Err(ProbeError::Missing("SLOTS is not an array map".to_owned()));
        };
        let counters = CounterView::map(data.fd().as_fd().as_raw_fd(), slots)
            .step("mmap of the SLOTS map (needs BPF_F_MMAPABLE)")?;
        // The mapping stays valid after the map's fd closes: it holds its own reference.
        drop(slots_map);
        Ok(Self { logger: None, _ebpf: ebpf, maps, counters, slots, reused, _pin_lock: None, times: None })
    }

    /// Settings of a fresh probe. In AUTO mode the free slots go in before the
    /// mode is switched on: a cgroup arriving earlier would find none.
    fn configure(&mut self, options: LoadOptions) -> Result<(), ProbeError> {
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
            let first_new = scratch_cgroup_id().step("finding where new cgroup ids start")?;
            self.set_config(config::FIRST_NEW_CGROUP_ID, first_new)?;
            tracing::debug!(first_new, "cgroups with smaller ids started before the programs were attached");
        }
        Ok(())
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
}

/// Empty programs on `sys_enter` (and `sys_exit` when `both`): the cost floor,
/// for benchmarks. They stay attached while the returned object lives.
pub fn load_floor(both: bool) -> Result<Ebpf, ProbeError> {
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
            ebpf.program_mut(name).with_step(|| format!("no program {name}"))?.try_into()?;
        program.load().with_step(|| format!("verifying {name}"))?;
        program.attach(tracepoint).with_step(|| format!("attaching {name}"))?;
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

fn load_object(options: LoadOptions) -> Result<(Ebpf, u32, Option<KernelLog>), ProbeError> {
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
        .step("loading observer's eBPF object")?;
    // Before the programs load: their log map must stay open.
    let mut ebpf = ebpf;
    let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();
    Ok((ebpf, slots, logger))
}

fn attach(ebpf: &mut Ebpf, name: &str, tracepoint: &str) -> Result<(), ProbeError> {
    let program: &mut RawTracePoint = ebpf.program_mut(name).with_step(|| format!("no program {name}"))?.try_into()?;
    program.load().with_step(|| format!("verifying {name}"))?;
    program
        .attach(tracepoint)
        .with_step(|| format!("attaching to the raw tracepoint {name} (does this kernel have raw tracepoints?)"))?;
    Ok(())
}

fn take_maps(ebpf: &mut Ebpf) -> Result<Vec<Map>, ProbeError> {
    MAP_NAMES.iter().map(|name| ebpf.take_map(name).with_step(|| format!("no map {name}"))).collect()
}

/// The id the next cgroup would get: made and removed in the v2 hierarchy
/// (its directory's inode number is its id, as `bpf_get_current_cgroup_id` sees it).
fn scratch_cgroup_id() -> Result<u64, ProbeError> {
    use std::os::unix::fs::MetadataExt as _;
    let mount = crate::v2_mount::find_v2_mount()?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = mount.join(format!("observer-epoch-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).with_step(|| format!("creating the scratch cgroup {}", dir.display()))?;
    let id = std::fs::metadata(&dir).map(|m| m.ino());
    let removed = std::fs::remove_dir(&dir);
    let id = id.with_step(|| format!("reading {}", dir.display()))?;
    removed.with_step(|| format!("removing the scratch cgroup {}", dir.display()))?;
    Ok(id)
}
