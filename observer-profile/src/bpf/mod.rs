//! Classic BPF as seccomp uses it: decoding and disassembling filters, running
//! a stack of them symbolically, and the per-syscall table of what they do.

pub mod disasm;
pub mod eval;
pub mod insn;
pub mod ret;
pub mod table;

#[cfg(test)]
mod tests;

pub use disasm::{disassemble, disassemble_raw};
pub use eval::{
    Budget, Cmp, Condition, EvalError, Expr, Field, Half, MAX_VALUE_NODES, SeccompData, Verdict, evaluate,
    evaluate_call, evaluate_raw, evaluate_within,
};
pub use insn::{DecodeError, Insn, decode, encode};
pub use ret::{action_of, action_text, precedence, ret_of};
pub use table::Table;
