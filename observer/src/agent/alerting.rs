//! Alert lines: once per record, kind and syscall, on stdout, in alerts.jsonl
//! and to the outputs asked for (syslog, webhook: agent/delivery).

use observer_common::{counters::ROW_INVALID, event::Event};
use observer_contract::alerts::{Alert, AlertKind, AlertRule};

use super::{
    core::{Agent, comm_of},
    model::ContainerRecord,
    rules::rules_for,
};
use crate::clock::{now, wall_time_of};

/// An alert raised now with every other field empty, for `..blank(kind)`.
pub(super) fn blank(kind: AlertKind) -> Alert {
    Alert {
        time: now(),
        kind,
        id: String::new(),
        name: String::new(),
        image: String::new(),
        pid: 0,
        comm: String::new(),
        syscall: String::new(),
        abi: String::new(),
        detail: None,
        runtime: String::new(),
        engine: String::new(),
        namespace: None,
        pod: None,
        nr: None,
        call_time: None,
        rule: None,
    }
}

/// An alert about `record`, with its runtime identity.
pub(super) fn about(record: &ContainerRecord, kind: AlertKind) -> Alert {
    Alert {
        id: record.id.clone(),
        name: record.name.clone(),
        image: record.image.clone(),
        runtime: record.runtime.clone(),
        engine: record.engine.clone(),
        namespace: record.pod.as_ref().map(|p| p.namespace.clone()),
        pod: record.pod.as_ref().map(|p| p.name.clone()),
        ..blank(kind)
    }
}

impl Agent {
    /// Writes one alert line (stdout and alerts.jsonl), once per container, kind and syscall.
    pub(super) fn alert(&mut self, key: &str, kind: AlertKind, e: &Event) {
        let Some(record) = self.containers.get_mut(key) else {
            return;
        };
        if !record.alerted.insert((kind.as_str().to_owned(), e.row)) {
            return;
        }
        record.alerts += 1;
        self.alerts_total += 1;
        let (syscall, abi) = crate::rows::describe(e.row);
        let rule = match kind {
            AlertKind::Enforce => rules_for(record, &[], &self.enforcements).1.map(|r| AlertRule::Enforce {
                target: r.target.clone(),
                action: r.action,
                profile: r.profile.clone(),
            }),
            AlertKind::OutsideBaseline => record.baseline_source.clone().map(|profile| AlertRule::Baseline { profile }),
            AlertKind::Denied => Some(AlertRule::Seccomp { profile: record.seccomp_option.clone() }),
            _ => None,
        };
        let alert = Alert {
            pid: e.tgid,
            comm: comm_of(&e.comm),
            syscall,
            abi: abi.to_owned(),
            nr: Some(e.nr),
            // The kernel's time of the call, as first uses are stamped.
            call_time: Some(wall_time_of(e.ktime_ns)),
            rule,
            ..about(record, kind)
        };
        self.write_alert(&alert);
        self.dirty.insert(key.to_owned());
    }

    /// An alert about a cgroup rather than a syscall, once per record and kind.
    pub(super) fn alert_cgroup(&mut self, key: &str, kind: AlertKind, pid: u32, comm: &str, detail: String) {
        let Some(record) = self.containers.get_mut(key) else { return };
        if !record.alerted.insert((kind.as_str().to_owned(), ROW_INVALID)) {
            return;
        }
        record.alerts += 1;
        self.alerts_total += 1;
        let alert = Alert { pid, comm: comm.to_owned(), detail: Some(detail), ..about(record, kind) };
        self.write_alert(&alert);
        self.dirty.insert(key.to_owned());
    }

    pub(super) fn write_alert(&mut self, alert: &Alert) {
        let line = serde_json::to_string(alert).unwrap_or_default();
        println!("{line}");
        self.alert_outputs.send(&line);
        if let Err(err) = self.store.append_alert(&line) {
            tracing::warn!("writing alerts.jsonl: {err:#}");
        }
    }
}
