//! A profile file as the set of kernel rows (ABI, syscall number) it lets
//! through: what baselines and in-kernel enforcement compare against.
//! A syscall allowed only under argument conditions counts as allowed here:
//! the conditions are seccomp's job, the kernel program works on numbers.

use std::{collections::BTreeSet, path::Path};

use anyhow::Context as _;
use observer_common::counters::{SYSCALLS_PER_ABI, row_of};
use observer_profile::{
    model,
    resolve::ResolveOptions,
    syscall_table,
    types::{Arch, ResolvedProfile},
};

/// Loads and resolves a profile (Docker's default capabilities unless `caps` is given).
pub fn resolve_file(path: &Path, caps: Option<&str>) -> anyhow::Result<ResolvedProfile> {
    resolve_with(path, caps, &ResolveOptions::docker_default())
}

/// Loads and resolves a profile for `options`, with `caps` (if given) replacing its capabilities.
pub fn resolve_with(path: &Path, caps: Option<&str>, options: &ResolveOptions) -> anyhow::Result<ResolvedProfile> {
    let profile = model::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    resolve_loaded(path, &profile, caps, options)
}

/// [`resolve_with`] for `options.arch`, the profile first mapped to that
/// architecture (`observer_profile::arch_map`: arm64's equivalents of calls
/// it lacks); what the mapping changed is printed on stderr.
pub fn resolve_mapped(path: &Path, caps: Option<&str>, options: &ResolveOptions) -> anyhow::Result<ResolvedProfile> {
    let profile = model::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mapped = observer_profile::arch_map::for_arch(&profile, options.arch)?;
    for change in &mapped.changes {
        eprintln!(
            "{} for {}: {}",
            path.display(),
            model::arch::short_name(options.arch),
            crate::printable::printable(&change.to_string())
        );
    }
    resolve_loaded(path, &mapped.profile, caps, options)
}

fn resolve_loaded(
    path: &Path,
    profile: &model::Profile,
    caps: Option<&str>,
    options: &ResolveOptions,
) -> anyhow::Result<ResolvedProfile> {
    let mut options = options.clone();
    // --caps replaces Docker's default set.
    if let Some(caps) = caps {
        options.caps = parse_caps(caps);
    }
    let resolved = profile.resolve(&options);
    if !resolved.unknown_names.is_empty() {
        tracing::warn!(
            "{}: syscall names unknown on this architecture are skipped, as runc does: {}",
            path.display(),
            crate::printable::printable(&resolved.unknown_names.join(", "))
        );
    }
    Ok(resolved)
}

pub fn allowed_rows(profile: &ResolvedProfile) -> BTreeSet<u32> {
    let mut rows = BTreeSet::new();
    for (abi, arch) in [(0u32, Arch::X86_64), (1u32, Arch::I386)] {
        for (nr, name) in syscall_table::all(arch) {
            if nr < SYSCALLS_PER_ABI && profile.action_for(arch, name).may_run() {
                rows.insert(row_of(abi, i64::from(nr)));
            }
        }
    }
    rows
}

pub fn allowed_rows_of_file(path: &Path, caps: Option<&str>) -> anyhow::Result<BTreeSet<u32>> {
    let resolved = resolve_file(path, caps).with_context(|| format!("reading the profile {}", path.display()))?;
    Ok(allowed_rows(&resolved))
}

/// `CAP_CHOWN,net_raw` -> {"CAP_CHOWN", "CAP_NET_RAW"}.
pub fn parse_caps(list: &str) -> std::collections::BTreeSet<String> {
    list.split(',')
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| !c.is_empty())
        .map(|c| if c.starts_with("CAP_") { c } else { format!("CAP_{c}") })
        .collect()
}
