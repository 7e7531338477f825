//! `observer agent`: the node agent (agent/), on a tokio runtime of two workers.

use crate::agent::AgentArgs;

pub fn run(args: AgentArgs) -> anyhow::Result<i32> {
    // Before the runtime starts: its threads inherit the main thread's
    // nice, and find the arena limit set.
    crate::agent::priority::set_nice(args.nice);
    crate::agent::heap::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(crate::agent::run(args))
}
