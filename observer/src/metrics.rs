//! The agent's metrics in the Prometheus text exposition format (version 0.0.4),
//! rendered from a plain snapshot so the numbers can come from anywhere.
//! prometheus-client writes the text (names, escaping, `_total` on counters).

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, prometheus_text},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

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
    /// (call site, failed calls) of each BPF helper call site in the kernel
    /// programs (`observer_common::stats::helper::SITES`).
    pub helper_failures: Vec<(&'static str, u64)>,
    /// (container name, container id, distinct syscalls seen).
    pub per_container: Vec<(String, String, u64)>,
    /// (output, its counts) for each alert output asked for (`syslog`, `webhook`).
    pub alert_outputs: Vec<(&'static str, observer_contract::alerts::OutputCounts)>,
    /// With `agent --profiles`: containers whose image has no profile.
    pub containers_without_image_profile: Option<u64>,
}

/// The content type to serve [`render`]'s output with.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Renders a snapshot; every family has HELP and TYPE lines, counters end in
/// `_total` (the encoder adds it: counters are registered without it). The
/// encoder's errors are its writer's, and a `String` takes every write.
pub fn render(m: &MetricsSnapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("observer");
    // The encoder ends each help text with a full stop.
    registry.register(
        "containers_watched",
        "Containers whose syscalls are being recorded",
        ConstGauge::new(m.containers_watched),
    );
    if let Some(n) = m.containers_without_image_profile {
        registry.register(
            "containers_without_image_profile",
            "Containers whose image has no profile in the --profiles directory",
            ConstGauge::new(n),
        );
    }
    let counters = [
        ("syscalls_recorded", "Syscalls recorded across all watched containers", m.syscalls_recorded),
        ("events_lost", "Kernel events dropped because the ring buffer was full", m.events_lost),
        ("alerts", "Alerts raised for syscalls outside a container's profile", m.alerts),
        ("cgroups_overflow", "Cgroups the kernel could not record because every slot was taken", m.cgroups_overflow),
        ("calls_unrecorded", "Syscalls of cgroups without a slot: counted, not recorded", m.calls_unrecorded),
    ];
    for (name, help, value) in counters {
        registry.register(name, help, ConstCounter::new(value));
    }
    registry.register_collector(Box::new(DistinctSyscalls(m.per_container.clone())));
    registry.register_collector(Box::new(AlertOutputs(m.alert_outputs.clone())));
    registry.register_collector(Box::new(HelperFailures(m.helper_failures.clone())));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// `observer_container_distinct_syscalls{name,id}`, one series per container
/// in the snapshot's order. A collector rather than a `Family`: a family with
/// no members is left out of the text, and a `Family` orders its series by hash.
#[derive(Debug)]
struct DistinctSyscalls(Vec<(String, String, u64)>);

impl Collector for DistinctSyscalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "container_distinct_syscalls",
            // A collector's help is written as given, with no full stop added.
            "Distinct syscalls seen per container.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (name, id, count) in &self.0 {
            let labels = [("name", name.as_str()), ("id", id.as_str())];
            ConstGauge::new(*count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// `observer_kernel_helper_failures_total{site}`: failed BPF helper calls in
/// the kernel programs, one series per call site, zeros included (a site
/// with no series would read as one that is not counted).
#[derive(Debug)]
struct HelperFailures(Vec<(&'static str, u64)>);

impl Collector for HelperFailures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "kernel_helper_failures",
            "BPF helper calls that failed in the kernel programs, by call site.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (site, count) in &self.0 {
            ConstCounter::new(*count).encode(family.encode_family(&[("site", *site)])?)?;
        }
        Ok(())
    }
}

/// `observer_alerts_{delivered,retried,failed,dropped}_total{output}` and
/// `observer_alerts_queued{output}`: what became of alerts sent to syslog and
/// the webhook. No series when neither was asked for.
#[derive(Debug)]
struct AlertOutputs(Vec<(&'static str, observer_contract::alerts::OutputCounts)>);

impl Collector for AlertOutputs {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type Pick = fn(&observer_contract::alerts::OutputCounts) -> u64;
        let counters: [(&str, &str, Pick); 4] = [
            ("alerts_delivered", "Alerts an output delivered.", |c| c.delivered),
            ("alerts_retried", "Delivery attempts that failed and were tried again.", |c| c.retries),
            ("alerts_failed", "Alerts an output gave up on after every retry failed.", |c| c.failed),
            ("alerts_dropped", "Alerts dropped because an output's queue was full.", |c| c.dropped),
        ];
        for (name, help, pick) in counters {
            let mut family =
                encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Counter)?;
            for (output, counts) in &self.0 {
                ConstCounter::new(pick(counts)).encode(family.encode_family(&[("output", *output)])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "alerts_queued",
            "Alerts waiting for an output now.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (output, counts) in &self.0 {
            ConstGauge::new(counts.queued).encode(family.encode_family(&[("output", *output)])?)?;
        }
        Ok(())
    }
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
            containers_without_image_profile: Some(1),
            helper_failures: vec![("send_signal_kill_violation", 2), ("task_storage_create_enter_note", 0)],
            per_container: vec![("web".into(), "3f4e2c1b9a8d".into(), 57), ("we\"ird\\na\nme".into(), "abc".into(), 1)],
            alert_outputs: vec![(
                "webhook",
                observer_contract::alerts::OutputCounts {
                    target: "http://127.0.0.1:9000/".into(),
                    delivered: 5,
                    retries: 2,
                    failed: 1,
                    dropped: 7,
                    queued: 3,
                },
            )],
        })
        .unwrap();
        let want = "\
# HELP observer_containers_watched Containers whose syscalls are being recorded.
# TYPE observer_containers_watched gauge
observer_containers_watched 2
# HELP observer_containers_without_image_profile Containers whose image has no profile in the --profiles directory.
# TYPE observer_containers_without_image_profile gauge
observer_containers_without_image_profile 1
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
# HELP observer_alerts_delivered_total Alerts an output delivered.
# TYPE observer_alerts_delivered_total counter
observer_alerts_delivered_total{output=\"webhook\"} 5
# HELP observer_alerts_retried_total Delivery attempts that failed and were tried again.
# TYPE observer_alerts_retried_total counter
observer_alerts_retried_total{output=\"webhook\"} 2
# HELP observer_alerts_failed_total Alerts an output gave up on after every retry failed.
# TYPE observer_alerts_failed_total counter
observer_alerts_failed_total{output=\"webhook\"} 1
# HELP observer_alerts_dropped_total Alerts dropped because an output's queue was full.
# TYPE observer_alerts_dropped_total counter
observer_alerts_dropped_total{output=\"webhook\"} 7
# HELP observer_alerts_queued Alerts waiting for an output now.
# TYPE observer_alerts_queued gauge
observer_alerts_queued{output=\"webhook\"} 3
# HELP observer_kernel_helper_failures_total BPF helper calls that failed in the kernel programs, by call site.
# TYPE observer_kernel_helper_failures_total counter
observer_kernel_helper_failures_total{site=\"send_signal_kill_violation\"} 2
observer_kernel_helper_failures_total{site=\"task_storage_create_enter_note\"} 0
";
        assert_eq!(text, want);
    }

    #[test]
    fn no_containers_still_declares_the_family() {
        let text = render(&MetricsSnapshot::default()).unwrap();
        assert!(text.contains("# TYPE observer_container_distinct_syscalls gauge\n"));
        assert!(text.contains("# TYPE observer_alerts_dropped_total counter\n"), "declared without outputs too");
        assert!(text.ends_with("# TYPE observer_kernel_helper_failures_total counter\n"), "declared without sites too");
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 6);
    }
}
