//! `raw_syscalls:sys_enter`: counts each call in its cgroup's slot and reports
//! the first use of a syscall per start phase.
//!
//! Raw tracepoint prototype (include/trace/events/syscalls.h, v6.18):
//! `TP_PROTO(struct pt_regs *regs, long id)`.

use aya_ebpf::{
    EbpfContext as _,
    bindings::BPF_NOEXIST,
    helpers::bpf_send_signal,
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use aya_log_ebpf::warn;
use observer_common::{
    config,
    counters::{ROW_INVALID, row_of},
    event::EventKind,
    marker::EnterMarker,
    slot::{SLOT_OVERFLOW, SlotInfo, enforce, phase},
    stats,
};

use crate::{
    events::emit,
    maps::{
        CGROUPS, FREE_SLOTS, MARKERS, SLOTS, bump, config, count_stat, is_slot, lookup_cached, lookup_slow, opaque,
        remember, set_bit,
    },
    task,
};

const SIGKILL: u32 = 9;

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let _ = record_enter(&ctx);
    0
}

#[inline(always)]
fn record_enter(ctx: &RawTracePointContext) -> Option<()> {
    let task = task::current();
    let cgroup_id = task.cgroup_id();
    let mut slot = match lookup_cached(cgroup_id) {
        Some(slot) => slot,
        None => match lookup_slow(cgroup_id) {
            Some(slot) => slot,
            None => open_slot(ctx, cgroup_id)?,
        },
    };
    if !is_slot(slot) {
        if slot == SLOT_OVERFLOW {
            count_stat(stats::CALLS_UNRECORDED);
        }
        return None;
    }
    let mut record = unsafe { &mut *SLOTS.get_ptr_mut(slot)? };
    if record.info.cgroup_id != cgroup_id {
        // A stale cache entry (the slot was freed and reused): ask the hash.
        slot = lookup_slow(cgroup_id)?;
        if !is_slot(slot) {
            return None;
        }
        record = unsafe { &mut *SLOTS.get_ptr_mut(slot)? };
    }
    let (tid, tgid) = task.pid_tgid();
    if u64::from(tgid) == config(config::AGENT_TGID) {
        return None;
    }
    let args = ctx.as_ptr() as *const u64;
    let nr = unsafe { *args.add(1) } as i64;
    let row = row_of(task.abi(), nr);
    bump(&mut record.calls, row);
    if let Some(marker) = MARKERS.get_ptr_mut(0) {
        unsafe {
            *marker = EnterMarker {
                tid,
                nr: nr as u32,
                slot,
                row,
            }
        };
    }
    if row == ROW_INVALID {
        return None;
    }
    let info = &mut record.info;
    let phase = phase_of(task, info);
    let word = opaque(row / 64) as usize;
    let bit = 1u64 << (row % 64);
    let seen = info.seen.get_mut(phase as usize)?.get_mut(word)?;
    if *seen & bit == 0 && set_bit(seen, bit) {
        emit(EventKind::FirstSeen, slot, row, phase, nr);
    }
    if phase == phase::CONTAINER && info.enforce != enforce::OFF {
        let allowed = *info.allowed.get(word)?;
        if allowed & bit == 0 {
            if info.enforce == enforce::KILL {
                // Lands when the task returns to user space: the syscall itself runs.
                let _ = unsafe { bpf_send_signal(SIGKILL) };
            }
            let violated = info.violated.get_mut(word)?;
            if set_bit(violated, bit) || info.enforce == enforce::KILL {
                emit(EventKind::Enforce, slot, row, phase, nr);
            }
        }
    }
    Some(())
}

/// Which start phase the current task is in (see `SlotInfo::init_exe`).
#[inline(always)]
fn phase_of(task: task::Task, info: &SlotInfo) -> u32 {
    if task.exe() != info.init_exe {
        phase::CONTAINER
    } else if task.seccomp_mode() == task::SECCOMP_MODE_FILTER {
        phase::INIT_AFTER_FILTER
    } else {
        phase::INIT_BEFORE_FILTER
    }
}

/// First syscall of a cgroup not in `CGROUPS`. In `AUTO` mode it gets a slot at
/// once, so a container's start is recorded from its first call; user space
/// then decides whether to keep it.
#[inline(never)]
fn open_slot(ctx: &RawTracePointContext, cgroup_id: u64) -> Option<u32> {
    if config(config::MODE) != config::mode::AUTO {
        return None;
    }
    let slot = FREE_SLOTS.pop().ok().flatten().unwrap_or(SLOT_OVERFLOW);
    if slot != SLOT_OVERFLOW {
        let info = unsafe { &mut (*SLOTS.get_ptr_mut(slot)?).info };
        info.cgroup_id = cgroup_id;
        info.init_exe = task::current().exe();
    }
    if CGROUPS.insert(&cgroup_id, &slot, u64::from(BPF_NOEXIST)).is_err() {
        // Another CPU got there first, or the map is full.
        if slot != SLOT_OVERFLOW {
            let _ = FREE_SLOTS.push(&slot, 0);
        }
        return match unsafe { CGROUPS.get(&cgroup_id) } {
            Some(slot) => Some(*slot),
            None => {
                count_stat(stats::CGROUPS_OVERFLOW);
                None
            }
        };
    }
    remember(cgroup_id, slot);
    if slot == SLOT_OVERFLOW {
        count_stat(stats::CGROUPS_OVERFLOW);
        // Once per cgroup: its later calls find the marker and only count.
        warn!(ctx, "cgroup {} arrived with every slot taken; its calls are counted as unrecorded", cgroup_id);
    }
    emit(EventKind::NewCgroup, slot, ROW_INVALID, 0, -1);
    Some(slot)
}
