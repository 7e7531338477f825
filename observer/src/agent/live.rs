//! The live feed (`{"cmd": "subscribe"}`, what `observer top` reads): one
//! `TopFrame` pushed per period on the connection, until the client goes away.
//! Each frame holds the agent's lock as a `ps` answer does (a fresh read of the
//! kernel, then rows built from the records) and is encoded and sent without it.

use std::{collections::HashMap, sync::Arc, time::Duration};

use observer_contract::{
    api::{EVERY_MS_RANGE, Request, Response},
    rules::EnforceRule,
    views::{TopFrame, TopRow},
};
use tokio::{
    io::{AsyncWriteExt as _, BufReader, Lines},
    net::unix::{OwnedReadHalf, OwnedWriteHalf},
    sync::Mutex,
    time::MissedTickBehavior,
};

use super::{core::Agent, model::ContainerRecord};
use crate::clock::{boottime_ns, now};

/// A client that does not read its frames for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// What counts as a new syscall: first used within this window.
const NEW_WINDOW: Duration = Duration::from_secs(60);

/// What a client subscribed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Subscription {
    every: Duration,
    container: Option<String>,
}

impl Subscription {
    pub(super) fn new(every_ms: u64, container: Option<String>) -> Result<Self, String> {
        if !EVERY_MS_RANGE.contains(&every_ms) {
            return Err(format!(
                "every_ms {every_ms} is out of range: the feed's period is {} to {} ms",
                EVERY_MS_RANGE.start(),
                EVERY_MS_RANGE.end()
            ));
        }
        Ok(Self { every: Duration::from_millis(every_ms), container: container.filter(|c| !c.is_empty()) })
    }

    /// A later line on the connection: another subscription, or an error.
    fn parse(line: &str) -> Result<Self, String> {
        match serde_json::from_str::<Request>(line) {
            Ok(Request::Subscribe { every_ms, container }) => Self::new(every_ms, container),
            Ok(_) => Err("a subscribed connection takes only subscribe requests".into()),
            Err(e) => Err(format!("bad request: {e}")),
        }
    }
}

/// Pushes frames until the client closes its end, stops reading, or sends
/// something other than a subscription. A new subscription is answered at once.
pub(super) async fn stream(
    agent: Arc<Mutex<Agent>>,
    mut lines: Lines<BufReader<OwnedReadHalf>>,
    mut write: OwnedWriteHalf,
    first: Result<Subscription, String>,
) -> anyhow::Result<()> {
    let mut sub = match first {
        Ok(sub) => sub,
        Err(e) => return send(&mut write, &Response::error(e)).await,
    };
    let mut ticks = period(sub.every);
    let mut times = FirstUseTimes::default();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            // Cancel-safe: a line half read stays buffered for the next call.
            line = lines.next_line() => match line {
                // EOF or a broken connection: the client went away.
                Ok(None) | Err(_) => return Ok(()),
                Ok(Some(line)) => match Subscription::parse(&line) {
                    Ok(next) => {
                        sub = next;
                        ticks = period(sub.every);
                        // Its first tick is now.
                        ticks.tick().await;
                    }
                    Err(e) => return send(&mut write, &Response::error(e)).await,
                },
            },
        }
        let (frame, alert_lines) = {
            let mut a = agent.lock().await;
            // Fresh counts; pids and modes from the background read.
            a.read_counts();
            a.top_frame(sub.container.as_deref(), &mut times)
        };
        let frame = with_alerts(frame, &alert_lines);
        match send(&mut write, &Response::of(&frame)).await {
            Ok(()) => {}
            // It closed between two frames: the end of a feed, not a fault.
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn gone(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset))
}

fn period(every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(every);
    // A slow client or a busy lock delays the next frame; frames never bunch up.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// One answer line; a client that stopped reading ends the feed.
async fn send(write: &mut OwnedWriteHalf, response: &Response) -> anyhow::Result<()> {
    let mut out = serde_json::to_string(response)?;
    out.push('\n');
    tokio::time::timeout(WRITE_TIMEOUT, write.write_all(out.as_bytes()))
        .await
        .map_err(|_| anyhow::anyhow!("the subscriber has not read for {WRITE_TIMEOUT:?}"))??;
    Ok(())
}

/// The alert lines, parsed outside the lock; a line that does not parse (an
/// older agent's, hand-edited) is left out of the panel, not the feed.
fn with_alerts(mut frame: TopFrame, lines: &[String]) -> TopFrame {
    frame.alerts = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    frame
}

impl Agent {
    /// The frame's rows and profile, built under the lock, and the latest alert
    /// lines (parsed after it is released).
    pub(super) fn top_frame(&self, container: Option<&str>, times: &mut FirstUseTimes) -> (TopFrame, Vec<String>) {
        let at_ns = boottime_ns();
        let since = time::OffsetDateTime::now_utc() - NEW_WINDOW;
        times.forget_gone(&self.containers);
        let containers =
            self.containers.values().map(|r| top_row(r, &self.enforcements, times.new_since(r, since))).collect();
        let (profile, profile_error) = match container.map(|c| self.profile(c)) {
            None => (None, None),
            Some(Ok(p)) => (Some(p), None),
            Some(Err(e)) => (None, Some(e)),
        };
        let frame = TopFrame { at_ns, time: now(), containers, alerts: Vec::new(), profile, profile_error };
        (frame, self.store.recent_alerts())
    }
}

/// The first-use times of each record, parsed once and kept by a subscription
/// from frame to frame: a row's first use is written once and never changes,
/// so a record is parsed again only when it has new rows. Without this, every
/// frame would parse every row's time under the lock, which a `ps` answer
/// does not.
#[derive(Debug, Default)]
pub(super) struct FirstUseTimes(HashMap<String, (usize, Vec<time::OffsetDateTime>)>);

impl FirstUseTimes {
    /// How many of the record's rows were first used at `since` or later.
    fn new_since(&mut self, r: &ContainerRecord, since: time::OffsetDateTime) -> usize {
        let (rows, times) = self.0.entry(r.id.clone()).or_default();
        if *rows != r.first_use.len() {
            *rows = r.first_use.len();
            // A time not known (an empty one in a state file) counts as old.
            *times = r.first_use.times().filter_map(|t| t.time()).collect();
        }
        times.iter().filter(|t| **t >= since).count()
    }

    fn forget_gone(&mut self, containers: &std::collections::BTreeMap<String, ContainerRecord>) {
        self.0.retain(|id, _| containers.contains_key(id));
    }
}

/// One container's line: totals folded once (a `ps` row folds them twice).
fn top_row(r: &ContainerRecord, enforcements: &[EnforceRule], new_syscalls: usize) -> TopRow {
    let (calls, denied) =
        r.totals().values().fold((0u64, 0u64), |(c, d), t| (c.saturating_add(t.calls), d.saturating_add(t.denied)));
    TopRow {
        id: r.id.clone(),
        name: r.name.clone(),
        image: r.image.clone(),
        runtime: r.runtime.clone(),
        engine: r.engine.clone(),
        pod: r.pod.as_ref().map(|p| format!("{}/{}", p.namespace, p.name)),
        state: r.state,
        calls,
        syscalls: r.first_use.len(),
        new_syscalls,
        denied,
        alerts: r.alerts,
        enforce: super::rules::rules_for(r, &[], enforcements).1.map(|rule| rule.action),
        baseline: r.baseline_source.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::model::{CgroupRecord, FirstUse};
    use observer_contract::rules::{EnforceAction, Target};
    use observer_probe::RowCounts;

    fn record(name: &str) -> ContainerRecord {
        let mut r = ContainerRecord::new(&format!("{name}-id"), "runc".into(), "/docker/x".into(), 7, now());
        r.name = name.into();
        r
    }

    /// A first use at `at` (RFC 3339); any other text: a time not known.
    fn first_use(at: &str) -> FirstUse {
        FirstUse { first_seen: serde_json::from_value(at.into()).unwrap_or_default(), ..Default::default() }
    }

    #[test]
    fn a_row_counts_totals_new_syscalls_and_names_its_enforcement() {
        let mut r = record("web");
        let mut cg = CgroupRecord::default();
        cg.rows.update(&RowCounts { row: 0, calls: 10, errors: 1, denied: 2 });
        cg.rows.update(&RowCounts { row: 1, calls: 5, errors: 0, denied: 0 });
        r.cgroups.insert(7, cg);
        let fmt = &time::format_description::well_known::Rfc3339;
        let recent = (time::OffsetDateTime::now_utc() - Duration::from_secs(5)).format(fmt).unwrap();
        r.first_use.insert(0, first_use("2020-01-01T00:00:00Z"));
        r.first_use.insert(1, first_use(&recent));
        r.first_use.insert(2, first_use("not a time"));
        let rule = |name: &str, action| EnforceRule {
            target: Target::Name(name.into()),
            action,
            allowed_rows: vec![],
            profile: "p.json".into(),
        };
        let rules = [rule("other", EnforceAction::Kill), rule("web", EnforceAction::Alert)];
        let since = time::OffsetDateTime::now_utc() - NEW_WINDOW;
        let mut times = FirstUseTimes::default();
        let row = top_row(&r, &rules, times.new_since(&r, since));
        assert_eq!((row.calls, row.denied, row.syscalls, row.new_syscalls), (15, 2, 3, 1));
        assert_eq!(row.enforce, Some(EnforceAction::Alert));
        assert_eq!(top_row(&record("db"), &rules, 0).enforce, None);

        // Kept from frame to frame: a new row is counted, a window that moved on drops it.
        r.first_use.insert(3, first_use(&recent));
        assert_eq!(times.new_since(&r, since), 2);
        assert_eq!(times.new_since(&r, since + NEW_WINDOW), 0);
        let mut known = std::collections::BTreeMap::new();
        known.insert(r.id.clone(), r.clone());
        times.forget_gone(&known);
        assert_eq!(times.0.len(), 1);
        times.forget_gone(&Default::default());
        assert!(times.0.is_empty());
    }

    #[test]
    fn subscriptions_are_checked() {
        assert!(Subscription::new(1000, None).is_ok());
        assert!(Subscription::new(10, None).unwrap_err().contains("every_ms 10 is out of range"));
        assert_eq!(Subscription::new(500, Some(String::new())).unwrap().container, None);
        let next = Subscription::parse(r#"{"cmd":"subscribe","container":"web"}"#).unwrap();
        assert_eq!(next, Subscription { every: Duration::from_secs(1), container: Some("web".into()) });
        assert!(Subscription::parse(r#"{"cmd":"ps"}"#).unwrap_err().contains("only subscribe"));
        assert!(Subscription::parse("nonsense").unwrap_err().starts_with("bad request"));
    }

    #[test]
    fn alert_lines_that_do_not_parse_are_left_out() {
        let frame =
            TopFrame { at_ns: 1, time: now(), containers: vec![], alerts: vec![], profile: None, profile_error: None };
        let good = r#"{"time":"2026-12-01T00:00:00Z","kind":"denied","id":"a","name":"web","image":"i","pid":1,"comm":"sh","syscall":"chmod","abi":"x86_64"}"#;
        let frame = with_alerts(frame, &["{broken".into(), good.into()]);
        assert_eq!(frame.alerts.len(), 1);
        assert_eq!(frame.alerts[0].syscall, "chmod");
    }
}
