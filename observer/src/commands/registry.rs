//! `observer profile push`, `profile pull` and `profile merge --from`: profiles
//! as OCI artifacts in a registry (docs/registry.md). The transport, artifact
//! layout and tag names live in observer-oci; this module gets profiles from
//! files or the agent, checks them, and merges a workload's partial profiles.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures_util::{StreamExt as _, stream};
use observer_contract::views::ExportFormat;
use observer_oci::{
    annotations::Provenance,
    artifact::{self, PlatformProfile, sha256_digest},
    client::{ClientOptions, Registry},
    reference::RegistryRef,
    tags,
};
use observer_profile::{
    arch_map,
    export::ExportedProfile,
    merge::{MergeInput, merge},
    model,
    resolve::ResolveOptions,
    types::Arch,
};

use crate::{
    learned::{self, ExportRequest},
    printable::printable,
};

/// The platform every profile is learned on here.
pub const NATIVE_PLATFORM: &str = "linux/amd64";

/// How to reach the registry.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Speak plain http: only to a loopback registry (127.0.0.0/8, ::1, localhost).
    #[arg(long)]
    pub plain_http: bool,
    /// A PEM CA certificate to trust besides the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The Docker config.json (or its directory) holding the registry's credentials
    /// (default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    pub docker_config: Option<PathBuf>,
}

impl RegistryArgs {
    pub(crate) fn options(&self) -> ClientOptions {
        ClientOptions { plain_http: self.plain_http, ca: self.ca.clone(), docker_config: self.docker_config.clone() }
    }
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// [SOURCE] DEST: a profile file or a container the agent watches (its learned
    /// profile, tagged sha256-<hex> by its image's digest), then
    /// oci://REGISTRY/REPO[:TAG]. Without SOURCE, --workload's merged profile comes
    /// from the agent.
    #[arg(required = true, num_args = 1..=2, value_names = ["SOURCE", "DEST"])]
    pub args: Vec<String>,
    /// The workload it belongs to, NAMESPACE/KIND/NAME/CONTAINER (an annotation; without
    /// SOURCE, also where the profile comes from).
    #[arg(long, value_name = "NAMESPACE/KIND/NAME/CONTAINER")]
    pub workload: Option<String>,
    /// Push as this node's partial profile of --workload (tag derived from both), for
    /// `profile merge --from`.
    #[arg(long, requires = "workload")]
    pub partial: bool,
    /// The node it was learned on (default: this host's name).
    #[arg(long)]
    pub node: Option<String>,
    /// A pod it was learned in (repeat for several).
    #[arg(long = "pod", value_name = "POD")]
    pub pods: Vec<String>,
    /// The image digest it was learned from (sha256:...): also tagged sha256-<hex>.
    #[arg(long, value_name = "sha256:HEX")]
    pub image_digest: Option<String>,
    /// When learning started and ended (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub first_seen: Option<String>,
    #[arg(long, value_name = "TIME")]
    pub last_seen: Option<String>,
    /// The reachability tiers (a JSON file), carried as an annotation.
    #[arg(long, value_name = "FILE")]
    pub reachability_tiers: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// oci://REGISTRY/REPO[:TAG|@DIGEST]; without a tag, --image-digest's or --workload's.
    pub reference: String,
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Which platform's profile.
    #[arg(long, default_value = NATIVE_PLATFORM)]
    pub platform: String,
    #[arg(long, value_name = "sha256:HEX")]
    pub image_digest: Option<String>,
    #[arg(long, value_name = "NAMESPACE/KIND/NAME/CONTAINER")]
    pub workload: Option<String>,
    /// Refuse the pulled profile (nothing written, exit status 1) if it lets through
    /// anything this baseline denies, as a runtime intersecting it with its baseline
    /// would (`profile check --within`); warn past the limits runtimes enforce.
    #[arg(long, value_name = "BASELINE")]
    pub within: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The profiles of an artifact, one per platform, from the native one:
/// linux/amd64 as given, and linux/arm64 with the names mapped through
/// libseccomp's arm64 table (`open` -> `openat`, `stat` -> `newfstatat`...,
/// observer_profile::arch_map), each change said on stderr. A node's partial
/// profile (`with_arm64` false) is only a merge's input and stays amd64-only:
/// the merged profile is mapped once. A profile that cannot be mapped (a
/// condition the arm64 call cannot carry) is pushed for amd64 alone, and the
/// warning says why.
pub fn platform_profiles(amd64_profile: Vec<u8>, source: &str, with_arm64: bool) -> Vec<PlatformProfile> {
    let arm64 = if with_arm64 { arm64_profile(&amd64_profile, source) } else { None };
    let mut out = vec![PlatformProfile::linux("amd64", amd64_profile)];
    out.extend(arm64.map(|p| PlatformProfile::linux("arm64", p)));
    out
}

/// `profile`'s arm64 equivalent as Docker JSON, or `None` (said on stderr).
fn arm64_profile(profile: &[u8], source: &str) -> Option<Vec<u8>> {
    let mapped = check_profile(profile, source).map_err(|e| e.to_string()).and_then(|model| {
        let resolved = model.resolve(&ResolveOptions::docker_default());
        arch_map::resolved_for_arch(&resolved, Arch::Aarch64).map_err(|e| e.to_string())
    });
    match mapped {
        Ok((arm64, changes)) => {
            for change in &changes {
                eprintln!("observer: aarch64: {}", printable(&change.to_string()));
            }
            Some(ExportedProfile::from_resolved(arm64).to_docker_json().into_bytes())
        }
        Err(e) => {
            eprintln!("observer: warning: no linux/arm64 profile, pushing linux/amd64 only: {}", printable(&e));
            None
        }
    }
}

/// `pull --within`: the pulled profile against `baseline`, for the platform
/// pulled; an error listing what it allows beyond it.
fn check_pulled_within(profile: &[u8], origin: &str, baseline: &Path, platform: &str) -> anyhow::Result<()> {
    let text = std::str::from_utf8(profile).map_err(|_| anyhow::anyhow!("{origin}: not UTF-8 text"))?;
    let base = model::load(baseline).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut options = ResolveOptions::docker_default();
    if platform.ends_with("/arm64") {
        options.arch = Arch::Aarch64;
    }
    let report = observer_profile::within::check_within(text, origin, &base, &options)?;
    for l in &report.limits {
        eprintln!("observer: warning: {}: {}", printable(origin), printable(&l.message));
    }
    if !report.is_within() {
        for l in &report.looser {
            eprintln!("observer: {}", printable(&l.to_string()));
        }
        anyhow::bail!(
            "{origin}: NOT within {}: {} call(s) allowed beyond it; nothing written",
            baseline.display(),
            report.looser.len()
        );
    }
    eprintln!("observer: {origin}: within {}", baseline.display());
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

fn this_node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// Checks `bytes` is a seccomp profile observer can read; `source` names it in errors.
fn check_profile(bytes: &[u8], source: &str) -> anyhow::Result<model::Profile> {
    let text = std::str::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{source}: not UTF-8 text"))?;
    model::parse(text, source).map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn push(args: &PushArgs) -> anyhow::Result<i32> {
    let (source, dest) = match args.args.as_slice() {
        [dest] => (None, dest),
        [source, dest] => (Some(source.as_str()), dest),
        _ => anyhow::bail!("give [SOURCE] oci://REGISTRY/REPO[:TAG]"),
    };
    let dest = RegistryRef::parse(dest)?;
    if dest.digest.is_some() {
        anyhow::bail!("{dest}: push to a tag, not a digest (a digest names content already pushed)");
    }
    let from = super::push_source::resolve(source, args.workload.as_deref(), args.socket.as_deref())?;
    check_profile(&from.bytes, &from.label)?;
    let node = args.node.clone().unwrap_or_else(this_node);
    let reachability_tiers = match &args.reachability_tiers {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{}: not JSON", p.display()))?;
            Some(v.to_string())
        }
        None => None,
    };
    // The command line's provenance first, then what the container's record says.
    let image_digest = match args.image_digest.as_ref().or(from.image_digest.as_ref()) {
        Some(d) => {
            tags::image_digest_tag(d)?;
            Some(d.rsplit('@').next().unwrap_or(d).to_owned())
        }
        None => None,
    };
    let provenance = Provenance {
        image_digest: image_digest.clone(),
        workload: args.workload.clone(),
        nodes: vec![node.clone()].into_iter().filter(|n| !n.is_empty()).collect(),
        pods: if args.pods.is_empty() { from.pods.clone() } else { args.pods.clone() },
        first_seen: args.first_seen.clone().or(from.first_seen.clone()),
        last_seen: args.last_seen.clone().or(from.last_seen.clone()),
        merged_from: None,
        observer_version: env!("CARGO_PKG_VERSION").to_owned(),
        reachability_tiers,
        created: Some(crate::clock::now()),
    };
    let mut push_tags = Vec::new();
    if let Some(t) = &dest.tag {
        push_tags.push(t.clone());
    } else if args.partial {
        push_tags.push(tags::partial_tag(args.workload.as_deref().unwrap_or_default(), &node)?);
    } else if let Some(w) = &args.workload
        && image_digest.is_none()
    {
        push_tags.push(tags::workload_tag(w)?);
    }
    // A profile of an exact image is also found by the image's digest; a node's
    // partial profile is not the image's profile.
    if let (Some(d), false) = (&image_digest, args.partial) {
        let t = tags::image_digest_tag(d)?;
        if !push_tags.contains(&t) {
            push_tags.push(t);
        }
    }
    if push_tags.is_empty() {
        anyhow::bail!(
            "{dest}: no tag: give one (oci://REGISTRY/REPO:TAG), or --image-digest or --workload to derive it"
        );
    }
    let built =
        artifact::build(&platform_profiles(from.bytes, &from.label, !args.partial), &provenance.to_annotations())?;
    let registry = Registry::connect(&dest, &args.registry.options())?;
    let digest = runtime()?.block_on(registry.push(&built, &push_tags))?;
    for t in &push_tags {
        eprintln!("observer: pushed {} ({digest})", dest.with_tag(t));
    }
    Ok(0)
}

pub fn pull(args: &PullArgs) -> anyhow::Result<i32> {
    let mut at = RegistryRef::parse(&args.reference)?;
    if at.tag.is_none() && at.digest.is_none() {
        let tag = match (&args.image_digest, &args.workload) {
            (Some(d), _) => tags::image_digest_tag(d)?,
            (None, Some(w)) => tags::workload_tag(w)?,
            (None, None) => anyhow::bail!(
                "{at}: no tag: give one (oci://REGISTRY/REPO:TAG or @sha256:...), or --image-digest or --workload"
            ),
        };
        at = at.with_tag(&tag);
    }
    let registry = Registry::connect(&at, &args.registry.options())?;
    let pulled = runtime()?.block_on(registry.pull(&at, &args.platform))?;
    check_profile(&pulled.profile, &at.to_string())?;
    if let Some(baseline) = &args.within {
        check_pulled_within(&pulled.profile, &at.to_string(), baseline, &args.platform)?;
    }
    match &args.output {
        Some(p) => {
            crate::state::write_atomic(p, &pulled.profile).with_context(|| format!("writing {}", p.display()))?
        }
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&pulled.profile)?;
        }
    }
    eprintln!("observer: pulled {at} ({}, {} layer {})", pulled.digest, args.platform, pulled.layer_digest);
    for (k, v) in &pulled.annotations {
        eprintln!("  {}: {}", printable(k), printable(v));
    }
    Ok(0)
}

/// `profile merge --from oci://REGISTRY/REPO --workload KEY`: every node's partial
/// profile of the workload, merged and pushed under the workload's tag (and its
/// image's digest tag when every part names the same image), unless the merged
/// profile is the one already there.
/// `profile merge --from ... -o FILE`: the merged profile is also written
/// there, in `--format` (what is pushed is always Docker's JSON).
pub struct MergedCopy {
    pub path: PathBuf,
    pub format: ExportFormat,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

pub fn merge_from(
    from: &str,
    workload: &str,
    registry_args: &RegistryArgs,
    output: Option<&MergedCopy>,
) -> anyhow::Result<i32> {
    let repo = RegistryRef::parse(from)?;
    if repo.tag.is_some() || repo.digest.is_some() {
        anyhow::bail!("{repo}: --from names a repository (oci://REGISTRY/REPO), not a tag");
    }
    let prefix = tags::partial_prefix(workload)?;
    let merged_tag = tags::workload_tag(workload)?;
    let registry = Registry::connect(&repo, &registry_args.options())?;
    let rt = runtime()?;
    let started = std::time::Instant::now();
    let mut partial_tags: Vec<String> =
        rt.block_on(registry.tags())?.into_iter().filter(|t| t.starts_with(&prefix)).collect();
    partial_tags.sort();
    if partial_tags.is_empty() {
        anyhow::bail!("{repo}: no partial profile of {workload} (no tag starting {prefix})");
    }
    // Pulled a few at a time: one registry round trip each is the cost.
    let pulled: Vec<(String, Result<observer_oci::client::Pulled, observer_oci::OciError>)> = rt.block_on(
        stream::iter(partial_tags.iter().cloned())
            .map(|t| {
                let registry = &registry;
                let at = repo.with_tag(&t);
                async move { (t, registry.pull(&at, NATIVE_PLATFORM).await) }
            })
            .buffered(16)
            .collect(),
    );
    let options = learned::resolve_options(None);
    let mut inputs = Vec::new();
    let mut parts = Vec::new();
    for (tag, result) in pulled {
        let p = result?;
        if p.provenance.workload.as_deref() != Some(workload) {
            eprintln!(
                "observer: skipping {}: it names workload {}, not {workload}",
                repo.with_tag(&tag),
                printable(p.provenance.workload.as_deref().unwrap_or("(none)"))
            );
            continue;
        }
        let profile = check_profile(&p.profile, &repo.with_tag(&tag).to_string())?;
        inputs.push(MergeInput { source: tag, profile: profile.resolve(&options) });
        parts.push(p.provenance);
    }
    anyhow::ensure!(!inputs.is_empty(), "{repo}: no partial profile of {workload} names that workload");
    let mut merged = merge(&inputs);
    // Which partial let each syscall through is left out: at 1,000 nodes it is most
    // of a megabyte (docs/fleet.md), over what runtimes pull, and it would make the
    // profile's digest change with every new node that adds nothing. The nodes are
    // listed in the provenance annotations instead.
    merged.contributors.clear();
    let request = ExportRequest::plain(ExportFormat::Docker);
    let text = learned::render(&merged, &request)?;
    if let Some(copy) = output {
        let request = ExportRequest {
            format: copy.format,
            name: copy.name.clone(),
            namespace: copy.namespace.clone(),
            ..request
        };
        learned::write_out(Some(&copy.path), &learned::render(&merged, &request)?)?;
    }
    let merged_at = repo.with_tag(&merged_tag);
    let layer_digest = sha256_digest(text.as_bytes());
    let pulled_in = started.elapsed();
    if rt.block_on(registry.layer_digest(&merged_tag, NATIVE_PLATFORM))?.as_deref() == Some(layer_digest.as_str()) {
        eprintln!(
            "observer: {merged_at} is unchanged (profile {layer_digest}, merged from {} partial profiles in {:.2?}): nothing pushed",
            inputs.len(),
            pulled_in
        );
        return Ok(0);
    }
    let mut provenance = Provenance::merged(&parts, workload, env!("CARGO_PKG_VERSION"));
    provenance.created = Some(crate::clock::now());
    let mut push_tags = vec![merged_tag];
    if let Some(d) = &provenance.image_digest {
        push_tags.push(tags::image_digest_tag(d)?);
    }
    let built = artifact::build(
        &platform_profiles(text.into_bytes(), "the merged profile", true),
        &provenance.to_annotations(),
    )?;
    let digest = rt.block_on(registry.push(&built, &push_tags))?;
    eprintln!(
        "observer: merged {} partial profiles ({} nodes, {} pods) of {workload} in {:.2?}; pushed {merged_at} ({digest}, profile {layer_digest})",
        inputs.len(),
        provenance.nodes.len(),
        provenance.pods.len(),
        started.elapsed()
    );
    Ok(0)
}
