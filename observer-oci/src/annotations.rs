//! Where a profile came from, carried as annotations on the artifact's index
//! and manifests so that a registry listing (or `oras manifest fetch`) shows it
//! without the profile being pulled.

use std::collections::BTreeMap;

/// The image digest the profile was learned from (`sha256:...`).
pub const IMAGE_DIGEST: &str = "dev.observer.profile.image-digest";
/// The workload key, NAMESPACE/KIND/NAME/CONTAINER.
pub const WORKLOAD: &str = "dev.observer.profile.workload";
/// The nodes it was learned on, comma-separated (one for a node's partial profile).
pub const NODES: &str = "dev.observer.profile.nodes";
/// The pods it was learned in, comma-separated.
pub const PODS: &str = "dev.observer.profile.pods";
/// The time span it was learned over (RFC 3339).
pub const FIRST_SEEN: &str = "dev.observer.profile.first-seen";
pub const LAST_SEEN: &str = "dev.observer.profile.last-seen";
/// How many partial profiles a merged one was made from.
pub const MERGED_FROM: &str = "dev.observer.profile.merged-from";
/// observer's version that pushed it.
pub const OBSERVER_VERSION: &str = "dev.observer.profile.observer-version";
/// The reachability tiers (JSON), when the profile carries them.
pub const REACHABILITY_TIERS: &str = "dev.observer.profile.reachability-tiers";
/// When it was pushed (RFC 3339), the OCI pre-defined key.
pub const CREATED: &str = "org.opencontainers.image.created";

/// The provenance of one profile artifact. Every field is optional but the version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    pub image_digest: Option<String>,
    pub workload: Option<String>,
    pub nodes: Vec<String>,
    pub pods: Vec<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub merged_from: Option<usize>,
    pub observer_version: String,
    pub reachability_tiers: Option<String>,
    pub created: Option<String>,
}

impl Provenance {
    pub fn to_annotations(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                a.insert(k.to_owned(), v);
            }
        };
        put(IMAGE_DIGEST, self.image_digest.clone());
        put(WORKLOAD, self.workload.clone());
        put(NODES, Some(self.nodes.join(",")));
        put(PODS, Some(self.pods.join(",")));
        put(FIRST_SEEN, self.first_seen.clone());
        put(LAST_SEEN, self.last_seen.clone());
        put(MERGED_FROM, self.merged_from.map(|n| n.to_string()));
        put(OBSERVER_VERSION, Some(self.observer_version.clone()));
        put(REACHABILITY_TIERS, self.reachability_tiers.clone());
        put(CREATED, self.created.clone());
        a
    }

    pub fn from_annotations(a: &BTreeMap<String, String>) -> Self {
        let list = |k: &str| -> Vec<String> {
            a.get(k).map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
        };
        Self {
            image_digest: a.get(IMAGE_DIGEST).cloned(),
            workload: a.get(WORKLOAD).cloned(),
            nodes: list(NODES),
            pods: list(PODS),
            first_seen: a.get(FIRST_SEEN).cloned(),
            last_seen: a.get(LAST_SEEN).cloned(),
            merged_from: a.get(MERGED_FROM).and_then(|v| v.parse().ok()),
            observer_version: a.get(OBSERVER_VERSION).cloned().unwrap_or_default(),
            reachability_tiers: a.get(REACHABILITY_TIERS).cloned(),
            created: a.get(CREATED).cloned(),
        }
    }

    /// The provenance of a profile merged from `parts`: every node and pod,
    /// the widest time span, the image digest when all parts agree on one.
    /// RFC 3339 times in UTC compare as text.
    pub fn merged(parts: &[Provenance], workload: &str, observer_version: &str) -> Self {
        let mut nodes: Vec<String> = parts.iter().flat_map(|p| p.nodes.iter().cloned()).collect();
        nodes.sort();
        nodes.dedup();
        let mut pods: Vec<String> = parts.iter().flat_map(|p| p.pods.iter().cloned()).collect();
        pods.sort();
        pods.dedup();
        let digests: std::collections::BTreeSet<&String> =
            parts.iter().filter_map(|p| p.image_digest.as_ref()).collect();
        let image_digest = match (digests.len(), parts.iter().all(|p| p.image_digest.is_some())) {
            (1, true) => digests.into_iter().next().cloned(),
            _ => None,
        };
        Self {
            image_digest,
            workload: Some(workload.to_owned()),
            nodes,
            pods,
            first_seen: parts.iter().filter_map(|p| p.first_seen.clone()).min(),
            last_seen: parts.iter().filter_map(|p| p.last_seen.clone()).max(),
            merged_from: Some(parts.len()),
            observer_version: observer_version.to_owned(),
            reachability_tiers: None,
            created: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_round_trips_through_annotations_and_leaves_empty_fields_out() {
        let p = Provenance {
            image_digest: Some(format!("sha256:{}", "1".repeat(64))),
            workload: Some("default/Deployment/web/app".into()),
            nodes: vec!["n1".into()],
            pods: vec!["web-1".into(), "web-2".into()],
            first_seen: Some("2026-12-07T10:00:00Z".into()),
            last_seen: Some("2026-12-07T11:00:00Z".into()),
            merged_from: None,
            observer_version: "0.1.0".into(),
            reachability_tiers: Some(r#"{"reachable":3}"#.into()),
            created: Some("2026-12-07T12:00:00Z".into()),
        };
        let a = p.to_annotations();
        assert_eq!(a[PODS], "web-1,web-2");
        assert_eq!(a[REACHABILITY_TIERS], r#"{"reachable":3}"#);
        assert!(!a.contains_key(MERGED_FROM));
        assert_eq!(Provenance::from_annotations(&a), p);
        let bare = Provenance { observer_version: "0.1.0".into(), ..Default::default() }.to_annotations();
        assert_eq!(bare.keys().collect::<Vec<_>>(), [OBSERVER_VERSION]);
    }

    #[test]
    fn merged_provenance_spans_every_part() {
        let part = |node: &str, pod: &str, from: &str, to: &str, digest: &str| Provenance {
            image_digest: Some(digest.into()),
            nodes: vec![node.into()],
            pods: vec![pod.into()],
            first_seen: Some(from.into()),
            last_seen: Some(to.into()),
            ..Default::default()
        };
        let a = part("n2", "p2", "2026-12-07T10:00:00Z", "2026-12-07T12:00:00Z", "sha256:a");
        let b = part("n1", "p1", "2026-12-07T09:00:00Z", "2026-12-07T11:00:00Z", "sha256:a");
        let m = Provenance::merged(&[a.clone(), b.clone()], "ns/Deployment/w/c", "0.1.0");
        assert_eq!(m.nodes, ["n1", "n2"]);
        assert_eq!(m.pods, ["p1", "p2"]);
        assert_eq!(m.first_seen.as_deref(), Some("2026-12-07T09:00:00Z"));
        assert_eq!(m.last_seen.as_deref(), Some("2026-12-07T12:00:00Z"));
        assert_eq!(m.image_digest.as_deref(), Some("sha256:a"));
        assert_eq!(m.merged_from, Some(2));
        let c = part("n3", "p3", "2026-12-07T09:00:00Z", "2026-12-07T11:00:00Z", "sha256:b");
        assert_eq!(Provenance::merged(&[a, b, c], "ns/Deployment/w/c", "0.1.0").image_digest, None);
    }
}
