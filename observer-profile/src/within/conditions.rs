//! Whether every value one set of argument conditions admits is admitted by
//! another (libseccomp's comparisons, on the whole 64-bit value). Exact
//! where it says yes; a "no" may be a containment it cannot show (a range
//! inside a mask, say), which the caller reports as not shown.

use crate::{
    intersect,
    types::{ArgCond, CmpOp},
};

/// The values one condition admits.
#[derive(Clone, Copy)]
enum Set {
    /// `lo..=hi` (empty when `lo > hi`).
    Range(u64, u64),
    /// Every value but one.
    Not(u64),
    /// `v & mask == bits`.
    Masked(u64, u64),
}

fn set(c: &ArgCond) -> Set {
    match c.op {
        CmpOp::Eq => Set::Range(c.value, c.value),
        CmpOp::Le => Set::Range(0, c.value),
        CmpOp::Lt => c.value.checked_sub(1).map_or(Set::Range(1, 0), |hi| Set::Range(0, hi)),
        CmpOp::Ge => Set::Range(c.value, u64::MAX),
        CmpOp::Gt => c.value.checked_add(1).map_or(Set::Range(1, 0), |lo| Set::Range(lo, u64::MAX)),
        CmpOp::Ne => Set::Not(c.value),
        CmpOp::MaskedEq => Set::Masked(c.value, c.value_two),
    }
}

fn is_empty(s: Set) -> bool {
    match s {
        Set::Range(lo, hi) => lo > hi,
        Set::Not(_) => false,
        Set::Masked(mask, bits) => bits & !mask != 0,
    }
}

/// Whether every value `a` admits, `b` admits.
fn subset(a: Set, b: Set) -> bool {
    if is_empty(a) {
        return true;
    }
    match (a, b) {
        (Set::Range(lo, hi), Set::Range(lo2, hi2)) => lo >= lo2 && hi <= hi2,
        (Set::Range(lo, hi), Set::Not(x)) => x < lo || x > hi,
        (Set::Range(lo, hi), Set::Masked(mask, bits)) => lo == hi && lo & mask == bits,
        (Set::Not(x), Set::Range(lo2, hi2)) => {
            (lo2 == 0 && hi2 == u64::MAX)
                || (x == 0 && lo2 == 1 && hi2 == u64::MAX)
                || (x == u64::MAX && lo2 == 0 && hi2 == u64::MAX - 1)
        }
        (Set::Not(x), Set::Not(y)) => x == y,
        (Set::Not(_), Set::Masked(mask, bits)) => mask == 0 && bits == 0,
        // The smallest value is `bits`, the largest `bits | !mask`.
        (Set::Masked(mask, bits), Set::Range(lo2, hi2)) => bits >= lo2 && (bits | !mask) <= hi2,
        (Set::Masked(mask, bits), Set::Not(x)) => x & mask != bits,
        // Every bit `b` fixes must be fixed by `a`, to the same value.
        (Set::Masked(mask, bits), Set::Masked(mask2, bits2)) => mask2 & !mask == 0 && bits & mask2 == bits2,
    }
}

/// Whether every call `piece` admits (an AND of conditions) satisfies every
/// condition of `rule` (an AND too).
pub(super) fn implies(piece: &[ArgCond], rule: &[ArgCond]) -> bool {
    rule.iter().all(|want| {
        let on_arg: Vec<ArgCond> = piece.iter().filter(|c| c.index == want.index).copied().collect();
        !intersect::satisfiable(on_arg.iter().copied()) || on_arg.iter().any(|c| subset(set(c), set(want)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: u32, op: CmpOp, value: u64, value_two: u64) -> ArgCond {
        ArgCond { index, value, value_two, op }
    }

    #[test]
    fn containment_of_single_conditions() {
        use CmpOp::*;
        let yes = |a: ArgCond, b: ArgCond| assert!(implies(&[a], &[b]), "{a:?} => {b:?}");
        let no = |a: ArgCond, b: ArgCond| assert!(!implies(&[a], &[b]), "{a:?} =/=> {b:?}");
        yes(c(0, Eq, 5, 0), c(0, Le, 5, 0));
        no(c(0, Eq, 6, 0), c(0, Le, 5, 0));
        yes(c(0, Lt, 3, 0), c(0, Ne, 3, 0));
        no(c(0, Le, 3, 0), c(0, Ne, 3, 0));
        yes(c(0, Gt, 0, 0), c(0, Ne, 0, 0));
        yes(c(0, Ne, 0, 0), c(0, Ge, 1, 0));
        no(c(0, Ne, 0, 0), c(0, Ge, 2, 0));
        // Masks: clone's namespace flags as Docker's default tests them.
        let ns = 0x7E02_0000;
        yes(c(0, MaskedEq, ns | 0x100, 0), c(0, MaskedEq, ns, 0));
        no(c(0, MaskedEq, 0x100, 0), c(0, MaskedEq, ns, 0));
        yes(c(0, Eq, 0x11, 0), c(0, MaskedEq, ns, 0));
        no(c(0, Eq, 0x1000_0000, 0), c(0, MaskedEq, ns, 0));
        yes(c(0, MaskedEq, 0xff, 0x10), c(0, Le, 0xffff_ffff_ffff_ff10, 0));
        yes(c(0, MaskedEq, 0xff, 0x10), c(0, Ne, 0x11, 0));
        // Another argument's condition says nothing about this one.
        no(c(1, Eq, 0, 0), c(0, Eq, 0, 0));
        // Nothing admitted: contained in anything.
        assert!(implies(&[c(0, Eq, 1, 0), c(0, Eq, 2, 0)], &[c(0, Eq, 9, 0)]));
    }
}
