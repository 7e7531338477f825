//! `observer profile export --arch aarch64`: the exported profile rewritten
//! for another architecture (`observer_profile::arch_map`), with every name
//! the rewrite changed printed on stderr and, in Docker JSON, listed under
//! `x-observer.arch_mapped`.

use anyhow::Context as _;
use observer_profile::{
    arch_map::{self, Change},
    export::ExportedProfile,
    model::arch::{parse_arch, short_name},
    types::Arch,
};

use crate::{
    learned::{self, ExportRequest},
    printable::printable,
    views::ExportFormat,
};

/// The `--arch` value, checked.
pub fn parse(value: &str) -> anyhow::Result<Arch> {
    parse_arch(value).with_context(|| format!("unknown --arch {value:?} (x86_64 or aarch64)"))
}

/// `exported` for `arch`, rendered in `req.format`.
pub fn render_for(exported: &ExportedProfile, arch: Arch, req: &ExportRequest) -> anyhow::Result<String> {
    let (profile, changes) = arch_map::resolved_for_arch(&exported.profile, arch)?;
    for change in &changes {
        eprintln!("observer: {}: {}", short_name(arch), printable(&change.to_string()));
    }
    let mapped = ExportedProfile { profile, ..exported.clone() };
    let text = learned::render(&mapped, req)?;
    Ok(if req.format == ExportFormat::Docker && !changes.is_empty() { annotate(&text, arch, &changes)? } else { text })
}

/// Docker JSON with `x-observer.arch` and `x-observer.arch_mapped` (Docker
/// ignores fields it does not know).
fn annotate(text: &str, arch: Arch, changes: &[Change]) -> anyhow::Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(text).context("re-reading the exported profile")?;
    let object = value.as_object_mut().context("the exported profile is not a JSON object")?;
    let meta = object.entry("x-observer").or_insert_with(|| serde_json::json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert("arch".into(), short_name(arch).into());
        meta.insert("arch_mapped".into(), serde_json::to_value(changes)?);
    }
    let mut out = serde_json::to_string_pretty(&value)?;
    out.push('\n');
    Ok(out)
}
