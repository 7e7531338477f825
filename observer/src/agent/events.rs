//! The kernel's event ring and log, read as they come.

use std::sync::Arc;

use observer_common::{event::Event, slot::SLOT_FIRST_MARKER};
use tokio::{io::unix::AsyncFd, sync::Mutex};

use super::{Agent, identity};

pub(super) async fn read_events(
    agent: Arc<Mutex<Agent>>,
    ring: aya::maps::RingBuf<aya::maps::MapData>,
) -> anyhow::Result<()> {
    // SAFETY: the ring buffer owns its fd and outlives the registration (both move into `fd`).
    let mut fd = unsafe { AsyncFd::register(ring) }.map_err(|e| anyhow::anyhow!("watching the ring buffer: {e}"))?;
    loop {
        let mut guard = fd.readable_mut().await?;
        let mut batch = Vec::new();
        {
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if item.len() >= std::mem::size_of::<Event>() {
                    // SAFETY: the kernel wrote an Event (repr(C), Pod) there.
                    batch.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
                }
            }
        }
        guard.clear_ready();
        if batch.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        // New cgroups inotify did not catch: one walk of the tree, without the lock.
        // (And those of events whose `NewCgroup` was lost: see `Agent::on_event`.)
        let (resolver, unknown) = {
            let a = agent.lock().await;
            let new_ids: Vec<u64> = batch
                .iter()
                .filter(|e| e.kind == observer_common::event::EventKind::NewCgroup as u32 || a.is_orphan(e))
                .map(|e| e.cgroup_id)
                .collect();
            (a.resolver.clone(), a.unknown_paths(new_ids.iter().copied()))
        };
        let walked = if unknown {
            let mount = resolver.mount().to_path_buf();
            tokio::task::spawn_blocking(move || observer_probe::v2_mount::walk_ids(&mount))
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        let walk_done = started.elapsed();
        let jobs: Vec<identity::IdentityJob> = {
            let mut a = agent.lock().await;
            let locked = started.elapsed();
            if let Some(walked) = walked {
                a.known_paths.extend(walked);
            }
            let jobs = batch
                .iter()
                .filter(|e| e.slot < SLOT_FIRST_MARKER || e.kind == observer_common::event::EventKind::NewCgroup as u32)
                .filter_map(|e| a.on_event(e))
                .collect();
            let held = started.elapsed() - locked;
            tracing::debug!(events = batch.len(), walked = unknown, ?walk_done, ?locked, ?held, "event batch");
            jobs
        };
        // Each container's runtime is asked on its own, so twenty starting at
        // once are named side by side, and events keep draining meanwhile.
        for job in jobs {
            let (agent, resolver) = (agent.clone(), resolver.clone());
            tokio::spawn(async move { identity::resolve_jobs(&agent, &resolver, vec![job]).await });
        }
    }
}

/// Forwards the kernel programs' aya-log records to the agent's log.
pub(super) async fn read_kernel_log(log: observer_probe::KernelLog) -> anyhow::Result<()> {
    // SAFETY: the logger owns its ring buffer fd and moves into `fd` with it.
    let mut fd = unsafe { AsyncFd::register(log) }.map_err(|e| anyhow::anyhow!("watching the kernel log: {e}"))?;
    loop {
        let mut guard = fd.readable_mut().await?;
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}
