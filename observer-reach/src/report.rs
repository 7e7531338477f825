//! The result of an analysis, per ABI: each syscall with the binaries
//! (root sets) that reach it and the functions where it is made; the sites
//! whose number is undecided; the files that could not be analysed. Any of
//! the last two makes the result incomplete.

use std::collections::{BTreeMap, BTreeSet};

use observer_profile::{syscall_table, types::Arch};
use serde::{Deserialize, Serialize};

use crate::{
    facts::Object,
    graph::{OBJECT, RootReach},
};

/// Sites and binaries listed per syscall (the counts are whole).
const MAX_LISTED: usize = 16;
/// Undecided sites listed at most (the count is whole).
const MAX_UNDECIDED: usize = 2_000;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Reach {
    pub root: String,
    /// `x86_64`, `i386`: the reachable syscalls of that ABI.
    pub abis: BTreeMap<String, Vec<SyscallReach>>,
    /// False when a site's number was undecided, a file that a root needs
    /// could not be analysed, or the loader would not find a library here
    /// (the image may set LD_LIBRARY_PATH): the truth may hold more.
    pub complete: bool,
    pub files: usize,
    pub executables: usize,
    pub dlopen_roots: usize,
    pub undecided: Vec<UndecidedSite>,
    pub undecided_total: usize,
    pub incomplete_files: Vec<FileProblem>,
    /// Files not analysed because they are not x86 code.
    pub foreign_files: Vec<FileProblem>,
    /// DT_NEEDED libraries (or interpreters) the loader would not find.
    pub missing_libraries: Vec<Missing>,
    /// Where the analysis spent its time.
    pub timing: Seconds,
    /// True when the root was unchanged since a stored result (every path,
    /// symlink and file stamp the same), which is returned as it was.
    #[serde(default)]
    pub unchanged: bool,
}

/// Seconds spent reading and decoding files (or finding them in the
/// cache), following the loader, and walking reachability.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Seconds {
    pub files: f64,
    pub loader: f64,
    pub reachability: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyscallReach {
    pub name: String,
    pub nr: u64,
    /// Executables (and dlopen-able libraries) that can make it.
    pub binaries: Vec<String>,
    pub binaries_total: usize,
    /// `file:function` where the syscall instruction (or wrapper) is.
    pub sites: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UndecidedSite {
    pub file: String,
    pub function: String,
    pub address: String,
    pub why: String,
    /// A binary that reaches it.
    pub reached_from: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileProblem {
    pub file: String,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Missing {
    pub binary: String,
    pub library: String,
}

impl Reach {
    /// The names reachable in one ABI.
    pub fn names(&self, arch: Arch) -> BTreeSet<String> {
        self.abis.get(abi_name(arch)).map(|v| v.iter().map(|s| s.name.clone()).collect()).unwrap_or_default()
    }
}

pub fn abi_name(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::I386 => "i386",
        Arch::X32 => "x32",
        Arch::Aarch64 => "aarch64",
    }
}

pub struct Inputs<'a> {
    pub root: String,
    pub objects: &'a [Object],
    pub results: &'a [(usize, bool, RootReach)],
    pub used: &'a BTreeSet<usize>,
    pub failed: &'a BTreeMap<String, String>,
    pub foreign: &'a BTreeMap<String, String>,
    pub missing: &'a [(String, String)],
    pub walk_errors: &'a [String],
    pub seconds: Seconds,
}

fn function_name(objects: &[Object], node: (usize, u32)) -> String {
    let o = &objects[node.0];
    if node.1 == OBJECT {
        return "[vDSO fallback of a static libc]".to_owned();
    }
    match o.facts.functions.get(node.1 as usize) {
        Some(f) => f.name.clone().unwrap_or_else(|| format!("fn_{:x}", f.start)),
        None => "?".to_owned(),
    }
}

pub fn build(i: Inputs<'_>) -> Reach {
    let mut by_key: BTreeMap<(Arch, u64), (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let mut undecided = Vec::new();
    let mut undecided_seen = BTreeSet::new();
    for (root, _dlopen, r) in i.results {
        let root_path = &i.objects[*root].path;
        for (key, nodes) in &r.syscalls {
            let e = by_key.entry(*key).or_default();
            e.0.insert(root_path.clone());
            for n in nodes {
                if e.1.len() < MAX_LISTED {
                    e.1.insert(format!("{}:{}", i.objects[n.0].path, function_name(i.objects, *n)));
                }
            }
        }
        for (n, u) in &r.undecided {
            if undecided_seen.insert((n.0, u.at)) {
                undecided.push(UndecidedSite {
                    file: i.objects[n.0].path.clone(),
                    function: function_name(i.objects, *n),
                    address: format!("{:#x}", u.at),
                    why: u.why.clone(),
                    reached_from: root_path.clone(),
                });
            }
        }
    }
    let mut abis: BTreeMap<String, Vec<SyscallReach>> = BTreeMap::new();
    for ((arch, nr), (binaries, sites)) in by_key {
        let name = u32::try_from(nr)
            .ok()
            .and_then(|n| syscall_table::name(arch, n))
            .map_or_else(|| format!("syscall_{nr}"), str::to_owned);
        abis.entry(abi_name(arch).to_owned()).or_default().push(SyscallReach {
            name,
            nr,
            binaries_total: binaries.len(),
            binaries: binaries.into_iter().take(MAX_LISTED).collect(),
            sites: sites.into_iter().collect(),
        });
    }
    let mut incomplete_files: Vec<FileProblem> = Vec::new();
    for &o in i.used {
        let obj = &i.objects[o];
        if !obj.facts.problems.is_empty() {
            incomplete_files.push(FileProblem { file: obj.path.clone(), problems: obj.facts.problems.clone() });
        }
    }
    for (file, why) in i.failed {
        incomplete_files.push(FileProblem { file: file.clone(), problems: vec![why.clone()] });
    }
    for e in i.walk_errors {
        incomplete_files.push(FileProblem { file: "(walk)".to_owned(), problems: vec![e.clone()] });
    }
    let undecided_total = undecided.len();
    undecided.truncate(MAX_UNDECIDED);
    let mut missing: Vec<Missing> =
        i.missing.iter().map(|(b, l)| Missing { binary: b.clone(), library: l.clone() }).collect();
    missing.sort_by(|a, b| (&a.binary, &a.library).cmp(&(&b.binary, &b.library)));
    missing.dedup_by(|a, b| a.binary == b.binary && a.library == b.library);
    Reach {
        root: i.root,
        abis,
        complete: undecided_total == 0 && incomplete_files.is_empty() && missing.is_empty(),
        files: i.objects.len(),
        executables: i.results.iter().filter(|r| !r.1).count(),
        dlopen_roots: i.results.iter().filter(|r| r.1).count(),
        undecided,
        undecided_total,
        incomplete_files,
        foreign_files: i
            .foreign
            .iter()
            .map(|(f, why)| FileProblem { file: f.clone(), problems: vec![why.clone()] })
            .collect(),
        missing_libraries: missing,
        timing: i.seconds,
        unchanged: false,
    }
}
