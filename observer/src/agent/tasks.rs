//! The agent's tasks, watched. Each of them runs until the agent stops, so one
//! that ends, fails or panics is a death: the agent stops and exits non-zero
//! (a supervisor restarts it) instead of staying up with a part missing, such
//! as an event reader that no longer reads.

use std::{any::Any, collections::HashMap, future::Future};

use anyhow::anyhow;
use tokio::{
    sync::mpsc,
    task::{AbortHandle, Id, JoinError, JoinHandle, JoinSet},
};

pub struct Tasks {
    set: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, &'static str>,
    /// Tasks spawned elsewhere and watched through a wrapper: aborted with the set.
    outside: Vec<AbortHandle>,
    panics: Option<mpsc::UnboundedReceiver<String>>,
}

impl Tasks {
    pub fn new() -> Self {
        Self { set: JoinSet::new(), names: HashMap::new(), outside: Vec::new(), panics: None }
    }

    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Watches a task spawned elsewhere (the API server, the metrics endpoint).
    pub fn watch(&mut self, name: &'static str, handle: JoinHandle<()>) {
        self.outside.push(handle.abort_handle());
        self.spawn(name, async move { handle.await.map_err(|e| anyhow!("{}", describe(e))) });
    }

    /// Also counts a panic in any task of the process, the short-lived ones too
    /// (an API connection, a blocking walk of the cgroup tree): tokio catches
    /// those and nobody would know. Once per process.
    pub fn catch_every_panic(&mut self) {
        let (tx, rx) = mpsc::unbounded_channel();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            // One line: "panicked at FILE:LINE:COL:\nMESSAGE" is two.
            let _ = tx.send(info.to_string().replace('\n', " "));
        }));
        self.panics = Some(rx);
    }

    /// Waits until a task dies and says which and how; never returns while all run.
    pub async fn first_death(&mut self) -> anyhow::Error {
        let panics = async {
            match self.panics.as_mut() {
                Some(rx) => match rx.recv().await {
                    Some(message) => message,
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = panics => anyhow!("a task panicked: {message}"),
            Some(ended) = self.set.join_next_with_id() => match ended {
                Ok((id, Ok(()))) => anyhow!("{} stopped", self.name(id)),
                Ok((id, Err(e))) => e.context(format!("{} failed", self.name(id))),
                Err(e) => anyhow!("{} {}", self.name(e.id()), describe(e)),
            },
        }
    }

    fn name(&self, id: Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("a task")
    }

    pub fn abort_all(&mut self) {
        self.set.abort_all();
        for handle in &self.outside {
            handle.abort();
        }
    }
}

fn describe(e: JoinError) -> String {
    if e.is_panic() { format!("panicked: {}", panic_message(&e.into_panic())) } else { "was cancelled".to_owned() }
}

fn panic_message(payload: &Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn forever() -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        std::future::pending()
    }

    async fn death_of(tasks: &mut Tasks) -> String {
        let e = tokio::time::timeout(Duration::from_secs(5), tasks.first_death()).await.expect("a task died");
        format!("{e:#}")
    }

    #[tokio::test]
    async fn a_panicking_task_is_a_death_that_names_it() {
        let mut tasks = Tasks::new();
        tasks.spawn("the background read", forever());
        tasks.spawn("the event reader", async {
            let sizes: Vec<u64> = vec![u64::MAX];
            let _ = sizes[0].checked_add(2).expect("chunk size overflows");
            Ok(())
        });
        let death = death_of(&mut tasks).await;
        assert!(death.contains("the event reader panicked") && death.contains("chunk size overflows"), "{death}");
        tasks.abort_all();
    }

    #[tokio::test]
    async fn a_failing_or_ending_task_is_a_death_too() {
        let mut tasks = Tasks::new();
        tasks.spawn("the event reader", async { Err(anyhow!("watching the ring buffer: EBADF")) });
        let death = death_of(&mut tasks).await;
        assert_eq!(death, "the event reader failed: watching the ring buffer: EBADF");

        let mut tasks = Tasks::new();
        tasks.watch("the API server", tokio::spawn(async {}));
        assert_eq!(death_of(&mut tasks).await, "the API server stopped");

        let mut tasks = Tasks::new();
        tasks.watch("the metrics endpoint", tokio::spawn(async { panic!("bind") }));
        assert_eq!(death_of(&mut tasks).await, "the metrics endpoint failed: panicked: bind");
    }

    #[tokio::test]
    async fn a_panic_in_a_task_nobody_joins_is_a_death_too() {
        let mut tasks = Tasks::new();
        tasks.catch_every_panic();
        tasks.spawn("the event reader", forever());
        // Like an API connection's handler: spawned and forgotten.
        drop(tokio::spawn(async { panic!("a connection handler broke") }));
        let death = death_of(&mut tasks).await;
        assert!(death.starts_with("a task panicked: panicked at ") && !death.contains('\n'), "{death}");
        tasks.abort_all();
    }

    #[tokio::test]
    async fn while_all_run_there_is_no_death_and_abort_stops_them() {
        let mut tasks = Tasks::new();
        let outside = tokio::spawn(std::future::pending::<()>());
        let watched = outside.abort_handle();
        tasks.watch("the API server", outside);
        tasks.spawn("the event reader", forever());
        assert!(tokio::time::timeout(Duration::from_millis(200), tasks.first_death()).await.is_err());
        tasks.abort_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(watched.is_finished(), "a watched task is aborted with the rest");
    }
}
