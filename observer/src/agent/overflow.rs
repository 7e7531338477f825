//! A cgroup the kernel could not give a slot (every slot taken): never silent.
//! It is alerted on, an unprivileged owner's slot may be taken back for a
//! container root, and an enforced container is killed under `--on-overflow kill`.

use std::collections::BTreeMap;

use observer_contract::{
    alerts::{Alert, AlertKind},
    rules::Target,
};

use super::{
    core::{Agent, OverflowAction, Watch},
    identity::IdentityJob,
    slot_share::owner_of,
};
use crate::{
    clock::now,
    container::{
        RuntimeIdentity, cgroup_path,
        confirm::{self, Confirmation, Verdict},
    },
    printable::short,
};

impl Agent {
    /// A cgroup the kernel could not give a slot (every slot taken): nothing of
    /// it is recorded or enforced in the kernel. Never silent: an `overflow`
    /// alert; and when an enforcement rule names the container, `--on-overflow
    /// kill` kills it (once the runtime confirms it) rather than let it run unwatched.
    pub(super) fn on_overflow(&mut self, cgroup_id: u64, tgid: u32, comm: &str) -> Option<IdentityJob> {
        let path = self.path_of(cgroup_id)?;
        let cref = cgroup_path::parse(&path);
        if self.watch == Watch::Containers && !cref.is_container() {
            // Never recorded: out of `CGROUPS`, whose entries containers need.
            if let Err(e) = self.probe.ignore(cgroup_id, None) {
                tracing::warn!("could not ignore cgroup {path}: {e:#}");
            }
            return None;
        }
        let mount = self.resolver.mount().to_path_buf();
        if let Some(uid) = owner_of(&mount.join(path.trim_start_matches('/'))).filter(|u| *u != 0) {
            self.refuse_overflowed(cgroup_id, uid, &path, tgid, comm);
            return None;
        }
        if !self.overflow_alerted.insert(cgroup_id) {
            return None;
        }
        // A container root's runtime made (no unprivileged user could have
        // made its path) takes a slot back from an unprivileged owner.
        if cref.is_container()
            && confirm::unprivileged_ancestor(&mount, &path).is_none()
            && let Some(slot) = self.slot_taken_back(cgroup_id, &path, tgid, comm)
        {
            self.overflow_alerted.remove(&cgroup_id);
            return self.on_new_cgroup(cgroup_id, slot, tgid, comm);
        }
        tracing::warn!(cgroup = %path, "every slot is taken (raise --slots): its syscalls are counted, not recorded");
        let job =
            IdentityJob { key: String::new(), cgroup_id, path, cref, tgid, comm: comm.to_owned(), overflow: true };
        if job.cref.is_container() {
            return Some(job);
        }
        self.decide_overflow(job, None, Verdict { confirmation: Confirmation::Confirmed, reason: String::new() });
        None
    }

    /// The alert for an overflowed cgroup and, for an enforced container under
    /// `--on-overflow kill`, the kill. A container the runtime has not confirmed
    /// yet waits in `overflow_pending`.
    pub(super) fn decide_overflow(&mut self, job: IdentityJob, identity: Option<RuntimeIdentity>, verdict: Verdict) {
        let IdentityJob { cgroup_id, path, cref, tgid, comm, .. } = job;
        if verdict.confirmation == Confirmation::Pending {
            self.overflow_pending.insert(cgroup_id, path);
            return;
        }
        self.overflow_pending.remove(&cgroup_id);
        let name = identity.as_ref().map_or_else(|| short(&cref.id), |d| d.name.clone());
        let image = identity.as_ref().map(|d| d.image.clone()).unwrap_or_default();
        let no_labels = BTreeMap::new();
        let subject = observer_contract::rules::Subject {
            id: &cref.id,
            name: &name,
            image: &image,
            image_digest: identity.as_ref().map_or("", |d| d.image_digest.as_str()),
            pod: identity.as_ref().and_then(|d| d.pod.as_ref()),
            labels: identity.as_ref().map_or(&no_labels, |d| &d.labels),
        };
        let matches = |t: &Target| t.matches(&subject);
        let enforced =
            verdict.confirmation == Confirmation::Confirmed && self.enforcements.iter().any(|r| matches(&r.target));
        let kill = enforced && self.on_overflow == OverflowAction::Kill;
        let what = if kill {
            "killed (--on-overflow kill): an enforced container the kernel cannot record"
        } else if enforced {
            "NOT ENFORCED: an enforced container the kernel cannot record (--on-overflow kill would kill it)"
        } else if verdict.confirmation == Confirmation::Impostor {
            "not recorded (and not the container its name claims)"
        } else {
            "not recorded"
        };
        let alert = Alert {
            time: now(),
            kind: AlertKind::Overflow,
            id: if cref.is_container() && verdict.confirmation == Confirmation::Confirmed {
                cref.id.clone()
            } else {
                path.clone()
            },
            name,
            image,
            pid: tgid,
            comm,
            runtime: identity.as_ref().map(|d| d.runtime.clone()).unwrap_or_default(),
            engine: identity.as_ref().map(|d| d.engine.clone()).unwrap_or_default(),
            namespace: identity.as_ref().and_then(|d| Some(d.pod.as_ref()?.namespace.clone())),
            pod: identity.as_ref().and_then(|d| Some(d.pod.as_ref()?.name.clone())),
            detail: Some(format!("{path}: every slot is taken ({}); {what}", self.table_holders())),
            ..super::alerting::blank(AlertKind::Overflow)
        };
        self.alerts_total += 1;
        self.write_alert(&alert);
        if kill {
            let file = self.resolver.mount().join(path.trim_start_matches('/')).join("cgroup.kill");
            match std::fs::write(&file, "1") {
                Ok(()) => {
                    tracing::warn!(cgroup = %path, "killed: enforced, but every slot is taken (--on-overflow kill)")
                }
                Err(e) => tracing::warn!("killing {}: {e}", file.display()),
            }
        }
    }
}
