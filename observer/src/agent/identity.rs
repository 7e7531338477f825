//! Naming new cgroups: which container each is, confirmed by its runtime.
//!
//! The runtime is asked (Docker, CRI, podman) without the agent's lock held: a
//! slow or hung runtime must not stop events from draining, nor delay what the
//! agent knows of a container's first calls. So a new container cgroup is
//! adopted at once, under the lock, as *pending* (recorded, never killed); an
//! [`IdentityJob`] then asks the runtime outside the lock, and
//! [`Agent::apply_identity`] takes the answer back under it.

use observer_common::slot::{SLOT_FIRST_MARKER, enforce};
use observer_contract::{alerts::AlertKind, views::State};

use super::{
    core::{Agent, Watch},
    model::ContainerRecord,
};
use crate::{
    clock::{now, parse_time},
    container::{
        ContainerRef, Kind, Resolver, Runtime, RuntimeIdentity, cgroup_path,
        confirm::{self, Confirmation, RuntimeAnswer, Verdict},
    },
    printable::short,
};

/// A container cgroup whose runtime must be asked.
#[derive(Clone, Debug)]
pub struct IdentityJob {
    /// The record it was adopted into (pending); empty for an overflowed cgroup.
    pub key: String,
    pub cgroup_id: u64,
    pub path: String,
    pub cref: ContainerRef,
    pub tgid: u32,
    pub comm: String,
    /// The cgroup has no slot (every slot was taken): decide the overflow.
    pub overflow: bool,
}

/// What the runtime says about a container-shaped cgroup, and whether that
/// confirms it (see `container::confirm`). Called without the agent's lock.
pub async fn identify(resolver: &Resolver, path: &str, cref: &ContainerRef) -> (Option<RuntimeIdentity>, Verdict) {
    let (identity, answer) = if cref.kind == Kind::Container {
        match resolver.runtime_identity(cref).await {
            Ok(Some(info)) => {
                let answer = RuntimeAnswer::Known { pid: info.pid, state: info.state.clone() };
                (Some(info), answer)
            }
            // A CRI runtime learns a pod's sandbox only once its process
            // runs: a young cgroup it does not know yet is pending.
            Ok(None)
                if matches!(cref.runtime, Runtime::Containerd | Runtime::CriO)
                    && std::fs::metadata(resolver.mount().join(cref.cgroup.trim_start_matches('/')))
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age < std::time::Duration::from_secs(30)) =>
            {
                (None, RuntimeAnswer::Unavailable)
            }
            Ok(None) => (None, RuntimeAnswer::Unknown),
            Err(e) => {
                tracing::warn!("asking the runtime about {}: {e}", short(&cref.id));
                (None, RuntimeAnswer::Unavailable)
            }
        }
    } else {
        // Not a container: at best pending, never killed.
        (None, RuntimeAnswer::Unavailable)
    };
    let verdict = confirm::confirm(resolver.mount(), path, &cref.cgroup, &answer);
    (identity, verdict)
}

/// Runs the jobs (outside the lock), then applies each answer (under it).
pub async fn resolve_jobs(agent: &tokio::sync::Mutex<Agent>, resolver: &Resolver, jobs: Vec<IdentityJob>) {
    for job in jobs {
        let (identity, verdict) = identify(resolver, &job.path, &job.cref).await;
        agent.lock().await.apply_identity(job, identity, verdict);
    }
}

impl Agent {
    /// A cgroup's first call: cheap work only (no runtime query, no tree walk).
    /// Returns the job that asks its runtime, for a container cgroup.
    pub fn on_new_cgroup(&mut self, cgroup_id: u64, slot: u32, tgid: u32, comm: &str) -> Option<IdentityJob> {
        if slot >= SLOT_FIRST_MARKER {
            return self.on_overflow(cgroup_id, tgid, comm);
        }
        // Seen already (the startup scan and the ring buffer can both report a
        // slot), or the slot was freed and reused since: nothing to do.
        if self.slot_owner.contains_key(&slot) || self.probe.counters().info(slot).cgroup_id != cgroup_id {
            return None;
        }
        let Some(path) = self.path_of(cgroup_id) else {
            // Gone before we could name it (see `vanished`).
            self.adopt_vanished(cgroup_id, slot, tgid);
            return None;
        };
        let cref = cgroup_path::parse(&path);
        let watched = match self.watch {
            Watch::All => true,
            Watch::Containers => cref.is_container(),
        };
        if !watched {
            if let Err(e) = self.probe.ignore(cgroup_id, Some(slot)) {
                tracing::warn!("could not ignore cgroup {path}: {e:#}");
            }
            return None;
        }
        if !self.within_share(cgroup_id, slot, &path, tgid, comm) {
            return None;
        }
        if !cref.is_container() {
            tracing::info!(cgroup = %path, slot, tgid, comm, "recording cgroup");
            self.adopt(&path.clone(), cgroup_id, slot, path, None, Confirmation::Confirmed);
            return None;
        }
        // What needs no runtime is decided now: a path an unprivileged user
        // could have made never joins the container, not even for a moment.
        if let Some(dir) = confirm::unprivileged_ancestor(self.resolver.mount(), &path) {
            let reason = format!("{} is owned or writable by an unprivileged user", dir.display());
            self.adopt_impostor(cgroup_id, slot, path, &cref, &reason, tgid, comm);
            return None;
        }
        // Announced by the runtime (Docker's or podman's `create` event): named, and armed
        // now, before runc's init execs the container's process.
        let (confirmation, announced) = match self.announced_for(&cref, &path) {
            Some((confirmation, identity)) => (confirmation, Some(identity)),
            None => (Confirmation::Pending, None),
        };
        if confirmation == Confirmation::Confirmed {
            tracing::info!(cgroup = %path, slot, tgid, comm, "recording container cgroup (confirmed by its runtime's create event)");
        } else {
            tracing::info!(cgroup = %path, slot, tgid, comm, "recording container cgroup (pending its runtime's answer)");
        }
        self.adopt(&cref.id, cgroup_id, slot, path.clone(), Some(&cref), confirmation);
        self.fill_identity(&cref.id, &cref, announced);
        self.apply_rules(&cref.id);
        Some(IdentityJob { key: cref.id.clone(), cgroup_id, path, cref, tgid, comm: comm.to_owned(), overflow: false })
    }

    /// The runtime's answer for a job, under the lock. The record may have
    /// changed meanwhile (the cgroup ended, its slot went to another): the
    /// answer applies to the cgroup, wherever it is now.
    pub fn apply_identity(&mut self, job: IdentityJob, identity: Option<RuntimeIdentity>, verdict: Verdict) {
        if job.overflow {
            self.decide_overflow(job, identity, verdict);
            return;
        }
        let IdentityJob { key, cgroup_id, path, cref, tgid, comm, .. } = job;
        let Some(current) = self.containers.get(&key).and_then(|r| r.cgroups.get(&cgroup_id)).map(|c| c.confirmation)
        else {
            return;
        };
        match verdict.confirmation {
            Confirmation::Pending => {
                // Name and image, when the runtime gave them, even unconfirmed.
                if identity.is_some() {
                    self.fill_identity(&key, &cref, identity);
                    self.dirty.insert(key.clone());
                    self.apply_rules(&key);
                }
            }
            Confirmation::Confirmed => {
                if let Some(cg) = self.containers.get_mut(&key).and_then(|r| r.cgroups.get_mut(&cgroup_id)) {
                    cg.confirmation = Confirmation::Confirmed;
                }
                if current != Confirmation::Confirmed {
                    tracing::info!(cgroup = %path, "confirmed by the runtime: {}", verdict.reason);
                }
                self.fill_identity(&key, &cref, identity);
                self.dirty.insert(key.clone());
                self.apply_rules(&key);
            }
            Confirmation::Impostor => self.split_impostor(&key, cgroup_id, path, &cref, &verdict.reason, tgid, &comm),
        }
    }

    /// Moves a cgroup the runtime disowned out of the container's record.
    #[allow(clippy::too_many_arguments)]
    fn split_impostor(
        &mut self,
        key: &str,
        cgroup_id: u64,
        path: String,
        cref: &ContainerRef,
        reason: &str,
        tgid: u32,
        comm: &str,
    ) {
        let Some(mut cg) = self.containers.get_mut(key).and_then(|r| r.cgroups.remove(&cgroup_id)) else { return };
        self.dirty.insert(key.to_owned());
        let left = self.remove_if_emptied(key);
        if let Some(slot) = cg.slot {
            self.slot_owner.remove(&slot);
            self.adopt_impostor(cgroup_id, slot, path, cref, reason, tgid, comm);
            if let Some(record) = self.containers.get_mut(&self_key(&cg.path)) {
                if let Some(moved) = record.cgroups.get_mut(&cgroup_id) {
                    moved.rows = std::mem::take(&mut cg.rows);
                }
                if let Some(left) = left {
                    inherit(record, left);
                }
            }
            return;
        }
        // Ended already: what it did moves to a record of its own.
        tracing::warn!(cgroup = %path, "impostor cgroup (ended): {reason}");
        cg.confirmation = Confirmation::Impostor;
        let mut record = ContainerRecord::new(&path, "plain".into(), path.clone(), cgroup_id, now());
        record.name = path.clone();
        record.state = State::Exited;
        record.ended_at = Some(now());
        record.cgroups.insert(cgroup_id, cg);
        if let Some(left) = left {
            inherit(&mut record, left);
        }
        self.make_room_for_record();
        self.containers.insert(path.clone(), record);
        let runtime = format!("{:?}", cref.runtime).to_lowercase();
        self.alert_cgroup(
            &path,
            AlertKind::ImpostorCgroup,
            tgid,
            comm,
            format!("claims to be {runtime} container {}: {reason}", cref.id),
        );
    }

    /// The record a disowned cgroup was split from, removed (and its file)
    /// when that cgroup was all it held: a record the runtime never vouched
    /// for, named after a container that does not exist, kept nothing of its own.
    fn remove_if_emptied(&mut self, key: &str) -> Option<ContainerRecord> {
        if !self.containers.get(key).is_some_and(|r| r.cgroups.is_empty()) {
            return None;
        }
        tracing::info!(record = %short(key), "record of a disowned cgroup removed");
        self.dirty.remove(key);
        self.counts_dirty.remove(key);
        self.store.remove(key);
        self.containers.remove(key)
    }

    /// A container-shaped cgroup the runtime does not vouch for: a record of its
    /// own, keyed and named by its path, so it never takes the container's name,
    /// profile or rules. One `impostor_cgroup` alert.
    #[allow(clippy::too_many_arguments)]
    fn adopt_impostor(
        &mut self,
        cgroup_id: u64,
        slot: u32,
        path: String,
        cref: &ContainerRef,
        reason: &str,
        tgid: u32,
        comm: &str,
    ) {
        tracing::warn!(cgroup = %path, container = %short(&cref.id), "impostor cgroup: {reason}");
        let key = self_key(&path);
        self.adopt(&key, cgroup_id, slot, path.clone(), None, Confirmation::Impostor);
        if let Some(r) = self.containers.get_mut(&key) {
            r.name = path;
        }
        // Whatever an earlier rule left on this slot does not apply to it.
        self.probe.counters().with_info(slot, |info| info.enforce = enforce::OFF);
        let runtime = format!("{:?}", cref.runtime).to_lowercase();
        self.alert_cgroup(
            &key,
            AlertKind::ImpostorCgroup,
            tgid,
            comm,
            format!("claims to be {runtime} container {}: {reason}", cref.id),
        );
    }

    pub(super) fn fill_identity(&mut self, key: &str, cref: &ContainerRef, info: Option<RuntimeIdentity>) {
        let started_at = self.started_at.clone();
        let Some(r) = self.containers.get_mut(key) else { return };
        match info {
            Some(info) => {
                r.name = info.name.clone();
                r.image = info.image.clone();
                // dockerd's create event names no OCI runtime: its inspect does.
                if !info.runtime.is_empty() {
                    r.runtime = info.runtime.clone();
                }
                r.seccomp_option = info.seccomp.clone().or(r.seccomp_option.take());
                r.engine = info.engine.clone();
                r.container_name = info.container_name.clone();
                if !info.image_digest.is_empty() {
                    r.image_digest = info.image_digest.clone();
                }
                r.pod = info.pod.clone();
                // A container's labels never change; an answer without them
                // (an inspect that does not read them) keeps those known.
                if !info.labels.is_empty() {
                    r.labels = info.labels.clone();
                }
                // Started before the agent: only what happened since is known.
                if info.state == "running"
                    && !info.started_at.is_empty()
                    && parse_time(&info.started_at) < parse_time(&started_at)
                    && r.first_use.is_empty()
                {
                    r.observed_since = Some(started_at);
                }
            }
            None => {
                if r.name.is_empty() {
                    r.name = cref.unit.clone().unwrap_or_else(|| short(&cref.id));
                }
            }
        }
    }

    /// Jobs for cgroups the runtime has not confirmed yet (it was down, the
    /// container was being created), and for overflowed containers waiting for
    /// it: asked again on every background round.
    pub fn pending_jobs(&mut self) -> Vec<IdentityJob> {
        let mut jobs = Vec::new();
        let gone: Vec<u64> = self
            .overflow_pending
            .iter()
            .filter(|(_, p)| !self.resolver.mount().join(p.trim_start_matches('/')).exists())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.overflow_pending.remove(&id);
        }
        for (cgroup_id, path) in &self.overflow_pending {
            jobs.push(IdentityJob {
                key: String::new(),
                cgroup_id: *cgroup_id,
                path: path.clone(),
                cref: cgroup_path::parse(path),
                tgid: 0,
                comm: String::new(),
                overflow: true,
            });
        }
        // A container that lived milliseconds ends before dockerd calls it
        // running: it still gets its name, for a minute after it ended.
        let recent = |r: &ContainerRecord| {
            r.state == State::Running
                || r.ended_at
                    .as_deref()
                    .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
                    .is_some_and(|t| time::OffsetDateTime::now_utc() - t < std::time::Duration::from_secs(60))
        };
        for r in self.containers.values().filter(|r| recent(r)) {
            for (cgroup_id, c) in r.cgroups.iter().filter(|(_, c)| c.confirmation == Confirmation::Pending) {
                let cref = cgroup_path::parse(&c.path);
                if cref.is_container() {
                    jobs.push(IdentityJob {
                        key: r.id.clone(),
                        cgroup_id: *cgroup_id,
                        path: c.path.clone(),
                        cref,
                        tgid: 0,
                        comm: String::new(),
                        overflow: false,
                    });
                }
            }
        }
        jobs
    }
}

/// What a record held only for the cgroup split off from it goes with that
/// cgroup: its first uses, argument values and alerts were all the impostor's.
fn inherit(record: &mut ContainerRecord, left: ContainerRecord) {
    for (row, first) in left.first_use.iter() {
        if record.first_use.get(&row).is_none() {
            record.first_use.insert(row, first);
        }
    }
    record.args.merge(&left.args);
    record.alerts += left.alerts;
    record.alerted.extend(left.alerted);
    if left.first_seen < record.first_seen {
        record.first_seen = left.first_seen;
    }
    if let Some(mode) = left.seccomp_mode {
        record.seccomp_mode = Some(record.seccomp_mode.unwrap_or(0).max(mode));
    }
}

/// The key of a record named by its cgroup path (plain cgroups, impostors).
fn self_key(path: &str) -> String {
    path.to_owned()
}
