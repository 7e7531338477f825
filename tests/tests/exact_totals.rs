//! Exact totals (issue 11): a row that passes 2^32 calls while the agent is
//! down is counted exactly after its restart. 2^32 real calls take about 18
//! minutes of one core, so the test seeds the kernel's u32 cell through the
//! memory-mapped SLOTS map (as the agent reads it) just below the wrap, and
//! real calls then carry it over, twice.

use std::{
    mem::{offset_of, size_of},
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::Command,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use observer_common::{
    counters::{Abi, CELL_NONE, CELL_SPILLED, Row},
    slot::Slot,
};
use observer_tests::{agent::TestAgent, churn::v2_root, require_root, testprog, unique};

const SLOTS: u32 = 64;
/// getppid on x86_64: what `observer-testprog calls N` makes N times.
const GETPPID: u32 = 110;

/// The pinned SLOTS map, mapped the way the agent maps it.
struct PinnedSlots {
    base: *mut u8,
    len: usize,
}

impl PinnedSlots {
    fn open(pin: &Path) -> Self {
        let path = std::ffi::CString::new(pin.as_os_str().as_encoded_bytes()).unwrap();
        // union bpf_attr for BPF_OBJ_GET: pathname, bpf_fd, file_flags.
        #[repr(C)]
        struct ObjGet {
            pathname: u64,
            bpf_fd: u32,
            file_flags: u32,
        }
        let attr = ObjGet { pathname: path.as_ptr() as u64, bpf_fd: 0, file_flags: 0 };
        const BPF_OBJ_GET: libc::c_long = 7;
        let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, &attr, size_of::<ObjGet>()) };
        assert!(fd >= 0, "BPF_OBJ_GET {}: {}", pin.display(), std::io::Error::last_os_error());
        let len = (size_of::<Slot>() * SLOTS as usize).next_multiple_of(4096);
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd as i32, 0)
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap of {}: {}", pin.display(), std::io::Error::last_os_error());
        unsafe { libc::close(fd as i32) };
        Self { base: base.cast(), len }
    }

    fn slot_of(&self, cgroup_id: u64) -> Option<u32> {
        (0..SLOTS).find(|&s| {
            let at = s as usize * size_of::<Slot>() + offset_of!(Slot, info.cgroup_id);
            unsafe { AtomicU64::from_ptr(self.base.add(at).cast()) }.load(Ordering::Acquire) == cgroup_id
        })
    }

    /// The calls cell the kernel gave `row` of `slot` at its first call.
    fn calls_cell(&self, slot: u32, row: u32) -> &AtomicU32 {
        let cell =
            unsafe { *self.base.add(slot as usize * size_of::<Slot>() + offset_of!(Slot, cell_of) + row as usize) };
        assert!(cell != CELL_NONE && cell != CELL_SPILLED, "row {row} of slot {slot} has no cell of its own ({cell})");
        let at = slot as usize * size_of::<Slot>() + offset_of!(Slot, calls) + usize::from(cell) * 4;
        assert!(at + 4 <= self.len);
        unsafe { AtomicU32::from_ptr(self.base.add(at).cast()) }
    }
}

impl Drop for PinnedSlots {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

fn getppid_calls_in(dir: &Path, n: u64) {
    let script = format!("echo $$ > {}/cgroup.procs && exec {} calls {n}", dir.display(), testprog().display());
    let o = Command::new("sh").args(["-c", &script]).output().expect("sh");
    assert!(o.status.success(), "testprog in {}: {o:?}", dir.display());
}

fn getppid_total(agent: &TestAgent, key: &str) -> Option<u64> {
    let profile = agent.try_profile(key)?;
    profile["syscalls"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == "getppid" && r["abi"] == "x86_64")
        .and_then(|r| r["calls"].as_u64())
}

#[test]
fn a_row_past_2_pow_32_while_the_agent_is_down_is_exact_after_restart() {
    require_root();
    assert_eq!(Row { abi: Abi::X86_64, nr: GETPPID }.index(), GETPPID);
    let mut agent = TestAgent::start(&["--watch", "all", "--slots", &SLOTS.to_string()]);
    let name = format!("observer-exact-{}", unique() % 1_000_000_000);
    let dir = v2_root().join(&name);
    // A plain cgroup's record is keyed by its path.
    let rel = format!("/{name}");
    std::fs::create_dir(&dir).expect("mkdir cgroup");
    let cgroup_id = std::fs::metadata(&dir).expect("cgroup").ino();

    getppid_calls_in(&dir, 5000);
    agent.wait_for("5,000 getppid calls in the profile", || (getppid_total(&agent, &rel)? == 5000).then_some(()));

    // The agent goes down; the pinned programs keep counting.
    agent.kill();
    let slots = PinnedSlots::open(&agent.pin_dir.join("SLOTS"));
    let slot = slots.slot_of(cgroup_id).expect("the cgroup's slot in the pinned SLOTS map");
    let cell = slots.calls_cell(slot, GETPPID);
    assert_eq!(cell.load(Ordering::Relaxed), 5000, "the kernel's cell holds the real calls");
    // Twice: just below the wrap, then 5,000 real calls carry it over.
    for _ in 0..2 {
        cell.store(u32::MAX - 999, Ordering::Relaxed);
        getppid_calls_in(&dir, 5000);
    }
    assert_eq!(cell.load(Ordering::Relaxed), 4000, "the cell wrapped");
    // In the kernel: 2 wraps and 4,000 = 2^33 + 4,000 calls. What the agent
    // adds is the difference from its last reading (5,000, which the record
    // already holds): the record must say 2^33 + 4,000.
    let expected = (1u64 << 33) + 4000;

    agent.spawn();
    let start = Instant::now();
    let total = loop {
        let total = getppid_total(&agent, &rel);
        if total == Some(expected) || start.elapsed() > Duration::from_secs(20) {
            break total;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        total,
        Some(expected),
        "getppid after two wraps while the agent was down: {total:?}, wanted {expected} (one wrap short is {})",
        expected - (1 << 32)
    );
    let status = agent.status();
    assert_eq!(status["counter_wraps_unrecorded"], 0, "{status}");

    // The cgroup ends: its final reading keeps the exact total.
    drop(slots);
    let _ = std::fs::remove_dir(&dir);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if agent.ps().iter().any(|c| c["id"] == rel.as_str() && c["state"] != "running") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(getppid_total(&agent, &rel), Some(expected), "after the cgroup ended");
}
