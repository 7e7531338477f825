//! A disassembler for seccomp filters that prints one readable line per
//! instruction, in the style of seccomp-tools (`A = arch`, `return ALLOW`).

use std::fmt::Write;

use super::{
    insn::*,
    ret::{audit_arch_name, ret_text},
};

/// The readable form of the field at offset `k` of `struct seccomp_data`.
pub fn field_text(k: u32) -> String {
    match k {
        OFF_NR => "sys_number".into(),
        OFF_ARCH => "arch".into(),
        8 => "instruction_pointer & 0xffffffff".into(),
        12 => "instruction_pointer >> 32".into(),
        16..=63 if k.is_multiple_of(4) => {
            let i = (k - OFF_ARGS) / 8;
            if (k - OFF_ARGS).is_multiple_of(8) {
                format!("args[{i}] & 0xffffffff")
            } else {
                format!("args[{i}] >> 32")
            }
        }
        _ => format!("data[{k}]"),
    }
}

fn alu_sym(op: u16) -> Option<&'static str> {
    Some(match op {
        BPF_ADD => "+",
        BPF_SUB => "-",
        BPF_MUL => "*",
        BPF_DIV => "/",
        BPF_OR => "|",
        BPF_AND => "&",
        BPF_LSH => "<<",
        BPF_RSH => ">>",
        BPF_MOD => "%",
        BPF_XOR => "^",
        _ => return None,
    })
}

/// One instruction at index `pc` as text. `arch_loaded` says whether A holds
/// `seccomp_data.arch`, so comparisons show `ARCH_X86_64` instead of a number.
fn insn_text(pc: usize, i: Insn, a_is_arch: bool) -> String {
    let operand = |i: Insn| -> String {
        if i.src() == BPF_X {
            "X".into()
        } else if a_is_arch {
            audit_arch_name(i.k).map_or_else(|| format!("{:#x}", i.k), str::to_owned)
        } else {
            format!("{:#x}", i.k)
        }
    };
    match i.class() {
        BPF_LD | BPF_LDX => {
            let reg = if i.class() == BPF_LD { "A" } else { "X" };
            match (i.mode(), i.size()) {
                (BPF_ABS, BPF_W) if i.class() == BPF_LD => format!("A = {}", field_text(i.k)),
                (BPF_IMM, _) => format!("{reg} = {:#x}", i.k),
                (BPF_MEM, _) => format!("{reg} = mem[{}]", i.k),
                (BPF_LEN, _) => format!("{reg} = {SECCOMP_DATA_LEN} /* sizeof(seccomp_data) */"),
                _ => format!("invalid load {:#06x} k={:#x}", i.code, i.k),
            }
        }
        BPF_ST => format!("mem[{}] = A", i.k),
        BPF_STX => format!("mem[{}] = X", i.k),
        BPF_ALU => match (i.op(), alu_sym(i.op())) {
            (BPF_NEG, _) => "A = -A".into(),
            (_, Some(sym)) => {
                let v = if i.src() == BPF_X { "X".into() } else { format!("{:#x}", i.k) };
                format!("A {sym}= {v}")
            }
            _ => format!("invalid alu {:#06x}", i.code),
        },
        BPF_JMP => {
            let target = |off: u8| pc + 1 + off as usize;
            if i.op() == BPF_JA {
                return format!("goto {:04}", pc + 1 + i.k as usize);
            }
            let v = operand(i);
            let (pos, neg) = match i.op() {
                BPF_JEQ => (format!("A == {v}"), format!("A != {v}")),
                BPF_JGT => (format!("A > {v}"), format!("A <= {v}")),
                BPF_JGE => (format!("A >= {v}"), format!("A < {v}")),
                BPF_JSET => (format!("A & {v}"), format!("!(A & {v})")),
                _ => return format!("invalid jump {:#06x}", i.code),
            };
            match (i.jt, i.jf) {
                (0, jf) => format!("if ({neg}) goto {:04}", target(jf)),
                (jt, 0) => format!("if ({pos}) goto {:04}", target(jt)),
                (jt, jf) => format!("if ({pos}) goto {:04} else goto {:04}", target(jt), target(jf)),
            }
        }
        BPF_RET => match i.rval() {
            BPF_K => format!("return {}", ret_text(i.k)),
            BPF_A => "return A".into(),
            _ => "return X".into(),
        },
        _ => match i.misc_op() {
            BPF_TAX => "X = A".into(),
            BPF_TXA => "A = X".into(),
            _ => format!("invalid misc {:#06x}", i.code),
        },
    }
}

/// The whole program, one `NNNN: text` line per instruction.
pub fn disassemble(insns: &[Insn]) -> String {
    let mut out = String::new();
    let mut a_is_arch = false;
    for (pc, &i) in insns.iter().enumerate() {
        let _ = writeln!(out, "{pc:04}: {}", insn_text(pc, i, a_is_arch));
        // Straight-line tracking is enough for the arch checks compilers emit:
        // A keeps `arch` until the next write to A.
        if i.class() == BPF_LD {
            a_is_arch = i.mode() == BPF_ABS && i.k == OFF_ARCH;
        } else if i.class() == BPF_ALU || (i.class() == BPF_MISC && i.misc_op() == BPF_TXA) {
            a_is_arch = false;
        }
    }
    out
}

/// Like [`disassemble`] with the raw fields in front, as seccomp-tools prints
/// them: ` 0000: 0x20 0x00 0x00 0x00000004  A = arch`.
pub fn disassemble_raw(insns: &[Insn]) -> String {
    let text = disassemble(insns);
    let mut out = String::from(" line  CODE  JT   JF      K\n=================================\n");
    for (line, i) in text.lines().zip(insns) {
        let (pc, rest) = line.split_once(": ").unwrap_or((line, ""));
        let _ = writeln!(out, " {pc}: {:#04x} {:#04x} {:#04x} {:#010x}  {rest}", i.code, i.jt, i.jf, i.k);
    }
    out
}
