//! Hand-assembled filters: each test builds a program with `Insn::stmt` /
//! `Insn::jump` and checks what the evaluator (and the disassembler) make of it.

use super::{eval::AluOp, insn::*, ret::*, *};
use crate::types::{Action, Arch};

const CHMOD: u32 = 90;
const GETPID: u32 = 39;
const I386_CHMOD: u32 = 15;

fn ld(k: u32) -> Insn {
    Insn::stmt(BPF_LD | BPF_W | BPF_ABS, k)
}
fn ret(k: u32) -> Insn {
    Insn::stmt(BPF_RET | BPF_K, k)
}
fn jeq(k: u32, jt: u8, jf: u8) -> Insn {
    Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, k, jt, jf)
}
fn arg_lo(i: u32) -> u32 {
    OFF_ARGS + 8 * i
}
fn arg_hi(i: u32) -> u32 {
    OFF_ARGS + 8 * i + 4
}
fn fixed(stack: &[Vec<Insn>], arch: Arch, nr: u32) -> Action {
    match evaluate(stack, arch, nr).unwrap() {
        Verdict::Fixed(a) => a,
        v => panic!("expected a fixed action for {arch:?} {nr}, got {v:?}"),
    }
}

/// x86_64 only: chmod → EPERM, everything else allowed; other ABIs killed.
fn no_chmod() -> Vec<Insn> {
    vec![
        ld(OFF_ARCH),
        jeq(AUDIT_ARCH_X86_64, 1, 0),
        ret(SECCOMP_RET_KILL_PROCESS),
        ld(OFF_NR),
        jeq(CHMOD, 0, 1),
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ALLOW),
    ]
}

#[test]
fn arch_check_and_errno() {
    let stack = vec![no_chmod()];
    assert_eq!(fixed(&stack, Arch::X86_64, CHMOD), Action::Errno(1));
    assert_eq!(fixed(&stack, Arch::X86_64, GETPID), Action::Allow);
    assert_eq!(fixed(&stack, Arch::I386, I386_CHMOD), Action::KillProcess);
    assert_eq!(fixed(&stack, Arch::I386, 20), Action::KillProcess);
}

#[test]
fn no_filter_allows() {
    let stack: Vec<Vec<Insn>> = Vec::new();
    assert_eq!(fixed(&stack, Arch::X86_64, CHMOD), Action::Allow);
}

#[test]
fn jumps_with_k_and_x() {
    let p = vec![
        ld(OFF_NR),
        Insn::jump(BPF_JMP | BPF_JGT | BPF_K, 100, 5, 0),  // > 100 → 7
        Insn::jump(BPF_JMP | BPF_JGE | BPF_K, 50, 5, 0),   // >= 50 → 8
        Insn::jump(BPF_JMP | BPF_JSET | BPF_K, 0x8, 5, 0), // bit 3 → 9
        Insn::stmt(BPF_LDX | BPF_IMM, 3),
        Insn::jump(BPF_JMP | BPF_JEQ | BPF_X, 0, 4, 0), // == X (3) → 10
        Insn::stmt(BPF_JMP | BPF_JA, 4),                // → 11
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ERRNO | 2),
        ret(SECCOMP_RET_ERRNO | 3),
        ret(SECCOMP_RET_ERRNO | 4),
        ret(SECCOMP_RET_ALLOW),
    ];
    let stack = vec![p];
    assert_eq!(fixed(&stack, Arch::X86_64, 101), Action::Errno(1));
    assert_eq!(fixed(&stack, Arch::X86_64, 100), Action::Errno(2));
    assert_eq!(fixed(&stack, Arch::X86_64, 50), Action::Errno(2));
    assert_eq!(fixed(&stack, Arch::X86_64, 9), Action::Errno(3));
    assert_eq!(fixed(&stack, Arch::X86_64, 3), Action::Errno(4));
    assert_eq!(fixed(&stack, Arch::X86_64, 2), Action::Allow);

    // jgt / jge / jset against X.
    let p = vec![
        Insn::stmt(BPF_LDX | BPF_IMM, 10),
        ld(OFF_NR),
        Insn::jump(BPF_JMP | BPF_JGT | BPF_X, 0, 3, 0),
        Insn::jump(BPF_JMP | BPF_JGE | BPF_X, 0, 3, 0),
        Insn::jump(BPF_JMP | BPF_JSET | BPF_X, 0, 3, 0),
        ret(SECCOMP_RET_ALLOW),
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ERRNO | 2),
        ret(SECCOMP_RET_ERRNO | 3),
    ];
    let stack = vec![p];
    assert_eq!(fixed(&stack, Arch::X86_64, 11), Action::Errno(1));
    assert_eq!(fixed(&stack, Arch::X86_64, 10), Action::Errno(2));
    assert_eq!(fixed(&stack, Arch::X86_64, 2), Action::Errno(3));
    assert_eq!(fixed(&stack, Arch::X86_64, 5), Action::Allow);
}

#[test]
fn alu_ops() {
    // A = ((((nr + 5) * 3 - 1) / 2) % 7 | 0x100) & 0x1ff ^ 0x3 << 2 >> 1, then
    // return ERRNO(A) through `ret A` with the ERRNO action or'd in.
    let p = vec![
        ld(OFF_NR),
        Insn::stmt(BPF_ALU | BPF_ADD | BPF_K, 5),
        Insn::stmt(BPF_ALU | BPF_MUL | BPF_K, 3),
        Insn::stmt(BPF_ALU | BPF_SUB | BPF_K, 1),
        Insn::stmt(BPF_ALU | BPF_DIV | BPF_K, 2),
        Insn::stmt(BPF_ALU | BPF_MOD | BPF_K, 7),
        Insn::stmt(BPF_ALU | BPF_OR | BPF_K, 0x100),
        Insn::stmt(BPF_ALU | BPF_AND | BPF_K, 0x1ff),
        Insn::stmt(BPF_ALU | BPF_XOR | BPF_K, 0x3),
        Insn::stmt(BPF_ALU | BPF_LSH | BPF_K, 2),
        Insn::stmt(BPF_ALU | BPF_RSH | BPF_K, 1),
        Insn::stmt(BPF_ST, 4),
        Insn::stmt(BPF_LDX | BPF_MEM, 4),
        Insn::stmt(BPF_LD | BPF_IMM, SECCOMP_RET_ERRNO),
        Insn::stmt(BPF_ALU | BPF_OR | BPF_X, 0),
        ret_a(),
    ];
    let expect = |nr: u32| ((((((((nr + 5) * 3 - 1) / 2) % 7) | 0x100) & 0x1ff) ^ 0x3) << 2) >> 1;
    let stack = vec![p];
    for nr in [0, 1, 2, 39, 90, 300] {
        assert_eq!(fixed(&stack, Arch::X86_64, nr), Action::Errno(expect(nr)), "nr {nr}");
    }

    // Negation, TAX/TXA, and a division by a zero X, which ends the program
    // with 0 (KILL_THREAD).
    let p = vec![
        ld(OFF_NR),
        Insn::stmt(BPF_ALU | BPF_NEG, 0),
        Insn::stmt(BPF_MISC | BPF_TAX, 0),
        Insn::stmt(BPF_LD | BPF_IMM, 0),
        Insn::stmt(BPF_ALU | BPF_SUB | BPF_X, 0), // A = 0 - (-nr) = nr
        Insn::stmt(BPF_MISC | BPF_TAX, 0),
        Insn::stmt(BPF_LD | BPF_IMM, 100),
        Insn::stmt(BPF_ALU | BPF_DIV | BPF_X, 0), // 100 / nr
        Insn::stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        Insn::stmt(BPF_MISC | BPF_TXA, 0),
        jeq(CHMOD, 0, 1),
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ALLOW),
    ];
    let stack = vec![p];
    assert_eq!(fixed(&stack, Arch::X86_64, 0), Action::KillThread);
    assert_eq!(fixed(&stack, Arch::X86_64, CHMOD), Action::Errno(1));
    assert_eq!(fixed(&stack, Arch::X86_64, GETPID), Action::Allow);
}

fn ret_a() -> Insn {
    Insn::stmt(BPF_RET | BPF_A, 0)
}

#[test]
fn argument_condition() {
    // chmod(path, mode): allowed only when mode's low word is 0o644.
    let p = vec![
        ld(OFF_NR),
        jeq(CHMOD, 0, 3),
        ld(arg_lo(1)),
        jeq(0o644, 1, 0),
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ALLOW),
    ];
    let stack = vec![p];
    assert_eq!(fixed(&stack, Arch::X86_64, GETPID), Action::Allow);
    let Verdict::Conditional { outcomes } = evaluate(&stack, Arch::X86_64, CHMOD).unwrap() else {
        panic!("chmod should depend on its mode")
    };
    assert_eq!(outcomes.len(), 2);
    let allow = outcomes.iter().find(|(_, a)| *a == Action::Allow).unwrap();
    let deny = outcomes.iter().find(|(_, a)| *a == Action::Errno(1)).unwrap();
    assert_eq!(
        allow.0,
        vec![Condition {
            lhs: Expr::Field(Field::Arg { index: 1, half: Half::Lo }),
            cmp: Cmp::Eq,
            rhs: Expr::Const(0o644)
        }]
    );
    assert_eq!(deny.0[0].cmp, Cmp::Ne);
    assert_eq!(allow.0[0].to_string(), "args[1].lo == 0x1a4");
    let json = serde_json::to_value(&allow.0[0]).unwrap();
    assert_eq!(json["arg"], 1);
    assert_eq!(json["half"], "lo");
    assert_eq!(json["op"], "==");
    assert_eq!(json["value"], 0o644);
}

#[test]
fn sixty_four_bit_compare_drops_impossible_paths() {
    // libseccomp's shape for `args[0] == 5` on 64 bits, then the same test
    // again: the second test must not fork on a path that already decided it.
    let p = vec![
        ld(arg_hi(0)),
        jeq(0, 0, 6),
        ld(arg_lo(0)),
        jeq(5, 0, 4),
        ld(arg_hi(0)),
        jeq(0, 0, 2),
        ld(arg_lo(0)),
        jeq(5, 1, 0),
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ALLOW),
    ];
    let Verdict::Conditional { outcomes } = evaluate(&[p], Arch::X86_64, 1).unwrap() else { panic!() };
    assert_eq!(outcomes.len(), 3, "{outcomes:#?}");
    assert_eq!(outcomes.iter().filter(|(_, a)| *a == Action::Allow).count(), 1);

    // A range: args[2] > 10 then args[2] <= 5 can never both hold.
    let p = vec![
        ld(arg_lo(2)),
        Insn::jump(BPF_JMP | BPF_JGT | BPF_K, 10, 0, 2),
        Insn::jump(BPF_JMP | BPF_JGT | BPF_K, 5, 0, 1),
        ret(SECCOMP_RET_ALLOW),
        ret(SECCOMP_RET_TRAP),
    ];
    let Verdict::Conditional { outcomes } = evaluate(&[p], Arch::X86_64, 1).unwrap() else { panic!() };
    assert_eq!(outcomes.len(), 2, "{outcomes:#?}");
}

#[test]
fn masked_argument_and_instruction_pointer() {
    let p = vec![
        ld(arg_lo(2)),
        Insn::stmt(BPF_ALU | BPF_AND | BPF_K, 0xff),
        jeq(3, 0, 1),
        ret(SECCOMP_RET_LOG),
        ld(OFF_IP + 4),
        Insn::jump(BPF_JMP | BPF_JSET | BPF_K, 0x8000_0000, 0, 1),
        ret(SECCOMP_RET_TRAP),
        ret(SECCOMP_RET_ALLOW),
    ];
    let Verdict::Conditional { outcomes } = evaluate(&[p], Arch::X86_64, 1).unwrap() else { panic!() };
    let texts: Vec<String> = outcomes
        .iter()
        .map(|(c, a)| {
            format!("{} => {}", c.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" && "), action_text(*a))
        })
        .collect();
    assert!(texts.contains(&"args[2].lo & 0xff == 0x3 => log".to_string()), "{texts:?}");
    assert!(
        texts.contains(&"args[2].lo & 0xff != 0x3 && instruction_pointer.hi & 0x80000000 != 0 => trap".to_string()),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"args[2].lo & 0xff != 0x3 && instruction_pointer.hi & 0x80000000 == 0 => allow".to_string()),
        "{texts:?}"
    );
    let c = &outcomes[0].0[0];
    assert_eq!(c.lhs.field(), Some(Field::Arg { index: 2, half: Half::Lo }));
    assert!(matches!(c.lhs, Expr::Alu(AluOp::And, _, _)));
}

#[test]
fn same_action_on_every_path_is_fixed() {
    let p = vec![ld(arg_lo(0)), jeq(1, 0, 1), ret(SECCOMP_RET_ALLOW), ret(SECCOMP_RET_ALLOW)];
    assert_eq!(evaluate(&[p], Arch::X86_64, 1).unwrap(), Verdict::Fixed(Action::Allow));
}

#[test]
fn return_values() {
    let one = |k: u32| fixed(&[vec![ret(k)]], Arch::X86_64, 0);
    assert_eq!(one(SECCOMP_RET_ERRNO | 38), Action::Errno(38));
    assert_eq!(one(SECCOMP_RET_ERRNO | 5000), Action::Errno(4095));
    assert_eq!(one(SECCOMP_RET_TRACE | 7), Action::Trace(7));
    assert_eq!(one(SECCOMP_RET_KILL_PROCESS), Action::KillProcess);
    assert_eq!(one(SECCOMP_RET_KILL_THREAD), Action::KillThread);
    assert_eq!(one(SECCOMP_RET_TRAP), Action::Trap);
    assert_eq!(one(SECCOMP_RET_USER_NOTIF), Action::UserNotif);
    assert_eq!(one(SECCOMP_RET_LOG), Action::Log);
    assert_eq!(one(SECCOMP_RET_ALLOW), Action::Allow);
    assert_eq!(one(0x0001_0000), Action::KillProcess, "unknown action");
    assert_eq!(one(0x7fff_1234), Action::Allow, "ALLOW ignores its data");
    for a in [Action::Errno(1), Action::Trace(3), Action::Log, Action::KillThread, Action::UserNotif] {
        assert_eq!(action_of(ret_of(a)), a);
    }
}

#[test]
fn stacked_filters_most_restrictive_wins() {
    let only = |nr: u32, hit: u32| vec![ld(OFF_NR), jeq(nr, 0, 1), ret(hit), ret(SECCOMP_RET_ALLOW)];
    // Installed oldest first: errno(1) for chmod, then errno(2) for chmod and
    // log for getpid, then trap for getpid and kill_process for 1.
    let stack = vec![
        vec![
            ld(OFF_NR),
            jeq(CHMOD, 0, 1),
            ret(SECCOMP_RET_ERRNO | 1),
            jeq(1, 0, 1),
            ret(SECCOMP_RET_KILL_PROCESS),
            ret(SECCOMP_RET_ALLOW),
        ],
        vec![
            ld(OFF_NR),
            jeq(CHMOD, 0, 1),
            ret(SECCOMP_RET_ERRNO | 2),
            jeq(GETPID, 0, 1),
            ret(SECCOMP_RET_LOG),
            ret(SECCOMP_RET_ALLOW),
        ],
        only(GETPID, SECCOMP_RET_TRAP),
    ];
    // Equal actions: the newest filter, evaluated first, keeps its data.
    assert_eq!(fixed(&stack, Arch::X86_64, CHMOD), Action::Errno(2));
    // TRAP beats LOG whichever is newer.
    assert_eq!(fixed(&stack, Arch::X86_64, GETPID), Action::Trap);
    assert_eq!(fixed(&stack, Arch::X86_64, 1), Action::KillProcess);
    assert_eq!(fixed(&stack, Arch::X86_64, 2), Action::Allow);

    // The full order: each action beats every action after it.
    let order = [
        SECCOMP_RET_KILL_PROCESS,
        SECCOMP_RET_KILL_THREAD,
        SECCOMP_RET_TRAP,
        SECCOMP_RET_ERRNO | 1,
        SECCOMP_RET_USER_NOTIF,
        SECCOMP_RET_TRACE | 1,
        SECCOMP_RET_LOG,
        SECCOMP_RET_ALLOW,
    ];
    for (i, &hi) in order.iter().enumerate() {
        for &lo in &order[i..] {
            for stack in [vec![vec![ret(hi)], vec![ret(lo)]], vec![vec![ret(lo)], vec![ret(hi)]]] {
                assert_eq!(fixed(&stack, Arch::X86_64, 0), action_of(hi), "{hi:#x} vs {lo:#x}");
            }
        }
    }
    // An unknown action ranks by its value (between KILL_THREAD and TRAP) and
    // then kills the process.
    let stack = vec![vec![ret(SECCOMP_RET_TRAP)], vec![ret(0x0001_0000)]];
    assert_eq!(fixed(&stack, Arch::X86_64, 0), Action::KillProcess);
    let stack = vec![vec![ret(SECCOMP_RET_KILL_THREAD)], vec![ret(0x0001_0000)]];
    assert_eq!(fixed(&stack, Arch::X86_64, 0), Action::KillThread);
}

#[test]
fn stacked_conditions_combine() {
    let by_arg = vec![ld(arg_lo(0)), jeq(7, 0, 1), ret(SECCOMP_RET_ERRNO | 7), ret(SECCOMP_RET_ALLOW)];
    let stack = vec![by_arg.clone(), by_arg];
    let Verdict::Conditional { outcomes } = evaluate(&stack, Arch::X86_64, 1).unwrap() else { panic!() };
    // The second filter's identical test is decided by the first's: 2 paths.
    assert_eq!(outcomes.len(), 2, "{outcomes:#?}");
}

#[test]
fn out_of_range_numbers() {
    // runc/libseccomp style: x32 numbers (bit 30) are refused on x86_64.
    let p = vec![
        ld(OFF_ARCH),
        jeq(AUDIT_ARCH_X86_64, 0, 4),
        ld(OFF_NR),
        Insn::jump(BPF_JMP | BPF_JGE | BPF_K, 0x4000_0000, 0, 1),
        ret(SECCOMP_RET_ERRNO | 38),
        ret(SECCOMP_RET_ALLOW),
        ret(SECCOMP_RET_KILL_THREAD),
    ];
    let stack = vec![p];
    assert_eq!(fixed(&stack, Arch::X86_64, 1000), Action::Allow);
    assert_eq!(fixed(&stack, Arch::X86_64, u32::MAX), Action::Errno(38));
    assert_eq!(fixed(&stack, Arch::X32, 0), Action::Errno(38));
    assert_eq!(fixed(&stack, Arch::I386, 0), Action::KillThread);
    assert_eq!(evaluate_raw(&stack, 0xdead, 0).unwrap(), Verdict::Fixed(Action::KillThread));
}

#[test]
fn invalid_programs_are_errors() {
    let off_end = vec![ld(OFF_NR)];
    assert!(matches!(evaluate(&[off_end], Arch::X86_64, 0), Err(EvalError::Invalid { .. })));
    let bad_load = vec![ld(64), ret(SECCOMP_RET_ALLOW)];
    assert!(matches!(evaluate(&[bad_load], Arch::X86_64, 0), Err(EvalError::Invalid { .. })));
    let bad_jump = vec![jeq(0, 200, 200), ret(SECCOMP_RET_ALLOW)];
    assert!(matches!(evaluate(&[bad_jump], Arch::X86_64, 0), Err(EvalError::Invalid { .. })));
    let div0 = vec![Insn::stmt(BPF_ALU | BPF_DIV | BPF_K, 0), ret(SECCOMP_RET_ALLOW)];
    assert!(evaluate(&[div0], Arch::X86_64, 0).is_err());
}

#[test]
fn decode_round_trip() {
    let p = no_chmod();
    let bytes = encode(&p);
    assert_eq!(bytes.len(), 8 * p.len());
    assert_eq!(&bytes[..8], &[0x20, 0, 0, 0, 4, 0, 0, 0]);
    assert_eq!(decode(&bytes).unwrap(), p);
    assert_eq!(decode(&bytes[..7]), Err(DecodeError::Length(7)));
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
}

#[test]
fn disassembly_reads_like_seccomp_tools() {
    let mut p = no_chmod();
    p.extend([
        ld(arg_lo(1)),
        ld(arg_hi(1)),
        Insn::jump(BPF_JMP | BPF_JGT | BPF_K, 5, 1, 2),
        Insn::stmt(BPF_ALU | BPF_AND | BPF_K, 0xff),
        Insn::stmt(BPF_RET | BPF_K, SECCOMP_RET_TRACE | 2),
    ]);
    let text = disassemble(&p);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0000: A = arch");
    assert_eq!(lines[1], "0001: if (A == ARCH_X86_64) goto 0003");
    assert_eq!(lines[2], "0002: return KILL_PROCESS");
    assert_eq!(lines[3], "0003: A = sys_number");
    assert_eq!(lines[4], "0004: if (A != 0x5a) goto 0006");
    assert_eq!(lines[5], "0005: return ERRNO(1)");
    assert_eq!(lines[6], "0006: return ALLOW");
    assert_eq!(lines[7], "0007: A = args[1] & 0xffffffff");
    assert_eq!(lines[8], "0008: A = args[1] >> 32");
    assert_eq!(lines[9], "0009: if (A > 0x5) goto 0011 else goto 0012");
    assert_eq!(lines[10], "0010: A &= 0xff");
    assert_eq!(lines[11], "0011: return TRACE(2)");
    let raw = disassemble_raw(&p);
    assert!(raw.contains(" 0000: 0x20 0x00 0x00 0x00000004  A = arch"), "{raw}");
}

#[test]
fn table_names_every_number() {
    let t = Table::build(&[no_chmod()]).unwrap();
    assert_eq!(t.get(Arch::X86_64, "chmod"), Some(&Verdict::Fixed(Action::Errno(1))));
    assert_eq!(t.get(Arch::X86_64, "getpid"), Some(&Verdict::Fixed(Action::Allow)));
    assert_eq!(t.get(Arch::I386, "chmod"), Some(&Verdict::Fixed(Action::KillProcess)));
    assert_eq!(t.get_nr(Arch::X86_64, 511).map(Verdict::text).as_deref(), Some("allow"));
    assert!(t.x86_64.len() >= 512 && t.i386.len() >= 512);
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["x86_64"]["chmod"], "errno(1)");
    assert_eq!(json["i386"]["chmod"], "kill_process");
    assert_eq!(json["x86_64"]["syscall_500"], "allow");

    let cond = vec![
        ld(OFF_NR),
        jeq(CHMOD, 0, 3),
        ld(arg_lo(1)),
        jeq(0o644, 1, 0),
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ALLOW),
    ];
    let json = serde_json::to_value(Table::build(&[cond]).unwrap()).unwrap();
    assert_eq!(json["x86_64"]["chmod"], "conditional");
    let outcomes = json["conditions"]["x86_64"]["chmod"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0]["when"][0]["arg"], 1);
}

#[test]
fn concrete_calls() {
    // libseccomp's 64-bit `args[1] == 0x1_0000_0005`: high word, then low.
    let p = vec![
        ld(OFF_NR),
        jeq(CHMOD, 0, 5),
        ld(arg_hi(1)),
        jeq(1, 0, 3),
        ld(arg_lo(1)),
        jeq(5, 0, 1),
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ALLOW),
    ];
    let stack = vec![p];
    let call = |a1: u64| evaluate_call(&stack, &SeccompData::call(Arch::X86_64, CHMOD, [0, a1, 0, 0, 0, 0])).unwrap();
    assert_eq!(call(0x1_0000_0005), Action::Errno(1));
    assert_eq!(call(5), Action::Allow);
    assert_eq!(call(0x2_0000_0005), Action::Allow);
    let ip = SeccompData { instruction_pointer: 0x1234_5678_9abc_def0, ..SeccompData::call(Arch::X86_64, 1, [0; 6]) };
    let read_ip_hi = vec![ld(OFF_IP + 4), Insn::stmt(BPF_RET | BPF_A, 0)];
    assert_eq!(evaluate_call(&[read_ip_hi], &ip).unwrap(), action_of(0x1234_5678));
}

/// An allow-all filter a container may install to stop whoever reads it:
/// `tax; add x` doubles A's expression each round (A = A + A), 40 rounds a
/// tree of 2^40 operations, copied at every `tax`. Refused at once as too
/// complex, for this filter only.
#[test]
fn doubling_expressions_are_refused_not_built() {
    let mut prog = vec![ld(arg_lo(0))];
    for _ in 0..40 {
        prog.push(Insn::stmt(BPF_MISC | BPF_TAX, 0));
        prog.push(Insn::stmt(BPF_ALU | BPF_ADD | BPF_X, 0));
    }
    prog.push(jeq(0, 0, 0));
    prog.push(ret(SECCOMP_RET_ALLOW));
    let start = std::time::Instant::now();
    let stack = vec![prog];
    assert_eq!(evaluate(&stack, Arch::X86_64, GETPID), Err(EvalError::ValueTooLarge(MAX_VALUE_NODES)));
    let err = Table::build(&stack).unwrap_err();
    assert!(err.to_string().contains("too complex to evaluate"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(2), "took {:?}", start.elapsed());
    // A few rounds stay within the bound and evaluate as usual.
    let mut few = vec![ld(arg_lo(0))];
    for _ in 0..4 {
        few.push(Insn::stmt(BPF_MISC | BPF_TAX, 0));
        few.push(Insn::stmt(BPF_ALU | BPF_ADD | BPF_X, 0));
    }
    few.extend([jeq(0, 0, 1), ret(SECCOMP_RET_ALLOW), ret(SECCOMP_RET_ERRNO | 1)]);
    assert!(matches!(evaluate(&[few], Arch::X86_64, GETPID), Ok(Verdict::Conditional { .. })));
}
