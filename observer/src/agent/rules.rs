//! Baselines and enforcement rules: which records they name, and arming the
//! kernel's per-slot enforcement; finding a record by id, prefix or name.

use std::collections::{BTreeMap, BTreeSet};

use observer_common::{
    counters::{BITMAP_WORDS, ROW_INVALID, Row},
    event::{Event, EventKind},
    slot::{enforce, phase},
};
use observer_contract::{
    alerts::AlertKind,
    rules::{Armed, EnforceAction, EnforceRule, Target},
    views::State,
};

use super::{
    core::{Agent, BaselineRule},
    model::ContainerRecord,
};
use crate::{
    clock::{boottime_ns, parse_time},
    container::confirm::Confirmation,
    printable::short,
};

impl Agent {
    /// Baselines and enforcements that name this container (by name or image).
    pub fn apply_rules(&mut self, key: &str) {
        let Some(record) = self.containers.get(key) else { return };
        let baseline = rules_for(record, &self.baselines, &self.enforcements).0.cloned();
        if let Some(b) = baseline
            && let Some(r) = self.containers.get_mut(key)
            && r.baseline.is_none()
        {
            r.baseline = Some(b.rows);
            r.baseline_source = Some(b.source);
        }
        self.bind_image_profile(key);
        self.arm(key);
    }

    /// Arms every live slot of a container as the rules say now: the latest
    /// rule that names it, or off when none does. The kernel's state always
    /// follows the rules (`enforce.json`), whichever of them changed.
    pub fn arm(&mut self, key: &str) -> Armed {
        let Some(record) = self.containers.get(key) else { return Armed::default() };
        let rule = rules_for(record, &[], &self.enforcements).1.cloned().or_else(|| self.bound_rule(key));
        self.enforce_on(key, rule.as_ref())
    }

    /// Sets (or clears) enforcement on every live slot of a container, and says
    /// what it armed. A slot already armed so is left alone; one armed anew has
    /// its past judged: a call the container's own processes made before (while
    /// the runtime had not named or confirmed it yet, or before the rule came) that
    /// the rule forbids is acted on now, as the kernel would have (`judge_past`).
    pub fn enforce_on(&mut self, key: &str, rule: Option<&EnforceRule>) -> Armed {
        let mut armed = Armed::default();
        let Some(record) = self.containers.get(key) else { return armed };
        let mut allowed = [0u64; BITMAP_WORDS];
        let mode = match rule {
            Some(r) => {
                for row in &r.allowed_rows {
                    if *row < ROW_INVALID {
                        allowed[(*row / 64) as usize] |= 1 << (row % 64);
                    }
                }
                match r.action {
                    EnforceAction::Kill => enforce::KILL,
                    EnforceAction::Alert => enforce::ALERT,
                }
            }
            None => enforce::OFF,
        };
        let mut past = BTreeSet::new();
        let mut kill_past = false;
        for cg in record.cgroups.values() {
            if let Some(slot) = cg.slot {
                // A cgroup the runtime has not confirmed is watched, never killed.
                let mode = if mode == enforce::KILL && cg.confirmation != Confirmation::Confirmed {
                    armed.alert_only_until_confirmed.push(cg.path.clone());
                    enforce::ALERT
                } else {
                    mode
                };
                armed.slots.push(slot);
                armed.cgroups.push(cg.path.clone());
                let before = self.probe.counters().info(slot);
                if before.enforce == mode && (mode == enforce::OFF || before.allowed == allowed) {
                    continue;
                }
                if mode != enforce::OFF {
                    let outside = forbidden_rows(&before.seen[phase::CONTAINER as usize], &allowed);
                    kill_past |= mode == enforce::KILL && !outside.is_empty();
                    past.extend(outside);
                }
                self.probe.counters().with_info(slot, |info| {
                    info.allowed = allowed;
                    info.violated = [0; BITMAP_WORDS];
                    // New rules: an invalid-row violation is reported again.
                    info.flags &= !observer_common::slot::flags::INVALID_VIOLATED;
                    // with_info writes `enforce` last, with Release: the kernel never
                    // enforces a half-written set.
                    info.enforce = mode;
                });
            }
        }
        self.judge_past(key, &past, kill_past);
        armed
    }

    /// Calls made before a rule was armed that it forbids: an `enforce` alert
    /// each (with the call's first use: when, which process), and the container
    /// killed when the rule kills and a confirmed slot made one.
    fn judge_past(&mut self, key: &str, rows: &BTreeSet<u32>, kill: bool) {
        for row in rows {
            let Some(record) = self.containers.get(key) else { return };
            let first = record.first_use.get(row).unwrap_or_default();
            let nr = Row::decode(*row).map_or(-1, |r| i64::from(r.nr));
            // The call's own time, as the kernel's clock had it.
            let ago = first
                .first_seen
                .time()
                .map_or(0, |t| u64::try_from((time::OffsetDateTime::now_utc() - t).whole_nanoseconds()).unwrap_or(0));
            let event = Event {
                kind: EventKind::Enforce as u32,
                slot: 0,
                row: *row,
                phase: phase::CONTAINER,
                tgid: first.pid,
                tid: first.pid,
                cgroup_id: 0,
                ktime_ns: boottime_ns().saturating_sub(ago),
                nr,
                comm: comm_bytes(&first.comm),
                seccomp_mode: 0,
                _pad: 0,
            };
            self.alert(key, AlertKind::Enforce, &event);
        }
        if kill {
            self.kill_confirmed(key, "a syscall outside its enforced profile, made before the rule was armed");
        }
    }

    /// Kills a container's confirmed cgroups (`cgroup.kill`): never one a user
    /// made to look like it, nor one the runtime has not confirmed yet.
    pub(super) fn kill_confirmed(&self, key: &str, why: &str) {
        let Some(record) = self.containers.get(key) else { return };
        let mount = self.mount();
        for cg in record.cgroups.values().filter(|c| c.slot.is_some() && c.confirmation == Confirmation::Confirmed) {
            let kill = mount.join(cg.path.trim_start_matches('/')).join("cgroup.kill");
            if let Err(err) = std::fs::write(&kill, "1") {
                tracing::warn!("killing {}: {err}", kill.display());
            }
        }
        tracing::warn!(container = %record.name, "killed: {why}");
    }

    /// Finds a container by id, unique id prefix or name.
    pub fn find(&self, what: &str) -> Result<String, String> {
        find_key(&self.containers, what)
    }
}

/// Rows set in `seen` that `allowed` leaves out.
fn forbidden_rows(seen: &[u64; BITMAP_WORDS], allowed: &[u64; BITMAP_WORDS]) -> Vec<u32> {
    let mut rows = Vec::new();
    for (word, (seen, allowed)) in seen.iter().zip(allowed).enumerate() {
        let mut outside = seen & !allowed;
        while outside != 0 {
            let bit = outside.trailing_zeros();
            rows.push(word as u32 * 64 + bit);
            outside &= outside - 1;
        }
    }
    rows.retain(|r| *r < ROW_INVALID);
    rows
}

/// A command name as the kernel's 16 bytes.
fn comm_bytes(comm: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = comm.len().min(15);
    out[..n].copy_from_slice(&comm.as_bytes()[..n]);
    out
}

/// The first baseline and the latest enforcement rule that name `record`.
pub fn rules_for<'a>(
    record: &ContainerRecord,
    baselines: &'a [BaselineRule],
    enforcements: &'a [EnforceRule],
) -> (Option<&'a BaselineRule>, Option<&'a EnforceRule>) {
    let subject = record.subject();
    let matches = |t: &Target| t.matches(&subject);
    (baselines.iter().find(|b| matches(&b.target)), enforcements.iter().rev().find(|r| matches(&r.target)))
}

/// A record by id, unique id prefix or name. A reused name means the running
/// container, else the newest that ended.
pub fn find_key(containers: &BTreeMap<String, ContainerRecord>, what: &str) -> Result<String, String> {
    if containers.contains_key(what) {
        return Ok(what.to_owned());
    }
    let by_name: Vec<&ContainerRecord> = containers.values().filter(|r| r.name == what).collect();
    if !by_name.is_empty() {
        let best = by_name
            .iter()
            .find(|r| r.state == State::Running)
            .or_else(|| by_name.iter().max_by_key(|r| parse_time(&r.first_seen)))
            .map(|r| r.id.clone());
        return best.ok_or_else(|| format!("no container {what:?}"));
    }
    let prefixed: Vec<&String> = containers.keys().filter(|k| k.starts_with(what)).collect();
    match prefixed.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!("no container matches {what:?} (see `observer ps`)")),
        many => Err(format!(
            "{what:?} is ambiguous: it matches {}",
            many.iter().map(|k| short(k)).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str, image: &str, state: State, first_seen: &str) -> ContainerRecord {
        let mut r = ContainerRecord::new(id, "runc".into(), format!("/docker/{id}"), 1, first_seen.into());
        r.name = name.into();
        r.image = image.into();
        r.state = state;
        r
    }

    fn records(list: Vec<ContainerRecord>) -> BTreeMap<String, ContainerRecord> {
        list.into_iter().map(|r| (r.id.clone(), r)).collect()
    }

    #[test]
    fn find_by_id_prefix_and_name() {
        let a = "a".repeat(64);
        let b = format!("ab{}", "c".repeat(62));
        let all = records(vec![
            record(&a, "web", "nginx:1", State::Exited, "2026-12-01T00:00:00.5Z"),
            record(&b, "db", "pg:16", State::Running, "2026-12-01T00:00:01Z"),
        ]);
        assert_eq!(find_key(&all, &a).unwrap(), a);
        assert_eq!(find_key(&all, "ab").unwrap(), b);
        assert!(find_key(&all, "a").unwrap_err().contains("ambiguous"));
        assert!(find_key(&all, "zz").unwrap_err().contains("no container"));
        assert_eq!(find_key(&all, "db").unwrap(), b);
    }

    /// A reused name: the running one; else the newest that ended, by time
    /// (not by text: `…00.5Z` sorts after `…01Z` as text).
    #[test]
    fn a_reused_name_means_the_running_one_else_the_newest() {
        let (old, new, live) = ("1".repeat(64), "2".repeat(64), "3".repeat(64));
        let mut all = records(vec![
            record(&old, "web", "nginx:1", State::Exited, "2026-12-01T00:00:00.5Z"),
            record(&new, "web", "nginx:1", State::Exited, "2026-12-01T00:00:01Z"),
        ]);
        assert_eq!(find_key(&all, "web").unwrap(), new);
        all.insert(live.clone(), record(&live, "web", "nginx:1", State::Running, "2026-12-01T00:00:00Z"));
        assert_eq!(find_key(&all, "web").unwrap(), live);
    }

    #[test]
    fn rows_seen_outside_the_allowed_set_are_the_past_violations() {
        let mut seen = [0u64; BITMAP_WORDS];
        let mut allowed = [0u64; BITMAP_WORDS];
        for row in [0u32, 90, 512 + 15, 1000] {
            seen[(row / 64) as usize] |= 1 << (row % 64);
        }
        allowed[0] |= 1;
        allowed[(1000 / 64) as usize] |= 1 << (1000 % 64);
        assert_eq!(forbidden_rows(&seen, &allowed), vec![90, 512 + 15]);
        assert!(forbidden_rows(&allowed, &allowed).is_empty(), "nothing seen outside");
    }

    #[test]
    fn the_latest_rule_that_names_a_record_applies() {
        let r = record(&"a".repeat(64), "web", "nginx:1.25", State::Running, "2026-12-01T00:00:00Z");
        let rule = |target: Target, action: EnforceAction| EnforceRule {
            target,
            action,
            allowed_rows: vec![0],
            profile: "p.json".into(),
        };
        let rules = [
            rule(Target::Image("nginx".into()), EnforceAction::Alert),
            rule(Target::Name("web".into()), EnforceAction::Kill),
            rule(Target::Name("other".into()), EnforceAction::Kill),
        ];
        let baselines =
            [BaselineRule { target: Target::Image("nginx:1.25".into()), rows: [1u32].into(), source: "b.json".into() }];
        let (b, e) = rules_for(&r, &baselines, &rules);
        assert_eq!(b.map(|b| b.source.as_str()), Some("b.json"));
        assert_eq!(e.map(|e| e.action), Some(EnforceAction::Kill));
        let stranger = record(&"b".repeat(64), "cache", "redis:7", State::Running, "2026-12-01T00:00:00Z");
        let (b, e) = rules_for(&stranger, &baselines, &rules);
        assert!(b.is_none() && e.is_none());
    }
}
