//! Offsets of the task_struct fields the kernel programs read, taken from the
//! running kernel's BTF (they differ between kernel builds and configs).

use btf_rs::{Btf, Type};
pub use observer_common::task::TaskOffsets;

use crate::error::{ProbeError, Step as _};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The offsets on this kernel, from its BTF.
pub fn task_offsets() -> Result<TaskOffsets, ProbeError> {
    if !std::path::Path::new(VMLINUX_BTF).exists() {
        return Err(ProbeError::Btf(format!(
            "{VMLINUX_BTF} is missing: observer needs a kernel built with BTF (CONFIG_DEBUG_INFO_BTF)"
        )));
    }
    let btf = Btf::from_file(VMLINUX_BTF).map_err(|e| ProbeError::Btf(format!("reading {VMLINUX_BTF}: {e}")))?;
    let pid = member_offset(&btf, "task_struct", &["pid"])?;
    let tgid = member_offset(&btf, "task_struct", &["tgid"])?;
    if tgid != pid + 4 {
        // The programs read tgid at pid + 4 (`Task::pid_tgid`).
        return Err(ProbeError::Btf(format!(
            "BTF: task_struct.tgid does not follow pid (pid at {pid}, tgid at {tgid})"
        )));
    }
    Ok(TaskOffsets {
        thread_info_status: member_offset(&btf, "task_struct", &["thread_info", "status"])?,
        pid,
        seccomp_mode: member_offset(&btf, "task_struct", &["seccomp", "mode"])?,
        mm: member_offset(&btf, "task_struct", &["mm"])?,
        mm_exe_file: member_offset(&btf, "mm_struct", &["exe_file"])?,
        file_inode: member_offset(&btf, "file", &["f_inode"])?,
        cgroups: member_offset(&btf, "task_struct", &["cgroups"])?,
        css_set_dfl_cgrp: member_offset(&btf, "css_set", &["dfl_cgrp"])?,
        cgroup_kn: member_offset(&btf, "cgroup", &["kn"])?,
        kernfs_node_id: member_offset(&btf, "kernfs_node", &["id"])?,
        seccomp_filter: member_offset(&btf, "task_struct", &["seccomp", "filter"])?,
        filter_allow_native: filter_bitmap(&btf, "allow_native"),
        filter_allow_compat: filter_bitmap(&btf, "allow_compat"),
        inode_ino: member_offset(&btf, "inode", &["i_ino"])?,
        inode_generation: member_offset(&btf, "inode", &["i_generation"])?,
    })
}

/// Words of a seccomp action-cache bitmap the programs read (syscall numbers
/// below 512): `Task::filter_always_allows` tests one of them.
pub const FILTER_BITMAP_WORDS: usize = 8;

/// Offset of one of the seccomp action cache's bitmaps (`cache.allow_native`
/// or `cache.allow_compat` in `seccomp_filter`), or 0 where this kernel has
/// none or a shorter one than the programs read: the programs then take every
/// call of a filtered task as one its filter may deny (they leave it a note).
fn filter_bitmap(btf: &Btf, name: &str) -> u64 {
    filter_bitmap_at(btf, &["cache", name])
}

fn filter_bitmap_at(btf: &Btf, path: &[&str]) -> u64 {
    match member(btf, "seccomp_filter", path) {
        Ok((offset, Type::Array(words))) if words.len() >= FILTER_BITMAP_WORDS && offset.is_multiple_of(8) => offset,
        _ => 0,
    }
}

/// Byte offset of a (nested) member, looking through anonymous structs and unions.
fn member_offset(btf: &Btf, root: &str, path: &[&str]) -> Result<u64, ProbeError> {
    Ok(member(btf, root, path)?.0)
}

/// Byte offset and type (typedefs and qualifiers stripped) of a (nested) member.
fn member(btf: &Btf, root: &str, path: &[&str]) -> Result<(u64, Type), ProbeError> {
    let mut ty = btf
        .resolve_types_by_name(root)
        .map_err(|e| ProbeError::Btf(format!("BTF has no {root}: {e}")))?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(_)))
        .with_step(|| format!("BTF has no struct {root}"))?;
    let mut offset_bits = 0u64;
    for field in path {
        let (bits, next) = find_member(btf, &ty, field)?
            .with_step(|| format!("BTF: struct {root} has no member {}", path.join(".")))?;
        offset_bits += bits;
        ty = next;
    }
    if !offset_bits.is_multiple_of(8) {
        return Err(ProbeError::Btf(format!("BTF: {root}.{} is a bitfield", path.join("."))));
    }
    Ok((offset_bits / 8, ty))
}

fn find_member(btf: &Btf, ty: &Type, name: &str) -> Result<Option<(u64, Type)>, ProbeError> {
    let (Type::Struct(st) | Type::Union(st)) = ty else {
        return Ok(None);
    };
    for member in &st.members {
        let member_name = btf.resolve_name(member).unwrap_or_default();
        let member_ty =
            strip(btf, btf.resolve_chained_type(member).map_err(|e| ProbeError::Btf(format!("BTF: {e}")))?)?;
        if member_name == name {
            return Ok(Some((u64::from(member.bit_offset()), member_ty)));
        }
        if member_name.is_empty()
            && let Some((bits, found)) = find_member(btf, &member_ty, name)?
        {
            return Ok(Some((u64::from(member.bit_offset()) + bits, found)));
        }
    }
    Ok(None)
}

/// Looks through typedefs and qualifiers to the underlying type.
fn strip(btf: &Btf, mut ty: Type) -> Result<Type, ProbeError> {
    for _ in 0..16 {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t),
            Type::Const(t) => btf.resolve_chained_type(t),
            Type::Volatile(t) => btf.resolve_chained_type(t),
            Type::Restrict(t) => btf.resolve_chained_type(t),
            _ => return Ok(ty),
        }
        .map_err(|e| ProbeError::Btf(format!("BTF: {e}")))?;
    }
    Err(ProbeError::Btf("BTF: type chain too long".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte offset of `member` in `strukt`, as bpftool prints this
    /// kernel's BTF: an independent reading to check ours against.
    fn bpftool_offset(strukt: &str, member: &str) -> u64 {
        let out = std::process::Command::new("bpftool")
            .args(["btf", "dump", "file", VMLINUX_BTF, "format", "raw"])
            .output()
            .expect("bpftool is needed to check the BTF offsets (cargo xtask setup test installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        let header = format!("STRUCT '{strukt}' size=");
        let mut lines = text.lines().skip_while(|l| !l.contains(&header)).skip(1);
        let prefix = format!("\t'{member}' type_id=");
        let line = lines
            .by_ref()
            .take_while(|l| l.starts_with('\t'))
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("bpftool shows no {strukt}.{member}"));
        let bits: u64 = line.rsplit("bits_offset=").next().and_then(|b| b.parse().ok()).expect("bits_offset");
        bits / 8
    }

    #[test]
    fn the_offsets_of_the_filter_cache_and_the_inode_match_bpftool() {
        let o = task_offsets().expect("this kernel's BTF");
        assert_eq!(o.seccomp_filter, bpftool_offset("task_struct", "seccomp") + bpftool_offset("seccomp", "filter"));
        let cache = bpftool_offset("seccomp_filter", "cache");
        assert_eq!(o.filter_allow_native, cache + bpftool_offset("action_cache", "allow_native"));
        assert_eq!(o.filter_allow_compat, cache + bpftool_offset("action_cache", "allow_compat"));
        assert_eq!(o.inode_ino, bpftool_offset("inode", "i_ino"));
        assert_eq!(o.inode_generation, bpftool_offset("inode", "i_generation"));
        // x86_64 has the action cache, with room for every syscall number
        // the programs test (0 would mean "no cache": every call gets a note).
        assert_ne!(o.filter_allow_native, 0);
        assert_ne!(o.filter_allow_compat, 0);
    }

    #[test]
    fn a_missing_or_short_bitmap_reads_as_no_cache() {
        let btf = Btf::from_file(VMLINUX_BTF).expect("this kernel's BTF");
        assert_eq!(filter_bitmap(&btf, "no_such_bitmap"), 0);
        // `refs` is no array of FILTER_BITMAP_WORDS words.
        assert!(member(&btf, "seccomp_filter", &["refs"]).is_ok());
        assert_eq!(filter_bitmap_at(&btf, &["refs"]), 0);
    }
}
