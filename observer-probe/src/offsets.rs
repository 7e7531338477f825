//! Offsets of the task_struct fields the kernel programs read, taken from the
//! running kernel's BTF (they differ between kernel builds and configs).

use anyhow::{Context as _, anyhow, bail};
use btf_rs::{Btf, Type};
pub use observer_common::task::TaskOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The offsets on this kernel, from its BTF.
pub fn task_offsets() -> anyhow::Result<TaskOffsets> {
    if !std::path::Path::new(VMLINUX_BTF).exists() {
        bail!("{VMLINUX_BTF} is missing: observer needs a kernel built with BTF (CONFIG_DEBUG_INFO_BTF)");
    }
    let btf = Btf::from_file(VMLINUX_BTF).map_err(|e| anyhow!("reading {VMLINUX_BTF}: {e}"))?;
    let pid = member_offset(&btf, "task_struct", &["pid"])?;
    let tgid = member_offset(&btf, "task_struct", &["tgid"])?;
    if tgid != pid + 4 {
        // The programs read tgid at pid + 4 (`Task::pid_tgid`).
        bail!("BTF: task_struct.tgid does not follow pid (pid at {pid}, tgid at {tgid})");
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
    })
}

/// Byte offset of a (nested) member, looking through anonymous structs and unions.
fn member_offset(btf: &Btf, root: &str, path: &[&str]) -> anyhow::Result<u64> {
    let mut ty = btf
        .resolve_types_by_name(root)
        .map_err(|e| anyhow!("BTF has no {root}: {e}"))?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(_)))
        .with_context(|| format!("BTF has no struct {root}"))?;
    let mut offset_bits = 0u64;
    for field in path {
        let (bits, next) = find_member(btf, &ty, field)?
            .with_context(|| format!("BTF: struct {root} has no member {}", path.join(".")))?;
        offset_bits += bits;
        ty = next;
    }
    if !offset_bits.is_multiple_of(8) {
        bail!("BTF: {root}.{} is a bitfield", path.join("."));
    }
    Ok(offset_bits / 8)
}

fn find_member(btf: &Btf, ty: &Type, name: &str) -> anyhow::Result<Option<(u64, Type)>> {
    let (Type::Struct(st) | Type::Union(st)) = ty else {
        return Ok(None);
    };
    for member in &st.members {
        let member_name = btf.resolve_name(member).unwrap_or_default();
        let member_ty = strip(btf, btf.resolve_chained_type(member).map_err(|e| anyhow!("BTF: {e}"))?)?;
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
fn strip(btf: &Btf, mut ty: Type) -> anyhow::Result<Type> {
    for _ in 0..16 {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t),
            Type::Const(t) => btf.resolve_chained_type(t),
            Type::Volatile(t) => btf.resolve_chained_type(t),
            Type::Restrict(t) => btf.resolve_chained_type(t),
            _ => return Ok(ty),
        }
        .map_err(|e| anyhow!("BTF: {e}"))?;
    }
    bail!("BTF: type chain too long")
}
