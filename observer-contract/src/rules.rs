//! Rules: which containers a rule names (`--match`, `--baseline`, `observer
//! enforce`), what an enforcement does, and what arming it answered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{error::ContractError, image::image_matches, pod::PodInfo};

/// Which containers an enforcement applies to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A known container: id, unique id prefix or name.
    Container(String),
    /// Every container with this name, now and when (re)started.
    Name(String),
    /// Every container of this image, now and when started.
    Image(String),
    /// Every workload container of this Kubernetes pod (`NAMESPACE/NAME`).
    Pod(String),
    /// Every workload container in this Kubernetes namespace.
    Namespace(String),
    /// Every container whose labels (or whose pod's labels) hold `KEY=VALUE`.
    Label(String),
}

/// What a rule is matched against: a container as its runtime named it.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub image: &'a str,
    pub image_digest: &'a str,
    pub pod: Option<&'a PodInfo>,
    pub labels: &'a BTreeMap<String, String>,
}

impl Target {
    /// Parses `--match` and `--baseline` targets: `name:NAME`, `image:IMAGE`,
    /// `pod:NAMESPACE/NAME`, `namespace:NAME`, `label:KEY=VALUE`.
    pub fn parse_match(spec: &str) -> Result<Target, ContractError> {
        let refuse = |why: String| ContractError::Match { spec: spec.to_owned(), why };
        let (kind, value) = spec.split_once(':').ok_or_else(|| {
            refuse("expected name:NAME, image:IMAGE, pod:NAMESPACE/NAME, namespace:NAME or label:KEY=VALUE".into())
        })?;
        if value.is_empty() {
            return Err(refuse(format!("nothing after {kind}:")));
        }
        match kind {
            "name" => Ok(Target::Name(value.into())),
            "image" => Ok(Target::Image(value.into())),
            "pod"
                if value.split_once('/').is_some_and(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/')) =>
            {
                Ok(Target::Pod(value.into()))
            }
            "pod" => Err(refuse("expected pod:NAMESPACE/NAME".into())),
            "namespace" => Ok(Target::Namespace(value.into())),
            "label" if value.split_once('=').is_some_and(|(k, _)| !k.is_empty()) => Ok(Target::Label(value.into())),
            "label" => Err(refuse("expected label:KEY=VALUE".into())),
            other => Err(refuse(format!("unknown match kind {other:?} (name, image, pod, namespace, label)"))),
        }
    }

    /// Whether this rule names the container. A pod's sandbox ("pause")
    /// container is not one of its workload containers: pod, namespace and
    /// label rules leave it alone.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let workload_pod = s.pod.filter(|p| !p.sandbox);
        match self {
            Target::Name(n) => s.name == n,
            Target::Image(i) => image_matches(s.image, s.image_digest, i),
            Target::Container(c) => s.id == c || s.name == c || s.id.starts_with(c.as_str()),
            Target::Pod(p) => {
                workload_pod.is_some_and(|pod| p.split_once('/') == Some((pod.namespace.as_str(), pod.name.as_str())))
            }
            Target::Namespace(ns) => workload_pod.is_some_and(|pod| &pod.namespace == ns),
            Target::Label(kv) => {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let has = |labels: &BTreeMap<String, String>| labels.get(k).is_some_and(|x| x == v);
                match s.pod {
                    Some(pod) if pod.sandbox => false,
                    Some(pod) => has(s.labels) || has(&pod.labels),
                    None => has(s.labels),
                }
            }
        }
    }
}

/// What an enforcement does on a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum EnforceAction {
    /// An `enforce` alert line.
    Alert,
    /// The alert, SIGKILL of the caller from the kernel, and the container's cgroups killed.
    Kill,
}

/// An enforcement the agent keeps applying (also to containers yet to start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforceRule {
    pub target: Target,
    pub action: EnforceAction,
    pub allowed_rows: Vec<u32>,
    pub profile: String,
}

/// What one enforcement request armed in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Armed {
    pub slots: Vec<u32>,
    /// The cgroups (paths) whose slots now carry the rule.
    pub cgroups: Vec<String>,
    /// Cgroups the runtime has not confirmed yet: alerted, never killed, until it does.
    pub alert_only_until_confirmed: Vec<String>,
}

impl Armed {
    pub fn add(&mut self, other: Armed) {
        self.slots.extend(other.slots);
        self.cgroups.extend(other.cgroups);
        self.alert_only_until_confirmed.extend(other.alert_only_until_confirmed);
    }
}

/// `observer enforce`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnforceAnswer {
    /// The records it applies to now.
    pub enforced: Vec<String>,
    pub armed: Armed,
    pub rule: EnforceRule,
}

/// `observer enforce --off`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReleaseAnswer {
    pub released: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_keep_their_spelling() {
        assert_eq!(serde_json::to_value(EnforceAction::Kill).unwrap(), "kill");
    }
}
