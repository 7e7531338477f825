//! Runs a stack of seccomp filters over one (arch, syscall number) the way the
//! kernel would. Argument and instruction-pointer words are unknown, so a path
//! that tests them forks and the result lists each outcome with the
//! conditions that lead to it.

use std::{collections::HashMap, fmt};

use serde::{Serialize, Serializer, ser::SerializeMap};
use thiserror::Error;

use super::{
    insn::*,
    ret::{
        AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, SECCOMP_RET_ALLOW, action_of, action_text, precedence,
    },
};
use crate::types::{Action, Arch};

/// Which 32-bit half of a 64-bit `seccomp_data` word a load reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Half {
    Lo,
    Hi,
}

/// A word of `seccomp_data` whose value a filter cannot know in advance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Arg { index: u8, half: Half },
    InstructionPointer(Half),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    Xor,
}

/// A 32-bit value in a register or scratch word: known, or computed from
/// unknown fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Expr {
    Const(u32),
    Field(Field),
    Alu(AluOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
}

/// How a condition compares; `Set`/`Clear` are `lhs & rhs != 0` / `== 0`
/// (what `jset` tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Set,
    Clear,
}

/// One comparison that held on the way to an outcome.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Condition {
    pub lhs: Expr,
    pub cmp: Cmp,
    pub rhs: Expr,
}

/// What a filter stack does with one syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Fixed(Action),
    /// Depends on arguments (or the instruction pointer): each outcome holds
    /// when all its conditions do.
    Conditional {
        outcomes: Vec<(Vec<Condition>, Action)>,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EvalError {
    #[error("filter {filter}, instruction {pc:04}: {what}")]
    Invalid { filter: usize, pc: usize, what: String },
    #[error("the filters fork into more than {0} paths for one syscall; giving up")]
    TooManyPaths(usize),
    /// A filter a process installed is outside input: one built to fork on
    /// every argument would take the evaluation minutes and gigabytes.
    #[error(
        "the filters are too complex to evaluate: they took more than {0} steps (instructions run plus conditions copied at each fork); giving up"
    )]
    TooComplex(usize),
    /// `tax; add x` repeated doubles a value's expression each time: 40
    /// rounds make a tree of 2^40 operations from one argument word.
    #[error(
        "the filters are too complex to evaluate: a value computed from the arguments grows past {0} operations; giving up"
    )]
    ValueTooLarge(usize),
}

const MAX_PATHS: usize = 1 << 16;

/// Largest expression a register or scratch word may hold, in nodes. What
/// libseccomp and hand-written filters compute from an argument is a load
/// and a mask or two; a bound keeps every copy, hash and rendering of a
/// value small whatever a dumped filter does.
pub const MAX_VALUE_NODES: usize = 64;

/// Work an evaluation may do: instructions run, plus the conditions a path
/// carries each time it forks (the copy is what grows quadratically). Docker's
/// default filter takes about 0.3 million steps for every syscall of both
/// ABIs; this bounds a hostile filter to well under a second.
pub const DEFAULT_BUDGET: usize = 8_000_000;

/// Steps charged for each condition an outcome keeps (measured: rendering
/// them dominates the cost of a filter that forks on every argument value).
const CONDITION_WEIGHT: usize = 32;

/// What is left of an evaluation's work budget; one can be shared by many calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub limit: usize,
    pub used: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Self {
        Budget { limit, used: 0 }
    }

    fn spend(&mut self, steps: usize) -> Result<(), EvalError> {
        self.used = self.used.saturating_add(steps);
        if self.used > self.limit {
            return Err(EvalError::TooComplex(self.limit));
        }
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(DEFAULT_BUDGET)
    }
}

impl AluOp {
    fn from_code(op: u16) -> Option<Self> {
        Some(match op {
            BPF_ADD => Self::Add,
            BPF_SUB => Self::Sub,
            BPF_MUL => Self::Mul,
            BPF_DIV => Self::Div,
            BPF_OR => Self::Or,
            BPF_AND => Self::And,
            BPF_LSH => Self::Lsh,
            BPF_RSH => Self::Rsh,
            BPF_MOD => Self::Mod,
            BPF_XOR => Self::Xor,
            _ => return None,
        })
    }

    fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Or => "|",
            Self::And => "&",
            Self::Lsh => "<<",
            Self::Rsh => ">>",
            Self::Mod => "%",
            Self::Xor => "^",
        }
    }

    /// 32-bit arithmetic as the kernel runs classic BPF (converted to eBPF
    /// ALU32). Division by zero is handled by the caller.
    fn apply(self, a: u32, b: u32) -> u32 {
        match self {
            Self::Add => a.wrapping_add(b),
            Self::Sub => a.wrapping_sub(b),
            Self::Mul => a.wrapping_mul(b),
            Self::Div => a.checked_div(b).unwrap_or(0),
            Self::Or => a | b,
            Self::And => a & b,
            Self::Lsh => a.wrapping_shl(b),
            Self::Rsh => a.wrapping_shr(b),
            Self::Mod => a.checked_rem(b).unwrap_or(0),
            Self::Xor => a ^ b,
        }
    }
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Set => "&",
            Self::Clear => "!&",
        }
    }

    /// The comparison with its operands swapped (`c < x` is `x > c`).
    fn swapped(self) -> Self {
        match self {
            Self::Gt => Self::Lt,
            Self::Ge => Self::Le,
            Self::Lt => Self::Gt,
            Self::Le => Self::Ge,
            other => other,
        }
    }

    fn holds(self, a: u32, b: u32) -> bool {
        match self {
            Self::Eq => a == b,
            Self::Ne => a != b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Set => a & b != 0,
            Self::Clear => a & b == 0,
        }
    }
}

impl Expr {
    pub fn as_const(&self) -> Option<u32> {
        match self {
            Self::Const(v) => Some(*v),
            _ => None,
        }
    }

    /// The only field this value is computed from, if exactly one.
    pub fn field(&self) -> Option<Field> {
        fn walk(e: &Expr, out: &mut Vec<Field>) {
            match e {
                Expr::Const(_) => {}
                Expr::Field(f) => out.push(*f),
                Expr::Alu(_, l, r) => {
                    walk(l, out);
                    walk(r, out);
                }
                Expr::Neg(e) => walk(e, out),
            }
        }
        let mut fields = Vec::new();
        walk(self, &mut fields);
        fields.dedup();
        match fields.as_slice() {
            [f] => Some(*f),
            _ => None,
        }
    }

    /// Nodes in the tree (what a copy, a hash or a rendering walks).
    pub fn nodes(&self) -> usize {
        match self {
            Self::Const(_) | Self::Field(_) => 1,
            Self::Alu(_, l, r) => 1 + l.nodes() + r.nodes(),
            Self::Neg(e) => 1 + e.nodes(),
        }
    }

    fn alu(op: AluOp, lhs: Expr, rhs: Expr) -> Expr {
        match (&lhs, &rhs) {
            (Expr::Const(a), Expr::Const(b)) => Expr::Const(op.apply(*a, *b)),
            (_, Expr::Const(0xffff_ffff)) if op == AluOp::And => lhs,
            (_, Expr::Const(0))
                if matches!(op, AluOp::Or | AluOp::Add | AluOp::Sub | AluOp::Xor | AluOp::Lsh | AluOp::Rsh) =>
            {
                lhs
            }
            _ => Expr::Alu(op, Box::new(lhs), Box::new(rhs)),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let half = |h: &Half| if *h == Half::Lo { "lo" } else { "hi" };
        match self {
            Field::Arg { index, half: h } => write!(f, "args[{index}].{}", half(h)),
            Field::InstructionPointer(h) => write!(f, "instruction_pointer.{}", half(h)),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn inner(e: &Expr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match e {
                Expr::Alu(..) | Expr::Neg(_) => write!(f, "({e})"),
                _ => write!(f, "{e}"),
            }
        }
        match self {
            Expr::Const(v) => write!(f, "{v:#x}"),
            Expr::Field(field) => write!(f, "{field}"),
            Expr::Alu(op, l, r) => {
                inner(l, f)?;
                write!(f, " {} ", op.symbol())?;
                inner(r, f)
            }
            Expr::Neg(e) => {
                write!(f, "-")?;
                inner(e, f)
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cmp {
            Cmp::Set => write!(f, "{} & {} != 0", self.lhs, self.rhs),
            Cmp::Clear => write!(f, "{} & {} == 0", self.lhs, self.rhs),
            c => write!(f, "{} {} {}", self.lhs, c.symbol(), self.rhs),
        }
    }
}

/// As JSON: `{"arg": 1, "half": "lo", "op": "==", "value": 5, "text": "..."}`;
/// `arg`/`half` (or `field: "instruction_pointer"`) when the left side reads
/// one field, `value` when the right side is a constant.
impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.lhs.field() {
            Some(Field::Arg { index, half }) => {
                m.serialize_entry("arg", &index)?;
                m.serialize_entry("half", &half)?;
            }
            Some(Field::InstructionPointer(half)) => {
                m.serialize_entry("field", "instruction_pointer")?;
                m.serialize_entry("half", &half)?;
            }
            None => {}
        }
        m.serialize_entry("op", self.cmp.symbol())?;
        if let Some(v) = self.rhs.as_const() {
            m.serialize_entry("value", &v)?;
        }
        m.serialize_entry("text", &self.to_string())?;
        m.end()
    }
}

impl Verdict {
    /// The action when it does not depend on arguments.
    pub fn fixed(&self) -> Option<Action> {
        match self {
            Self::Fixed(a) => Some(*a),
            Self::Conditional { .. } => None,
        }
    }

    /// `allow`, `errno(1)`... or `conditional`.
    pub fn text(&self) -> String {
        match self {
            Self::Fixed(a) => action_text(*a),
            Self::Conditional { .. } => "conditional".into(),
        }
    }
}

/// What is known about one unknown value on a path: a range and values it
/// cannot be. Enough to drop the contradictory paths that 64-bit compares
/// (high word, then low word) produce.
#[derive(Clone, Debug)]
struct Known {
    min: u32,
    max: u32,
    not: Vec<u32>,
}

impl Default for Known {
    fn default() -> Self {
        Self { min: 0, max: u32::MAX, not: Vec::new() }
    }
}

impl Known {
    /// Whether `x cmp c` is decided by what is known.
    fn decide(&self, cmp: Cmp, c: u32) -> Option<bool> {
        if self.min == self.max {
            return Some(cmp.holds(self.min, c));
        }
        let eq = if c < self.min || c > self.max || self.not.contains(&c) { Some(false) } else { None };
        match cmp {
            Cmp::Eq => eq,
            Cmp::Ne => eq.map(|_| true),
            Cmp::Gt if self.min > c => Some(true),
            Cmp::Gt if self.max <= c => Some(false),
            Cmp::Ge if self.min >= c => Some(true),
            Cmp::Ge if self.max < c => Some(false),
            Cmp::Lt if self.max < c => Some(true),
            Cmp::Lt if self.min >= c => Some(false),
            Cmp::Le if self.max <= c => Some(true),
            Cmp::Le if self.min > c => Some(false),
            _ => None,
        }
    }

    /// Narrows by `x cmp c`; false when the path became impossible.
    fn narrow(&mut self, cmp: Cmp, c: u32) -> bool {
        match cmp {
            Cmp::Eq => {
                self.min = self.min.max(c);
                self.max = self.max.min(c);
            }
            Cmp::Ne => self.not.push(c),
            Cmp::Gt => self.min = self.min.max(c.saturating_add(1)),
            Cmp::Ge => self.min = self.min.max(c),
            Cmp::Lt => self.max = self.max.min(c.saturating_sub(1)),
            Cmp::Le => self.max = self.max.min(c),
            Cmp::Set | Cmp::Clear => {}
        }
        if matches!(cmp, Cmp::Gt if c == u32::MAX) || matches!(cmp, Cmp::Lt if c == 0) {
            return false;
        }
        self.min <= self.max && !(self.min == self.max && self.not.contains(&self.min))
    }
}

#[derive(Clone, Debug)]
struct Path {
    /// Filter being run, counted down: the newest filter runs first.
    filter: usize,
    pc: usize,
    a: Expr,
    x: Expr,
    mem: [Expr; MEM_WORDS],
    conds: Vec<Condition>,
    known: HashMap<Expr, Known>,
    best: u32,
}

impl Path {
    /// Decides `lhs cmp rhs` or says it depends on unknown values.
    fn decide(&self, lhs: &Expr, cmp: Cmp, rhs: &Expr) -> Option<bool> {
        match (lhs.as_const(), rhs.as_const()) {
            (Some(a), Some(b)) => Some(cmp.holds(a, b)),
            (Some(a), None) => self.known.get(rhs).and_then(|k| k.decide(cmp.swapped(), a)),
            (None, Some(b)) => self.known.get(lhs).and_then(|k| k.decide(cmp, b)),
            (None, None) if lhs == rhs => match cmp {
                Cmp::Eq | Cmp::Ge | Cmp::Le => Some(true),
                Cmp::Ne | Cmp::Gt | Cmp::Lt => Some(false),
                Cmp::Set | Cmp::Clear => None,
            },
            (None, None) => None,
        }
    }

    /// Adds `lhs cmp rhs` to the path (unknown side on the left); false when
    /// it contradicts what the path already assumed.
    fn assume(&mut self, lhs: Expr, cmp: Cmp, rhs: Expr) -> bool {
        let (lhs, cmp, rhs) = if lhs.as_const().is_some() { (rhs, cmp.swapped(), lhs) } else { (lhs, cmp, rhs) };
        let ok = match rhs.as_const() {
            Some(c) => self.known.entry(lhs.clone()).or_default().narrow(cmp, c),
            None => true,
        };
        self.conds.push(Condition { lhs, cmp, rhs });
        ok
    }
}

fn negate(cmp: Cmp) -> Cmp {
    match cmp {
        Cmp::Eq => Cmp::Ne,
        Cmp::Ne => Cmp::Eq,
        Cmp::Gt => Cmp::Le,
        Cmp::Le => Cmp::Gt,
        Cmp::Ge => Cmp::Lt,
        Cmp::Lt => Cmp::Ge,
        Cmp::Set => Cmp::Clear,
        Cmp::Clear => Cmp::Set,
    }
}

/// `seccomp_data.arch` and the syscall number as the kernel fills them for
/// `arch` (an x32 call is `AUDIT_ARCH_X86_64` with `__X32_SYSCALL_BIT` set).
pub fn seccomp_data_for(arch: Arch, nr: u32) -> (u32, u32) {
    match arch {
        Arch::X86_64 => (AUDIT_ARCH_X86_64, nr),
        Arch::I386 => (AUDIT_ARCH_I386, nr),
        Arch::X32 => (AUDIT_ARCH_X86_64, nr | 0x4000_0000),
        Arch::Aarch64 => (AUDIT_ARCH_AARCH64, nr),
    }
}

/// Runs `stack` (filters in the order they were installed, as
/// `PTRACE_SECCOMP_GET_FILTER` numbers them: index 0 is the oldest) for a
/// syscall of `arch` numbered `nr`.
pub fn evaluate<P: AsRef<[Insn]>>(stack: &[P], arch: Arch, nr: u32) -> Result<Verdict, EvalError> {
    evaluate_within(stack, arch, nr, &mut Budget::default())
}

/// Like [`evaluate`], spending from `budget` (shared, e.g., by every syscall
/// of a table).
pub fn evaluate_within<P: AsRef<[Insn]>>(
    stack: &[P],
    arch: Arch,
    nr: u32,
    budget: &mut Budget,
) -> Result<Verdict, EvalError> {
    let (audit_arch, nr) = seccomp_data_for(arch, nr);
    Ok(verdict_of(explore(stack, audit_arch, nr, None, budget)?))
}

/// Like [`evaluate`] with the raw `seccomp_data.arch` and `nr` values.
pub fn evaluate_raw<P: AsRef<[Insn]>>(stack: &[P], audit_arch: u32, nr: u32) -> Result<Verdict, EvalError> {
    Ok(verdict_of(explore(stack, audit_arch, nr, None, &mut Budget::default())?))
}

fn verdict_of(outcomes: Vec<(Vec<Condition>, u32)>) -> Verdict {
    let first = outcomes.first().map_or(Action::Allow, |(_, ret)| action_of(*ret));
    if outcomes.iter().all(|(_, ret)| action_of(*ret) == first) {
        return Verdict::Fixed(first);
    }
    Verdict::Conditional { outcomes: outcomes.into_iter().map(|(c, ret)| (c, action_of(ret))).collect() }
}

fn explore<P: AsRef<[Insn]>>(
    stack: &[P],
    audit_arch: u32,
    nr: u32,
    known: Option<&SeccompData>,
    budget: &mut Budget,
) -> Result<Vec<(Vec<Condition>, u32)>, EvalError> {
    let Some(newest) = stack.len().checked_sub(1) else {
        return Ok(vec![(Vec::new(), SECCOMP_RET_ALLOW)]);
    };
    let fresh = |filter, best, conds, known| Path {
        filter,
        pc: 0,
        a: Expr::Const(0),
        x: Expr::Const(0),
        mem: std::array::from_fn(|_| Expr::Const(0)),
        conds,
        known,
        best,
    };
    let mut work = vec![fresh(newest, SECCOMP_RET_ALLOW, Vec::new(), HashMap::new())];
    let mut done = Vec::new();
    'paths: while let Some(mut p) = work.pop() {
        let insns = stack[p.filter].as_ref();
        let filter = p.filter;
        let invalid = |pc: usize, what: &str| EvalError::Invalid { filter, pc, what: what.into() };
        // Classic BPF only jumps forward, so every step raises pc and a path
        // ends within `insns.len()` steps; the bound guards that anyway.
        let ret = 'run: {
            for _ in 0..=insns.len() {
                budget.spend(1)?;
                let pc = p.pc;
                let Some(&i) = insns.get(pc) else {
                    return Err(invalid(pc, "runs past the end of the program"));
                };
                p.pc += 1;
                match i.class() {
                    BPF_LD | BPF_LDX => {
                        let v = match (i.mode(), i.size()) {
                            (BPF_ABS, BPF_W) if i.class() == BPF_LD => load(i.k, audit_arch, nr, known)
                                .ok_or_else(|| invalid(pc, "load outside seccomp_data"))?,
                            (BPF_IMM, _) => Expr::Const(i.k),
                            (BPF_LEN, BPF_W) => Expr::Const(SECCOMP_DATA_LEN),
                            (BPF_MEM, _) => p
                                .mem
                                .get(i.k as usize)
                                .cloned()
                                .ok_or_else(|| invalid(pc, "scratch word out of range"))?,
                            _ => return Err(invalid(pc, "load mode seccomp does not allow")),
                        };
                        bounded(&v, budget)?;
                        if i.class() == BPF_LD {
                            p.a = v;
                        } else {
                            p.x = v;
                        }
                    }
                    BPF_ST | BPF_STX => {
                        let v = if i.class() == BPF_ST { p.a.clone() } else { p.x.clone() };
                        bounded(&v, budget)?;
                        *p.mem.get_mut(i.k as usize).ok_or_else(|| invalid(pc, "scratch word out of range"))? = v;
                    }
                    BPF_ALU if i.op() == BPF_NEG => {
                        p.a = match &p.a {
                            Expr::Const(v) => Expr::Const(v.wrapping_neg()),
                            e => Expr::Neg(Box::new(e.clone())),
                        };
                        bounded(&p.a, budget)?;
                    }
                    BPF_ALU => {
                        let op = AluOp::from_code(i.op()).ok_or_else(|| invalid(pc, "unknown ALU operation"))?;
                        let rhs = if i.src() == BPF_X { p.x.clone() } else { Expr::Const(i.k) };
                        // Dividing by a zero X ends the program with 0 (the
                        // check bpf_convert_filter inserts); a zero K is
                        // refused at load time.
                        if matches!(op, AluOp::Div | AluOp::Mod) && rhs == Expr::Const(0) {
                            if i.src() == BPF_K {
                                return Err(invalid(pc, "division by constant zero"));
                            }
                            break 'run 0;
                        }
                        p.a = Expr::alu(op, p.a.clone(), rhs);
                        bounded(&p.a, budget)?;
                    }
                    BPF_JMP if i.op() == BPF_JA => p.pc += i.k as usize,
                    BPF_JMP => {
                        let cmp = match i.op() {
                            BPF_JEQ => Cmp::Eq,
                            BPF_JGT => Cmp::Gt,
                            BPF_JGE => Cmp::Ge,
                            BPF_JSET => Cmp::Set,
                            _ => return Err(invalid(pc, "unknown jump")),
                        };
                        let rhs = if i.src() == BPF_X { p.x.clone() } else { Expr::Const(i.k) };
                        let (taken, not_taken) = (pc + 1 + i.jt as usize, pc + 1 + i.jf as usize);
                        // Deciding scans the values the path already ruled out.
                        budget.spend(p.known.get(&p.a).map_or(0, |k| k.not.len()))?;
                        match p.decide(&p.a, cmp, &rhs) {
                            Some(true) => p.pc = taken,
                            Some(false) => p.pc = not_taken,
                            None => {
                                budget.spend(
                                    1 + p.conds.len() + p.known.values().map(|k| 1 + k.not.len()).sum::<usize>(),
                                )?;
                                let mut other = p.clone();
                                if other.assume(other.a.clone(), negate(cmp), rhs.clone()) {
                                    other.pc = not_taken;
                                    work.push(other);
                                }
                                if !p.assume(p.a.clone(), cmp, rhs) {
                                    break;
                                }
                                p.pc = taken;
                            }
                        }
                    }
                    BPF_RET => match i.rval() {
                        BPF_K => break 'run i.k,
                        BPF_A => match p.a.as_const() {
                            Some(v) => break 'run v,
                            None => {
                                return Err(invalid(pc, "returns a value computed from arguments"));
                            }
                        },
                        _ => return Err(invalid(pc, "return source seccomp does not allow")),
                    },
                    _ => match i.misc_op() {
                        BPF_TAX => {
                            p.x = p.a.clone();
                            bounded(&p.x, budget)?;
                        }
                        BPF_TXA => {
                            p.a = p.x.clone();
                            bounded(&p.a, budget)?;
                        }
                        _ => return Err(invalid(pc, "unknown misc operation")),
                    },
                }
            }
            // An impossible branch (or an exhausted bound) ends the path.
            continue 'paths;
        };
        // kernel/seccomp.c seccomp_run_filters: a later (older) filter replaces
        // the result only with a strictly lower action.
        if precedence(ret) < precedence(p.best) {
            p.best = ret;
        }
        if p.filter == 0 {
            // Each outcome keeps its conditions: holding and showing them
            // (as text and JSON) costs several steps each.
            budget.spend(CONDITION_WEIGHT * p.conds.len())?;
            done.push((p.conds, p.best));
            if done.len() > MAX_PATHS {
                return Err(EvalError::TooManyPaths(MAX_PATHS));
            }
        } else {
            work.push(fresh(p.filter - 1, p.best, p.conds, p.known));
        }
    }
    Ok(done)
}

/// Charges a value just copied or built to the budget, by its size, and
/// refuses one past [`MAX_VALUE_NODES`]. Every value is checked when it is
/// made, so its operands were within the bound and walking it is cheap.
fn bounded(value: &Expr, budget: &mut Budget) -> Result<(), EvalError> {
    let nodes = value.nodes();
    if nodes > MAX_VALUE_NODES {
        return Err(EvalError::ValueTooLarge(MAX_VALUE_NODES));
    }
    budget.spend(nodes)
}

/// A complete `struct seccomp_data`: one concrete call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// A call of `arch` numbered `nr` with `args` (instruction pointer 0).
    pub fn call(arch: Arch, nr: u32, args: [u64; 6]) -> Self {
        let (arch, nr) = seccomp_data_for(arch, nr);
        Self { nr, arch, instruction_pointer: 0, args }
    }

    fn word(&self, k: u32) -> u32 {
        let (value, off) = if k < OFF_ARGS {
            (self.instruction_pointer, k - OFF_IP)
        } else {
            (self.args[((k - OFF_ARGS) / 8) as usize], (k - OFF_ARGS) % 8)
        };
        if off == 0 { value as u32 } else { (value >> 32) as u32 }
    }
}

/// What `stack` does with one concrete call: no unknowns, so one action.
pub fn evaluate_call<P: AsRef<[Insn]>>(stack: &[P], data: &SeccompData) -> Result<Action, EvalError> {
    let outcomes = explore(stack, data.arch, data.nr, Some(data), &mut Budget::default())?;
    Ok(outcomes.first().map_or(Action::Allow, |(_, ret)| action_of(*ret)))
}

/// The value a `ld [k]` reads from `seccomp_data`.
fn load(k: u32, audit_arch: u32, nr: u32, known: Option<&SeccompData>) -> Option<Expr> {
    if !k.is_multiple_of(4) || k >= SECCOMP_DATA_LEN {
        return None;
    }
    if let (Some(data), OFF_IP..) = (known, k) {
        return Some(Expr::Const(data.word(k)));
    }
    let half = |off: u32| {
        if off.is_multiple_of(8) { Half::Lo } else { Half::Hi }
    };
    Some(match k {
        OFF_NR => Expr::Const(nr),
        OFF_ARCH => Expr::Const(audit_arch),
        8 | 12 => Expr::Field(Field::InstructionPointer(half(k - OFF_IP))),
        _ => Expr::Field(Field::Arg { index: ((k - OFF_ARGS) / 8) as u8, half: half(k - OFF_ARGS) }),
    })
}
