//! The Kubernetes pod a container belongs to, the controller that made the
//! pod, and the key (`NAMESPACE/KIND/NAME/CONTAINER`) under which the replicas
//! of one workload container are one profile.

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::error::ContractError;

/// The Kubernetes pod a container belongs to (from the CRI).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The pod's labels (the container's own labels are in the runtime identity's `labels`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// True for the pod's sandbox ("pause") container: it holds the pod's
    /// namespaces and is not one of the pod's workload containers.
    #[serde(default)]
    pub sandbox: bool,
    /// The owner the pod was made by, derived from its name and labels.
    #[serde(default)]
    pub workload: Workload,
}

/// The controller a pod belongs to. The CRI carries no ownerReferences, so it
/// is derived from the pod's name and the labels controllers put on their pods
/// (see [`Workload::of_pod`] and docs/fleet.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// `Deployment`, `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`, `CronJob` or `Pod`.
    pub kind: String,
    pub name: String,
    /// Which pod template the pod was made from (`pod-template-hash` or
    /// `controller-revision-hash`), when the controller says.
    #[serde(default)]
    pub template: Option<String>,
    /// Why the pod was given this owner: the labels and name shape that
    /// matched (empty in records saved before it was kept).
    #[serde(default)]
    pub matched_by: String,
}

/// The characters Kubernetes' `generateName` draws its 5-character suffixes
/// from (k8s.io/apimachinery `utilrand.String`): no vowels, no 0, 1 or 3.
const SUFFIX_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

fn strip_random_suffix(name: &str) -> Option<&str> {
    let (stem, suffix) = name.rsplit_once('-')?;
    (suffix.len() == 5 && suffix.chars().all(|c| SUFFIX_ALPHABET.contains(c)) && !stem.is_empty()).then_some(stem)
}

fn strip_ordinal(name: &str) -> Option<&str> {
    let (stem, ordinal) = name.rsplit_once('-')?;
    (!ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()) && !stem.is_empty()).then_some(stem)
}

impl Workload {
    /// The owner of a pod, from its name and labels. The rules, in order:
    /// 1. a `job-name` (or `batch.kubernetes.io/job-name`) label: a Job of that
    ///    name; a Job named `<cronjob>-<digits>` (a CronJob's scheduled
    ///    minute) belongs to that CronJob;
    /// 2. a `pod-template-hash` label H and a name `<D>-<H>-<5 chars>`: the
    ///    Deployment D (through its ReplicaSet `<D>-<H>`); a name `<R>-<5 chars>`
    ///    without `-<H>`: the ReplicaSet R;
    /// 3. a `controller-revision-hash` label and a name `<S>-<ordinal>` (or a
    ///    `statefulset.kubernetes.io/pod-name` label): the StatefulSet S;
    /// 4. a `controller-revision-hash` label and a name `<D>-<5 chars>` (or a
    ///    `pod-template-generation` label): the DaemonSet D;
    /// 5. anything else: the pod itself.
    pub fn of_pod(name: &str, labels: &BTreeMap<String, String>) -> Workload {
        let label = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        let w = |kind: &str, name: &str, template: Option<String>, why: String| Workload {
            kind: kind.into(),
            name: name.into(),
            template,
            matched_by: why,
        };
        let job_label = ["batch.kubernetes.io/job-name", "job-name"].into_iter().find_map(|k| Some((k, label(k)?)));
        if let Some((key, job)) = job_label {
            if let Some((cron, minute)) = job.rsplit_once('-')
                && minute.len() >= 8
                && minute.bytes().all(|b| b.is_ascii_digit())
            {
                return w("CronJob", cron, None, format!("label {key}={job}, a Job named <cronjob>-<minute>"));
            }
            return w("Job", &job, None, format!("label {key}={job}"));
        }
        if let Some(hash) = label("pod-template-hash") {
            let rs = strip_random_suffix(name).unwrap_or(name);
            return match rs.strip_suffix(&format!("-{hash}")) {
                Some(deployment) if !deployment.is_empty() => {
                    let why = format!("label pod-template-hash={hash} and pod name {deployment}-{hash}-<suffix>");
                    w("Deployment", deployment, Some(hash), why)
                }
                _ => {
                    let why = format!("label pod-template-hash={hash} and pod name {rs}-<suffix>");
                    w("ReplicaSet", rs, Some(hash), why)
                }
            };
        }
        if let Some(revision) = label("controller-revision-hash") {
            let sts_label = labels.contains_key("statefulset.kubernetes.io/pod-name");
            let ds_label = labels.contains_key("pod-template-generation");
            if !ds_label && let Some(sts) = strip_ordinal(name) {
                let why = format!("label controller-revision-hash={revision} and pod name {sts}-<ordinal>");
                return w("StatefulSet", sts, Some(revision), why);
            }
            if !sts_label && let Some(ds) = strip_random_suffix(name) {
                let why = format!("label controller-revision-hash={revision} and pod name {ds}-<suffix>");
                return w("DaemonSet", ds, Some(revision), why);
            }
        }
        w("Pod", name, None, "no controller's labels: the pod is its own workload".into())
    }
}

/// `NAMESPACE/KIND/NAME/CONTAINER` for a workload container of a pod (not its
/// sandbox): the key under which replicas of one workload are one profile.
/// The owner's kind is part of it, so that a bare pod named `web` is never
/// merged into the Deployment `web` (anyone who may create pods in the
/// namespace could otherwise poison the Deployment's profile).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkloadKey {
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, ... (see `Workload::kind`).
    pub kind: String,
    pub name: String,
    pub container: String,
}

impl WorkloadKey {
    /// The key of a pod's container; None for the pod's sandbox.
    pub fn of(pod: &PodInfo, container: &str) -> Option<Self> {
        (!pod.sandbox).then(|| WorkloadKey {
            namespace: pod.namespace.clone(),
            kind: pod.workload.kind.clone(),
            name: pod.workload.name.clone(),
            container: container.to_owned(),
        })
    }

    /// Whether it names this pod's container (the kind in any case, as typed
    /// on a command line); never a sandbox.
    pub fn names(&self, pod: &PodInfo, container: &str) -> bool {
        !pod.sandbox
            && pod.namespace == self.namespace
            && pod.workload.kind.eq_ignore_ascii_case(&self.kind)
            && pod.workload.name == self.name
            && container == self.container
    }
}

impl FromStr for WorkloadKey {
    type Err = ContractError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [namespace, kind, name, container] if parts.iter().all(|p| !p.is_empty()) => Ok(WorkloadKey {
                namespace: (*namespace).to_owned(),
                kind: (*kind).to_owned(),
                name: (*name).to_owned(),
                container: (*container).to_owned(),
            }),
            _ => Err(ContractError::WorkloadKey { given: s.to_owned() }),
        }
    }
}

impl TryFrom<String> for WorkloadKey {
    type Error = ContractError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<WorkloadKey> for String {
    fn from(k: WorkloadKey) -> Self {
        k.to_string()
    }
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.namespace, self.kind, self.name, self.container)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn owners_from_names_and_labels() {
        let w =
            Workload::of_pod("web-7d4b9c8f6d-x2x9k", &labels(&[("pod-template-hash", "7d4b9c8f6d"), ("app", "web")]));
        assert_eq!(
            (w.kind.as_str(), w.name.as_str(), w.template.as_deref()),
            ("Deployment", "web", Some("7d4b9c8f6d"))
        );
        let w = Workload::of_pod("frontend-b2z4q", &labels(&[("pod-template-hash", "5c7d8")]));
        assert_eq!((w.kind.as_str(), w.name.as_str()), ("ReplicaSet", "frontend"));
        let w = Workload::of_pod(
            "db-2",
            &labels(&[("controller-revision-hash", "db-6d5f7c"), ("statefulset.kubernetes.io/pod-name", "db-2")]),
        );
        assert_eq!((w.kind.as_str(), w.name.as_str(), w.template.as_deref()), ("StatefulSet", "db", Some("db-6d5f7c")));
        let w = Workload::of_pod(
            "fluentd-7xk2p",
            &labels(&[("controller-revision-hash", "6b9c"), ("pod-template-generation", "3")]),
        );
        assert_eq!((w.kind.as_str(), w.name.as_str()), ("DaemonSet", "fluentd"));
        let w = Workload::of_pod("migrate-x8s2z", &labels(&[("job-name", "migrate"), ("controller-uid", "u")]));
        assert_eq!((w.kind.as_str(), w.name.as_str()), ("Job", "migrate"));
        let w =
            Workload::of_pod("backup-29123456-q5z8d", &labels(&[("batch.kubernetes.io/job-name", "backup-29123456")]));
        assert_eq!((w.kind.as_str(), w.name.as_str()), ("CronJob", "backup"));
        assert_eq!(w.matched_by, "label batch.kubernetes.io/job-name=backup-29123456, a Job named <cronjob>-<minute>");
        let w = Workload::of_pod("debug", &labels(&[]));
        assert_eq!((w.kind.as_str(), w.name.as_str()), ("Pod", "debug"));
        // A suffix with a vowel is not generated: the pod is its own workload.
        let w = Workload::of_pod("tools-abcde", &labels(&[("controller-revision-hash", "1")]));
        assert_eq!((w.kind.as_str(), w.name.as_str()), ("Pod", "tools-abcde"));
    }

    #[test]
    fn keys_parse_print_and_refuse_other_shapes() {
        let k: WorkloadKey = "shop/Deployment/web/app".parse().unwrap();
        assert_eq!(
            (k.namespace.as_str(), k.kind.as_str(), k.name.as_str(), k.container.as_str()),
            ("shop", "Deployment", "web", "app")
        );
        assert_eq!(k.to_string(), "shop/Deployment/web/app");
        assert_eq!(serde_json::to_value(&k).unwrap(), "shop/Deployment/web/app");
        // The old three-part key is ambiguous (a Deployment or a bare pod): refused, saying the shape.
        for bad in ["shop/web/app", "shop//web/app", "a/b/c/d/e", ""] {
            let e = bad.parse::<WorkloadKey>().unwrap_err().to_string();
            assert!(e.contains("NAMESPACE/KIND/NAME/CONTAINER") && e.contains(&format!("{bad:?}")), "{e}");
        }
        let e = serde_json::from_str::<WorkloadKey>("\"shop/web/app\"").unwrap_err().to_string();
        assert!(e.contains("NAMESPACE/KIND/NAME/CONTAINER"), "{e}");
    }
}
