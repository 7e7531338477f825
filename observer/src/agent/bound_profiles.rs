//! `observer agent --profiles DIR`: each container is bound to the profile of
//! its image, found by the image digest's tag (`DIR/sha256-<hex>.json`,
//! cosign's tag convention, the one `observer profile push` uses), with no
//! `--baseline` flag. A profile is copied into a content-addressed cache
//! (`STATE_DIR/bound-profiles/<sha256 of its bytes>.json`, at most
//! [`MAX_CACHED`] files) and its digest checked again on every read, so a
//! profile changed under the agent is noticed, not trusted. The bound profile
//! is the container's baseline (drift: `outside_baseline` alerts); with
//! `--enforce-bound` it is enforced too. A container whose image has no
//! profile is said so in `ps` and the metrics; a workload whose image changes
//! away from one that had a profile raises one `new_image` alert.
//!
//! Kept apart from the agent's state on purpose: the agent calls
//! [`Agent::bind_image_profile`] when it applies its rules to a container and
//! [`Agent::bound_rule`] when it arms one.

use std::{
    collections::{BTreeSet, HashMap},
    io::Read as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use observer_contract::{
    alerts::AlertKind,
    rules::{EnforceAction, EnforceRule, Target},
};
use sha2::{Digest as _, Sha256};

use super::{core::Agent, identity_view::workload_key};

/// Profiles kept in the cache; the least recently written go first.
pub const MAX_CACHED: usize = 256;
/// Workloads whose last image is remembered (for `new_image`); past it the
/// memory starts again, so a change right then goes unsaid.
pub const MAX_WORKLOADS: usize = 20_000;

/// What one container is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The profile (its source, as alerts and `ps` name it) and the rows it allows.
    Profile { source: String, rows: BTreeSet<u32> },
    /// Its image has no profile in the directory.
    NoProfile,
}

/// The image profiles the agent binds containers to.
#[derive(Debug)]
pub struct BoundProfiles {
    dir: PathBuf,
    cache: PathBuf,
    enforce: Option<EnforceAction>,
    /// Container key -> its binding, once made.
    bindings: HashMap<String, Binding>,
    /// Workload -> (the image digest it last ran, whether that one had a profile).
    workloads: HashMap<String, (String, bool)>,
    /// `--profiles oci://...`: profiles come from a registry (bound_registry.rs), not `dir`.
    pub(super) registry: Option<super::bound_registry::RegistryProfiles>,
}

/// `sha256-<hex>` for `sha256:<hex>` (64 lower-case hex digits), the tag an
/// image's profile is stored under; `None` for anything else (a tag name, an
/// engine's id of another form), which is never turned into a file name.
pub fn tag_of(image_digest: &str) -> Option<String> {
    let hex = image_digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| format!("sha256-{hex}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl BoundProfiles {
    /// `--profiles DIR`; the cache lives under `state_dir`.
    pub fn open(dir: &Path, state_dir: &Path, enforce: Option<EnforceAction>) -> anyhow::Result<Self> {
        anyhow::ensure!(dir.is_dir(), "--profiles {}: not a directory", dir.display());
        let cache = state_dir.join("bound-profiles");
        std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            cache,
            enforce,
            bindings: HashMap::new(),
            workloads: HashMap::new(),
            registry: None,
        })
    }

    /// `--profiles oci://REGISTRY/REPO`: profiles fetched by bound_registry.rs.
    pub fn from_registry(registry: super::bound_registry::RegistryProfiles, enforce: Option<EnforceAction>) -> Self {
        Self {
            dir: PathBuf::new(),
            cache: PathBuf::new(),
            enforce,
            bindings: HashMap::new(),
            workloads: HashMap::new(),
            registry: Some(registry),
        }
    }

    pub fn binding(&self, key: &str) -> Option<&Binding> {
        self.bindings.get(key)
    }

    /// Of `running` container keys, how many are bound to no profile.
    pub fn without_profile<'a>(&self, running: impl Iterator<Item = &'a String>) -> u64 {
        running.filter(|k| self.bindings.get(*k) == Some(&Binding::NoProfile)).count() as u64
    }

    /// What the directory holds for `tag`: copied into the cache, read back
    /// from there with its digest checked.
    fn load(&self, tag: &str) -> anyhow::Result<Option<Binding>> {
        let source = self.dir.join(format!("{tag}.json"));
        let bytes = match read_bounded(&source) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Binding::NoProfile)),
            Err(e) => return Err(e).with_context(|| format!("reading {}", source.display())),
        };
        let digest = sha256_hex(&bytes);
        let cached = self.cache.join(format!("{digest}.json"));
        if !cached.exists() {
            crate::state::write_atomic(&cached, &bytes).with_context(|| format!("writing {}", cached.display()))?;
            self.trim();
        }
        // Every read checks the cached copy against its name.
        let read = read_bounded(&cached).with_context(|| format!("reading {}", cached.display()))?;
        if sha256_hex(&read) != digest {
            let _ = std::fs::remove_file(&cached);
            anyhow::bail!("{}: its content does not match its digest: removed, not used", cached.display());
        }
        let rows = crate::profile_rows::allowed_rows_of_file(&cached, None)
            .with_context(|| format!("the profile of image tag {tag} ({})", source.display()))?;
        Ok(Some(Binding::Profile { source: format!("{} (sha256:{digest})", source.display()), rows }))
    }

    /// Keeps at most [`MAX_CACHED`] profiles, the oldest removed first.
    fn trim(&self) {
        let Ok(entries) = std::fs::read_dir(&self.cache) else { return };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .filter(|(_, p)| p.extension().is_some_and(|x| x == "json"))
            .collect();
        if files.len() <= MAX_CACHED {
            return;
        }
        files.sort();
        for (_, path) in &files[..files.len() - MAX_CACHED] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A profile file's bytes, refused past the profile size budget.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let limit = observer_profile::model::budget::MAX_PROFILE_BYTES;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "larger than a seccomp profile can be"));
    }
    Ok(bytes)
}

impl Agent {
    /// Binds a container to its image's profile, once it has an image
    /// digest: the profile becomes its baseline unless a `--baseline` rule
    /// already gave it one. Raises `new_image` when its workload last ran an
    /// image that had a profile and this is another image.
    pub(super) fn bind_image_profile(&mut self, key: &str) {
        let Some(bound) = self.bound.as_mut() else { return };
        let Some(record) = self.containers.get(key) else { return };
        if bound.bindings.contains_key(key) || record.engine.is_empty() {
            return;
        }
        let Some(tag) = tag_of(&record.image_digest) else { return };
        let loaded = match bound.registry.as_mut() {
            // Fetched off the lock; the fetcher binds it when it comes.
            Some(registry) => Ok(registry.binding_for(&record.image_digest)),
            None => bound.load(&tag),
        };
        let binding = match loaded {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("--profiles: {e:#}; {} is bound to no profile", record.name);
                Binding::NoProfile
            }
        };
        let has_profile = matches!(binding, Binding::Profile { .. });
        let workload = workload_key(record).map_or_else(|| record.name.clone(), |k| k.to_string());
        let digest = record.image_digest.clone();
        if bound.workloads.len() >= MAX_WORKLOADS && !bound.workloads.contains_key(&workload) {
            bound.workloads.clear();
        }
        let previous = bound.workloads.insert(workload.clone(), (digest.clone(), has_profile));
        // Bindings of records the agent no longer keeps go (records are bounded
        // by --max-records; bindings follow them).
        if bound.bindings.len() >= 2 * self.containers.len() + 64 {
            bound.bindings.retain(|k, _| self.containers.contains_key(k));
        }
        bound.bindings.insert(key.to_owned(), binding.clone());
        if let Binding::Profile { source, rows } = binding
            && let Some(r) = self.containers.get_mut(key)
            && r.baseline.is_none()
        {
            r.baseline = Some(rows);
            r.baseline_source = Some(format!("image profile {source}"));
            self.dirty.insert(key.to_owned());
        }
        if let Some((before, true)) = previous
            && before != digest
        {
            let now = if has_profile { "which has a profile" } else { "which has none" };
            self.alert_cgroup(
                key,
                AlertKind::NewImage,
                0,
                "",
                format!("{workload}: new image {digest} ({now}); the previous image {before} had a profile"),
            );
        }
    }

    /// The enforcement `--enforce-bound` asks for on a container bound to a
    /// profile (what `arm` uses when no `observer enforce` rule names it).
    pub(super) fn bound_rule(&self, key: &str) -> Option<EnforceRule> {
        let bound = self.bound.as_ref()?;
        let action = bound.enforce?;
        let Binding::Profile { source, rows } = bound.bindings.get(key)? else { return None };
        let record = self.containers.get(key)?;
        Some(EnforceRule {
            target: Target::Name(record.name.clone()),
            action,
            allowed_rows: rows.iter().copied().collect(),
            profile: format!("image profile {source}"),
        })
    }

    /// What `ps` says of a container's image profile: its source, `none`,
    /// or nothing when `--profiles` is off or the container is not bound.
    pub(super) fn image_profile(&self, key: &str) -> Option<String> {
        let bound = self.bound.as_ref()?;
        let Some(binding) = bound.binding(key) else {
            let digest = &self.containers.get(key)?.image_digest;
            return bound.registry.as_ref()?.status(digest);
        };
        match binding {
            Binding::Profile { source, .. } => Some(source.clone()),
            Binding::NoProfile => Some("none".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sha256_digest_names_a_file() {
        let hex = "a".repeat(64);
        assert_eq!(tag_of(&format!("sha256:{hex}")), Some(format!("sha256-{hex}")));
        assert_eq!(tag_of("sha256:../../etc/passwd"), None);
        assert_eq!(tag_of(&format!("sha256:{}", "A".repeat(64))), None);
        assert_eq!(tag_of("observer-busybox:latest"), None);
        assert_eq!(tag_of(&format!("sha512:{hex}")), None);
    }

    #[test]
    fn a_profile_is_cached_by_content_and_checked_on_read() {
        let base = std::env::temp_dir().join(format!("observer-bound-{}", std::process::id()));
        let (dir, state) = (base.join("profiles"), base.join("state"));
        std::fs::create_dir_all(&dir).unwrap();
        let hex = "b".repeat(64);
        let text =
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#;
        std::fs::write(dir.join(format!("sha256-{hex}.json")), text).unwrap();
        let bound = BoundProfiles::open(&dir, &state, None).unwrap();
        let Some(Binding::Profile { rows, source }) = bound.load(&format!("sha256-{hex}")).unwrap() else {
            panic!("no profile")
        };
        assert!(!rows.is_empty());
        let digest = sha256_hex(text.as_bytes());
        assert!(source.contains(&digest), "{source}");
        assert!(state.join("bound-profiles").join(format!("{digest}.json")).exists());
        assert_eq!(bound.load(&format!("sha256-{}", "c".repeat(64))).unwrap(), Some(Binding::NoProfile));
        // A cached copy altered under the agent is refused and removed.
        let cached = state.join("bound-profiles").join(format!("{digest}.json"));
        std::fs::write(&cached, text.replace("write", "mount")).unwrap();
        let e = bound.load(&format!("sha256-{hex}")).expect_err("altered cache");
        assert!(e.to_string().contains("does not match its digest"), "{e}");
        assert!(!cached.exists());
        // A bad profile is an error naming the file.
        std::fs::write(dir.join(format!("sha256-{}.json", "d".repeat(64))), "{").unwrap();
        let e = bound.load(&format!("sha256-{}", "d".repeat(64))).expect_err("bad profile");
        assert!(format!("{e:#}").contains(&format!("sha256-{}.json", "d".repeat(64))), "{e:#}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
