//! Failed helper calls: each is counted by its call site (`stats::helper`),
//! and none is taken for something it is not. The functions here run only
//! on a helper's failure branch (or, for `noteless_enter`, on the way to a
//! denial), never on the path every syscall takes.

use aya_ebpf::{bindings::BPF_ANY, helpers::bpf_send_signal};
use observer_common::stats::helper;

use crate::{
    maps::{NOTELESS, count_stat},
    task,
};

const SIGKILL: u32 = 9;

/// Counts one failed call of the helper at `site` (`stats::helper::*`).
#[inline(always)]
pub fn count_failure(site: u32) {
    count_stat(site);
}

/// SIGKILLs the current task (it lands when the task returns to user space:
/// the syscall itself runs). A signal that could not be queued is counted at
/// `site`: an enforcer whose kill failed must say so.
#[inline(always)]
pub fn kill_current(site: u32) {
    // SAFETY: a BPF helper without preconditions (it signals the current task).
    if unsafe { bpf_send_signal(SIGKILL) } != 0 {
        count_failure(site);
    }
}

/// The thread's enter note could not be made (no memory, or its storage busy
/// on this CPU), or its fingerprint could not be read: counted at `site`, and
/// the call is marked in `NOTELESS` so that its error exit, finding no note,
/// is not taken for a seccomp denial.
#[inline(never)]
pub fn note_failed(task: task::Task, nr: i64, site: u32) {
    count_failure(site);
    let tid = task.pid_tgid().0;
    if NOTELESS.insert(tid, nr as u32, u64::from(BPF_ANY)).is_err() {
        count_failure(helper::NOTELESS_INSERT);
    }
}

/// Whether the error exit of syscall `nr` by thread `tid`, which found no note,
/// is one whose note could not be made (`note_failed`): then it is neither an
/// error nor a denial. The mark is used once; a mark left by a call that
/// succeeded is dropped by the thread's next exit that reaches here.
#[inline(never)]
pub fn noteless_enter(tid: u32, nr: i64) -> bool {
    // SAFETY: the value is copied out at once.
    let Some(marked) = (unsafe { NOTELESS.get(tid) }).copied() else {
        return false;
    };
    // Only this thread writes or removes its key, and it runs on one CPU at a
    // time: the entry just read is there to remove.
    let _ = NOTELESS.remove(tid);
    marked == nr as u32
}
