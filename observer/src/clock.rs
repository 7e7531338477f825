//! Time as observer keeps it: RFC 3339 strings in records, compared as times;
//! kernel timestamps (CLOCK_BOOTTIME) turned into wall-clock time.

/// CLOCK_BOOTTIME, the clock `bpf_ktime_get_boot_ns` reads.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The wall-clock time (RFC 3339) of a kernel timestamp taken with
/// `bpf_ktime_get_boot_ns`: now, minus how long ago that was on CLOCK_BOOTTIME.
/// Right also for events read long after they happened (the agent was down).
pub fn wall_time_of(ktime_ns: u64) -> String {
    time_of(ktime_ns).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The wall-clock time of a kernel (boot-time) timestamp.
pub fn time_of(ktime_ns: u64) -> time::OffsetDateTime {
    let ago = boottime_ns().saturating_sub(ktime_ns);
    time::OffsetDateTime::now_utc() - std::time::Duration::from_nanos(ago)
}

/// An RFC 3339 time as kept in records; compared as times, never as text
/// (fractions of a second have varying digits).
pub fn parse_time(t: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
