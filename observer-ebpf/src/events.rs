//! Writing rare events to the ring buffer; a full buffer is counted, not ignored.

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns,
};
use observer_common::{
    event::{Event, EventKind},
    stats::{self, helper},
};

use crate::{
    failures::count_failure,
    maps::{EVENTS, count_stat},
};

/// Five arguments at most: BPF calls pass arguments in r1-r5 only. The rest
/// (cgroup, pid, comm) is cheap to ask for again on this rare path.
#[inline(never)]
pub fn emit(kind: EventKind, slot: u32, row: u32, phase: u32, nr: i64) {
    let pid_tgid = bpf_get_current_pid_tgid();
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
        // SAFETY: BPF helpers without preconditions.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        // SAFETY: as above.
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
        nr,
        comm: bpf_get_current_comm().unwrap_or_else(|_| {
            count_failure(helper::EVENT_COMM);
            [0; 16]
        }),
        seccomp_mode: crate::task::current().seccomp_mode(),
        _pad: 0,
    });
    entry.submit(0);
}
