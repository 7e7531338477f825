//! `raw_syscalls:sys_exit`: counts errors and seccomp denials.
//!
//! Raw tracepoint prototype (include/trace/events/syscalls.h, v6.18):
//! `TP_PROTO(struct pt_regs *regs, long ret)`; the syscall number is `regs->orig_ax`.
//! A call seccomp denies with an errno skips `sys_enter` but still reaches
//! here (kernel/entry/common.c, v6.18: `syscall_trace_enter` returns -1 before
//! `trace_sys_enter`, and the exit work runs regardless).

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use observer_common::{
    config,
    counters::{ROW_INVALID, counter, row_of, wrap_key},
    event::EventKind,
    marker::Fingerprint,
    slot::{SLOT_IGNORED, phase},
    stats::{self, helper},
};

use crate::{
    events::emit,
    failures::{count_failure, noteless_enter},
    fingerprint::CallRegs,
    maps::{
        NOTES, SLOTS, TIMES, add_to_entry, add_u64, bump, cell_for, config, count_stat, is_slot, lookup_cached,
        lookup_slow, opaque, set_bit,
    },
    task,
};

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    let _ = record_exit(&ctx);
    0
}

/// `observer trace --time`: every exit with a live note of its own thread adds
/// the time since its enter to the row, the way `strace -c -w` measures (from
/// the call's entry to its return, sleeping included), then does what
/// `sys_exit` does.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit_timed(ctx: RawTracePointContext) -> i32 {
    // SAFETY: a BPF helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let _ = time_exit(&ctx, now);
    let _ = record_exit(&ctx);
    0
}

#[inline(always)]
fn time_exit(ctx: &RawTracePointContext, now: u64) -> Option<()> {
    let regs: *const pt_regs = ctx.arg(0);
    let nr = syscall_number(regs)? as u32;
    let note = NOTES.get(task::current().ptr(), false)?;
    if note.live == 0 || note.nr != nr || note.start_ns == 0 {
        return None;
    }
    let ret: i64 = ctx.arg(1);
    if ret >= 0 {
        // An error exit consumes the note in `record_exit`; a successful one here.
        note.live = 0;
    }
    let (row, start) = (note.row, note.start_ns);
    // Counted once: a later exit of this thread without an enter adds nothing.
    note.start_ns = 0;
    let cell = TIMES.get_ptr_mut(opaque(row))?;
    // SAFETY: a valid, aligned array map element; changed only atomically.
    add_u64(unsafe { &mut *cell }, now.saturating_sub(start));
    Some(())
}

#[inline(always)]
fn record_exit(ctx: &RawTracePointContext) -> Option<()> {
    // `TP_PROTO(struct pt_regs *regs, long ret)`.
    let ret: i64 = ctx.arg(1);
    if ret >= 0 {
        // Success needs no accounting, and costs nothing more here. The note its
        // enter left stays; a later exit matches a note only with the same thread
        // and syscall number (see docs on denials for the one corner this leaves).
        return None;
    }
    let task = task::current();
    let count_errors = config(config::COUNT_ERRORS) != 0;
    if !count_errors && task.seccomp_mode() != task::SECCOMP_MODE_FILTER {
        // Nothing to count: no filter, so no denial (and `sys_enter` left no
        // note to consume).
        return None;
    }
    // An unwatched cgroup (the cache says so, one inlined load) has no notes
    // and no slot: nothing to count, and no hash lookups on the way there.
    if lookup_cached(task.cgroup_id()) == Some(SLOT_IGNORED) {
        return None;
    }
    let Some(regs) = CallRegs::read(ctx.arg(0)) else {
        count_failure(helper::EXIT_READ_NR);
        return None;
    };
    let nr = regs.orig_rax as i64;
    let abi = task.abi();
    // A call the task's filter allows whatever its arguments was not denied
    // (the bit cannot have been clear at its seccomp check: filters are only
    // added, and each one's bits are ANDed with its parent's). Only counting
    // errors needs its note then; otherwise this exit is done.
    let filtered = task.seccomp_mode() == task::SECCOMP_MODE_FILTER;
    let decided = filtered && !task.filter_always_allows(abi, nr);
    if !count_errors && !decided {
        return None;
    }
    if let Some(note) = NOTES.get(task.ptr(), false)
        && note.live != 0
        && note.nr == nr as u32
        // A call its filter decides on matches only a note of the same call
        // to the filter: the same filter, ABI, arguments and instruction
        // pointer (see `observer_common::marker`).
        && (!decided
            || (note.filter != 0
                && note.filter == task.filter_addr()
                && note.abi == abi
                && same(&note.fingerprint, &regs.fingerprint(abi))))
    {
        note.live = 0;
        if count_errors {
            // SAFETY: an array map element, valid while the program runs; errors
            // change only through `bump`'s atomic add.
            let record = unsafe { &mut *SLOTS.get_ptr_mut(note.slot)? };
            // The slot may have changed owner while the thread slept in the call.
            if record.info.cgroup_id == note.cgroup_id {
                let cell = cell_for(record, note.row);
                bump(&mut record.errors, cell, note.slot, counter::ERRORS, note.row);
            }
        }
        return None;
    }
    if !decided {
        // Counting errors, and this call's note is gone (it could not be
        // made, or the program attached during the call): not a denial.
        return None;
    }
    exit_without_enter(task, nr, ret)
}

/// Whether two fingerprints are equal, word by word (`==` on arrays becomes
/// a call to a `memcmp` subprogram).
#[inline(always)]
fn same(a: &Fingerprint, b: &Fingerprint) -> bool {
    a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `regs->orig_ax`: the number of the syscall that is returning. A failed read
/// is counted (`stats::helper::EXIT_READ_NR`) and the exit is not.
#[inline(always)]
fn syscall_number(regs: *const pt_regs) -> Option<i64> {
    // SAFETY: only the field's address is computed here (no load); the helper
    // reads it and fails cleanly on a bad pointer.
    match unsafe { bpf_probe_read_kernel(&raw const (*regs).orig_rax) } {
        Ok(nr) => Some(nr as i64),
        Err(_) => {
            count_failure(helper::EXIT_READ_NR);
            None
        }
    }
}

/// An error exit with no enter of its own on this CPU: counted as a denial when
/// the task is under a seccomp filter and the errno is one a filter returns.
#[inline(never)]
fn exit_without_enter(task: task::Task, nr: i64, ret: i64) -> Option<()> {
    let errno = (-ret) as u64;
    if errno >= 64 || config(config::DENIAL_ERRNOS) & (1u64 << errno) == 0 {
        return None;
    }
    if task.seccomp_mode() != task::SECCOMP_MODE_FILTER {
        return None;
    }
    if noteless_enter(task.pid_tgid().0, nr) {
        // It had an enter, whose note could not be made: not a denial.
        return None;
    }
    let cgroup_id = task.cgroup_id();
    let slot = match lookup_slow(cgroup_id) {
        Some(slot) if is_slot(slot) => slot,
        // Unwatched, and the cache had lost its entry (the agent clears it when
        // it ignores a cgroup): not looked for, as `record_exit` does with the cache.
        Some(SLOT_IGNORED) => return None,
        _ => {
            count_stat(stats::DENIALS_UNATTRIBUTED);
            return None;
        }
    };
    if u64::from(task.pid_tgid().1) == config(config::AGENT_TGID) {
        return None;
    }
    let row = row_of(task.abi(), nr);
    // SAFETY: an array map element, valid while the program runs; the fields
    // written here change only through atomic instructions (`bump`, `set_bit`).
    let record = unsafe { &mut *SLOTS.get_ptr_mut(slot)? };
    if !record.info.owned_by(cgroup_id) {
        // A stale CGROUPS entry: the slot is being released or is someone else's.
        count_stat(stats::DENIALS_UNATTRIBUTED);
        return None;
    }
    add_to_entry(wrap_key(slot, counter::SPILL | counter::DENIED, row));
    if row == ROW_INVALID {
        return None;
    }
    let info = &mut record.info;
    let word = info.denied_seen.get_mut(opaque(row / 64) as usize)?;
    if set_bit(word, 1u64 << (row % 64)) {
        let exe = task.exe_inode();
        let phase = if info.is_init(exe.addr(), || exe.tag()) { phase::INIT_AFTER_FILTER } else { phase::CONTAINER };
        emit(EventKind::FirstDenied, slot, row, phase, nr);
    }
    Some(())
}
