//! Writing rare events to the ring buffer; a full buffer is counted, not ignored.

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_ktime_get_boot_ns};
use observer_common::{event::{Event, EventKind}, stats};

use crate::maps::{EVENTS, count_stat};

#[inline(never)]
pub fn emit(kind: EventKind, slot: u32, row: u32, phase: u32, nr: i64, cgroup_id: u64, pid_tgid: u64) {
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_stat(stats::EVENTS_LOST);
        return;
    };
    entry.write(Event {
        kind: kind as u32,
        slot,
        row,
        phase,
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        cgroup_id,
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
        nr,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    });
    entry.submit(0);
}
