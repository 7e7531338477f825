//! Rare events the kernel streams to user space through the `EVENTS` ring buffer.

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A cgroup made its first syscall and got a slot (or `SLOT_OVERFLOW`).
    NewCgroup = 1,
    /// A row was used for the first time in a phase of a slot.
    FirstSeen = 2,
    /// A row was denied by seccomp for the first time in a slot.
    FirstDenied = 3,
    /// A container's own phase used a row its enforced profile does not allow.
    Enforce = 4,
}

impl EventKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::NewCgroup,
            2 => Self::FirstSeen,
            3 => Self::FirstDenied,
            4 => Self::Enforce,
            _ => return None,
        })
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Event {
    /// `EventKind` as u32 (an enum read from the kernel could hold any value).
    pub kind: u32,
    pub slot: u32,
    /// Row (ABI and number) for syscall events.
    pub row: u32,
    /// `slot::phase::*`.
    pub phase: u32,
    pub tgid: u32,
    pub tid: u32,
    pub cgroup_id: u64,
    /// `bpf_ktime_get_boot_ns`, for latency measurements.
    pub ktime_ns: u64,
    /// Raw syscall number (also for the invalid row).
    pub nr: i64,
    pub comm: [u8; 16],
    /// The calling task's seccomp mode (0 none, 1 strict, 2 filter) when the
    /// event was made: what the kernel saw, even for a process gone by the time
    /// the agent could read /proc.
    pub seccomp_mode: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<Event>() == 72);

// SAFETY: `#[repr(C)]` integers and arrays of integers, no implicit padding
// (size checked above), and every bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for Event {}
