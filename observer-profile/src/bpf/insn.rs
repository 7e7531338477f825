//! Classic-BPF instructions as seccomp sees them: the `struct sock_filter`
//! layout, the opcode fields, and the offsets of `struct seccomp_data`.

use thiserror::Error;

/// One `struct sock_filter` (include/uapi/linux/filter.h): 8 bytes,
/// native-endian, `code` 16 bits, `jt`/`jf` 8 bits, `k` 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Size of one encoded instruction.
pub const INSN_SIZE: usize = 8;
/// `BPF_MAXINSNS`: the kernel refuses longer programs.
pub const MAX_INSNS: usize = 4096;

// Instruction classes, sizes, modes, ALU/JMP operations and sources
// (include/uapi/linux/bpf_common.h).
pub const BPF_LD: u16 = 0x00;
pub const BPF_LDX: u16 = 0x01;
pub const BPF_ST: u16 = 0x02;
pub const BPF_STX: u16 = 0x03;
pub const BPF_ALU: u16 = 0x04;
pub const BPF_JMP: u16 = 0x05;
pub const BPF_RET: u16 = 0x06;
pub const BPF_MISC: u16 = 0x07;

pub const BPF_W: u16 = 0x00;
pub const BPF_H: u16 = 0x08;
pub const BPF_B: u16 = 0x10;

pub const BPF_IMM: u16 = 0x00;
pub const BPF_ABS: u16 = 0x20;
pub const BPF_IND: u16 = 0x40;
pub const BPF_MEM: u16 = 0x60;
pub const BPF_LEN: u16 = 0x80;
pub const BPF_MSH: u16 = 0xa0;

pub const BPF_ADD: u16 = 0x00;
pub const BPF_SUB: u16 = 0x10;
pub const BPF_MUL: u16 = 0x20;
pub const BPF_DIV: u16 = 0x30;
pub const BPF_OR: u16 = 0x40;
pub const BPF_AND: u16 = 0x50;
pub const BPF_LSH: u16 = 0x60;
pub const BPF_RSH: u16 = 0x70;
pub const BPF_NEG: u16 = 0x80;
pub const BPF_MOD: u16 = 0x90;
pub const BPF_XOR: u16 = 0xa0;

pub const BPF_JA: u16 = 0x00;
pub const BPF_JEQ: u16 = 0x10;
pub const BPF_JGT: u16 = 0x20;
pub const BPF_JGE: u16 = 0x30;
pub const BPF_JSET: u16 = 0x40;

pub const BPF_K: u16 = 0x00;
pub const BPF_X: u16 = 0x08;
/// Return source "A" (`BPF_RVAL`).
pub const BPF_A: u16 = 0x10;

pub const BPF_TAX: u16 = 0x00;
pub const BPF_TXA: u16 = 0x80;

/// Number of scratch memory words (`BPF_MEMWORDS`).
pub const MEM_WORDS: usize = 16;

/// `sizeof(struct seccomp_data)`: what `BPF_LEN` loads.
pub const SECCOMP_DATA_LEN: u32 = 64;
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
pub const OFF_IP: u32 = 8;
pub const OFF_ARGS: u32 = 16;

impl Insn {
    /// A non-jump instruction (`BPF_STMT`).
    pub const fn stmt(code: u16, k: u32) -> Self {
        Self { code, jt: 0, jf: 0, k }
    }

    /// A jump (`BPF_JUMP`); offsets are relative to the next instruction.
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Self {
        Self { code, jt, jf, k }
    }

    pub const fn class(self) -> u16 {
        self.code & 0x07
    }

    pub const fn size(self) -> u16 {
        self.code & 0x18
    }

    pub const fn mode(self) -> u16 {
        self.code & 0xe0
    }

    /// ALU or jump operation (`BPF_OP`).
    pub const fn op(self) -> u16 {
        self.code & 0xf0
    }

    /// Operand source (`BPF_SRC`): `BPF_K` or `BPF_X`.
    pub const fn src(self) -> u16 {
        self.code & 0x08
    }

    /// Return value source (`BPF_RVAL`): `BPF_K`, `BPF_X` or `BPF_A`.
    pub const fn rval(self) -> u16 {
        self.code & 0x18
    }

    /// `BPF_MISCOP`.
    pub const fn misc_op(self) -> u16 {
        self.code & 0xf8
    }

    pub fn to_bytes(self) -> [u8; INSN_SIZE] {
        let mut b = [0; INSN_SIZE];
        b[0..2].copy_from_slice(&self.code.to_ne_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..8].copy_from_slice(&self.k.to_ne_bytes());
        b
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("a classic-BPF program is a multiple of 8 bytes; got {0} bytes")]
    Length(usize),
    #[error("empty classic-BPF program")]
    Empty,
    #[error("classic-BPF program of {0} instructions is longer than the kernel's limit of 4096")]
    TooLong(usize),
}

/// Decodes a program as the kernel hands it out (`PTRACE_SECCOMP_GET_FILTER`
/// writes `struct sock_filter` in native byte order).
pub fn decode(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if !bytes.len().is_multiple_of(INSN_SIZE) {
        return Err(DecodeError::Length(bytes.len()));
    }
    let insns: Vec<Insn> = bytes
        .chunks_exact(INSN_SIZE)
        .map(|c| Insn {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if insns.is_empty() {
        return Err(DecodeError::Empty);
    }
    if insns.len() > MAX_INSNS {
        return Err(DecodeError::TooLong(insns.len()));
    }
    Ok(insns)
}

/// Encodes a program in the kernel's layout, the inverse of [`decode`].
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}
