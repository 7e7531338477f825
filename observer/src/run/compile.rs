//! Compiles a resolved profile into one classic-BPF seccomp filter with
//! libseccomp, the way runc does (libcontainer/seccomp/seccomp_linux.go):
//! same attributes, same treatment of redundant rules, unknown names and
//! repeated argument indexes.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    os::fd::{FromRawFd, OwnedFd},
};

use anyhow::{Context, Result, bail};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use observer_profile::{
    bpf::{self, Insn},
    types::{Action, Arch, ArgCond, CmpOp, ResolvedProfile},
};

/// A filter ready to load, and what compiling it set aside.
#[derive(Clone, Debug)]
pub struct CompiledFilter {
    pub insns: Vec<Insn>,
    /// Rule names libseccomp does not know (or the profile's own unknown
    /// names): skipped with a warning, as runc does.
    pub skipped: Vec<String>,
}

fn scmp_action(action: Action) -> Result<ScmpAction> {
    Ok(match action {
        Action::Allow => ScmpAction::Allow,
        Action::Errno(e) => ScmpAction::Errno(e as i32),
        Action::KillProcess => ScmpAction::KillProcess,
        Action::KillThread => ScmpAction::KillThread,
        Action::Trap => ScmpAction::Trap,
        Action::Log => ScmpAction::Log,
        Action::Trace(d) => ScmpAction::Trace(d as u16),
        // A notify rule needs an agent holding the listener fd; observer run
        // has none, and the kernel would answer ENOSYS.
        Action::UserNotif => {
            bail!("user_notif rules need a seccomp agent, which `observer run` does not provide")
        }
    })
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::X86_64 => ScmpArch::X8664,
        Arch::I386 => ScmpArch::X86,
        Arch::X32 => ScmpArch::X32,
        Arch::Aarch64 => ScmpArch::Aarch64,
    }
}

/// One argument condition as libseccomp takes it (the tests' own libseccomp
/// programs use it too).
pub fn scmp_cond(c: &ArgCond) -> ScmpArgCompare {
    let (op, datum) = match c.op {
        CmpOp::Ne => (ScmpCompareOp::NotEqual, c.value),
        CmpOp::Lt => (ScmpCompareOp::Less, c.value),
        CmpOp::Le => (ScmpCompareOp::LessOrEqual, c.value),
        CmpOp::Eq => (ScmpCompareOp::Equal, c.value),
        CmpOp::Ge => (ScmpCompareOp::GreaterEqual, c.value),
        CmpOp::Gt => (ScmpCompareOp::Greater, c.value),
        CmpOp::MaskedEq => (ScmpCompareOp::MaskedEqual(c.value), c.value_two),
    };
    ScmpArgCompare::new(c.index, op, datum)
}

/// The most instructions the kernel loads in one filter (BPF_MAXINSNS).
pub const KERNEL_MAX_INSNS: usize = 4096;

/// Fewest instructions `profile` can compile to: per ABI, one test for each
/// rule and one for each of its argument conditions. A profile above the
/// kernel's limit by this count is refused before libseccomp spends seconds
/// and gigabytes on it.
pub fn least_instructions(profile: &ResolvedProfile) -> usize {
    let per_abi: usize = profile.rules.iter().map(|r| 1 + r.args.len()).sum();
    per_abi.saturating_mul(profile.arches.len().max(1))
}

/// Builds the filter for `profile`: every listed ABI in one program.
pub fn compile(profile: &ResolvedProfile) -> Result<CompiledFilter> {
    let least = least_instructions(profile);
    if least > KERNEL_MAX_INSNS {
        bail!(
            "the profile cannot be loaded: its {} rules with {} argument conditions need at least {least} BPF instructions for {} ABI(s), and the kernel loads at most {KERNEL_MAX_INSNS}",
            profile.rules.len(),
            profile.rules.iter().map(|r| r.args.len()).sum::<usize>(),
            profile.arches.len()
        );
    }
    let default = scmp_action(profile.default_action)?;
    let mut ctx = ScmpFilterContext::new_filter(default).context("libseccomp: creating the filter")?;
    for arch in &profile.arches {
        ctx.add_arch(scmp_arch(*arch)).with_context(|| format!("libseccomp: adding architecture {arch:?}"))?;
    }
    // runc leaves libseccomp's bad-arch action (SCMP_ACT_KILL_THREAD) for
    // ABIs the profile does not name; say so explicitly.
    if profile.arches.first() == Some(&Arch::Aarch64) {
        // libseccomp starts every filter with the native ABI (x86_64 here);
        // a filter for another machine (arm64, evaluated only) must not
        // carry it. Rule names are still resolved through the native table
        // and translated by name, as libseccomp does for every added ABI.
        ctx.remove_arch(ScmpArch::X8664).context("libseccomp: removing the native architecture")?;
    }
    ctx.set_act_badarch(ScmpAction::KillThread).context("libseccomp: bad-arch action")?;
    // no_new_privs is decided by `run` (only without CAP_SYS_ADMIN), not by
    // libseccomp; and the program is loaded by hand, so this only documents.
    ctx.set_ctl_nnp(false).context("libseccomp: SCMP_FLTATR_CTL_NNP")?;
    if profile.rules.len() > 32 {
        // runc turns on libseccomp's binary tree above 32 rules.
        let _ = ctx.set_ctl_optimize(2);
    }

    let mut skipped = profile.unknown_names.clone();
    for rule in &profile.rules {
        if rule.action == profile.default_action {
            // runc: redundant, and libseccomp would refuse it.
            continue;
        }
        let action = scmp_action(rule.action)?;
        let Ok(syscall) = ScmpSyscall::from_name(&rule.name) else {
            skipped.push(rule.name.clone());
            continue;
        };
        let conds: Vec<ScmpArgCompare> = rule.args.iter().map(scmp_cond).collect();
        let add = |ctx: &mut ScmpFilterContext, conds: &[ScmpArgCompare]| {
            if conds.is_empty() {
                ctx.add_rule(action, syscall)
            } else {
                ctx.add_rule_conditional(action, syscall, conds)
            }
            .with_context(|| format!("libseccomp: rule for {}", rule.name))
        };
        let mut seen = [0u32; 6];
        for c in &rule.args {
            if let Some(n) = seen.get_mut(c.index as usize) {
                *n += 1;
            }
        }
        if seen.iter().any(|n| *n > 1) {
            // runc: conditions on the same argument become separate rules
            // (any one matching is enough), libseccomp cannot AND them.
            for c in &conds {
                add(&mut ctx, std::slice::from_ref(c))?;
            }
        } else {
            add(&mut ctx, &conds)?;
        }
    }
    skipped.sort();
    skipped.dedup();
    // runc's -ENOSYS stub goes in front, as in every container Docker starts.
    let mut insns = super::enosys::stub(profile);
    insns.extend(export(&ctx)?);
    if insns.len() > KERNEL_MAX_INSNS {
        bail!(
            "the profile compiles to {} BPF instructions and the kernel loads at most {KERNEL_MAX_INSNS}: it cannot be loaded",
            insns.len()
        );
    }
    Ok(CompiledFilter { insns, skipped })
}

/// The program libseccomp generated, read back through a memfd.
pub fn export(ctx: &ScmpFilterContext) -> Result<Vec<Insn>> {
    // SAFETY: memfd_create with a static name; the fd is owned right away.
    let fd = unsafe { libc::memfd_create(c"observer-filter".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&mut file).context("libseccomp: exporting the BPF program")?;
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bpf::decode(&bytes)?)
}
