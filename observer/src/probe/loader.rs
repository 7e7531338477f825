//! Loads and attaches the kernel programs, and gives typed access to their maps.

use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, Queue},
    programs::RawTracePoint,
};
use observer_common::{config, slot::Slot, stats};

use super::{CounterView, TaskOffsets, require_bpf_privileges};

static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/observer"));

#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// How many cgroups can be recorded at once.
    pub slots: u32,
    /// `config::mode::*`.
    pub mode: u64,
    pub count_errors: bool,
}

/// The loaded, attached kernel programs.
pub struct Probe {
    ebpf: Ebpf,
    slots: u32,
    counters: CounterView,
}

impl Probe {
    pub fn load(options: LoadOptions) -> anyhow::Result<Self> {
        require_bpf_privileges()?;
        let offsets = TaskOffsets::from_kernel()?;
        let slots = options.slots.max(1);
        let mut ebpf = EbpfLoader::new()
            .override_global("TASK_STATUS_OFFSET", &offsets.status, true)
            .override_global("TASK_EXEC_ID_OFFSET", &offsets.exec_id, true)
            .override_global("TASK_SECCOMP_MODE_OFFSET", &offsets.seccomp_mode, true)
            .map_max_entries("CGROUPS", slots.saturating_mul(4).max(64))
            .map_max_entries("FREE_SLOTS", slots)
            .map_max_entries("SLOTS", slots)
            .load(PROGRAM)
            .context("loading observer's eBPF object")?;
        {
            let mut cfg: Array<_, u64> = Array::try_from(ebpf.map_mut("CONFIG").context("no CONFIG map")?)?;
            cfg.set(config::AGENT_TGID, u64::from(std::process::id()), 0)?;
            cfg.set(config::MODE, options.mode, 0)?;
            cfg.set(config::COUNT_ERRORS, u64::from(options.count_errors), 0)?;
            cfg.set(config::DENIAL_ERRNOS, config::DEFAULT_DENIAL_ERRNOS, 0)?;
        }
        if options.mode == config::mode::AUTO {
            let mut free: Queue<_, u32> = Queue::try_from(ebpf.map_mut("FREE_SLOTS").context("no FREE_SLOTS map")?)?;
            for slot in 0..slots {
                free.push(slot, 0)?;
            }
        }
        let counters = {
            let map = ebpf.map("SLOTS").context("no SLOTS map")?;
            let aya::maps::Map::Array(data) = map else {
                return Err(anyhow!("SLOTS is not an array map"));
            };
            CounterView::map(map_fd(data), slots)?
        };
        for name in ["sys_enter", "sys_exit"] {
            let program: &mut RawTracePoint = ebpf
                .program_mut(name)
                .with_context(|| format!("no program {name}"))?
                .try_into()?;
            program.load().with_context(|| format!("verifying {name}"))?;
            program
                .attach(name)
                .with_context(|| format!("attaching to the raw tracepoint {name} (does this kernel have raw tracepoints?)"))?;
        }
        Ok(Self { ebpf, slots, counters })
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    pub fn counters(&self) -> &CounterView {
        &self.counters
    }

    /// Records `cgroup_id` in `slot` (explicit mode). `init_exec_id` is the
    /// exec id that marks the runtime's init (u64::MAX: nothing is init).
    pub fn watch(&mut self, cgroup_id: u64, slot: u32, init_exec_id: u64) -> anyhow::Result<()> {
        self.counters.reset(slot, cgroup_id, init_exec_id);
        let mut cgroups: HashMap<_, u64, u32> = HashMap::try_from(self.ebpf.map_mut("CGROUPS").context("no CGROUPS map")?)?;
        cgroups.insert(cgroup_id, slot, 0)?;
        Ok(())
    }

    /// Totals of the per-CPU loss counters (`stats::*`).
    pub fn stats(&self) -> anyhow::Result<[u64; stats::LEN as usize]> {
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(self.ebpf.map("STATS").context("no STATS map")?)?;
        let mut out = [0u64; stats::LEN as usize];
        for (i, total) in out.iter_mut().enumerate() {
            *total = map.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

fn map_fd(data: &MapData) -> i32 {
    data.fd().as_fd().as_raw_fd()
}

/// Size of the record the kernel keeps per slot (for memory reports).
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
