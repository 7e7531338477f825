//! `observer profile export --arch aarch64`: the exported profile rewritten
//! for another architecture (`observer_profile::arch_map`), with every name
//! the rewrite changed printed on stderr and, in Docker JSON, listed under
//! `x-observer.arch_mapped`.

use anyhow::Context as _;
use observer_contract::views::ExportFormat;
use observer_profile::{
    arch_map::{self, Change},
    export::ExportedProfile,
    model::arch::{parse_arch, short_name},
    types::Arch,
};

use crate::{
    learned::{self, ExportRequest},
    printable::printable,
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

#[cfg(test)]
mod tests {
    use observer_profile::types::{Action, ResolvedProfile, ResolvedRule};

    use super::*;

    #[test]
    fn docker_json_for_arm64_lists_what_was_mapped() {
        let profile = ResolvedProfile {
            default_action: Action::Errno(1),
            arches: vec![Arch::X86_64, Arch::I386],
            rules: ["read", "open", "arch_prctl"]
                .iter()
                .map(|n| ResolvedRule { name: (*n).into(), action: Action::Allow, args: Vec::new() })
                .collect(),
            unknown_names: Vec::new(),
        };
        let req = ExportRequest::plain(ExportFormat::Docker);
        let text = render_for(&ExportedProfile::from_resolved(profile), Arch::Aarch64, &req).expect("renders");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["archMap"][0]["architecture"], "SCMP_ARCH_AARCH64", "{v}");
        assert_eq!(v["x-observer"]["arch"], "aarch64");
        let mapped = &v["x-observer"]["arch_mapped"];
        assert_eq!(mapped[0]["from"], "open");
        assert_eq!(mapped[0]["change"], "mapped");
        assert_eq!(mapped[0]["to"], "openat");
        assert_eq!(mapped[1]["change"], "no_equivalent");
        let names: Vec<&str> =
            v["syscalls"][0]["names"].as_array().expect("names").iter().filter_map(|n| n.as_str()).collect();
        assert_eq!(names, ["openat", "read"]);
    }
}
