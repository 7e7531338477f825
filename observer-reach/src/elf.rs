//! What the analysis needs from one ELF file, read with the `object` crate:
//! its code, its symbols, what the loader does with it (interpreter,
//! DT_NEEDED, search paths, init/fini arrays), which GOT slots hold which
//! imported symbol, and which code addresses its data holds (function
//! pointers that indirect calls can reach).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use object::{
    elf,
    read::elf::{Dyn as _, FileHeader, ProgramHeader as _, Rel as _, Rela as _, SectionHeader as _, Sym as _},
};

/// Machine code sections read at most, in bytes, per file (the decoder's work bound).
pub const MAX_CODE_BYTES: u64 = 256 << 20;

/// The instruction set of a file's code. Which syscall ABI a site uses also
/// depends on the instruction (`int 0x80` is i386 even in 64-bit code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Bits {
    B64,
    B32,
}

/// A section (or segment) of machine code.
#[derive(Debug)]
pub struct Code<'a> {
    pub addr: u64,
    pub bytes: &'a [u8],
    /// `.plt`, `.plt.sec`, `.plt.got`: stubs that jump through a GOT slot.
    pub plt: bool,
}

/// One ELF file, as the analysis sees it.
#[derive(Debug)]
pub struct Elf<'a> {
    pub bits: Bits,
    /// `ET_EXEC`: addresses are absolute, so an immediate may be a code address.
    pub position_dependent: bool,
    /// Something the kernel or a shell can start: `ET_EXEC`, PT_INTERP, a PIE
    /// (`DF_1_PIE`), or a static PIE.
    pub executable: bool,
    pub interp: Option<String>,
    pub soname: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    pub entry: u64,
    pub code: Vec<Code<'a>>,
    /// Function symbols (`.symtab` and `.dynsym`) by address; several names may share one.
    pub names: BTreeMap<u64, String>,
    /// Defined, visible functions of `.dynsym`: name → addresses (several
    /// versions of one name may differ).
    pub exports: BTreeMap<String, BTreeSet<u64>>,
    /// GOT (or data) slot address → the symbol the loader writes there.
    pub slots: HashMap<u64, String>,
    /// Symbols written into data outside the GOT (vtables, tables of
    /// pointers): reachable once the object is loaded.
    pub data_symbols: BTreeSet<String>,
    /// Code addresses stored in data (relative relocations, pointer tables
    /// of position-dependent files): reachable through indirect calls.
    pub data_pointers: BTreeSet<u64>,
    /// What runs when the object is loaded or unloaded: DT_INIT/DT_FINI,
    /// init/fini/preinit arrays, IFUNC resolvers (IRELATIVE).
    pub load_roots: BTreeSet<u64>,
    /// DT_PLTGOT: the base of ebx-relative addressing in i386 PIC code.
    pub got_base: Option<u64>,
    /// Names of vDSO functions the file looks up (a static libc does).
    pub vdso_lookups: Vec<&'static str>,
    /// What could not be read; the file's result is then incomplete.
    pub problems: Vec<String>,
}

/// vDSO symbol names a libc looks up, and the syscall each falls back to.
pub const VDSO_LOOKUPS: &[(&str, &str)] = &[
    ("__vdso_clock_gettime", "clock_gettime"),
    ("__vdso_gettimeofday", "gettimeofday"),
    ("__vdso_time", "time"),
    ("__vdso_clock_getres", "clock_getres"),
    ("__vdso_getcpu", "getcpu"),
];

/// Parses an x86 ELF file. `Err` is a reason (the caller adds the path).
pub fn parse(data: &[u8]) -> Result<Elf<'_>, String> {
    let kind = object::FileKind::parse(data).map_err(|e| e.to_string())?;
    match kind {
        object::FileKind::Elf64 => read::<elf::FileHeader64<object::Endianness>>(data, Bits::B64),
        object::FileKind::Elf32 => read::<elf::FileHeader32<object::Endianness>>(data, Bits::B32),
        other => Err(format!("not an ELF file ({other:?})")),
    }
}

/// The machine field, to tell a foreign-architecture file from a bad one.
pub fn machine(data: &[u8]) -> Option<u16> {
    match object::FileKind::parse(data).ok()? {
        object::FileKind::Elf64 => {
            let h = elf::FileHeader64::<object::Endianness>::parse(data).ok()?;
            Some(h.e_machine(h.endian().ok()?))
        }
        object::FileKind::Elf32 => {
            let h = elf::FileHeader32::<object::Endianness>::parse(data).ok()?;
            Some(h.e_machine(h.endian().ok()?))
        }
        _ => None,
    }
}

fn read<H: FileHeader<Endian = object::Endianness>>(data: &[u8], bits: Bits) -> Result<Elf<'_>, String> {
    let header = H::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let machine = header.e_machine(endian);
    let expected = if bits == Bits::B64 { elf::EM_X86_64 } else { elf::EM_386 };
    if machine != expected {
        return Err(format!("machine {machine}"));
    }
    let e_type = header.e_type(endian);
    if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
        return Err(format!("ELF type {e_type} is neither an executable nor a shared object"));
    }
    let mut out = Elf {
        bits,
        position_dependent: e_type == elf::ET_EXEC,
        executable: e_type == elf::ET_EXEC,
        interp: None,
        soname: None,
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
        entry: header.e_entry(endian).into(),
        code: Vec::new(),
        names: BTreeMap::new(),
        exports: BTreeMap::new(),
        slots: HashMap::new(),
        data_symbols: BTreeSet::new(),
        data_pointers: BTreeSet::new(),
        load_roots: BTreeSet::new(),
        got_base: None,
        vdso_lookups: Vec::new(),
        problems: Vec::new(),
    };
    let segments = header.program_headers(endian, data).map_err(|e| e.to_string())?;
    let loads: Vec<Load<'_>> = segments
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .filter_map(|p| {
            let bytes = p.data(endian, data).ok()?;
            Some(Load { addr: p.p_vaddr(endian).into(), bytes, exec: p.p_flags(endian) & elf::PF_X != 0 })
        })
        .collect();
    let image = Image { loads: &loads, word: if bits == Bits::B64 { 8 } else { 4 } };
    for p in segments {
        if let Ok(Some(interp)) = p.interpreter(endian, data) {
            out.interp = Some(String::from_utf8_lossy(interp).into_owned());
            out.executable = true;
        }
    }
    let dynamic = segments.iter().find_map(|p| p.dynamic(endian, data).ok().flatten());
    if let Some(dynamic) = dynamic {
        read_dynamic::<H>(dynamic, endian, &image, &mut out);
    }
    if e_type == elf::ET_DYN && out.interp.is_none() && out.soname.is_none() && dynamic.is_some() && out.entry != 0 {
        // A static PIE has no interpreter; a library has a soname (those
        // without one are still analysed as libraries when they are loaded).
        let has_needed = !out.needed.is_empty();
        if !has_needed {
            out.executable = true;
        }
    }

    let sections = header.sections(endian, data).map_err(|e| e.to_string())?;
    if sections.is_empty() {
        out.problems.push("no section headers: code taken from executable segments, no symbols".to_owned());
        for l in loads.iter().filter(|l| l.exec) {
            out.code.push(Code { addr: l.addr, bytes: l.bytes, plt: false });
        }
    }
    let mut code_bytes = 0u64;
    let mut got_ranges = Vec::new();
    for s in sections.iter() {
        let name = sections.section_name(endian, s).unwrap_or_default();
        let flags: u64 = s.sh_flags(endian).into();
        let addr: u64 = s.sh_addr(endian).into();
        let size: u64 = s.sh_size(endian).into();
        if name == b".got" || name == b".got.plt" {
            got_ranges.push(addr..addr.saturating_add(size));
        }
        if s.sh_type(endian) != elf::SHT_PROGBITS || flags & u64::from(elf::SHF_EXECINSTR) == 0 {
            continue;
        }
        let Ok(bytes) = s.data(endian, data) else {
            out.problems.push(format!("section {} unreadable", String::from_utf8_lossy(name)));
            continue;
        };
        code_bytes += bytes.len() as u64;
        if code_bytes > MAX_CODE_BYTES {
            out.problems.push(format!("more than {MAX_CODE_BYTES} bytes of code: the rest not analysed"));
            break;
        }
        let plt = name.starts_with(b".plt");
        out.code.push(Code { addr, bytes, plt });
    }
    out.code.sort_by_key(|c| c.addr);

    // Symbols: names of functions, and the exports other objects bind to.
    for (kind, exported) in [(elf::SHT_SYMTAB, false), (elf::SHT_DYNSYM, true)] {
        let Ok(table) = sections.symbols(endian, data, kind) else { continue };
        for sym in table.iter() {
            let st_type = sym.st_type();
            let value: u64 = sym.st_value(endian).into();
            if sym.st_shndx(endian) == elf::SHN_UNDEF || value == 0 {
                continue;
            }
            if st_type != elf::STT_FUNC && st_type != elf::STT_GNU_IFUNC {
                continue;
            }
            let Ok(name) = table.symbol_name(endian, sym) else { continue };
            let name = String::from_utf8_lossy(name).into_owned();
            out.names.entry(value).or_insert_with(|| name.clone());
            let visible = sym.st_bind() != elf::STB_LOCAL && sym.st_visibility() != elf::STV_HIDDEN;
            if exported && visible {
                out.exports.entry(name).or_default().insert(value);
            }
        }
    }

    // Relocations: what the loader writes where.
    let is_got = |addr: u64| got_ranges.iter().any(|r| r.contains(&addr));
    let code_ranges: Vec<std::ops::Range<u64>> =
        out.code.iter().map(|c| c.addr..c.addr + c.bytes.len() as u64).collect();
    let in_code = |addr: u64| code_ranges.iter().any(|r| r.contains(&addr));
    for s in sections.iter() {
        if Into::<u64>::into(s.sh_flags(endian)) & u64::from(elf::SHF_ALLOC) == 0 {
            continue;
        }
        let symtab_of = |link: object::SectionIndex| sections.symbol_table_by_index(endian, data, link).ok();
        let mut record = |offset: u64, r_type: u32, sym: Option<String>, addend: Option<u64>| {
            let value = addend.or_else(|| image.word_at(offset));
            match classify(bits, r_type) {
                RelocKind::Relative => {
                    if let Some(v) = value.filter(|v| in_code(*v)) {
                        out.data_pointers.insert(v);
                    }
                }
                RelocKind::IRelative => {
                    if let Some(v) = value {
                        out.load_roots.insert(v);
                    }
                }
                RelocKind::Symbol => {
                    if let Some(name) = sym.filter(|n| !n.is_empty()) {
                        if !is_got(offset) {
                            out.data_symbols.insert(name.clone());
                        }
                        out.slots.insert(offset, name);
                    }
                }
                RelocKind::Other => {}
            }
        };
        if let Ok(Some((relas, link))) = s.rela(endian, data) {
            let table = symtab_of(link);
            for r in relas {
                let sym = r.r_sym(endian, false);
                let name = symbol_name(table.as_ref(), endian, sym);
                let addend = r.r_addend(endian).into() as u64;
                record(r.r_offset(endian).into(), r.r_type(endian, false), name, Some(addend));
            }
        } else if let Ok(Some((rels, link))) = s.rel(endian, data) {
            let table = symtab_of(link);
            for r in rels {
                let sym = r.r_sym(endian);
                let name = symbol_name(table.as_ref(), endian, sym);
                record(r.r_offset(endian).into(), r.r_type(endian), name, None);
            }
        } else if let Ok(Some(relrs)) = s.relr(endian, data) {
            for offset in relrs {
                let offset: u64 = offset.into();
                if let Some(v) = image.word_at(offset).filter(|v| in_code(*v)) {
                    out.data_pointers.insert(v);
                }
            }
        }
    }

    // Init/fini arrays hold code addresses (relocated or not).
    for s in sections.iter() {
        let t = s.sh_type(endian);
        if t != elf::SHT_INIT_ARRAY && t != elf::SHT_FINI_ARRAY && t != elf::SHT_PREINIT_ARRAY {
            continue;
        }
        let addr: u64 = s.sh_addr(endian).into();
        let size: u64 = s.sh_size(endian).into();
        for at in (addr..addr.saturating_add(size.min(1 << 20))).step_by(image.word as usize) {
            if let Some(v) = image.word_at(at).filter(|v| in_code(*v)) {
                out.load_roots.insert(v);
            }
        }
    }
    // Code addresses that were pointers after relocation of those arrays
    // are data pointers already; they are load roots too.
    if out.position_dependent {
        // No relocations say where pointers are: every aligned word of the
        // loaded, non-executable data that is a code address may be one.
        for l in loads.iter().filter(|l| !l.exec) {
            for chunk in l.bytes.chunks_exact(image.word as usize) {
                let v = image.decode_word(chunk);
                if in_code(v) {
                    out.data_pointers.insert(v);
                }
            }
        }
    }
    if out.executable && out.interp.is_none() {
        // A static libc finds the vDSO's functions by name.
        for (lookup, _) in VDSO_LOOKUPS {
            if contains(data, lookup.as_bytes()) {
                out.vdso_lookups.push(lookup);
            }
        }
    }
    Ok(out)
}

fn symbol_name<'d, H: FileHeader<Endian = object::Endianness>>(
    table: Option<&object::read::elf::SymbolTable<'d, H>>,
    endian: object::Endianness,
    index: u32,
) -> Option<String> {
    if index == 0 {
        return None;
    }
    let table = table?;
    let sym = table.symbol(object::SymbolIndex(index as usize)).ok()?;
    table.symbol_name(endian, sym).ok().map(|n| String::from_utf8_lossy(n).into_owned())
}

enum RelocKind {
    Relative,
    IRelative,
    Symbol,
    Other,
}

fn classify(bits: Bits, r_type: u32) -> RelocKind {
    match bits {
        Bits::B64 => match r_type {
            elf::R_X86_64_RELATIVE => RelocKind::Relative,
            elf::R_X86_64_IRELATIVE => RelocKind::IRelative,
            elf::R_X86_64_64 | elf::R_X86_64_GLOB_DAT | elf::R_X86_64_JUMP_SLOT | elf::R_X86_64_32 => RelocKind::Symbol,
            _ => RelocKind::Other,
        },
        Bits::B32 => match r_type {
            elf::R_386_RELATIVE => RelocKind::Relative,
            elf::R_386_IRELATIVE => RelocKind::IRelative,
            elf::R_386_32 | elf::R_386_GLOB_DAT | elf::R_386_JMP_SLOT => RelocKind::Symbol,
            _ => RelocKind::Other,
        },
    }
}

struct Load<'a> {
    addr: u64,
    bytes: &'a [u8],
    exec: bool,
}

/// The file's loaded segments, to read a word at a virtual address.
struct Image<'l, 'a> {
    loads: &'l [Load<'a>],
    word: u64,
}

impl Image<'_, '_> {
    fn bytes_at(&self, addr: u64, len: u64) -> Option<&[u8]> {
        self.loads.iter().find_map(|l| {
            let off = addr.checked_sub(l.addr)?;
            let end = off.checked_add(len)?;
            (end <= l.bytes.len() as u64).then(|| &l.bytes[off as usize..end as usize])
        })
    }

    fn word_at(&self, addr: u64) -> Option<u64> {
        self.bytes_at(addr, self.word).map(|b| self.decode_word(b))
    }

    fn decode_word(&self, b: &[u8]) -> u64 {
        if self.word == 8 {
            u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
        } else {
            u64::from(u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
        }
    }

    /// A NUL-terminated string at `addr`, at most 4 KiB.
    fn string_at(&self, addr: u64) -> Option<String> {
        let l = self.loads.iter().find(|l| addr >= l.addr && addr - l.addr < l.bytes.len() as u64)?;
        let rest = &l.bytes[(addr - l.addr) as usize..];
        let rest = &rest[..rest.len().min(4096)];
        let end = rest.iter().position(|b| *b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

fn read_dynamic<H: FileHeader<Endian = object::Endianness>>(
    dynamic: &[H::Dyn],
    endian: object::Endianness,
    image: &Image<'_, '_>,
    out: &mut Elf<'_>,
) {
    let tag_val = |d: &H::Dyn| -> (i64, u64) { (d.d_tag(endian).into(), d.d_val(endian).into()) };
    let strtab = dynamic.iter().map(tag_val).find(|(t, _)| *t == elf::DT_STRTAB).map(|(_, v)| v);
    let string = |off: u64| strtab.and_then(|base| image.string_at(base.checked_add(off)?));
    let mut arrays: Vec<(u64, u64)> = Vec::new();
    let (mut init_array, mut init_size, mut fini_array, mut fini_size, mut pre_array, mut pre_size) =
        (None, 0, None, 0, None, 0);
    for (tag, val) in dynamic.iter().map(tag_val) {
        if tag == elf::DT_NULL {
            break;
        }
        match tag {
            elf::DT_NEEDED => out.needed.extend(string(val)),
            elf::DT_SONAME => out.soname = string(val),
            elf::DT_RPATH => out.rpath.extend(string(val).iter().flat_map(|s| split_path(s))),
            elf::DT_RUNPATH => out.runpath.extend(string(val).iter().flat_map(|s| split_path(s))),
            elf::DT_INIT | elf::DT_FINI => {
                out.load_roots.insert(val);
            }
            elf::DT_INIT_ARRAY => init_array = Some(val),
            elf::DT_INIT_ARRAYSZ => init_size = val,
            elf::DT_FINI_ARRAY => fini_array = Some(val),
            elf::DT_FINI_ARRAYSZ => fini_size = val,
            elf::DT_PREINIT_ARRAY => pre_array = Some(val),
            elf::DT_PREINIT_ARRAYSZ => pre_size = val,
            elf::DT_PLTGOT => out.got_base = Some(val),
            elf::DT_FLAGS_1 if val & u64::from(elf::DF_1_PIE) != 0 => out.executable = true,
            _ => {}
        }
    }
    for (addr, size) in [(init_array, init_size), (fini_array, fini_size), (pre_array, pre_size)] {
        if let Some(addr) = addr {
            arrays.push((addr, size.min(1 << 20)));
        }
    }
    for (addr, size) in arrays {
        for at in (addr..addr.saturating_add(size)).step_by(image.word as usize) {
            if let Some(v) = image.word_at(at).filter(|v| *v != 0 && *v != u64::MAX && *v != u64::from(u32::MAX)) {
                out.load_roots.insert(v);
            }
        }
    }
}

fn split_path(s: &str) -> Vec<String> {
    s.split(':').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((first, rest)) = needle.split_first() else { return true };
    let mut at = 0;
    while let Some(pos) = haystack[at..].iter().position(|b| b == first) {
        let start = at + pos + 1;
        if haystack[start..].starts_with(rest) {
            return true;
        }
        at = start;
    }
    false
}
