//! Alert lines: once per record, kind and syscall, on stdout and in alerts.jsonl.

use observer_common::{counters::ROW_INVALID, event::Event};

use super::{
    alerts::Alert,
    core::{Agent, comm_of},
};
use crate::{clock::now, views::AlertKind};

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
        let alert = Alert {
            time: now(),
            kind,
            id: record.id.clone(),
            name: record.name.clone(),
            image: record.image.clone(),
            pid: e.tgid,
            comm: comm_of(&e.comm),
            syscall,
            abi: abi.to_owned(),
            detail: None,
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
        let alert = Alert {
            time: now(),
            kind,
            id: record.id.clone(),
            name: record.name.clone(),
            image: record.image.clone(),
            pid,
            comm: comm.to_owned(),
            syscall: String::new(),
            abi: String::new(),
            detail: Some(detail),
        };
        self.write_alert(&alert);
        self.dirty.insert(key.to_owned());
    }

    pub(super) fn write_alert(&mut self, alert: &Alert) {
        let line = serde_json::to_string(alert).unwrap_or_default();
        println!("{line}");
        if let Err(err) = self.store.append_alert(&line) {
            tracing::warn!("writing alerts.jsonl: {err:#}");
        }
    }
}
