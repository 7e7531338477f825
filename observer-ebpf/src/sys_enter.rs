//! `raw_syscalls:sys_enter`: counts each call in its cgroup's slot and reports
//! the first use of a syscall per start phase.
//!
//! Raw tracepoint prototype (include/trace/events/syscalls.h, v6.18):
//! `TP_PROTO(struct pt_regs *regs, long id)`.

use aya_ebpf::{
    bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext,
};
use aya_log_ebpf::warn;
use observer_common::{
    args::arg_kind,
    config,
    counters::{ROW_INVALID, counter, row_of},
    event::EventKind,
    marker::EnterMarker,
    slot::{NO_INIT, SLOT_OVERFLOW, SlotInfo, enforce, flags, init_exe_for, phase},
    stats::{self, helper},
};

use crate::{
    args,
    events::emit,
    failures::{kill_current, note_failed},
    fingerprint::CallRegs,
    maps::{
        CGROUPS, FREE_SLOTS, NOTES, SLOTS, bump, cell_for, config, count_stat, is_slot, lookup_cached, lookup_slow,
        opaque, remember, set_bit,
    },
    task,
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let _ = record_enter::<false>(&ctx);
    0
}

/// The same, also stamping the thread's note with the time of the enter
/// (`observer trace --time`). A program of its own, so that the agent's
/// programs never pay for the clock.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_timed(ctx: RawTracePointContext) -> i32 {
    let _ = record_enter::<true>(&ctx);
    0
}

#[inline(always)]
fn record_enter<const TIMED: bool>(ctx: &RawTracePointContext) -> Option<()> {
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
    // SAFETY: an array map element: valid while the program runs (elements are
    // never freed) and checked in bounds by the helper. Other CPUs and the agent
    // write it at the same time: counters and bitmaps change only through atomic
    // instructions (`bump`, `set_bit`), and the fields the agent sets are read
    // as single words (see `SlotInfo`).
    let mut record = unsafe { &mut *SLOTS.get_ptr_mut(slot)? };
    if !record.info.owned_by(cgroup_id) {
        // A stale cache entry (the slot was freed and reused): ask the hash.
        slot = lookup_slow(cgroup_id)?;
        if !is_slot(slot) {
            if slot == SLOT_OVERFLOW {
                count_stat(stats::CALLS_UNRECORDED);
            }
            return None;
        }
        // SAFETY: as above.
        record = unsafe { &mut *SLOTS.get_ptr_mut(slot)? };
        if !record.info.owned_by(cgroup_id) {
            // The hash is stale too: user space is releasing this slot, or it
            // went to another cgroup meanwhile. Never count in someone else's slot.
            return None;
        }
    }
    // Only the agent's own cgroup pays for telling the agent's calls apart.
    if record.info.flags & flags::AGENT_HERE != 0 && u64::from(task.pid_tgid().1) == config(config::AGENT_TGID) {
        return None;
    }
    // `TP_PROTO(struct pt_regs *regs, long id)`: the syscall number is argument 1.
    let nr: i64 = ctx.arg(1);
    let abi = task.abi();
    let row = row_of(abi, nr);
    let cell = cell_for(record, row);
    bump(&mut record.calls, cell, slot, counter::CALLS, row);
    // The note tells `sys_exit` that an error exit had an enter: one with none
    // under a seccomp filter is a denial. Only a call the task's filter may
    // deny needs it: an error of a call whose bit is set in the kernel's
    // seccomp action cache is never a denial (`Task::filter_always_allows`),
    // and `sys_exit` checks the same bit. So a filtered task pays the note (a
    // task storage helper call, and one more to read its fingerprint) only for
    // the few calls its filter decides on; errors are counted and calls timed
    // from a note of every call. A task without a filter cannot be denied.
    // Filters are never removed: a filtered task stays filtered.
    let filtered = task.seccomp_mode() == task::SECCOMP_MODE_FILTER;
    let decided = filtered && !task.filter_always_allows(abi, nr);
    if TIMED || decided || config(config::COUNT_ERRORS) != 0 {
        note_enter::<TIMED>(ctx, task, decided, nr, abi, slot, row, cgroup_id);
    }
    let info = &mut record.info;
    if row == ROW_INVALID {
        // No bitmap has a bit for it, but enforcement still applies: an x32 or
        // out-of-range number is never in a profile.
        if info.enforce != enforce::OFF && phase_of(task, info) == phase::CONTAINER {
            if info.enforce == enforce::KILL {
                kill_current(helper::KILL_INVALID_ROW);
            }
            let first = info.flags & flags::INVALID_VIOLATED == 0;
            if first {
                info.flags |= flags::INVALID_VIOLATED;
            }
            if first || info.enforce == enforce::KILL {
                emit(EventKind::Enforce, slot, row, phase::CONTAINER, nr);
            }
        }
        return None;
    }
    let phase = phase_of(task, info);
    if phase != phase::INIT_BEFORE_FILTER
        && let Some(kind) = arg_kind(abi, nr)
    {
        let _ = args::record(ctx, &mut record.args, kind, abi);
    }
    let info = &mut record.info;
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
                kill_current(helper::KILL_VIOLATION);
            }
            let violated = info.violated.get_mut(word)?;
            if set_bit(violated, bit) || info.enforce == enforce::KILL {
                emit(EventKind::Enforce, slot, row, phase, nr);
            }
        }
    }
    Some(())
}

/// Leaves the thread's enter note. `decided`: a call the task's filter may
/// deny, whose note carries the call's fingerprint (see
/// `observer_common::marker`). A note that cannot be made, or a fingerprint
/// that cannot be read, is counted and marked in `NOTELESS`: that call's
/// error exit is then neither an error nor a denial.
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "the note's fields, each from the caller's locals")]
fn note_enter<const TIMED: bool>(
    ctx: &RawTracePointContext,
    task: task::Task,
    decided: bool,
    nr: i64,
    abi: u32,
    slot: u32,
    row: u32,
    cgroup_id: u64,
) {
    let Some(note) = NOTES.get(task.ptr(), true) else {
        note_failed(task, nr, helper::NOTE_CREATE);
        return;
    };
    let start_ns = if TIMED {
        // SAFETY: a BPF helper without preconditions.
        unsafe { bpf_ktime_get_ns() }
    } else {
        0
    };
    let (filter, fingerprint) = if decided {
        // `TP_PROTO(struct pt_regs *regs, long id)`: the saved user registers.
        match CallRegs::read(ctx.arg(0)) {
            Some(regs) => (task.filter_addr(), regs.fingerprint(abi)),
            None => {
                note.live = 0;
                note_failed(task, nr, helper::ARGS_READ_REGS);
                return;
            }
        }
    } else {
        (0, [0; 7])
    };
    *note = EnterMarker { nr: nr as u32, live: 1, slot, row, cgroup_id, start_ns, filter, abi, _pad: 0, fingerprint };
}

/// Which start phase the current task is in (see `SlotInfo::init_exe`).
#[inline(always)]
fn phase_of(task: task::Task, info: &mut SlotInfo) -> u32 {
    if info.init_exe == NO_INIT && info.flags & flags::LEARN_INIT == 0 {
        // No init, and none to learn (a container that started unseen, with no
        // filter): every task is the container's, without reading the chain.
        return phase::CONTAINER;
    }
    let exe = task.exe_inode();
    if !info.is_init(exe.addr(), || exe.tag()) {
        if info.init_exe == NO_INIT && info.learns_init_from(exe.addr(), task.seccomp_mode()) {
            // A runtime's init that came from outside (see `flags::LEARN_INIT`).
            // The tag first: a CPU that reads the new address compares the new tag.
            info.init_tag = exe.tag();
            info.init_exe = exe.addr();
            return phase::INIT_BEFORE_FILTER;
        }
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
        // SAFETY: an array map element, valid while the program runs. The slot
        // came from FREE_SLOTS and is not yet published in CGROUPS: no other CPU
        // writes it meanwhile.
        let info = unsafe { &mut (*SLOTS.get_ptr_mut(slot)?).info };
        // Claimed before it is published: a CPU that finds the slot through
        // CGROUPS checks its owner.
        let task = task::current();
        let exe = task.exe_inode();
        let init_exe = init_exe_for(cgroup_id, config(config::FIRST_NEW_CGROUP_ID), exe.addr());
        let init_tag = if init_exe == NO_INIT { 0 } else { exe.tag() };
        // A container that started unseen, whose opener is filtered, learns its
        // runtime's init from the first unfiltered task (a `docker exec`).
        let learn = init_exe == NO_INIT && task.seccomp_mode() == task::SECCOMP_MODE_FILTER;
        let agent_here = cgroup_id == config(config::AGENT_CGROUP_ID);
        info.claim(
            cgroup_id,
            init_exe,
            init_tag,
            if learn { flags::LEARN_INIT } else { 0 } | if agent_here { flags::AGENT_HERE } else { 0 },
        );
    }
    if CGROUPS.insert(cgroup_id, slot, u64::from(BPF_NOEXIST)).is_err() {
        // Another CPU got there first, or the map is full.
        if slot != SLOT_OVERFLOW {
            // A free slot owns nothing: left claimed, user space would take it
            // for a live cgroup's (an agent's restart adopts such slots).
            if let Some(record) = SLOTS.get_ptr_mut(slot) {
                // SAFETY: as above: claimed here, never published.
                unsafe { (*record).info.unclaim() };
            }
            let _ = FREE_SLOTS.push(slot, 0);
        }
        // SAFETY: the value is copied out at once; an entry deleted meanwhile
        // leaves a stale slot number, which every user checks against its owner.
        return match unsafe { CGROUPS.get(cgroup_id) } {
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
