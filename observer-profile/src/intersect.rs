//! The calls two sets of conditional rules both admit, written so that runc
//! applies them exactly.
//!
//! A syscall's rules are an OR of ANDs. Their intersection pairs every rule of
//! one side with every rule of the other and ANDs their conditions. runc
//! cannot AND two conditions on one argument: it adds each as a rule of its
//! own (libcontainer/seccomp `matchCall`), which turns the AND into an OR.
//! So conditions on one argument are folded into one condition where one
//! condition says exactly the same (two masks, a value and a bound, two
//! bounds), and a rule whose conditions cannot be folded is left out: the
//! result is then stricter than the intersection, never looser.

use std::collections::BTreeMap;

use crate::{
    action,
    resolve::ConditionalRule,
    types::{Action, ArgCond, CmpOp},
};

/// Rules with at most one condition per argument, and how many rules had to
/// be left out because their conditions on one argument cannot be written as
/// one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub rules: Vec<ConditionalRule>,
    pub unwritable: usize,
}

/// The rules that admit what a rule of `a` and a rule of `b` both admit.
/// Rules whose action does not let the call through are left out: the
/// result is read as "allowed under these conditions", the rest denied.
pub fn intersect(a: &[ConditionalRule], b: &[ConditionalRule]) -> Written {
    let mut out = Written::default();
    for ra in a.iter().filter(|r| action::lets_through(r.action)) {
        for rb in b.iter().filter(|r| action::lets_through(r.action)) {
            let action = stricter(ra.action, rb.action);
            let conds = ra.args.iter().chain(&rb.args).copied();
            push(&mut out, action, conds);
        }
    }
    out
}

/// `rules` with each rule's conditions on one argument folded into one.
pub fn one_per_argument(rules: &[ConditionalRule]) -> Written {
    let mut out = Written::default();
    for r in rules {
        push(&mut out, r.action, r.args.iter().copied());
    }
    out
}

/// Whether a rule tests one argument more than once (what runc turns into
/// an OR).
pub fn tests_an_argument_twice(args: &[ArgCond]) -> bool {
    args.iter().enumerate().any(|(i, c)| args[..i].iter().any(|o| o.index == c.index))
}

fn push(out: &mut Written, action: Action, conds: impl Iterator<Item = ArgCond>) {
    match fold(conds) {
        Folded::Rule(args) => {
            let rule = ConditionalRule { action, args };
            if !out.rules.contains(&rule) {
                out.rules.push(rule);
            }
        }
        Folded::Never => {}
        Folded::Unwritable => out.unwritable += 1,
    }
}

/// Whether some call satisfies every condition: `false` only when no value
/// can (conditions that hold together but not as one condition per argument
/// count as satisfiable).
pub(crate) fn satisfiable(conds: impl Iterator<Item = ArgCond>) -> bool {
    !matches!(fold(conds), Folded::Never)
}

fn stricter(a: Action, b: Action) -> Action {
    if action::strictness(a) >= action::strictness(b) { a } else { b }
}

enum Folded {
    /// One condition per argument, by argument index.
    Rule(Vec<ArgCond>),
    /// No call satisfies every condition.
    Never,
    /// Satisfiable, but not as one condition per argument.
    Unwritable,
}

fn fold(conds: impl Iterator<Item = ArgCond>) -> Folded {
    let mut by_arg: BTreeMap<u32, ArgCond> = BTreeMap::new();
    for c in conds {
        let joined = match by_arg.get(&c.index) {
            None => Joined::One(c),
            Some(have) => and(*have, c),
        };
        match joined {
            Joined::One(j) => {
                by_arg.insert(c.index, j);
            }
            Joined::Never => return Folded::Never,
            Joined::Unwritable => return Folded::Unwritable,
        }
    }
    Folded::Rule(by_arg.into_values().collect())
}

enum Joined {
    One(ArgCond),
    Never,
    Unwritable,
}

/// Whether `c` holds for the argument value `v` (libseccomp's comparisons,
/// on the whole 64-bit value).
pub(crate) fn holds(c: &ArgCond, v: u64) -> bool {
    match c.op {
        CmpOp::Ne => v != c.value,
        CmpOp::Lt => v < c.value,
        CmpOp::Le => v <= c.value,
        CmpOp::Eq => v == c.value,
        CmpOp::Ge => v >= c.value,
        CmpOp::Gt => v > c.value,
        CmpOp::MaskedEq => v & c.value == c.value_two,
    }
}

/// The closed range a bound admits; `None` for an empty one.
fn range(c: &ArgCond) -> Option<Option<(u64, u64)>> {
    let r = match c.op {
        CmpOp::Lt => c.value.checked_sub(1).map(|hi| (0, hi)),
        CmpOp::Le => Some((0, c.value)),
        CmpOp::Gt => c.value.checked_add(1).map(|lo| (lo, u64::MAX)),
        CmpOp::Ge => Some((c.value, u64::MAX)),
        CmpOp::Eq => Some((c.value, c.value)),
        _ => return None,
    };
    Some(r)
}

/// One condition for a closed range, where one exists.
fn of_range(index: u32, lo: u64, hi: u64) -> Joined {
    let cond = |op, value| Joined::One(ArgCond { index, value, value_two: 0, op });
    if lo > hi {
        Joined::Never
    } else if lo == hi {
        cond(CmpOp::Eq, lo)
    } else if lo == 0 {
        cond(CmpOp::Le, hi)
    } else if hi == u64::MAX {
        cond(CmpOp::Ge, lo)
    } else {
        Joined::Unwritable
    }
}

/// A condition that holds for every value.
fn always(c: &ArgCond) -> bool {
    match c.op {
        CmpOp::Ge => c.value == 0,
        CmpOp::Le => c.value == u64::MAX,
        CmpOp::MaskedEq => c.value == 0 && c.value_two == 0,
        _ => false,
    }
}

/// Both conditions on one argument, as one.
fn and(a: ArgCond, b: ArgCond) -> Joined {
    debug_assert_eq!(a.index, b.index);
    let index = a.index;
    if a == b || always(&b) {
        return Joined::One(a);
    }
    if always(&a) {
        return Joined::One(b);
    }
    for (x, y) in [(a, b), (b, a)] {
        if x.op == CmpOp::Eq {
            return if holds(&y, x.value) { Joined::One(x) } else { Joined::Never };
        }
        // A mask over every bit is an equality.
        if x.op == CmpOp::MaskedEq && x.value == u64::MAX {
            let eq = ArgCond { index, value: x.value_two, value_two: 0, op: CmpOp::Eq };
            return if holds(&y, eq.value) { Joined::One(eq) } else { Joined::Never };
        }
    }
    match (a.op, b.op) {
        (CmpOp::MaskedEq, CmpOp::MaskedEq) => {
            // (v & m1 == d1) and (v & m2 == d2): one mask over both, if the
            // two agree where they overlap (and each can hold at all).
            let (m1, d1, m2, d2) = (a.value, a.value_two, b.value, b.value_two);
            if d1 & !m1 != 0 || d2 & !m2 != 0 || (d1 ^ d2) & m1 & m2 != 0 {
                Joined::Never
            } else {
                Joined::One(ArgCond { index, value: m1 | m2, value_two: d1 | d2, op: CmpOp::MaskedEq })
            }
        }
        (CmpOp::Ne, CmpOp::Ne) => Joined::Unwritable,
        (CmpOp::Ne, _) | (_, CmpOp::Ne) => {
            let (ne, other) = if a.op == CmpOp::Ne { (a, b) } else { (b, a) };
            if !holds(&other, ne.value) {
                // The excluded value is outside the other anyway.
                return Joined::One(other);
            }
            match range(&other) {
                Some(Some((lo, hi))) if ne.value == lo => {
                    lo.checked_add(1).map_or(Joined::Never, |lo| of_range(index, lo, hi))
                }
                Some(Some((lo, hi))) if ne.value == hi => {
                    hi.checked_sub(1).map_or(Joined::Never, |hi| of_range(index, lo, hi))
                }
                _ => Joined::Unwritable,
            }
        }
        _ => match (range(&a), range(&b)) {
            (Some(None), _) | (_, Some(None)) => Joined::Never,
            (Some(Some((l1, h1))), Some(Some((l2, h2)))) => of_range(index, l1.max(l2), h1.min(h2)),
            // A mask and a bound.
            _ => Joined::Unwritable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: u32, op: CmpOp, value: u64, value_two: u64) -> ArgCond {
        ArgCond { index, value, value_two, op }
    }

    fn allow(args: Vec<ArgCond>) -> ConditionalRule {
        ConditionalRule { action: Action::Allow, args }
    }

    /// Every value of a small window around the interesting ones: the folded
    /// rules admit exactly what the conditions ANDed admit, or (when left
    /// out as unwritable) nothing.
    fn same_as_and(conds: &[ArgCond]) {
        let folded = one_per_argument(&[allow(conds.to_vec())]);
        for r in &folded.rules {
            assert!(!tests_an_argument_twice(&r.args), "{r:?}");
        }
        let mut probes: Vec<u64> = vec![0, 1, 2, u64::MAX, u64::MAX - 1];
        for c in conds {
            for v in [c.value, c.value_two] {
                probes.extend([v, v.wrapping_add(1), v.wrapping_sub(1), v | 0x10, v & !0x10]);
            }
        }
        for v in probes {
            let anded = conds.iter().all(|c| holds(c, v));
            let written = folded.rules.iter().any(|r| r.args.iter().all(|c| holds(c, v)));
            if folded.unwritable == 0 {
                assert_eq!(anded, written, "{conds:?} at {v:#x}: {folded:?}");
            } else {
                assert!(!written || anded, "{conds:?} at {v:#x} is looser: {folded:?}");
            }
        }
    }

    #[test]
    fn masks_fold_into_one() {
        // docker-labs' clone mask without CLONE_NEWCGROUP, and moby's with it.
        let labs = c(0, CmpOp::MaskedEq, 0x7C02_0000, 0);
        let moby = c(0, CmpOp::MaskedEq, 0x7E02_0000, 0);
        let w = intersect(&[allow(vec![labs])], &[allow(vec![moby])]);
        assert_eq!(w, Written { rules: vec![allow(vec![moby])], unwritable: 0 });
        same_as_and(&[labs, moby]);
        same_as_and(&[c(0, CmpOp::MaskedEq, 0xf0, 0x10), c(0, CmpOp::MaskedEq, 0x0f, 0x01)]);
        // Disagreeing on a shared bit: nothing holds.
        let never = one_per_argument(&[allow(vec![c(0, CmpOp::MaskedEq, 0x3, 1), c(0, CmpOp::MaskedEq, 0x1, 0)])]);
        assert_eq!(never, Written::default());
    }

    #[test]
    fn bounds_and_values_fold_into_one() {
        same_as_and(&[c(0, CmpOp::Ge, 5, 0), c(0, CmpOp::Ge, 9, 0)]);
        same_as_and(&[c(0, CmpOp::Lt, 40, 0), c(0, CmpOp::Le, 12, 0)]);
        same_as_and(&[c(0, CmpOp::Lt, 38, 0), c(0, CmpOp::Eq, 1, 0)]);
        same_as_and(&[c(0, CmpOp::Gt, 40, 0), c(0, CmpOp::Eq, 1, 0)]);
        same_as_and(&[c(0, CmpOp::Ne, 7, 0), c(0, CmpOp::Lt, 8, 0)]);
        same_as_and(&[c(0, CmpOp::Ne, 7, 0), c(0, CmpOp::Eq, 7, 0)]);
        same_as_and(&[c(0, CmpOp::Ge, 3, 0), c(0, CmpOp::Le, 3, 0)]);
        same_as_and(&[c(0, CmpOp::MaskedEq, u64::MAX, 8), c(0, CmpOp::Lt, 9, 0)]);
        // Other arguments are left alone, in index order.
        let w = one_per_argument(&[allow(vec![c(2, CmpOp::Eq, 1, 0), c(0, CmpOp::Eq, 3, 0)])]);
        assert_eq!(w.rules[0].args, [c(0, CmpOp::Eq, 3, 0), c(2, CmpOp::Eq, 1, 0)]);
    }

    #[test]
    fn two_open_conditions_on_one_argument_are_never_an_or() {
        // 5 < arg < 9 is a range no single condition writes; runc would allow
        // anything above 5 or below 9, i.e. everything. Left out instead.
        let range = [c(0, CmpOp::Gt, 5, 0), c(0, CmpOp::Lt, 9, 0)];
        let w = one_per_argument(&[allow(range.to_vec())]);
        assert_eq!(w, Written { rules: Vec::new(), unwritable: 1 });
        same_as_and(&range);
        same_as_and(&[c(0, CmpOp::Ne, 5, 0), c(0, CmpOp::Ne, 9, 0)]);
        same_as_and(&[c(0, CmpOp::MaskedEq, 0xff, 1), c(0, CmpOp::Gt, 9, 0)]);
        assert!(tests_an_argument_twice(&range));
        assert!(!tests_an_argument_twice(&[c(0, CmpOp::Gt, 5, 0), c(1, CmpOp::Lt, 9, 0)]));
    }

    #[test]
    fn only_rules_that_let_calls_through_pair_up() {
        let a = [allow(vec![c(0, CmpOp::Eq, 1, 0)]), allow(vec![c(0, CmpOp::Eq, 2, 0)])];
        let b = [
            ConditionalRule { action: Action::Log, args: vec![c(0, CmpOp::Le, 1, 0)] },
            ConditionalRule { action: Action::Errno(1), args: vec![c(0, CmpOp::Eq, 2, 0)] },
        ];
        let w = intersect(&a, &b);
        assert_eq!(w.rules, [ConditionalRule { action: Action::Log, args: vec![c(0, CmpOp::Eq, 1, 0)] }]);
    }
}
