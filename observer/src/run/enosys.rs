//! The `-ENOSYS` stub runc puts in front of every filter it loads
//! (libcontainer/seccomp/patchbpf): a syscall numbered above the highest one
//! the profile's rules name, per architecture, gets ENOSYS instead of the
//! default errno, so that a program probing a syscall newer than the profile
//! (clone3, faccessat2, ...) falls back as it would on an older kernel.
//! Docker's containers run with it, so `observer run` adds it too.

use libseccomp::{ScmpArch, ScmpSyscall};
use observer_profile::{
    bpf::Insn,
    types::{Action, Arch, ResolvedProfile},
};

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_BIT: u32 = 1 << 30;
const RET_ERRNO_ENOSYS: u32 = 0x0005_0000 | 38;
const ENOSYS: u32 = 38;

/// Highest syscall number the profile's rules name for `arch`, as libseccomp resolves them.
fn last_syscall(profile: &ResolvedProfile, arch: ScmpArch) -> Option<u32> {
    profile
        .rules
        .iter()
        .filter_map(|r| ScmpSyscall::from_name_by_arch(&r.name, arch).ok())
        .map(i32::from)
        .filter(|nr| *nr > 0)
        .max()
        .map(|nr| nr as u32)
}

/// A jump target in the stub, resolved once the layout is known.
#[derive(Clone, Copy)]
enum To {
    Next,
    Label(usize),
}

struct Asm {
    code: Vec<(u16, u32, To, To)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn here(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn op(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push((code, k, jt, jf));
    }
    /// Offsets relative to the next instruction, as cBPF wants them. `main` is
    /// the label of the first instruction after the stub.
    fn finish(self) -> Vec<Insn> {
        let at = |to: To, pc: usize| -> u32 {
            match to {
                To::Next => 0,
                To::Label(l) => (self.labels[l].expect("label placed") - pc - 1) as u32,
            }
        };
        self.code
            .iter()
            .enumerate()
            .map(|(pc, (code, k, jt, jf))| {
                if *code == JA {
                    Insn { code: *code, jt: 0, jf: 0, k: at(*jt, pc) }
                } else {
                    Insn { code: *code, jt: at(*jt, pc) as u8, jf: at(*jf, pc) as u8, k: *k }
                }
            })
            .collect()
    }
}

/// The stub for `profile`, or nothing when runc would add none (a permissive
/// default, or a default errno that already is ENOSYS).
pub fn stub(profile: &ResolvedProfile) -> Vec<Insn> {
    if matches!(profile.default_action, Action::Allow | Action::Log | Action::Trace(_))
        || profile.default_action == Action::Errno(ENOSYS)
    {
        return Vec::new();
    }
    let has = |a: Arch| profile.arches.contains(&a);
    let x86_64 = has(Arch::X86_64).then(|| last_syscall(profile, ScmpArch::X8664)).flatten();
    let x32 = has(Arch::X32).then(|| last_syscall(profile, ScmpArch::X32)).flatten();
    let i386 = has(Arch::I386).then(|| last_syscall(profile, ScmpArch::X86)).flatten();
    if x86_64.is_none() && x32.is_none() && i386.is_none() {
        return Vec::new();
    }
    let mut a = Asm { code: Vec::new(), labels: Vec::new() };
    let (main, enosys, amd64, ia32) = (a.label(), a.label(), a.label(), a.label());
    a.op(LD_W_ABS, 4, To::Next, To::Next);
    if x86_64.is_some() || x32.is_some() {
        a.op(JEQ_K, AUDIT_ARCH_X86_64, To::Label(amd64), To::Next);
    }
    if i386.is_some() {
        a.op(JEQ_K, AUDIT_ARCH_I386, To::Label(ia32), To::Next);
    }
    a.op(JA, 0, To::Label(main), To::Next);
    if x86_64.is_some() || x32.is_some() {
        a.here(amd64);
        a.op(LD_W_ABS, 0, To::Next, To::Next);
        let x32_check = a.label();
        // x32 calls carry bit 30 and are compared with x32's highest number.
        a.op(JSET_K, X32_BIT, To::Label(x32_check), To::Next);
        match x86_64 {
            Some(last) => a.op(JGT_K, last, To::Label(enosys), To::Label(main)),
            None => a.op(JA, 0, To::Label(main), To::Next),
        }
        a.here(x32_check);
        match x32 {
            Some(last) => a.op(JGT_K, last, To::Label(enosys), To::Label(main)),
            None => a.op(JA, 0, To::Label(main), To::Next),
        }
    }
    if let Some(last) = i386 {
        a.here(ia32);
        a.op(LD_W_ABS, 0, To::Next, To::Next);
        a.op(JGT_K, last, To::Label(enosys), To::Label(main));
    }
    a.here(enosys);
    a.op(RET_K, RET_ERRNO_ENOSYS, To::Next, To::Next);
    a.here(main);
    a.finish()
}

#[cfg(test)]
mod tests {
    use observer_profile::{
        bpf::{Verdict, evaluate},
        types::{Arch, ResolvedRule},
    };

    use super::*;

    fn profile() -> ResolvedProfile {
        ResolvedProfile {
            default_action: Action::Errno(1),
            arches: vec![Arch::X86_64, Arch::I386],
            rules: ["read", "chmod"]
                .iter()
                .map(|n| ResolvedRule { name: (*n).into(), action: Action::Allow, args: vec![] })
                .collect(),
            unknown_names: vec![],
        }
    }

    /// The stub followed by "return ERRNO(1)" standing in for the main filter.
    fn with_main(stub: Vec<Insn>) -> Vec<Insn> {
        let mut p = stub;
        p.push(Insn { code: RET_K, jt: 0, jf: 0, k: 0x0005_0001 });
        p
    }

    #[test]
    fn numbers_above_the_highest_rule_get_enosys_per_abi() {
        let p = with_main(stub(&profile()));
        // chmod is 90 on x86_64 and 15 on i386: read (0 / 3) and chmod are the rules.
        let v = |arch, nr| evaluate(&[&p], arch, nr).expect("evaluates");
        assert_eq!(v(Arch::X86_64, 90), Verdict::Fixed(Action::Errno(1)));
        assert_eq!(v(Arch::X86_64, 91), Verdict::Fixed(Action::Errno(38)));
        assert_eq!(v(Arch::X86_64, 435), Verdict::Fixed(Action::Errno(38)));
        assert_eq!(v(Arch::I386, 15), Verdict::Fixed(Action::Errno(1)));
        assert_eq!(v(Arch::I386, 16), Verdict::Fixed(Action::Errno(38)));
    }

    #[test]
    fn no_stub_for_a_permissive_default_or_enosys() {
        let mut p = profile();
        p.default_action = Action::Allow;
        assert!(stub(&p).is_empty());
        p.default_action = Action::Errno(38);
        assert!(stub(&p).is_empty());
    }
}
