//! Argument drift: the argument values a container used against the
//! conditions of the seccomp filter applied to it. For each syscall the
//! filter decides by its arguments, the filter's outcomes (from the symbolic
//! evaluation, `bpf::eval`) are checked against each recorded value: values
//! used but denied by a condition, and what the conditions allow that no
//! recorded value used (values, for kinds whose domain is small enough to
//! list; the conditions themselves for the others).
//!
//! A recorded value pins only some argument bits (`conditions::known_args`),
//! so a condition on other bits is unknown: a value whose outcome depends on
//! them is reported as undecided, never as allowed or denied.

use serde::Serialize;

use super::{
    ArgKind, SeenArgs,
    conditions::{KnownArg, known_args},
    kind_name,
    names::value_name,
    syscall_names,
};
use crate::{
    action::lets_through,
    bpf::Budget,
    bpf::{Cmp, Condition, EvalError, Expr, Field, Half, Insn, Verdict, eval::AluOp, evaluate_within},
    syscall_table,
    types::{Action, Arch},
};

/// One recorded (or possible) value, with its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Value {
    pub value: u64,
    pub name: String,
}

/// The drift of one syscall of one ABI whose filter verdict depends on arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArgDrift {
    #[serde(serialize_with = "arch_name")]
    pub arch: Arch,
    pub syscall: String,
    /// The kind's name (`socket`, `clone`, ...).
    pub kind: &'static str,
    /// Used, and denied by the filter's conditions.
    pub denied: Vec<Value>,
    /// Used, and allowed or denied depending on argument bits that were not recorded.
    pub undecided: Vec<Value>,
    /// Values the filter allows that were never used (kinds with a small domain).
    pub allowed_unused: Vec<Value>,
    /// Allowing paths of the filter no recorded value takes (the other kinds),
    /// each as its conditions, all of which hold.
    pub unexercised_conditions: Vec<String>,
    /// The kind's set overflowed: values are missing, so nothing is reported unused.
    pub overflowed: bool,
}

fn arch_name<S: serde::Serializer>(arch: &Arch, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match arch {
        Arch::X86_64 => "x86_64",
        Arch::I386 => "i386",
        Arch::X32 => "x32",
        Arch::Aarch64 => "aarch64",
    })
}

impl ArgDrift {
    /// Whether there is anything to report.
    pub fn is_empty(&self) -> bool {
        self.denied.is_empty()
            && self.undecided.is_empty()
            && self.allowed_unused.is_empty()
            && self.unexercised_conditions.is_empty()
    }
}

/// What the filter does with a call known only in part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Allowed,
    Denied,
    Undecided,
}

/// Every value the recording can hold for a kind, when that is a short list.
pub fn domain(kind: ArgKind) -> Option<Vec<u64>> {
    use observer_common::args::{F_LINUX_SPECIFIC_BASE, PROT_EXEC, ns};
    Some(match kind {
        ArgKind::Clone => (0..128).map(ns::expand).collect(),
        ArgKind::Unshare | ArgKind::Setns => (0..256).map(ns::expand).collect(),
        // Options above 127 are recorded as values; PR_SET_VMA is the only one.
        ArgKind::Prctl => (0..128).chain([0x5356_4d41]).collect(),
        ArgKind::Fcntl => (0..64).chain(F_LINUX_SPECIFIC_BASE..F_LINUX_SPECIFIC_BASE + 64).collect(),
        ArgKind::Mmap | ArgKind::Mprotect => vec![0, PROT_EXEC],
        ArgKind::Kill => (0..=64).collect(),
        ArgKind::Socketcall => (1..=20).collect(),
        ArgKind::Socket
        | ArgKind::Personality
        | ArgKind::Ioctl
        | ArgKind::Setsockopt
        | ArgKind::Getsockopt
        | ArgKind::Clone3 => {
            return None;
        }
    })
}

/// The argument drift of `stack` (filters in installation order, as dumped)
/// for the recorded values `seen`, on the syscalls `used` (ABI, name) that
/// the container made: a value is checked only on the ABIs that used its syscall.
pub fn drift<P: AsRef<[Insn]>>(
    stack: &[P],
    seen: &SeenArgs,
    used: &[(Arch, String)],
) -> Result<Vec<ArgDrift>, EvalError> {
    let mut out = Vec::new();
    // One budget for the whole stack, as a table gets: a dumped filter is
    // outside input, and each name must not get a budget of its own.
    let mut budget = Budget::default();
    for kind in ArgKind::ALL {
        let Some(set) = seen.get(kind) else { continue };
        for name in syscall_names(kind) {
            for (arch, _) in used.iter().filter(|(_, n)| n == name) {
                let Some(nr) = syscall_table::number(*arch, name) else { continue };
                let Verdict::Conditional { outcomes } = evaluate_within(stack, *arch, nr, &mut budget)? else {
                    continue;
                };
                let fate = |value: u64| fate(&outcomes, &known_args(kind, value));
                let named = |value: u64| Value { value, name: value_name(kind, value) };
                let mut d = ArgDrift {
                    arch: *arch,
                    syscall: (*name).to_owned(),
                    kind: kind_name(kind),
                    denied: Vec::new(),
                    undecided: Vec::new(),
                    allowed_unused: Vec::new(),
                    unexercised_conditions: Vec::new(),
                    overflowed: set.overflowed,
                };
                for &v in &set.values {
                    match fate(v) {
                        Fate::Allowed => {}
                        Fate::Denied => d.denied.push(named(v)),
                        Fate::Undecided => d.undecided.push(named(v)),
                    }
                }
                if !set.overflowed {
                    match domain(kind) {
                        Some(values) => {
                            d.allowed_unused = values
                                .into_iter()
                                .filter(|v| !set.values.contains(v) && fate(*v) == Fate::Allowed)
                                .map(named)
                                .collect();
                        }
                        None => {
                            let knowns: Vec<Vec<KnownArg>> = set.values.iter().map(|v| known_args(kind, *v)).collect();
                            for (conds, action) in &outcomes {
                                let taken = knowns.iter().any(|k| conds.iter().all(|c| holds(c, k) != Some(false)));
                                if lets_through(*action) && !taken {
                                    let text: Vec<String> = conds.iter().map(Condition::to_string).collect();
                                    d.unexercised_conditions.push(text.join(" && "));
                                }
                            }
                            d.unexercised_conditions.dedup();
                        }
                    }
                }
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// The outcomes a call known as `known` may take, and what they do.
fn fate(outcomes: &[(Vec<Condition>, Action)], known: &[KnownArg]) -> Fate {
    let mut possible = outcomes.iter().filter(|(conds, _)| conds.iter().all(|c| holds(c, known) != Some(false)));
    let Some((_, first)) = possible.next() else {
        // No path is consistent: cannot happen for a decoded filter's
        // exhaustive paths; say so rather than guess.
        return Fate::Undecided;
    };
    let allowed = lets_through(*first);
    if possible.all(|(_, a)| lets_through(*a) == allowed) {
        if allowed { Fate::Allowed } else { Fate::Denied }
    } else {
        Fate::Undecided
    }
}

/// A 32-bit value of which only the bits in `mask` are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bits {
    mask: u32,
    value: u32,
}

impl Bits {
    const UNKNOWN: Bits = Bits { mask: 0, value: 0 };

    fn known(value: u32) -> Bits {
        Bits { mask: u32::MAX, value }
    }

    fn exact(self) -> Option<u32> {
        (self.mask == u32::MAX).then_some(self.value)
    }

    /// The least and greatest values it can be.
    fn range(self) -> (u32, u32) {
        (self.value & self.mask, self.value | !self.mask)
    }
}

/// The bits of `expr` the known arguments fix.
fn bits(expr: &Expr, known: &[KnownArg]) -> Bits {
    match expr {
        Expr::Const(c) => Bits::known(*c),
        Expr::Field(Field::Arg { index, half }) => {
            let Some(a) = known.iter().find(|a| a.index == u32::from(*index)) else { return Bits::UNKNOWN };
            let shift = if *half == Half::Lo { 0 } else { 32 };
            let mask = (a.mask >> shift) as u32;
            Bits { mask, value: (a.value >> shift) as u32 & mask }
        }
        Expr::Field(Field::InstructionPointer(_)) => Bits::UNKNOWN,
        Expr::Alu(op, l, r) => {
            let (a, b) = (bits(l, known), bits(r, known));
            match op {
                // A bit known to be 0 on either side is a known 0.
                AluOp::And => {
                    let zeros = (a.mask & !a.value) | (b.mask & !b.value);
                    let mask = (a.mask & b.mask) | zeros;
                    Bits { mask, value: a.value & b.value & mask }
                }
                AluOp::Or => {
                    let ones = (a.mask & a.value) | (b.mask & b.value);
                    let mask = (a.mask & b.mask) | ones;
                    Bits { mask, value: (a.value | b.value) & mask }
                }
                _ => match (a.exact(), b.exact()) {
                    (Some(x), Some(y)) => alu(*op, x, y).map_or(Bits::UNKNOWN, Bits::known),
                    _ => Bits::UNKNOWN,
                },
            }
        }
        Expr::Neg(e) => bits(e, known).exact().map_or(Bits::UNKNOWN, |v| Bits::known(v.wrapping_neg())),
    }
}

/// 32-bit classic-BPF arithmetic on known values (division by zero: unknown).
fn alu(op: AluOp, a: u32, b: u32) -> Option<u32> {
    Some(match op {
        AluOp::Add => a.wrapping_add(b),
        AluOp::Sub => a.wrapping_sub(b),
        AluOp::Mul => a.wrapping_mul(b),
        AluOp::Div => a.checked_div(b)?,
        AluOp::Mod => a.checked_rem(b)?,
        AluOp::Or => a | b,
        AluOp::And => a & b,
        AluOp::Xor => a ^ b,
        AluOp::Lsh => a.wrapping_shl(b),
        AluOp::Rsh => a.wrapping_shr(b),
    })
}

/// Whether a path's condition holds for the known bits; `None`: it depends.
fn holds(c: &Condition, known: &[KnownArg]) -> Option<bool> {
    let (l, r) = (bits(&c.lhs, known), bits(&c.rhs, known));
    if let (Some(a), Some(b)) = (l.exact(), r.exact()) {
        return Some(match c.cmp {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Set => a & b != 0,
            Cmp::Clear => a & b == 0,
        });
    }
    let differ = (l.value ^ r.value) & l.mask & r.mask != 0;
    let ((lmin, lmax), (rmin, rmax)) = (l.range(), r.range());
    let either = |yes: bool, no: bool| {
        if yes {
            Some(true)
        } else if no {
            Some(false)
        } else {
            None
        }
    };
    let and = bits(&Expr::Alu(AluOp::And, Box::new(c.lhs.clone()), Box::new(c.rhs.clone())), known);
    match c.cmp {
        Cmp::Eq => differ.then_some(false),
        Cmp::Ne => differ.then_some(true),
        Cmp::Gt => either(lmin > rmax, lmax <= rmin),
        Cmp::Ge => either(lmin >= rmax, lmax < rmin),
        Cmp::Lt => either(lmax < rmin, lmin >= rmax),
        Cmp::Le => either(lmax <= rmin, lmin > rmax),
        Cmp::Set => either(and.value & and.mask != 0, and.mask == u32::MAX && and.value == 0),
        Cmp::Clear => either(and.mask == u32::MAX && and.value == 0, and.value & and.mask != 0),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use observer_common::args::ns;

    use super::*;
    use crate::{
        args::ValueSet,
        bpf::{
            insn::{
                BPF_ABS, BPF_ALU, BPF_AND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, OFF_ARGS,
                OFF_NR,
            },
            ret::{SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO},
        },
    };

    fn ld(k: u32) -> Insn {
        Insn::stmt(BPF_LD | BPF_W | BPF_ABS, k)
    }
    fn ret(k: u32) -> Insn {
        Insn::stmt(BPF_RET | BPF_K, k)
    }
    fn jeq(k: u32, jt: u8, jf: u8) -> Insn {
        Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, k, jt, jf)
    }
    fn jgt(k: u32, jt: u8, jf: u8) -> Insn {
        Insn::jump(BPF_JMP | BPF_JGT | BPF_K, k, jt, jf)
    }
    fn and(k: u32) -> Insn {
        Insn::stmt(BPF_ALU | BPF_AND | BPF_K, k)
    }
    const EPERM: u32 = SECCOMP_RET_ERRNO | 1;

    /// As libseccomp writes Docker's default rules for x86_64 (64-bit compares:
    /// the upper half first): socket with family < 38, == 39 or > 40 (the
    /// conditions on arg0), clone without namespace flags (MASKED_EQ), the rest allowed.
    fn docker_like() -> Vec<Insn> {
        let lo = OFF_ARGS;
        let hi = OFF_ARGS + 4;
        vec![
            ld(OFF_NR),                                      // 0
            jeq(41, 2, 0),                                   // 1 socket → 4
            jeq(56, 14, 0),                                  // 2 clone → 17
            ret(SECCOMP_RET_ALLOW),                          // 3
            ld(hi),                                          // 4
            jeq(0, 1, 0),                                    // 5 hi == 0 → 7
            jgt(0, 7, 9),                                    // 6 hi > 0 → allow (14) (> 40); else → deny (16)
            ld(lo),                                          // 7
            Insn::jump(BPF_JMP | BPF_JGE | BPF_K, 38, 0, 5), // 8 lo >= 38 ? → 9 : allow (14)
            jeq(39, 4, 0),                                   // 9 == 39 → allow
            jgt(40, 3, 0),                                   // 10 > 40 → allow
            ret(EPERM),                                      // 11
            ret(EPERM),                                      // 12 (unused)
            ret(EPERM),                                      // 13 (unused)
            ret(SECCOMP_RET_ALLOW),                          // 14
            ret(EPERM),                                      // 15
            ret(EPERM),                                      // 16
            ld(lo),                                          // 17
            and(0x7e02_0000),                                // 18
            jeq(0, 0, 1),                                    // 19
            ret(SECCOMP_RET_ALLOW),                          // 20
            ret(EPERM),                                      // 21
        ]
    }

    fn seen(entries: &[(&str, &[u64], bool)]) -> SeenArgs {
        SeenArgs(
            entries
                .iter()
                .map(|(k, v, o)| {
                    ((*k).to_owned(), ValueSet { values: v.iter().copied().collect::<BTreeSet<_>>(), overflowed: *o })
                })
                .collect(),
        )
    }

    fn used(names: &[&str]) -> Vec<(Arch, String)> {
        names.iter().map(|n| (Arch::X86_64, (*n).to_owned())).collect()
    }

    #[test]
    fn values_denied_by_a_condition() {
        let vsock = 40 << 32 | 1;
        let unix = 1 << 32 | 1;
        let out = drift(
            &[docker_like()],
            &seen(&[("socket", &[unix, vsock], false), ("clone", &[0, ns::CLONE_NEWUSER], false)]),
            &used(&["socket", "clone"]),
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        let socket = out.iter().find(|d| d.syscall == "socket").unwrap();
        assert_eq!(socket.denied, [Value { value: vsock, name: "AF_VSOCK, SOCK_STREAM".into() }]);
        assert!(socket.undecided.is_empty());
        let clone = out.iter().find(|d| d.syscall == "clone").unwrap();
        assert_eq!(clone.denied.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["CLONE_NEWUSER"]);
        assert!(clone.allowed_unused.is_empty(), "only 0 is allowed, and it was used");
    }

    #[test]
    fn conditions_never_exercised() {
        let unix = 1 << 32 | 1;
        let out = drift(&[docker_like()], &seen(&[("socket", &[unix], false)]), &used(&["socket"])).unwrap();
        let socket = &out[0];
        assert!(socket.denied.is_empty() && socket.undecided.is_empty());
        // The paths for family 39, family > 40 and a family above 2^32 were never taken.
        assert_eq!(socket.unexercised_conditions.len(), 3, "{:?}", socket.unexercised_conditions);
        assert!(socket.unexercised_conditions.iter().any(|c| c.contains("args[0].lo == 0x27")), "{socket:?}");
        assert!(socket.unexercised_conditions.iter().any(|c| c.contains("args[0].lo > 0x28")), "{socket:?}");
        // An overflowed set reports what was denied only.
        let out = drift(&[docker_like()], &seen(&[("socket", &[unix], true)]), &used(&["socket"])).unwrap();
        assert!(out[0].overflowed && out[0].is_empty());
    }

    #[test]
    fn small_domains_are_listed() {
        // clone allowed with any namespace flags but CLONE_NEWUSER.
        let filter = vec![
            ld(OFF_NR),
            jeq(56, 0, 4),
            ld(OFF_ARGS),
            and(ns::CLONE_NEWUSER as u32),
            jeq(0, 0, 1),
            ret(SECCOMP_RET_ALLOW),
            ret(EPERM),
        ];
        let out = drift(&[filter], &seen(&[("clone", &[0], false)]), &used(&["clone"])).unwrap();
        assert_eq!(out[0].allowed_unused.len(), 63, "the 64 sets without CLONE_NEWUSER, but 0");
        assert!(out[0].allowed_unused.iter().all(|v| !v.name.contains("CLONE_NEWUSER")));
    }

    #[test]
    fn unrecorded_bits_leave_a_value_undecided() {
        // socket allowed only with SOCK_CLOEXEC in the type: the recording drops it.
        let filter = vec![
            ld(OFF_NR),
            jeq(41, 0, 4),
            ld(OFF_ARGS + 8),
            and(0o2000000),
            jeq(0o2000000, 0, 1),
            ret(SECCOMP_RET_ALLOW),
            ret(EPERM),
        ];
        let out = drift(&[filter], &seen(&[("socket", &[1 << 32 | 1], false)]), &used(&["socket"])).unwrap();
        assert_eq!(out[0].undecided.len(), 1);
        assert!(out[0].denied.is_empty());
    }

    #[test]
    fn names_the_filter_decides_alone_have_no_drift() {
        let out = drift(&[docker_like()], &seen(&[("prctl", &[15], false)]), &used(&["prctl"])).unwrap();
        assert!(out.is_empty());
        // Only the ABIs that used the syscall are checked.
        let out = drift(&[docker_like()], &seen(&[("socket", &[1 << 32], false)]), &used(&["read"])).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn partly_known_conditions() {
        let known = known_args(ArgKind::Socket, 1 << 32 | 1);
        let lo1 = Expr::Field(Field::Arg { index: 1, half: Half::Lo });
        let c = |lhs: Expr, cmp, rhs| Condition { lhs, cmp, rhs: Expr::Const(rhs) };
        assert_eq!(holds(&c(lo1.clone(), Cmp::Eq, 1), &known), None, "flags unknown");
        assert_eq!(holds(&c(lo1.clone(), Cmp::Eq, 2), &known), Some(false));
        assert_eq!(holds(&c(lo1.clone(), Cmp::Ge, 1), &known), Some(true));
        assert_eq!(holds(&c(lo1.clone(), Cmp::Set, 1), &known), Some(true));
        assert_eq!(holds(&c(lo1.clone(), Cmp::Clear, 2), &known), Some(true));
        assert_eq!(holds(&c(lo1.clone(), Cmp::Set, 0x80000), &known), None);
        let masked = Expr::Alu(AluOp::And, Box::new(lo1), Box::new(Expr::Const(0xf)));
        assert_eq!(holds(&c(masked, Cmp::Eq, 1), &known), Some(true));
    }
}
