//! What a container runtime says about one container, in one shape for every
//! runtime (Docker, podman, containerd and CRI-O through the CRI): the agent's
//! records, `--match` rules and baselines read this, never a runtime's own type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::docker_api::DockerInfo;

/// The Kubernetes pod a container belongs to (from the CRI).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The pod's labels (the container's own labels are in [`RuntimeIdentity::labels`]).
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

/// One container as its runtime describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeIdentity {
    /// Who runs it: `docker`, `podman`, `containerd`, `cri-o` (the CRI's runtime name).
    pub engine: String,
    /// What `observer ps` shows as `runtime`: Docker's OCI runtime (`runc`,
    /// `crun`), as it always did; the engine for the others.
    pub runtime: String,
    /// The name to show: Docker's and podman's container name; for a CRI
    /// container `NAMESPACE/POD/CONTAINER` (`NAMESPACE/POD/POD` for the sandbox).
    pub name: String,
    /// The container's own name (the CRI's metadata name; Docker's name).
    pub container_name: String,
    /// The image as asked for (`nginx:1.25`, `docker.io/library/nginx:1.25`).
    pub image: String,
    /// The image's content id or digest (`sha256:...`).
    pub image_digest: String,
    /// Its init process in the host pid namespace; 0 when not running.
    pub pid: u32,
    /// `created`, `running`, `exited`, ... (the CRI's states spelled that way too).
    pub state: String,
    /// RFC 3339; empty when unknown or never started.
    pub started_at: String,
    /// Docker's `--security-opt seccomp=` value, when the runtime says.
    pub seccomp: Option<String>,
    pub pod: Option<PodInfo>,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
}

impl From<DockerInfo> for RuntimeIdentity {
    fn from(d: DockerInfo) -> Self {
        RuntimeIdentity {
            engine: "docker".into(),
            runtime: d.runtime,
            container_name: d.name.clone(),
            name: d.name,
            image: d.image,
            image_digest: d.image_id,
            pid: d.pid,
            state: d.state,
            started_at: d.started_at,
            seccomp: Some(d.seccomp.to_string()),
            pod: None,
            labels: d.labels,
        }
    }
}

impl RuntimeIdentity {
    /// Whether an image rule (`image:IMAGE`) names this container's image: the
    /// image as written, without its tag, or (for registries' full names) by
    /// its last path components, or by digest.
    pub fn image_matches(image: &str, digest: &str, wanted: &str) -> bool {
        image_matches(image, digest, wanted)
    }
}

/// `wanted` names `image`: equal, equal without the tag, equal after dropping
/// a registry host and `library/` (`docker.io/library/nginx:1.25` is `nginx:1.25`
/// and `nginx`), podman's `localhost/`, or the digest.
pub fn image_matches(image: &str, digest: &str, wanted: &str) -> bool {
    if wanted.is_empty() {
        return false;
    }
    if !digest.is_empty() && (digest == wanted || digest.strip_prefix("sha256:") == Some(wanted)) {
        return true;
    }
    let short = short_image(image);
    let without_tag = |s: &str| -> String {
        let s = s.split('@').next().unwrap_or(s);
        match s.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
            _ => s.to_owned(),
        }
    };
    let wanted_short = short_image(wanted);
    [image, short.as_str()]
        .iter()
        .any(|i| *i == wanted || *i == wanted_short || without_tag(i) == wanted || without_tag(i) == wanted_short)
}

/// An image reference without a registry host, `library/` or podman's `localhost/`.
pub fn short_image(image: &str) -> String {
    let mut rest = image;
    if let Some((first, tail)) = rest.split_once('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        rest = tail;
    }
    rest.strip_prefix("library/").unwrap_or(rest).to_owned()
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
    fn images_match_by_short_name_tag_and_digest() {
        assert!(image_matches("docker.io/library/nginx:1.25", "", "nginx"));
        assert!(image_matches("docker.io/library/nginx:1.25", "", "nginx:1.25"));
        assert!(!image_matches("docker.io/library/nginx:1.25", "", "nginx:1.26"));
        assert!(image_matches("localhost/observer-busybox:latest", "", "observer-busybox:latest"));
        assert!(image_matches("observer-busybox:latest", "", "observer-busybox"));
        assert!(image_matches("registry.local:5000/team/app:v1", "", "team/app"));
        assert!(image_matches("x", "sha256:abc", "sha256:abc"));
        assert!(!image_matches("observer-busybox:latest", "", "busybox"));
        assert!(!image_matches("observer-busybox:latest", "", ""));
    }
}
