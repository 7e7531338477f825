//! Writing an exported profile: Docker JSON (with `x-observer`), an OCI
//! `linux.seccomp` object, or a Security Profiles Operator `SeccompProfile`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::*;

impl ExportedProfile {
    /// A profile to write without learned metadata (e.g. a converted file).
    pub fn from_resolved(profile: ResolvedProfile) -> Self {
        Self {
            profile,
            metadata: None,
            contributors: BTreeMap::new(),
            left_out: Vec::new(),
            beyond_default: BTreeSet::new(),
            kept_by_name: BTreeMap::new(),
            side_doors: Vec::new(),
            tiers: None,
        }
    }

    /// Docker JSON: `archMap` for the native ABI with the others as
    /// sub-architectures, unconditional names grouped by action, and the
    /// metadata under `x-observer` (Docker ignores unknown fields).
    pub fn to_docker_json(&self) -> String {
        let native = self.profile.arches.first().copied().unwrap_or(Arch::X86_64);
        let (default_action, default_errno_ret) = action::to_profile(self.profile.default_action);
        let out = DockerOut {
            default_action,
            default_errno_ret,
            arch_map: vec![ArchMapOut {
                architecture: arch::scmp_name(native),
                sub_architectures: self.profile.arches.iter().skip(1).map(|a| arch::scmp_name(*a)).collect(),
            }],
            syscalls: rules_out(&self.profile),
            observer: self.observer_meta(),
        };
        to_json(&out)
    }

    /// The OCI runtime-spec `linux.seccomp` object.
    pub fn to_oci_json(&self) -> String {
        to_json(&self.oci_seccomp())
    }

    /// `config` (an OCI `config.json`) with its `linux.seccomp` replaced by
    /// this profile.
    pub fn embed_in_oci_config(&self, config: &str) -> Result<String, serde_json::Error> {
        // The rest of the config is the user's, of any shape: kept as a JSON tree.
        let empty = || serde_json::Value::Object(serde_json::Map::new());
        let mut value: serde_json::Value = serde_json::from_str(config)?;
        let seccomp = serde_json::to_value(self.oci_seccomp())?;
        if !value.is_object() {
            value = empty();
        }
        let linux = value.as_object_mut().into_iter().next().map(|o| o.entry("linux").or_insert_with(empty));
        if let Some(linux) = linux {
            if !linux.is_object() {
                *linux = empty();
            }
            if let Some(linux) = linux.as_object_mut() {
                linux.insert("seccomp".into(), seccomp);
            }
        }
        Ok(to_json(&value))
    }

    /// A `SeccompProfile` custom resource. SPO has no `defaultErrnoRet`, so
    /// the default action is written with EPERM whatever its errno; the
    /// metadata goes into annotations.
    pub fn to_spo_yaml(&self, name: &str, namespace: &str) -> String {
        self.to_spo_yaml_with(name, namespace, &BTreeMap::new(), &BTreeMap::new())
    }

    /// [`Self::to_spo_yaml`] with labels and more annotations (a workload's
    /// origin: where, when, how many replicas and nodes).
    pub fn to_spo_yaml_with(
        &self,
        name: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        extra_annotations: &BTreeMap<String, String>,
    ) -> String {
        let mut annotations: BTreeMap<String, String> = BTreeMap::new();
        if let Some(meta) = &self.metadata {
            annotations.insert("observer/container".into(), meta.container.clone());
            annotations.insert("observer/image".into(), meta.image.clone());
            annotations.insert("observer/since".into(), meta.since.clone());
            annotations.insert("observer/calls".into(), meta.calls.to_string());
            annotations.insert("observer/generator".into(), meta.generator.clone());
        }
        if let Some(tiers) = &self.tiers {
            annotations.insert("observer/tiers".into(), serde_json::to_string(tiers).unwrap_or_default());
        }
        annotations.extend(extra_annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (default_action, _) = action::to_profile(self.profile.default_action);
        let out = SpoOut {
            api_version: SPO_API_VERSION,
            kind: "SeccompProfile",
            metadata: SpoMetaOut { name, namespace, labels: labels.clone(), annotations },
            spec: SpoSpecOut {
                default_action,
                architectures: self.profile.arches.iter().map(|a| arch::scmp_name(*a)).collect(),
                syscalls: rules_out(&self.profile),
            },
        };
        // Plain data of strings, numbers and lists always serialises. Metadata
        // values are all strings for Kubernetes, but a YAML 1.1 reader (PyYAML,
        // and so kubectl's plugins and validators) takes an unquoted
        // `2026-12-01T01:00:00Z` for a timestamp: write them quoted, as JSON strings.
        let spec = serde_yaml::to_string(&SpoSpecOnly { spec: &out.spec }).unwrap_or_default();
        let q = |v: &str| serde_json::to_string(v).unwrap_or_default();
        let mut text = format!(
            "apiVersion: {}\nkind: {}\nmetadata:\n  name: {}\n  namespace: {}\n",
            out.api_version,
            out.kind,
            q(out.metadata.name),
            q(out.metadata.namespace)
        );
        for (field, map) in [("labels", &out.metadata.labels), ("annotations", &out.metadata.annotations)] {
            if !map.is_empty() {
                text.push_str(&format!("  {field}:\n"));
                for (k, v) in map {
                    text.push_str(&format!("    {}: {}\n", q(k), q(v)));
                }
            }
        }
        text + &spec
    }

    fn oci_seccomp(&self) -> OciOut {
        let (default_action, default_errno_ret) = action::to_profile(self.profile.default_action);
        OciOut {
            default_action,
            default_errno_ret,
            architectures: self.profile.arches.iter().map(|a| arch::scmp_name(*a)).collect(),
            syscalls: rules_out(&self.profile),
        }
    }

    fn observer_meta(&self) -> Option<ObserverMetaOut<'_>> {
        if self.metadata.is_none() && self.contributors.is_empty() && self.tiers.is_none() {
            return None;
        }
        let m = self.metadata.as_ref();
        Some(ObserverMetaOut {
            calls: m.map(|m| m.calls),
            container: m.map(|m| m.container.as_str()),
            contributors: &self.contributors,
            generator: m.map(|m| m.generator.as_str()),
            image: m.map(|m| m.image.as_str()),
            side_doors: self.side_doors.iter().map(ToString::to_string).collect(),
            since: m.map(|m| m.since.as_str()),
            tiers: self.tiers.as_ref(),
        })
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The `syscalls` list: unconditional names grouped per action (sorted,
/// `allow` first), then conditional rules by name in profile order.
fn rules_out(profile: &ResolvedProfile) -> Vec<RuleOut> {
    let mut grouped: BTreeMap<(u8, Action), BTreeSet<&str>> = BTreeMap::new();
    let mut conditional: Vec<&ResolvedRule> = Vec::new();
    for rule in &profile.rules {
        if rule.args.is_empty() {
            grouped.entry((action::strictness(rule.action), rule.action)).or_default().insert(&rule.name);
        } else {
            conditional.push(rule);
        }
    }
    conditional.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<RuleOut> = grouped
        .into_iter()
        .map(|((_, a), names)| RuleOut::new(names.into_iter().map(str::to_owned).collect(), a, &[]))
        .collect();
    out.extend(conditional.into_iter().map(|r| RuleOut::new(vec![r.name.clone()], r.action, &r.args)));
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DockerOut<'a> {
    default_action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    arch_map: Vec<ArchMapOut>,
    syscalls: Vec<RuleOut>,
    #[serde(rename = "x-observer", skip_serializing_if = "Option::is_none")]
    observer: Option<ObserverMetaOut<'a>>,
}

/// `x-observer`: where the profile comes from (`ExportMeta`, when known),
/// which inputs gave each syscall (a merge), and its side doors. Fields in
/// name order, as the profile always wrote them.
#[derive(Serialize)]
struct ObserverMetaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    calls: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    contributors: &'a BTreeMap<String, BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    side_doors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tiers: Option<&'a TierCounts>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapOut {
    architecture: &'static str,
    sub_architectures: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OciOut {
    default_action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    architectures: Vec<&'static str>,
    syscalls: Vec<RuleOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpoOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: SpoMetaOut<'a>,
    spec: SpoSpecOut,
}

#[derive(Serialize)]
struct SpoMetaOut<'a> {
    name: &'a str,
    namespace: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct SpoSpecOnly<'a> {
    spec: &'a SpoSpecOut,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpoSpecOut {
    default_action: &'static str,
    architectures: Vec<&'static str>,
    syscalls: Vec<RuleOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleOut {
    names: Vec<String>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<ArgOut>,
}

impl RuleOut {
    fn new(names: Vec<String>, action: Action, args: &[ArgCond]) -> Self {
        let (name, errno_ret) = action::to_profile(action);
        Self {
            names,
            action: name,
            errno_ret,
            args: args
                .iter()
                .map(|a| ArgOut { index: a.index, value: a.value, value_two: a.value_two, op: cmp_op_name(a.op) })
                .collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArgOut {
    index: u32,
    value: u64,
    #[serde(skip_serializing_if = "is_zero")]
    value_two: u64,
    op: &'static str,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
