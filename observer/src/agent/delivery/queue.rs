//! The part every alert output shares: a bounded queue the agent pushes into
//! without ever waiting, and a worker that delivers each alert with retries
//! and backoff, counting what it delivered, retried, gave up on and dropped.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use observer_contract::alerts::OutputCounts;
use tokio::sync::mpsc::{self, error::TrySendError};

/// What one output did since the agent started. Atomics: the agent's status
/// answer reads them under its own lock while the worker writes them without it.
#[derive(Debug, Default)]
pub struct Counts {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

/// How often and how long to wait before trying an alert again: `attempts`
/// tries in all, waiting `first`, then twice that each time, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after failed attempt `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// The agent's end of an output: pushing never waits; a full queue drops the
/// alert and counts it.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Arc<str>>,
    capacity: usize,
    pub counts: Arc<Counts>,
    /// The socket path or URL, for `observer status`.
    pub target: String,
}

/// The worker's end: the queue, and where its counts go.
pub struct Inbox {
    rx: mpsc::Receiver<Arc<str>>,
    counts: Arc<Counts>,
}

/// A queue of at most `capacity` alerts (at least one).
pub fn queue(capacity: usize, target: String) -> (Outbox, Inbox) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let counts = Arc::new(Counts::default());
    (Outbox { tx, capacity, counts: counts.clone(), target }, Inbox { rx, counts })
}

impl Outbox {
    pub fn push(&self, line: Arc<str>) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            // A closed queue means its worker died, which stops the agent
            // (agent/tasks.rs); until then the alert is as lost as a dropped one.
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                self.counts.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    pub fn view(&self) -> OutputCounts {
        OutputCounts {
            target: self.target.clone(),
            delivered: self.counts.delivered.load(Relaxed),
            retries: self.counts.retries.load(Relaxed),
            failed: self.counts.failed.load(Relaxed),
            dropped: self.counts.dropped.load(Relaxed),
            queued: (self.capacity - self.tx.capacity()) as u64,
        }
    }
}

/// Where alerts go: one attempt at delivering one alert.
pub trait Sink {
    fn send(&mut self, line: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// Delivers every alert pushed, one at a time, until the agent stops.
pub async fn run(mut inbox: Inbox, mut sink: impl Sink, backoff: Backoff, name: &'static str) -> anyhow::Result<()> {
    while let Some(line) = inbox.rx.recv().await {
        deliver(&mut sink, &line, backoff, &inbox.counts, name).await;
    }
    Ok(())
}

/// One alert: tried up to `backoff.attempts` times, then given up and counted.
async fn deliver(sink: &mut impl Sink, line: &str, backoff: Backoff, counts: &Counts, name: &str) {
    let mut attempt = 1;
    loop {
        match sink.send(line).await {
            Ok(()) => {
                counts.delivered.fetch_add(1, Relaxed);
                return;
            }
            Err(e) if attempt >= backoff.attempts => {
                counts.failed.fetch_add(1, Relaxed);
                tracing::warn!("{name}: an alert was not delivered after {attempt} attempts: {e}");
                return;
            }
            Err(e) => {
                counts.retries.fetch_add(1, Relaxed);
                tracing::debug!("{name}: attempt {attempt} failed, trying again: {e}");
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let b = Backoff { attempts: 10, first: Duration::from_millis(100), max: Duration::from_secs(1) };
        let delays: Vec<u64> = (1..=6).map(|n| b.delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        // No overflow however far it goes.
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
        assert_eq!(b.delay(0), Duration::from_millis(100));
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (out, inbox) = queue(2, "t".into());
        for i in 0..5 {
            out.push(format!("{i}").into());
        }
        let v = out.view();
        assert_eq!((v.queued, v.dropped, v.delivered), (2, 3, 0));
        drop(inbox);
        out.push("late".into());
        assert_eq!(out.view().dropped, 4, "a queue nobody reads any more drops too");
        assert_eq!(queue(0, "t".into()).0.capacity, 1, "at least one");
    }

    /// Fails its first `fail` attempts, then takes everything.
    struct Flaky {
        fail: usize,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Sink for Flaky {
        async fn send(&mut self, line: &str) -> Result<(), String> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err("refused".into());
            }
            self.seen.lock().unwrap().push(line.to_owned());
            Ok(())
        }
    }

    const QUICK: Backoff = Backoff { attempts: 3, first: Duration::from_millis(1), max: Duration::from_millis(4) };

    #[tokio::test]
    async fn retries_deliver_and_hopeless_alerts_are_counted() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let counts = Counts::default();
        // Two failures, three attempts: delivered on the third.
        deliver(&mut Flaky { fail: 2, seen: seen.clone() }, "a", QUICK, &counts, "test").await;
        // Three failures: given up.
        deliver(&mut Flaky { fail: 3, seen: seen.clone() }, "b", QUICK, &counts, "test").await;
        assert_eq!(*seen.lock().unwrap(), ["a"]);
        assert_eq!(counts.delivered.load(Relaxed), 1);
        assert_eq!(counts.retries.load(Relaxed), 4);
        assert_eq!(counts.failed.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn the_worker_delivers_in_order_and_ends_with_the_queue() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (out, inbox) = queue(8, "t".into());
        for line in ["1", "2", "3"] {
            out.push(line.into());
        }
        let counts = out.counts.clone();
        drop(out);
        run(inbox, Flaky { fail: 1, seen: seen.clone() }, QUICK, "test").await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["1", "2", "3"]);
        let c = |n: &AtomicU64| n.load(Relaxed);
        assert_eq!((c(&counts.delivered), c(&counts.retries), c(&counts.failed), c(&counts.dropped)), (3, 1, 0, 0));
    }
}
