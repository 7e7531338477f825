//! What one ELF file contributes to the reachability graph, computed once per
//! file content (and cached by its digest): its functions with their calls,
//! imports and syscall sites, its roots, and how the loader treats it.

use std::{collections::BTreeMap, sync::Arc};

use observer_profile::types::Arch;
use serde::{Deserialize, Serialize};

use crate::{elf::Bits, file_id::FileId};

/// One analysed ELF object: where it is in the root, which file it is, and its facts.
#[derive(Debug)]
pub struct Object {
    pub path: String,
    pub id: FileId,
    pub facts: Arc<FileFacts>,
}

/// One file's facts. Function references are indexes into `functions`,
/// import references indexes into `imports`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FileFacts {
    pub bits: Option<Bits>,
    pub executable: bool,
    pub interp: Option<String>,
    pub soname: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    /// Symbol names this file's code or data refers to through the loader.
    pub imports: Vec<String>,
    /// Exported function name → functions (several versions may differ).
    pub exports: BTreeMap<String, Vec<u32>>,
    pub functions: Vec<Func>,
    /// The entry point (for an executable).
    pub entry: Vec<u32>,
    /// Functions that run or become callable once the file is loaded:
    /// init/fini, IFUNC resolvers, functions whose address is in data.
    pub load_roots: Vec<u32>,
    /// Imports whose address the file's data holds.
    pub load_imports: Vec<u32>,
    /// vDSO fallbacks a static libc in this file can make.
    pub load_syscalls: Vec<(Arch, u64)>,
    /// Why this file's analysis is incomplete, if it is.
    pub problems: Vec<String>,
}

/// A function (or the code between two known starts).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Func {
    pub start: u64,
    pub name: Option<String>,
    /// Local functions called, jumped to or whose address is taken.
    pub calls: Vec<u32>,
    /// Imports called or whose address is taken.
    pub imports: Vec<u32>,
    /// Calls to syscall wrappers with the number decided at the call.
    pub numbered: Vec<NumberedCall>,
    /// Syscall sites with a decided number.
    pub syscalls: Vec<Site>,
    /// Set when the function makes syscalls whose number its caller passes.
    pub wrapper: Option<Wrapper>,
    /// Sites whose number could not be decided.
    pub undecided: Vec<Undecided>,
    /// vDSO fallbacks this libc function reaches through the vDSO.
    pub vdso: Vec<(Arch, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Callee {
    Local(u32),
    Import(u32),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NumberedCall {
    pub callee: Callee,
    pub numbers: Vec<u64>,
    pub at: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub arch: Arch,
    pub nr: u64,
    pub at: u64,
}

/// A syscall wrapper: the number comes in `reg`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Wrapper {
    pub reg: String,
    /// Syscall instructions that use the caller's number.
    pub sites: Vec<(Arch, u64)>,
    /// Calls to other wrappers that pass the caller's number on.
    pub forwards: Vec<(Callee, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undecided {
    pub at: u64,
    pub why: String,
}
