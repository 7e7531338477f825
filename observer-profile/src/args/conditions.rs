//! From recorded argument values to libseccomp argument conditions that allow
//! exactly them, and back: which argument bits a recorded value pins, and
//! whether a profile's condition holds for it.
//!
//! A recorded value does not pin every bit of the call (socket's type is
//! recorded without SOCK_CLOEXEC, clone's flags only as namespace flags), so
//! deciding a condition can answer "it depends on bits that were not recorded".

use observer_common::args::{PROT_EXEC, SOCK_TYPE_MASK, ns};

use super::{ArgKind, ValueSet};
use crate::types::{ArgCond, CmpOp};

/// Bits of one syscall argument a recorded value fixes: `arg & mask == value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownArg {
    pub index: u32,
    pub mask: u64,
    pub value: u64,
}

const LOW32: u64 = 0xffff_ffff;

/// What a recorded value of `kind` (in `SeenArgs`'s encoding) says about the
/// call's arguments: exactly what the kernel program kept of them
/// (`observer_common::args::place`).
pub fn known_args(kind: ArgKind, value: u64) -> Vec<KnownArg> {
    let arg = |index, mask, value: u64| KnownArg { index, mask, value: value & mask };
    match kind {
        // The family is recorded only when the whole register is below 2^16.
        ArgKind::Socket => vec![arg(0, u64::MAX, value >> 32), arg(1, SOCK_TYPE_MASK, value & LOW32)],
        ArgKind::Clone => vec![arg(0, ns::CLONE_MASK, value)],
        ArgKind::Unshare => vec![arg(0, ns::NS_MASK, value)],
        ArgKind::Setns => vec![arg(1, ns::NS_MASK, value)],
        // Recorded only when the register's upper half is zero.
        ArgKind::Personality | ArgKind::Prctl | ArgKind::Socketcall => vec![arg(0, u64::MAX, value)],
        ArgKind::Fcntl | ArgKind::Ioctl | ArgKind::Kill => vec![arg(1, LOW32, value)],
        ArgKind::Setsockopt | ArgKind::Getsockopt => vec![arg(1, LOW32, value >> 32), arg(2, LOW32, value & LOW32)],
        ArgKind::Mmap | ArgKind::Mprotect => vec![arg(2, PROT_EXEC, value)],
        // In the caller's memory: no register holds them.
        ArgKind::Clone3 => Vec::new(),
    }
}

/// The conditions (all must hold) that allow calls with this recorded value.
pub fn value_conditions(kind: ArgKind, value: u64) -> Vec<ArgCond> {
    let eq = |index, v| ArgCond { index, value: v, value_two: 0, op: CmpOp::Eq };
    // libseccomp's MASKED_EQ: `arg & value == value_two`.
    let masked = |index, mask, v: u64| ArgCond { index, value: mask, value_two: v & mask, op: CmpOp::MaskedEq };
    match kind {
        ArgKind::Socket => vec![eq(0, value >> 32), masked(1, SOCK_TYPE_MASK, value & LOW32)],
        ArgKind::Clone => vec![masked(0, ns::CLONE_MASK, value)],
        ArgKind::Unshare => vec![masked(0, ns::NS_MASK, value)],
        ArgKind::Setns => vec![masked(1, ns::NS_MASK, value)],
        ArgKind::Personality | ArgKind::Prctl | ArgKind::Socketcall => vec![eq(0, value)],
        // These are `int`s in the kernel (`unsigned int` for the ioctl
        // request): it ignores the register's upper half, and so did the
        // recording, so the condition compares the lower half only.
        ArgKind::Fcntl | ArgKind::Kill | ArgKind::Ioctl => vec![masked(1, LOW32, value)],
        ArgKind::Setsockopt | ArgKind::Getsockopt => {
            vec![masked(1, LOW32, value >> 32), masked(2, LOW32, value & LOW32)]
        }
        ArgKind::Mmap | ArgKind::Mprotect => vec![masked(2, PROT_EXEC, value)],
        // No seccomp condition reaches memory (`rules_for` gives none).
        ArgKind::Clone3 => Vec::new(),
    }
}

/// The rules (an OR of ANDs) that allow exactly what `set` holds; an empty
/// rule is an unconditional one. `None` when the set overflowed (values are
/// missing, so only the name-level rule is safe), and for clone3, whose flags
/// no condition can test.
pub fn rules_for(kind: ArgKind, set: &ValueSet) -> Option<Vec<Vec<ArgCond>>> {
    if set.overflowed || kind == ArgKind::Clone3 {
        return None;
    }
    if matches!(kind, ArgKind::Mmap | ArgKind::Mprotect) && set.values.len() >= 2 {
        // Both with and without PROT_EXEC: the argument decides nothing.
        return Some(vec![Vec::new()]);
    }
    Some(set.values.iter().map(|v| value_conditions(kind, *v)).collect())
}

/// Whether `cond` holds for a call whose arguments are only known as `known`:
/// `None` when it depends on bits that are not known.
pub fn decide(cond: &ArgCond, known: &[KnownArg]) -> Option<bool> {
    let (m, k) = known.iter().find(|a| a.index == cond.index).map_or((0, 0), |a| (a.mask, a.value & a.mask));
    let eq = |v: u64| {
        if m == u64::MAX {
            Some(k == v)
        } else if (k ^ v) & m != 0 {
            Some(false)
        } else {
            None
        }
    };
    // The argument lies within [k with unknown bits 0, k with unknown bits 1].
    let (min, max) = (k, k | !m);
    let range = |always: bool, never: bool| {
        if always {
            Some(true)
        } else if never {
            Some(false)
        } else {
            None
        }
    };
    let v = cond.value;
    match cond.op {
        CmpOp::Eq => eq(v),
        CmpOp::Ne => eq(v).map(|b| !b),
        CmpOp::Lt => range(max < v, min >= v),
        CmpOp::Le => range(max <= v, min > v),
        CmpOp::Gt => range(min > v, max <= v),
        CmpOp::Ge => range(min >= v, max < v),
        CmpOp::MaskedEq => {
            let (mask, want) = (cond.value, cond.value_two);
            if want & !mask != 0 || (k ^ want) & mask & m != 0 {
                Some(false)
            } else if mask & !m == 0 {
                Some(true)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn set(values: &[u64]) -> ValueSet {
        ValueSet { values: values.iter().copied().collect::<BTreeSet<_>>(), overflowed: false }
    }

    fn masked(index: u32, mask: u64, v: u64) -> ArgCond {
        ArgCond { index, value: mask, value_two: v, op: CmpOp::MaskedEq }
    }

    fn eq(index: u32, v: u64) -> ArgCond {
        ArgCond { index, value: v, value_two: 0, op: CmpOp::Eq }
    }

    #[test]
    fn one_rule_per_value() {
        let unix_stream = 1 << 32 | 1;
        let inet_dgram = 2 << 32 | 2;
        assert_eq!(
            rules_for(ArgKind::Socket, &set(&[unix_stream, inet_dgram])),
            Some(vec![vec![eq(0, 1), masked(1, 0xf, 1)], vec![eq(0, 2), masked(1, 0xf, 2)]])
        );
        assert_eq!(rules_for(ArgKind::Clone, &set(&[0])), Some(vec![vec![masked(0, ns::CLONE_MASK, 0)]]));
        assert_eq!(
            rules_for(ArgKind::Unshare, &set(&[ns::CLONE_NEWUSER])),
            Some(vec![vec![masked(0, ns::NS_MASK, ns::CLONE_NEWUSER)]])
        );
        assert_eq!(
            rules_for(ArgKind::Setns, &set(&[ns::CLONE_NEWNET])),
            Some(vec![vec![masked(1, ns::NS_MASK, ns::CLONE_NEWNET)]])
        );
        assert_eq!(rules_for(ArgKind::Personality, &set(&[8])), Some(vec![vec![eq(0, 8)]]));
        assert_eq!(rules_for(ArgKind::Prctl, &set(&[15])), Some(vec![vec![eq(0, 15)]]));
        assert_eq!(rules_for(ArgKind::Fcntl, &set(&[1030])), Some(vec![vec![masked(1, 0xffff_ffff, 1030)]]));
        assert_eq!(rules_for(ArgKind::Ioctl, &set(&[0x5413])), Some(vec![vec![masked(1, 0xffff_ffff, 0x5413)]]));
        assert_eq!(
            rules_for(ArgKind::Setsockopt, &set(&[1 << 32 | 2])),
            Some(vec![vec![masked(1, 0xffff_ffff, 1), masked(2, 0xffff_ffff, 2)]])
        );
        assert_eq!(rules_for(ArgKind::Kill, &set(&[15])), Some(vec![vec![masked(1, 0xffff_ffff, 15)]]));
        assert_eq!(rules_for(ArgKind::Socketcall, &set(&[1])), Some(vec![vec![eq(0, 1)]]));
    }

    #[test]
    fn exec_mappings() {
        assert_eq!(rules_for(ArgKind::Mmap, &set(&[0])), Some(vec![vec![masked(2, 4, 0)]]));
        assert_eq!(rules_for(ArgKind::Mprotect, &set(&[4])), Some(vec![vec![masked(2, 4, 4)]]));
        assert_eq!(rules_for(ArgKind::Mmap, &set(&[0, 4])), Some(vec![Vec::new()]), "both: no condition");
    }

    #[test]
    fn an_overflowed_set_has_no_conditions() {
        let mut s = set(&[0x5401, 0x5413]);
        s.overflowed = true;
        assert_eq!(rules_for(ArgKind::Ioctl, &s), None);
    }

    #[test]
    fn a_value_satisfies_its_own_conditions() {
        let samples: &[(ArgKind, u64)] = &[
            (ArgKind::Socket, 10 << 32 | 5),
            (ArgKind::Clone, ns::CLONE_NEWPID | ns::CLONE_NEWNS),
            (ArgKind::Unshare, ns::CLONE_NEWTIME),
            (ArgKind::Setns, ns::CLONE_NEWUTS),
            (ArgKind::Personality, 0xffff_ffff),
            (ArgKind::Prctl, 0x5356_4d41),
            (ArgKind::Fcntl, 1),
            (ArgKind::Ioctl, 0x8004_5401),
            (ArgKind::Getsockopt, 6 << 32 | 1),
            (ArgKind::Mmap, 4),
            (ArgKind::Mprotect, 0),
            (ArgKind::Kill, 9),
            (ArgKind::Socketcall, 20),
        ];
        for (kind, v) in samples {
            let known = known_args(*kind, *v);
            for c in value_conditions(*kind, *v) {
                assert_eq!(decide(&c, &known), Some(true), "{kind:?} {v:#x} {c:?}");
            }
        }
    }

    #[test]
    fn deciding_docker_default_conditions() {
        // socket: arg0 < 38, == 39, > 40 (AF_ALG and AF_VSOCK stay out).
        let lt = ArgCond { index: 0, value: 38, value_two: 0, op: CmpOp::Lt };
        let gt = ArgCond { index: 0, value: 40, value_two: 0, op: CmpOp::Gt };
        let unix = known_args(ArgKind::Socket, 1 << 32 | 1);
        let vsock = known_args(ArgKind::Socket, 40 << 32 | 1);
        assert_eq!(decide(&lt, &unix), Some(true));
        assert_eq!(decide(&lt, &vsock), Some(false));
        assert_eq!(decide(&gt, &vsock), Some(false));
        assert_eq!(decide(&eq(0, 39), &vsock), Some(false));
        // clone: no namespace flag (mask 0x7e020000, which is CLONE_MASK).
        let docker_clone = masked(0, 0x7e02_0000, 0);
        assert_eq!(decide(&docker_clone, &known_args(ArgKind::Clone, 0)), Some(true));
        assert_eq!(decide(&docker_clone, &known_args(ArgKind::Clone, ns::CLONE_NEWUSER)), Some(false));
        // A condition on bits that were not recorded depends on the call.
        assert_eq!(decide(&masked(0, 0x100, 0), &known_args(ArgKind::Clone, 0)), None);
        assert_eq!(decide(&eq(2, 0), &unix), None, "socket's protocol is not recorded");
        assert_eq!(decide(&eq(1, 1), &unix), None, "socket's type flags are not recorded");
        assert_eq!(decide(&eq(1, 2), &unix), Some(false), "but its low bits are");
        // A mask whose wanted bits it does not cover never matches.
        assert_eq!(decide(&masked(0, 1, 2), &unix), Some(false));
        // Ranges on partly known values: the fcntl cmd's upper half is unknown.
        let fcntl = known_args(ArgKind::Fcntl, 3);
        assert_eq!(decide(&ArgCond { index: 1, value: 3, value_two: 0, op: CmpOp::Ge }, &fcntl), Some(true));
        assert_eq!(decide(&ArgCond { index: 1, value: 3, value_two: 0, op: CmpOp::Le }, &fcntl), None);
        assert_eq!(decide(&ArgCond { index: 1, value: 3, value_two: 0, op: CmpOp::Ne }, &fcntl), None);
        assert_eq!(decide(&ArgCond { index: 1, value: 4, value_two: 0, op: CmpOp::Ne }, &fcntl), Some(true));
    }
}
