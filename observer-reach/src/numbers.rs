//! The value a register holds before an instruction of a function, found by
//! walking the function's instructions backwards along every path (fall
//! through and direct jumps), within a work bound. Used for the syscall
//! number in eax/rax at a syscall site, and for a wrapper's number argument
//! at a call site.

use std::collections::{BTreeSet, HashMap, HashSet};

use iced_x86::{FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register};

/// Backward steps one query may take before it gives up (undecided).
const BUDGET: u32 = 512;
/// Distinct constants one query may collect before it gives up.
const MAX_VALUES: usize = 64;

/// What a register holds at a point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// One of these constants, whichever path was taken.
    Consts(BTreeSet<u64>),
    /// Whatever the caller put in this register: the function is a wrapper.
    Arg(Register),
    /// Not decidable here.
    Unknown,
}

impl Value {
    fn none() -> Self {
        Self::Consts(BTreeSet::new())
    }

    fn join(self, other: Self) -> Self {
        match (self, other) {
            (Self::Unknown, _) | (_, Self::Unknown) => Self::Unknown,
            (Self::Consts(mut a), Self::Consts(b)) => {
                a.extend(b);
                if a.len() > MAX_VALUES { Self::Unknown } else { Self::Consts(a) }
            }
            (Self::Consts(a), other) | (other, Self::Consts(a)) if a.is_empty() => other,
            (Self::Arg(a), Self::Arg(b)) if a == b => Self::Arg(a),
            _ => Self::Unknown,
        }
    }
}

/// One function's decoded instructions, ready for backward queries.
pub struct Function<'i> {
    insns: &'i [Instruction],
    bits: u32,
    index_of: HashMap<u64, usize>,
    /// Direct jumps inside the function, by target address.
    jumps_to: HashMap<u64, Vec<usize>>,
    info: InstructionInfoFactory,
}

impl<'i> Function<'i> {
    pub fn new(insns: &'i [Instruction], bits: u32) -> Self {
        let index_of: HashMap<u64, usize> = insns.iter().enumerate().map(|(i, ins)| (ins.ip(), i)).collect();
        let mut jumps_to: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, ins) in insns.iter().enumerate() {
            if matches!(ins.flow_control(), FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch)
                && is_near_branch(ins)
            {
                let target = ins.near_branch_target();
                if index_of.contains_key(&target) {
                    jumps_to.entry(target).or_default().push(i);
                }
            }
        }
        Self { insns, bits, index_of, jumps_to, info: InstructionInfoFactory::new() }
    }

    pub fn index_of(&self, ip: u64) -> Option<usize> {
        self.index_of.get(&ip).copied()
    }

    /// The value of `reg` (any width; its full register is meant) just
    /// before instruction `at`.
    pub fn value_before(&mut self, at: usize, reg: Register) -> Value {
        let mut budget = BUDGET;
        let mut seen = HashSet::new();
        match self.before(at, reg.full_register(), &mut budget, &mut seen) {
            Value::Consts(c) if c.is_empty() => Value::Unknown,
            v => v,
        }
    }

    fn before(&mut self, at: usize, reg: Register, budget: &mut u32, seen: &mut HashSet<(usize, Register)>) -> Value {
        if !seen.insert((at, reg)) {
            // A loop back to a point already being resolved adds nothing new.
            return Value::none();
        }
        if *budget == 0 {
            return Value::Unknown;
        }
        *budget -= 1;
        let mut acc = Value::none();
        let mut has_pred = false;
        if at == 0 {
            has_pred = true;
            acc = acc.join(Value::Arg(reg));
        }
        if at > 0 && falls_through(&self.insns[at - 1]) {
            has_pred = true;
            acc = acc.join(self.after(at - 1, reg, budget, seen));
        }
        let ip = self.insns[at].ip();
        let jumps: Vec<usize> = self.jumps_to.get(&ip).cloned().unwrap_or_default();
        for j in jumps {
            has_pred = true;
            acc = acc.join(self.after(j, reg, budget, seen));
            if acc == Value::Unknown {
                return acc;
            }
        }
        if has_pred {
            acc
        } else if matches!(self.insns[at].mnemonic(), Mnemonic::Nop | Mnemonic::Int3) {
            // Padding after a jump or return: never executed, adds nothing.
            Value::none()
        } else {
            // Reached only by an indirect jump (a jump table): unknown.
            Value::Unknown
        }
    }

    fn after(&mut self, at: usize, reg: Register, budget: &mut u32, seen: &mut HashSet<(usize, Register)>) -> Value {
        let ins = self.insns[at];
        if matches!(ins.mnemonic(), Mnemonic::Syscall | Mnemonic::Sysenter | Mnemonic::Int) {
            // The kernel returns in rax and clobbers rcx and r11 only.
            if matches!(reg, Register::RAX | Register::RCX | Register::R11) {
                return Value::Unknown;
            }
            return self.before(at, reg, budget, seen);
        }
        if matches!(ins.flow_control(), FlowControl::Call | FlowControl::IndirectCall) && self.caller_saved(reg) {
            return Value::Unknown;
        }
        if !self.writes(&ins, reg) {
            return self.before(at, reg, budget, seen);
        }
        let dest_full = ins.op_count() >= 1 && ins.op0_kind() == OpKind::Register;
        let dest = ins.op0_register();
        let width = dest.size();
        match ins.mnemonic() {
            Mnemonic::Mov if dest_full && dest.full_register() == reg && (width == 4 || width == 8) => {
                match ins.op1_kind() {
                    OpKind::Immediate8
                    | OpKind::Immediate16
                    | OpKind::Immediate32
                    | OpKind::Immediate64
                    | OpKind::Immediate8to32
                    | OpKind::Immediate8to64
                    | OpKind::Immediate32to64 => {
                        let v = ins.immediate(1);
                        Value::Consts([if width == 4 { v & 0xffff_ffff } else { v }].into())
                    }
                    OpKind::Register if ins.op1_register().size() == width => {
                        let src = ins.op1_register().full_register();
                        match self.before(at, src, budget, seen) {
                            Value::Consts(c) if width == 4 => {
                                Value::Consts(c.into_iter().map(|v| v & 0xffff_ffff).collect())
                            }
                            v => v,
                        }
                    }
                    _ => Value::Unknown,
                }
            }
            Mnemonic::Xor | Mnemonic::Sub
                if dest_full
                    && dest.full_register() == reg
                    && ins.op1_kind() == OpKind::Register
                    && ins.op1_register() == dest
                    && (width == 4 || width == 8) =>
            {
                Value::Consts([0].into())
            }
            _ => Value::Unknown,
        }
    }

    fn writes(&mut self, ins: &Instruction, reg: Register) -> bool {
        let info = self.info.info(ins);
        info.used_registers().iter().any(|u| {
            u.register().full_register() == reg
                && matches!(
                    u.access(),
                    OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
                )
        })
    }

    fn caller_saved(&self, reg: Register) -> bool {
        if self.bits == 64 {
            matches!(
                reg,
                Register::RAX
                    | Register::RCX
                    | Register::RDX
                    | Register::RSI
                    | Register::RDI
                    | Register::R8
                    | Register::R9
                    | Register::R10
                    | Register::R11
            )
        } else {
            matches!(reg, Register::RAX | Register::RCX | Register::RDX)
        }
    }
}

/// Whether execution can go on to the next instruction.
pub fn falls_through(ins: &Instruction) -> bool {
    match ins.flow_control() {
        FlowControl::UnconditionalBranch | FlowControl::IndirectBranch | FlowControl::Return => false,
        FlowControl::Exception => false,
        FlowControl::Next => !matches!(ins.mnemonic(), Mnemonic::Hlt),
        _ => true,
    }
}

pub fn is_near_branch(ins: &Instruction) -> bool {
    matches!(ins.op0_kind(), OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64)
}

#[cfg(test)]
mod tests {
    use iced_x86::{Decoder, DecoderOptions};

    use super::*;

    fn decode(bytes: &[u8]) -> Vec<Instruction> {
        Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE).into_iter().collect()
    }

    fn at_last(bytes: &[u8], reg: Register) -> Value {
        let insns = decode(bytes);
        let last = insns.len() - 1;
        Function::new(&insns, 64).value_before(last, reg)
    }

    #[test]
    fn constant_before_syscall() {
        // mov eax, 0x6e ; syscall
        assert_eq!(at_last(&[0xb8, 0x6e, 0, 0, 0, 0x0f, 0x05], Register::RAX), Value::Consts([0x6e].into()));
        // xor eax, eax ; syscall
        assert_eq!(at_last(&[0x31, 0xc0, 0x0f, 0x05], Register::EAX), Value::Consts([0].into()));
    }

    #[test]
    fn two_paths_give_two_numbers() {
        // test edi,edi; je +7; mov eax,39; jmp +5; mov eax,110; syscall
        let code = [
            0x85, 0xff, // test edi, edi
            0x74, 0x07, // je L
            0xb8, 39, 0, 0, 0, // mov eax, 39
            0xeb, 0x05, // jmp S
            0xb8, 110, 0, 0, 0, // L: mov eax, 110
            0x0f, 0x05, // S: syscall
        ];
        assert_eq!(at_last(&code, Register::RAX), Value::Consts([39, 110].into()));
    }

    #[test]
    fn wrapper_and_unknown() {
        // mov rax, rdi ; syscall : the number is the caller's first argument.
        assert_eq!(at_last(&[0x48, 0x89, 0xf8, 0x0f, 0x05], Register::RAX), Value::Arg(Register::RDI));
        // mov eax, [rsp+8] ; syscall : from memory, undecided.
        assert_eq!(at_last(&[0x8b, 0x44, 0x24, 0x08, 0x0f, 0x05], Register::RAX), Value::Unknown);
        // mov eax, 1 ; call rel32 ; syscall : the call clobbers eax.
        assert_eq!(at_last(&[0xb8, 1, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0x0f, 0x05], Register::RAX), Value::Unknown);
    }
}
