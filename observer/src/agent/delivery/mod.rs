//! Alerts where people collect them: besides the agent's stdout and
//! alerts.jsonl, syslog (`--syslog`), journald (`--journald`) and a webhook
//! (`--webhook`). The agent
//! hands each alert line to a bounded queue per output and goes on; a task per
//! output delivers it, with retries, so a slow or dead receiver never delays
//! the event loop nor holds the agent's lock. What is dropped (queue full) or
//! given up (every retry failed) is counted in `observer status` and the metrics.

mod journald;
mod queue;
mod syslog;
mod webhook;

use std::{future::Future, path::PathBuf, pin::Pin, sync::Arc, time::Duration};

use clap::Args;
use observer_contract::alerts::{AlertDelivery, OutputCounts};

use self::queue::{Backoff, Outbox};

/// How many alerts wait for syslog at most.
const SYSLOG_QUEUE: usize = 1024;
/// A syslog daemon being restarted is back within a second or two.
const SYSLOG_BACKOFF: Backoff =
    Backoff { attempts: 5, first: Duration::from_millis(100), max: Duration::from_millis(800) };
/// About 4 s of waits between 5 attempts; a webhook down for longer loses the
/// alert (counted) rather than hold the queue.
const WEBHOOK_BACKOFF: Backoff =
    Backoff { attempts: 5, first: Duration::from_millis(250), max: Duration::from_secs(2) };

#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Also send each alert to syslog: one datagram per alert (RFC 3164, as
    /// syslog(3) writes it, the alert's JSON as the message) on this unix
    /// datagram socket. Without PATH: /dev/log (syslog daemons and journald).
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = syslog::DEFAULT_SOCKET)]
    pub syslog: Option<PathBuf>,
    /// Also send each alert to journald, in its native protocol: every field of
    /// the alert a journal field (`OBSERVER_KIND`, `OBSERVER_NAME`, ...). Without
    /// PATH: /run/systemd/journal/socket.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = journald::DEFAULT_SOCKET)]
    pub journald: Option<PathBuf>,
    /// Also POST each alert, as JSON, to this http:// URL, with retries.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// How many alerts may wait for the webhook; more are dropped (and counted).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub webhook_queue: usize,
}

/// The agent's end of every output asked for.
#[derive(Debug, Default)]
pub struct AlertOutputs {
    syslog: Option<Outbox>,
    journald: Option<Outbox>,
    webhook: Option<Outbox>,
}

type Worker = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// The delivery tasks, to be run (and watched) with the agent's other tasks.
pub struct Workers(Vec<(&'static str, Worker)>);

impl AlertOutputs {
    /// Opens what `args` asks for: a syslog socket nobody listens on, or a
    /// webhook URL observer cannot use, is an error now. The queues take
    /// alerts at once; the workers deliver them once spawned.
    pub fn open(args: &OutputArgs) -> anyhow::Result<(AlertOutputs, Workers)> {
        let mut outputs = AlertOutputs::default();
        let mut workers: Vec<(&'static str, Worker)> = Vec::new();
        if let Some(path) = &args.syslog {
            let sink = syslog::Syslog::open(path)?;
            let (outbox, inbox) = queue::queue(SYSLOG_QUEUE, path.display().to_string());
            outputs.syslog = Some(outbox);
            workers.push(("the syslog output", Box::pin(queue::run(inbox, sink, SYSLOG_BACKOFF, "syslog"))));
        }
        if let Some(path) = &args.journald {
            let sink = journald::Journald::open(path)?;
            let (outbox, inbox) = queue::queue(SYSLOG_QUEUE, path.display().to_string());
            outputs.journald = Some(outbox);
            workers.push(("the journald output", Box::pin(queue::run(inbox, sink, SYSLOG_BACKOFF, "journald"))));
        }
        if let Some(url) = &args.webhook {
            let sink = webhook::Webhook::parse(url)?;
            if args.webhook_queue == 0 {
                anyhow::bail!("--webhook-queue 0: the queue must hold at least one alert");
            }
            let (outbox, inbox) = queue::queue(args.webhook_queue, url.clone());
            outputs.webhook = Some(outbox);
            workers.push(("the webhook output", Box::pin(queue::run(inbox, sink, WEBHOOK_BACKOFF, "webhook"))));
        }
        Ok((outputs, Workers(workers)))
    }

    /// Queues one alert line for every output; never waits.
    pub fn send(&self, line: &str) {
        let outboxes = [&self.syslog, &self.journald, &self.webhook];
        if outboxes.iter().all(|o| o.is_none()) {
            return;
        }
        let line: Arc<str> = line.into();
        for outbox in outboxes.into_iter().flatten() {
            outbox.push(line.clone());
        }
    }

    pub fn view(&self) -> AlertDelivery {
        AlertDelivery {
            syslog: self.syslog.as_ref().map(Outbox::view),
            journald: self.journald.as_ref().map(Outbox::view),
            webhook: self.webhook.as_ref().map(Outbox::view),
        }
    }

    /// (output name, counts) of the outputs asked for, for the metrics.
    pub fn counts(&self) -> Vec<(&'static str, OutputCounts)> {
        let view = self.view();
        [("syslog", view.syslog), ("journald", view.journald), ("webhook", view.webhook)]
            .into_iter()
            .filter_map(|(name, counts)| Some((name, counts?)))
            .collect()
    }
}

impl Workers {
    pub fn spawn_into(self, tasks: &mut super::tasks::Tasks) {
        for (name, worker) in self.0 {
            tasks.spawn(name, worker);
        }
    }
}
