//! From one ELF file's machine code to its [`FileFacts`]: a linear sweep of
//! the code finds function starts (symbols, call targets, addresses taken,
//! pointers in data), the code between two starts is one function, and each
//! function is decoded for its calls, imports, addresses taken and syscall
//! sites. Syscall numbers come from [`crate::numbers`]; a function whose
//! number comes from its caller is a wrapper, resolved at its call sites.

use std::collections::{BTreeSet, HashMap};

use iced_x86::{Code as OpCode, Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use observer_profile::{syscall_table, types::Arch};

use crate::{
    elf::{self, Bits, Elf, VDSO_LOOKUPS},
    facts::{Callee, FileFacts, Func, NumberedCall, Site, Undecided, Wrapper},
    numbers::{self, Value},
};

/// Instructions decoded per file at most (both passes), the work bound on a
/// hostile or huge file.
pub const MAX_INSNS: u64 = 200_000_000;
/// Rounds of wrapper discovery (a wrapper calling a wrapper...).
const MAX_WRAPPER_ROUNDS: usize = 16;

/// Exported wrappers of libcs that take the number as the first argument:
/// glibc's and musl's `syscall()`. Calls to them through the PLT are
/// resolved at the call site.
const IMPORT_WRAPPERS: &[&str] = &["syscall"];

/// libc functions that call into the vDSO, and the syscalls the vDSO falls
/// back to (a clock source without vDSO support makes them real syscalls).
const VDSO_CALLERS: &[(&str, &[&str])] = &[
    ("clock_gettime", &["clock_gettime"]),
    ("__clock_gettime", &["clock_gettime"]),
    ("__clock_gettime64", &["clock_gettime", "clock_gettime64"]),
    ("gettimeofday", &["gettimeofday"]),
    ("__gettimeofday", &["gettimeofday"]),
    ("time", &["time"]),
    ("clock_getres", &["clock_getres"]),
    ("__clock_getres", &["clock_getres"]),
    ("__clock_getres64", &["clock_getres", "clock_getres_time64"]),
    ("sched_getcpu", &["getcpu"]),
    ("getcpu", &["getcpu"]),
];

/// Analyses one file's bytes. Never panics on bad input: what cannot be
/// read becomes a problem in the facts.
pub fn analyse(data: &[u8]) -> FileFacts {
    match elf::parse(data) {
        Ok(e) => Analysis::new(&e).run(),
        Err(reason) => FileFacts { problems: vec![reason], ..FileFacts::default() },
    }
}

struct Region {
    start: u64,
    end: u64,
    section: usize,
}

struct Analysis<'e, 'a> {
    elf: &'e Elf<'a>,
    bitness: u32,
    regions: Vec<Region>,
    stubs: HashMap<u64, String>,
    imports: Vec<String>,
    import_index: HashMap<String, u32>,
    funcs: Vec<Func>,
    /// Per function: its calls and tail jumps (site, instruction index, callee).
    call_sites: Vec<Vec<(u64, Callee)>>,
    decoded: u64,
    problems: Vec<String>,
}

impl<'e, 'a> Analysis<'e, 'a> {
    fn new(elf: &'e Elf<'a>) -> Self {
        Self {
            elf,
            bitness: if elf.bits == Bits::B64 { 64 } else { 32 },
            regions: Vec::new(),
            stubs: HashMap::new(),
            imports: Vec::new(),
            import_index: HashMap::new(),
            funcs: Vec::new(),
            call_sites: Vec::new(),
            decoded: 0,
            problems: elf.problems.clone(),
        }
    }

    fn run(mut self) -> FileFacts {
        self.find_stubs();
        let starts = self.find_starts();
        self.make_regions(&starts);
        for f in 0..self.regions.len() {
            self.decode_function(f);
        }
        self.resolve_wrappers();
        self.mark_vdso_callers();
        self.facts()
    }

    fn arch(&self) -> Arch {
        if self.elf.bits == Bits::B64 { Arch::X86_64 } else { Arch::I386 }
    }

    fn over_budget(&mut self, n: u64) -> bool {
        self.decoded += n;
        if self.decoded > MAX_INSNS {
            if !self.problems.iter().any(|p| p.starts_with("more than")) {
                self.problems.push(format!("more than {MAX_INSNS} instructions: the rest not analysed"));
            }
            return true;
        }
        false
    }

    fn in_code(&self, addr: u64) -> bool {
        self.elf.code.iter().any(|c| !c.plt && addr >= c.addr && addr - c.addr < c.bytes.len() as u64)
    }

    /// PLT stubs: the first instruction of each entry → the symbol of the
    /// GOT slot it jumps through.
    fn find_stubs(&mut self) {
        for c in self.elf.code.iter().filter(|c| c.plt) {
            let mut entry_start: Option<u64> = None;
            let mut decoder = Decoder::with_ip(self.bitness, c.bytes, c.addr, DecoderOptions::NONE);
            let mut ins = Instruction::default();
            while decoder.can_decode() {
                decoder.decode_out(&mut ins);
                if ins.is_invalid() || matches!(ins.mnemonic(), Mnemonic::Nop | Mnemonic::Int3) {
                    continue;
                }
                let start = *entry_start.get_or_insert(ins.ip());
                if matches!(ins.flow_control(), FlowControl::IndirectBranch | FlowControl::UnconditionalBranch) {
                    if ins.flow_control() == FlowControl::IndirectBranch
                        && let Some(name) = self.memory_address(&ins).and_then(|a| self.elf.slots.get(&a))
                    {
                        self.stubs.insert(start, name.clone());
                        self.stubs.insert(ins.ip(), name.clone());
                    }
                    entry_start = None;
                }
            }
            if self.over_budget(c.bytes.len() as u64 / 4) {
                return;
            }
        }
    }

    /// The address a memory operand names, when it is fixed: RIP-relative,
    /// absolute, or (i386 PIC) relative to the GOT base in ebx.
    fn memory_address(&self, ins: &Instruction) -> Option<u64> {
        if !(0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory) {
            return None;
        }
        if ins.is_ip_rel_memory_operand() {
            return Some(ins.ip_rel_memory_address());
        }
        let base = ins.memory_base();
        if ins.memory_index() != Register::None {
            return None;
        }
        if base == Register::None && matches!(ins.memory_segment(), Register::DS | Register::None) {
            return Some(ins.memory_displacement64());
        }
        if self.bitness == 32 && base == Register::EBX {
            let got = self.elf.got_base?;
            return Some(got.wrapping_add(u64::from(ins.memory_displacement32())) & 0xffff_ffff);
        }
        None
    }

    /// Code addresses an instruction refers to without calling them: a
    /// memory operand (`lea rdi, [rip+f]`), or an immediate in a
    /// position-dependent file (`mov edi, offset f`).
    fn referenced(&self, ins: &Instruction) -> Vec<u64> {
        let mut out = Vec::new();
        if let Some(a) = self.memory_address(ins) {
            out.push(a);
        }
        if self.elf.position_dependent || self.bitness == 32 {
            for i in 0..ins.op_count() {
                if matches!(
                    ins.op_kind(i),
                    OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64 | OpKind::Immediate8to32
                ) {
                    let v = ins.immediate(i);
                    if self.bitness == 32 && self.elf.got_base.is_some() && !self.elf.position_dependent {
                        // i386 PIC: `lea eax, [ebx+f@GOTOFF]` is a memory operand, handled above.
                        continue;
                    }
                    out.push(v);
                }
            }
        }
        out
    }

    fn find_starts(&mut self) -> BTreeSet<u64> {
        let mut starts: BTreeSet<u64> = BTreeSet::new();
        starts.extend(self.elf.names.keys());
        starts.insert(self.elf.entry);
        starts.extend(&self.elf.load_roots);
        starts.extend(&self.elf.data_pointers);
        for c in self.elf.code.iter().filter(|c| !c.plt) {
            if self.over_budget(c.bytes.len() as u64 / 4) {
                break;
            }
            let mut decoder = Decoder::with_ip(self.bitness, c.bytes, c.addr, DecoderOptions::NONE);
            let mut ins = Instruction::default();
            while decoder.can_decode() {
                decoder.decode_out(&mut ins);
                if ins.is_invalid() {
                    continue;
                }
                if ins.flow_control() == FlowControl::Call && numbers::is_near_branch(&ins) {
                    starts.insert(ins.near_branch_target());
                }
                for a in self.referenced(&ins) {
                    if !numbers::is_near_branch(&ins) {
                        starts.insert(a);
                    }
                }
            }
        }
        starts.retain(|a| self.in_code(*a));
        starts
    }

    fn make_regions(&mut self, starts: &BTreeSet<u64>) {
        for (section, c) in self.elf.code.iter().enumerate() {
            if c.plt {
                continue;
            }
            let end = c.addr + c.bytes.len() as u64;
            let mut in_section: Vec<u64> = starts.range(c.addr..end).copied().collect();
            if in_section.first() != Some(&c.addr) {
                in_section.insert(0, c.addr);
            }
            for (i, s) in in_section.iter().enumerate() {
                let e = in_section.get(i + 1).copied().unwrap_or(end);
                self.regions.push(Region { start: *s, end: e, section });
            }
        }
        self.regions.sort_by_key(|r| r.start);
        self.funcs = self
            .regions
            .iter()
            .map(|r| Func { start: r.start, name: self.elf.names.get(&r.start).cloned(), ..Func::default() })
            .collect();
        self.call_sites = vec![Vec::new(); self.regions.len()];
    }

    /// The function holding `addr`.
    fn func_of(&self, addr: u64) -> Option<u32> {
        let i = self.regions.partition_point(|r| r.start <= addr).checked_sub(1)?;
        (addr < self.regions[i].end).then_some(i as u32)
    }

    fn import(&mut self, name: &str) -> u32 {
        if let Some(i) = self.import_index.get(name) {
            return *i;
        }
        let i = self.imports.len() as u32;
        self.imports.push(name.to_owned());
        self.import_index.insert(name.to_owned(), i);
        i
    }

    /// What a branch, call or reference to `addr` reaches.
    fn target(&mut self, addr: u64) -> Option<Callee> {
        if let Some(name) = self.stubs.get(&addr).cloned() {
            return Some(Callee::Import(self.import(&name)));
        }
        if let Some(name) = self.elf.slots.get(&addr).cloned() {
            return Some(Callee::Import(self.import(&name)));
        }
        self.func_of(addr).map(Callee::Local)
    }

    fn region_insns(&mut self, f: usize) -> Vec<Instruction> {
        let r = &self.regions[f];
        let c = &self.elf.code[r.section];
        let from = (r.start - c.addr) as usize;
        let to = (r.end - c.addr) as usize;
        let bytes: &'a [u8] = &c.bytes[from..to];
        let start = r.start;
        if self.over_budget(bytes.len() as u64 / 4 + 1) {
            return Vec::new();
        }
        Decoder::with_ip(self.bitness, bytes, start, DecoderOptions::NONE).into_iter().collect()
    }

    fn decode_function(&mut self, f: usize) {
        let insns = self.region_insns(f);
        if insns.is_empty() {
            return;
        }
        let (start, end) = (self.regions[f].start, self.regions[f].end);
        let mut calls = BTreeSet::new();
        let mut imports = BTreeSet::new();
        let mut sites = Vec::new();
        let mut queries = numbers::Function::new(&insns, self.bitness);
        let mut syscalls = Vec::new();
        let mut wrapper_sites = Vec::new();
        let mut wrapper_reg: Option<Register> = None;
        let mut undecided = Vec::new();
        for (i, ins) in insns.iter().enumerate() {
            if ins.is_invalid() {
                continue;
            }
            let flow = ins.flow_control();
            if numbers::is_near_branch(ins) {
                let t = ins.near_branch_target();
                let leaves = t < start || t >= end;
                if (flow == FlowControl::Call || leaves)
                    && let Some(callee) = self.target(t)
                {
                    sites.push((ins.ip(), callee));
                }
            } else {
                for a in self.referenced(ins) {
                    match self.target(a) {
                        Some(callee @ Callee::Import(_))
                            if matches!(flow, FlowControl::IndirectCall | FlowControl::IndirectBranch) =>
                        {
                            sites.push((ins.ip(), callee));
                        }
                        Some(Callee::Import(imp)) => {
                            imports.insert(imp);
                        }
                        Some(Callee::Local(l)) if self.regions[l as usize].start == a || a < start || a >= end => {
                            calls.insert(l);
                        }
                        _ => {}
                    }
                }
            }
            if let Some(arch) = self.syscall_abi(ins) {
                match queries.value_before(i, Register::RAX) {
                    Value::Consts(ns) => syscalls.extend(ns.into_iter().map(|nr| Site { arch, nr, at: ins.ip() })),
                    Value::Arg(reg) if wrapper_reg.is_none_or(|r| r == reg) => {
                        wrapper_reg = Some(reg);
                        wrapper_sites.push((arch, ins.ip()));
                    }
                    Value::Arg(reg) => undecided.push(Undecided {
                        at: ins.ip(),
                        why: format!("number from the caller's {reg:?}, a second argument register"),
                    }),
                    Value::Unknown => {
                        undecided.push(Undecided { at: ins.ip(), why: "number not a constant".to_owned() })
                    }
                }
            }
        }
        // Code running off the end goes on into the next function (padding
        // after a return or jump does not).
        if let Some(last) = insns.iter().rev().find(|i| !matches!(i.mnemonic(), Mnemonic::Nop | Mnemonic::Int3))
            && numbers::falls_through(last)
            && let Some(next) = self.func_of(end)
            && self.regions[next as usize].start == end
        {
            calls.insert(next);
        }
        let func = &mut self.funcs[f];
        func.calls = calls.into_iter().collect();
        func.imports = imports.into_iter().collect();
        func.syscalls = syscalls;
        func.undecided = undecided;
        if let Some(reg) = wrapper_reg {
            func.wrapper = Some(Wrapper { reg: format!("{reg:?}"), sites: wrapper_sites, forwards: Vec::new() });
        }
        self.call_sites[f] = sites;
    }

    /// The syscall ABI of an instruction that enters the kernel, if it is one.
    fn syscall_abi(&self, ins: &Instruction) -> Option<Arch> {
        match ins.code() {
            OpCode::Syscall => Some(self.arch()),
            OpCode::Int_imm8 if ins.immediate8() == 0x80 => Some(Arch::I386),
            OpCode::Sysenter => Some(Arch::I386),
            // i386 glibc enters the kernel through the vDSO's
            // __kernel_vsyscall, whose address it keeps at %gs:0x10.
            _ if self.bitness == 32
                && ins.flow_control() == FlowControl::IndirectCall
                && ins.memory_segment() == Register::GS
                && ins.memory_base() == Register::None
                && ins.memory_displacement32() == 0x10 =>
            {
                Some(Arch::I386)
            }
            _ => None,
        }
    }

    fn wrapper_reg(&self, callee: Callee) -> Option<Register> {
        match callee {
            Callee::Local(f) => self.funcs[f as usize].wrapper.as_ref().and_then(|w| parse_reg(&w.reg)),
            Callee::Import(i) if self.bitness == 64 && IMPORT_WRAPPERS.contains(&self.imports[i as usize].as_str()) => {
                Some(Register::RDI)
            }
            Callee::Import(_) => None,
        }
    }

    /// Calls to wrappers take the number from the caller's constant
    /// argument; a caller that passes its own argument on is a wrapper too.
    #[expect(clippy::needless_range_loop, reason = "f indexes funcs, call_sites and resolved alike")]
    fn resolve_wrappers(&mut self) {
        let mut resolved: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); self.funcs.len()];
        for _ in 0..MAX_WRAPPER_ROUNDS {
            let mut changed = false;
            for f in 0..self.funcs.len() {
                let pending: Vec<(u64, Callee, Register)> = self.call_sites[f]
                    .iter()
                    .filter(|(at, _)| !resolved[f].contains(at))
                    .filter_map(|(at, c)| self.wrapper_reg(*c).map(|r| (*at, *c, r)))
                    .collect();
                if pending.is_empty() {
                    continue;
                }
                let insns = self.region_insns(f);
                let mut queries = numbers::Function::new(&insns, self.bitness);
                for (at, callee, reg) in pending {
                    resolved[f].insert(at);
                    let Some(i) = queries.index_of(at) else { continue };
                    match queries.value_before(i, reg) {
                        Value::Consts(ns) => {
                            self.funcs[f].numbered.push(NumberedCall { callee, numbers: ns.into_iter().collect(), at })
                        }
                        Value::Arg(r) => {
                            let func = &mut self.funcs[f];
                            let w = func.wrapper.get_or_insert_with(|| {
                                changed = true;
                                Wrapper { reg: format!("{r:?}"), sites: Vec::new(), forwards: Vec::new() }
                            });
                            if w.reg == format!("{r:?}") {
                                w.forwards.push((callee, at));
                            } else {
                                func.numbered.push(NumberedCall { callee, numbers: Vec::new(), at });
                                func.undecided.push(Undecided {
                                    at,
                                    why: format!("call to a syscall wrapper with the number from the caller's {r:?}"),
                                });
                            }
                        }
                        Value::Unknown => {
                            let func = &mut self.funcs[f];
                            func.numbered.push(NumberedCall { callee, numbers: Vec::new(), at });
                            func.undecided.push(Undecided {
                                at,
                                why: "call to a syscall wrapper with a number not a constant".to_owned(),
                            });
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        // Every call site not resolved as a wrapper call is a plain edge.
        for f in 0..self.funcs.len() {
            let sites = std::mem::take(&mut self.call_sites[f]);
            let func = &mut self.funcs[f];
            let mut calls: BTreeSet<u32> = func.calls.iter().copied().collect();
            let mut imports: BTreeSet<u32> = func.imports.iter().copied().collect();
            for (at, callee) in sites {
                if resolved[f].contains(&at) {
                    continue;
                }
                match callee {
                    Callee::Local(l) => calls.insert(l),
                    Callee::Import(i) => imports.insert(i),
                };
            }
            func.calls = calls.into_iter().collect();
            func.imports = imports.into_iter().collect();
        }
    }

    fn mark_vdso_callers(&mut self) {
        let arch = self.arch();
        let mut by_addr: HashMap<u64, Vec<&str>> = HashMap::new();
        let named = self.elf.exports.iter().flat_map(|(n, addrs)| addrs.iter().map(move |a| (n.as_str(), *a)));
        let local = self.elf.names.iter().map(|(a, n)| (n.as_str(), *a));
        for (name, addr) in named.chain(local) {
            if let Some((_, calls)) = VDSO_CALLERS.iter().find(|(n, _)| *n == name) {
                by_addr.entry(addr).or_default().extend(calls.iter().copied());
            }
        }
        for (addr, names) in by_addr {
            if let Some(f) = self.func_of(addr) {
                let func = &mut self.funcs[f as usize];
                for n in names {
                    if let Some(nr) = syscall_table::number(arch, n) {
                        func.vdso.push((arch, u64::from(nr)));
                    }
                }
                func.vdso.sort();
                func.vdso.dedup();
            }
        }
    }

    fn facts(mut self) -> FileFacts {
        let e = self.elf;
        let mut exports: std::collections::BTreeMap<String, Vec<u32>> = std::collections::BTreeMap::new();
        for (name, addrs) in &e.exports {
            let fs: BTreeSet<u32> = addrs.iter().filter_map(|a| self.func_of(*a)).collect();
            if !fs.is_empty() {
                exports.insert(name.clone(), fs.into_iter().collect());
            }
        }
        let mut load_roots = BTreeSet::new();
        let mut load_imports = BTreeSet::new();
        for a in e.load_roots.iter().chain(&e.data_pointers) {
            match self.target(*a) {
                Some(Callee::Local(f)) => {
                    load_roots.insert(f);
                }
                Some(Callee::Import(i)) => {
                    load_imports.insert(i);
                }
                None => {}
            }
        }
        for name in &e.data_symbols {
            load_imports.insert(self.import(name));
        }
        let arch = self.arch();
        let load_syscalls = e
            .vdso_lookups
            .iter()
            .filter_map(|l| VDSO_LOOKUPS.iter().find(|(n, _)| n == l))
            .filter_map(|(_, sys)| syscall_table::number(arch, sys))
            .map(|nr| (arch, u64::from(nr)))
            .collect();
        let entry = if e.executable { self.func_of(e.entry).into_iter().collect() } else { Vec::new() };
        if e.executable && entry.is_empty() {
            self.problems.push(format!("entry point {:#x} is not in the code", e.entry));
        }
        FileFacts {
            bits: Some(e.bits),
            executable: e.executable,
            interp: e.interp.clone(),
            soname: e.soname.clone(),
            needed: e.needed.clone(),
            rpath: e.rpath.clone(),
            runpath: e.runpath.clone(),
            imports: self.imports,
            exports,
            functions: self.funcs,
            entry,
            load_roots: load_roots.into_iter().collect(),
            load_imports: load_imports.into_iter().collect(),
            load_syscalls,
            problems: self.problems,
        }
    }
}

/// A register from its `Debug` name, as wrappers store it.
fn parse_reg(name: &str) -> Option<Register> {
    const REGS: &[Register] = &[
        Register::RAX,
        Register::RBX,
        Register::RCX,
        Register::RDX,
        Register::RSI,
        Register::RDI,
        Register::RBP,
        Register::R8,
        Register::R9,
        Register::R10,
        Register::R11,
        Register::R12,
        Register::R13,
        Register::R14,
        Register::R15,
    ];
    REGS.iter().copied().find(|r| format!("{r:?}") == name)
}
