//! The API's answers (`ps`, `profile show`, `status`), built from the agent's
//! records as the typed views of `observer_contract::views`.

use observer_contract::views::{ProfileView, PsRow, StatusView};

use super::{core::Agent, identity_view::workload_key, model::ContainerRecord};

fn ps_row(r: &ContainerRecord) -> PsRow {
    PsRow {
        id: r.id.clone(),
        name: r.name.clone(),
        image: r.image.clone(),
        runtime: r.runtime.clone(),
        cgroup_id: r.cgroup_id,
        cgroup_path: r.cgroup_path.clone(),
        pids: r.pids.clone(),
        syscalls: r.first_use.len(),
        calls: r.calls(),
        seccomp_mode: r.seccomp_mode,
        seccomp_option: r.seccomp_option.clone(),
        denied: r.denied(),
        alerts: r.alerts,
        first_seen: r.first_seen.clone(),
        last_seen: r.last_seen.clone(),
        observed_since: r.observed_since.clone(),
        state: r.state,
        engine: r.engine.clone(),
        container_name: r.container_name.clone(),
        image_digest: r.image_digest.clone(),
        labels: r.labels.clone(),
        pod: r.pod.clone(),
        sandbox: r.pod.as_ref().is_some_and(|p| p.sandbox),
        workload: workload_key(r),
        image_profile: None,
    }
}

/// The p-th quantile of sorted figures.
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied()
}

fn sorted(d: &std::collections::VecDeque<u64>) -> Vec<u64> {
    let mut v: Vec<u64> = d.iter().copied().collect();
    v.sort_unstable();
    v
}

impl Agent {
    pub fn ps(&self) -> Vec<PsRow> {
        self.containers.iter().map(|(key, r)| PsRow { image_profile: self.image_profile(key), ..ps_row(r) }).collect()
    }

    pub fn profile(&self, what: &str) -> Result<ProfileView, String> {
        let key = self.find(what)?;
        let r = &self.containers[&key];
        Ok(ProfileView {
            id: r.id.clone(),
            name: r.name.clone(),
            image: r.image.clone(),
            runtime: r.runtime.clone(),
            state: r.state,
            first_seen: r.first_seen.clone(),
            observed_since: r.observed_since.clone(),
            seccomp_mode: r.seccomp_mode,
            calls: r.calls(),
            baseline: r.baseline_source.clone(),
            syscalls: r.profile(),
            args: r.args.clone(),
        })
    }

    pub fn status(&self) -> StatusView {
        let stats = self.probe.stats().unwrap_or_default();
        let stat = |i: u32| stats.get(i as usize).copied().unwrap_or(0);
        let latencies = sorted(&self.first_seen_latency_ns);
        let at_start = sorted(&self.first_seen_at_start_latency_ns);
        StatusView {
            started_at: self.started_at.clone(),
            slots: self.probe.slots(),
            slots_used: self.slot_owner.len(),
            reused_pinned_programs: self.probe.reused,
            events_lost: stat(observer_common::stats::EVENTS_LOST),
            cgroups_overflow: stat(observer_common::stats::CGROUPS_OVERFLOW),
            calls_unrecorded: stat(observer_common::stats::CALLS_UNRECORDED),
            denials_unattributed: stat(observer_common::stats::DENIALS_UNATTRIBUTED),
            counter_wraps_unrecorded: stat(observer_common::stats::WRAPS_UNRECORDED),
            helper_failures: observer_common::stats::helper::SITES
                .iter()
                .map(|&(i, site)| (site.to_owned(), stat(i)))
                .collect(),
            alerts: self.alerts_total,
            containers: self.containers.len(),
            enforcements: self.enforcements.clone(),
            first_seen_events: latencies.len(),
            first_seen_latency_median_ns: quantile(&latencies, 0.5),
            first_seen_latency_p99_ns: quantile(&latencies, 0.99),
            first_seen_at_start_events: at_start.len(),
            first_seen_at_start_latency_median_ns: quantile(&at_start, 0.5),
            first_seen_at_start_latency_p99_ns: quantile(&at_start, 0.99),
            state_write_errors: self.health.write_errors,
            state_write_error: self.health.write_error.clone(),
            cgroup_watches: super::cgroup_watch::watched_dirs(),
            cached_runtime_answers: self.resolver.cached_answers(),
            known_cgroup_paths: self.known_paths.len() + self.fresh_paths.lock().map_or(0, |f| f.len()),
            pid: std::process::id(),
            alert_delivery: self.alert_outputs.view(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_from_sorted_figures() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.99), Some(7));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(51));
        assert_eq!(quantile(&v, 0.99), Some(99));
    }
}
