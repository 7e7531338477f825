//! The agent's metrics in the Prometheus text exposition format (version 0.0.4),
//! rendered from a plain snapshot so the numbers can come from anywhere.

use std::fmt::Write;

/// The numbers one scrape shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub containers_watched: u64,
    pub syscalls_recorded: u64,
    /// Ring-buffer reservations the kernel side could not make.
    pub events_lost: u64,
    pub alerts: u64,
    /// Cgroups that came when every slot (or the cgroup table) was taken.
    pub cgroups_overflow: u64,
    /// Syscalls of such cgroups, counted but not recorded.
    pub calls_unrecorded: u64,
    /// (container name, container id, distinct syscalls seen).
    pub per_container: Vec<(String, String, u64)>,
}

/// The content type to serve [`render`]'s output with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders a snapshot; every family has HELP and TYPE lines, counters end in `_total`.
pub fn render(m: &MetricsSnapshot) -> String {
    let mut out = String::new();
    let scalars = [
        (
            "observer_containers_watched",
            "gauge",
            "Containers whose syscalls are being recorded.",
            m.containers_watched,
        ),
        (
            "observer_syscalls_recorded_total",
            "counter",
            "Syscalls recorded across all watched containers.",
            m.syscalls_recorded,
        ),
        (
            "observer_events_lost_total",
            "counter",
            "Kernel events dropped because the ring buffer was full.",
            m.events_lost,
        ),
        (
            "observer_alerts_total",
            "counter",
            "Alerts raised for syscalls outside a container's profile.",
            m.alerts,
        ),
        (
            "observer_cgroups_overflow_total",
            "counter",
            "Cgroups the kernel could not record because every slot was taken.",
            m.cgroups_overflow,
        ),
        (
            "observer_calls_unrecorded_total",
            "counter",
            "Syscalls of cgroups without a slot: counted, not recorded.",
            m.calls_unrecorded,
        ),
    ];
    for (name, kind, help, value) in scalars {
        header(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    let name = "observer_container_distinct_syscalls";
    header(
        &mut out,
        name,
        "gauge",
        "Distinct syscalls seen per container.",
    );
    for (container, id, count) in &m.per_container {
        let _ = writeln!(
            out,
            "{name}{{name=\"{}\",id=\"{}\"}} {count}",
            escape_label(container),
            escape_label(id)
        );
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escape backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = render(&MetricsSnapshot {
            containers_watched: 2,
            syscalls_recorded: 12345,
            events_lost: 0,
            alerts: 3,
            cgroups_overflow: 4,
            calls_unrecorded: 99,
            per_container: vec![
                ("web".into(), "3f4e2c1b9a8d".into(), 57),
                ("we\"ird\\na\nme".into(), "abc".into(), 1),
            ],
        });
        let want = "\
# HELP observer_containers_watched Containers whose syscalls are being recorded.
# TYPE observer_containers_watched gauge
observer_containers_watched 2
# HELP observer_syscalls_recorded_total Syscalls recorded across all watched containers.
# TYPE observer_syscalls_recorded_total counter
observer_syscalls_recorded_total 12345
# HELP observer_events_lost_total Kernel events dropped because the ring buffer was full.
# TYPE observer_events_lost_total counter
observer_events_lost_total 0
# HELP observer_alerts_total Alerts raised for syscalls outside a container's profile.
# TYPE observer_alerts_total counter
observer_alerts_total 3
# HELP observer_cgroups_overflow_total Cgroups the kernel could not record because every slot was taken.
# TYPE observer_cgroups_overflow_total counter
observer_cgroups_overflow_total 4
# HELP observer_calls_unrecorded_total Syscalls of cgroups without a slot: counted, not recorded.
# TYPE observer_calls_unrecorded_total counter
observer_calls_unrecorded_total 99
# HELP observer_container_distinct_syscalls Distinct syscalls seen per container.
# TYPE observer_container_distinct_syscalls gauge
observer_container_distinct_syscalls{name=\"web\",id=\"3f4e2c1b9a8d\"} 57
observer_container_distinct_syscalls{name=\"we\\\"ird\\\\na\\nme\",id=\"abc\"} 1
";
        assert_eq!(text, want);
    }

    #[test]
    fn no_containers_still_declares_the_family() {
        let text = render(&MetricsSnapshot::default());
        assert!(text.contains("# TYPE observer_container_distinct_syscalls gauge\n"));
        assert!(text.ends_with("gauge\n"));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 6);
    }
}
