//! Classic-BPF seccomp filters as `PTRACE_SECCOMP_GET_FILTER` hands them out:
//! a process in a container can install any filter it likes, so a dumped
//! filter is outside input. Decoded, disassembled, evaluated for every syscall
//! of both ABIs (`Table::build`, as `observer filter --pid` does) and for one
//! concrete call (`evaluate_call`); both within their work budget.
//!
//! Input layout (HEADER bytes, then the program):
//! - byte 0: the concrete call's ABI (bits 0-1: x86_64, i386, x32, x86_64);
//! - bytes 1-2: u16 LE; when non-zero and inside the program, the program is
//!   split there into two stacked filters (the first one installed first);
//! - bytes 3-6: the syscall number, u32 LE;
//! - bytes 7-54: six arguments, u64 LE;
//! - the rest: `struct sock_filter` instructions in native byte order.
//!
//! The symbolic evaluation and the concrete one must agree: a syscall the
//! symbolic one fixes to one action gets that action for any arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer_profile::{
    bpf::{self, SeccompData, Table, Verdict},
    types::Arch,
};

const HEADER: usize = 55;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (head, program) = data.split_at(HEADER);
    let arch = match head[0] & 3 {
        1 => Arch::I386,
        2 => Arch::X32,
        _ => Arch::X86_64,
    };
    let split = u16::from_le_bytes([head[1], head[2]]) as usize;
    let nr = u32::from_le_bytes(head[3..7].try_into().unwrap());
    let args: [u64; 6] = std::array::from_fn(|i| u64::from_le_bytes(head[7 + 8 * i..15 + 8 * i].try_into().unwrap()));

    let insns = match bpf::decode(program) {
        Ok(insns) => insns,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(bpf::encode(&insns), program, "decode and encode disagree");
    let _ = bpf::disassemble(&insns);
    let stack: Vec<&[bpf::Insn]> =
        if split > 0 && split < insns.len() { vec![&insns[..split], &insns[split..]] } else { vec![&insns[..]] };

    if let Ok(table) = Table::build(&stack) {
        let _ = table.actions(Arch::X86_64);
        let _ = table.conditions(Arch::I386);
    }

    let call = SeccompData::call(arch, nr, args);
    let concrete = bpf::evaluate_call(&stack, &call);
    if let Err(e) = &concrete {
        let _ = e.to_string();
    }
    let symbolic = bpf::evaluate(&stack, arch, nr);
    if let (Ok(concrete), Ok(symbolic)) = (&concrete, &symbolic) {
        match symbolic {
            Verdict::Fixed(action) => assert_eq!(
                action, concrete,
                "{arch:?} {nr} with {args:x?}: the symbolic evaluation says {action:?} for any arguments, the concrete one {concrete:?}"
            ),
            Verdict::Conditional { outcomes } => assert!(
                outcomes.iter().any(|(_, a)| a == concrete),
                "{arch:?} {nr} with {args:x?}: the concrete action {concrete:?} is none of the symbolic outcomes {outcomes:?}"
            ),
        }
    }
});
