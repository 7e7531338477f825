//! The values a container used for the deciding argument of a few syscalls
//! (`observer_common::args`), as user space keeps, shows and exports them.
//!
//! Values here are decoded from the kernel's compact form:
//! - `socket`: `family << 32 | type` (type without SOCK_NONBLOCK/SOCK_CLOEXEC);
//! - `clone`, `unshare`, `setns`: the namespace flags (`CLONE_NEW*`), 0 for none;
//! - `setsockopt`, `getsockopt`: `level << 32 | optname`;
//! - `mmap`, `mprotect`: 0 (no PROT_EXEC) or 4 (PROT_EXEC);
//! - the others: the argument itself (`personality`'s persona, `prctl`'s
//!   option, `fcntl`'s cmd, `ioctl`'s request, `kill`'s signal, `socketcall`'s call).

pub mod conditions;
pub mod drift;
pub mod names;
pub mod narrow;
pub mod side_doors;

use std::collections::{BTreeMap, BTreeSet};

pub use observer_common::args::ArgKind;
use observer_common::args::{ArgSets, F_LINUX_SPECIFIC_BASE, VALUE_TAG, ns};
use serde::{Deserialize, Serialize};

/// The values seen for one kind, and whether its set overflowed (then export
/// falls back to the name-level rule).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueSet {
    pub values: BTreeSet<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overflowed: bool,
}

/// Every kind a container used, keyed by `kind_name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeenArgs(pub BTreeMap<String, ValueSet>);

/// The name a kind goes by in views, state files and the CLI.
pub fn kind_name(kind: ArgKind) -> &'static str {
    match kind {
        ArgKind::Socket => "socket",
        ArgKind::Clone => "clone",
        ArgKind::Unshare => "unshare",
        ArgKind::Setns => "setns",
        ArgKind::Personality => "personality",
        ArgKind::Prctl => "prctl",
        ArgKind::Fcntl => "fcntl",
        ArgKind::Ioctl => "ioctl",
        ArgKind::Setsockopt => "setsockopt",
        ArgKind::Getsockopt => "getsockopt",
        ArgKind::Mmap => "mmap",
        ArgKind::Mprotect => "mprotect",
        ArgKind::Kill => "kill",
        ArgKind::Socketcall => "socketcall",
        ArgKind::Clone3 => "clone3",
    }
}

pub fn kind_by_name(name: &str) -> Option<ArgKind> {
    ArgKind::ALL.into_iter().find(|k| kind_name(*k) == name)
}

/// Which argument a kind records, as people read it.
pub fn argument_name(kind: ArgKind) -> &'static str {
    match kind {
        ArgKind::Socket => "family, type",
        ArgKind::Clone | ArgKind::Clone3 | ArgKind::Unshare => "namespace flags",
        ArgKind::Setns => "nstype",
        ArgKind::Personality => "persona",
        ArgKind::Prctl => "option",
        ArgKind::Fcntl => "cmd",
        ArgKind::Ioctl => "request",
        ArgKind::Setsockopt | ArgKind::Getsockopt => "level, optname",
        ArgKind::Mmap | ArgKind::Mprotect => "PROT_EXEC",
        ArgKind::Kill => "signal",
        ArgKind::Socketcall => "call",
    }
}

/// The syscall names (of any ABI) whose calls record into `kind`.
pub fn syscall_names(kind: ArgKind) -> &'static [&'static str] {
    match kind {
        ArgKind::Fcntl => &["fcntl", "fcntl64"],
        ArgKind::Mmap => &["mmap", "mmap2"],
        _ => std::slice::from_ref(match kind {
            ArgKind::Socket => &"socket",
            ArgKind::Clone => &"clone",
            ArgKind::Unshare => &"unshare",
            ArgKind::Setns => &"setns",
            ArgKind::Personality => &"personality",
            ArgKind::Prctl => &"prctl",
            ArgKind::Ioctl => &"ioctl",
            ArgKind::Setsockopt => &"setsockopt",
            ArgKind::Getsockopt => &"getsockopt",
            ArgKind::Mprotect => &"mprotect",
            ArgKind::Kill => &"kill",
            ArgKind::Clone3 => &"clone3",
            _ => &"socketcall",
        }),
    }
}

impl SeenArgs {
    /// Decodes a slot's `ArgSets` (as read from the kernel) into values.
    pub fn from_sets(sets: &ArgSets) -> SeenArgs {
        let mut out = BTreeMap::new();
        for kind in ArgKind::ALL {
            let region = kind.region();
            let mut set = ValueSet { overflowed: sets.overflow & (1 << kind as u64) != 0, ..ValueSet::default() };
            let words = &sets.bits[usize::from(region.bit_word)..usize::from(region.bit_word + region.bit_words)];
            for (w, &word) in words.iter().enumerate() {
                let mut rest = word;
                while rest != 0 {
                    let b = rest.trailing_zeros();
                    set.values.insert(bit_value(kind, w as u32 * 64 + b));
                    rest &= rest - 1;
                }
            }
            let entries = &sets.values[usize::from(region.value_at)..usize::from(region.value_at + region.values)];
            for &entry in entries {
                if entry & VALUE_TAG != 0 {
                    set.values.insert(entry_value(kind, entry as u32));
                }
            }
            if !set.values.is_empty() || set.overflowed {
                out.insert(kind_name(kind).to_owned(), set);
            }
        }
        SeenArgs(out)
    }

    /// Adds what `other` holds (sets only grow).
    pub fn merge(&mut self, other: &SeenArgs) {
        for (kind, set) in &other.0 {
            let mine = self.0.entry(kind.clone()).or_default();
            mine.values.extend(&set.values);
            mine.overflowed |= set.overflowed;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, kind: ArgKind) -> Option<&ValueSet> {
        self.0.get(kind_name(kind))
    }
}

/// The value bit `bit` of a kind's bitmap stands for.
fn bit_value(kind: ArgKind, bit: u32) -> u64 {
    match kind {
        ArgKind::Clone | ArgKind::Clone3 | ArgKind::Unshare | ArgKind::Setns => ns::expand(bit),
        ArgKind::Fcntl if bit >= 64 => F_LINUX_SPECIFIC_BASE + u64::from(bit - 64),
        ArgKind::Mmap | ArgKind::Mprotect => u64::from(bit) * observer_common::args::PROT_EXEC,
        _ => u64::from(bit),
    }
}

/// The value a kind's value entry (tag removed) stands for.
fn entry_value(kind: ArgKind, v: u32) -> u64 {
    match kind {
        ArgKind::Socket | ArgKind::Setsockopt | ArgKind::Getsockopt => {
            (u64::from(v >> 16) << 32) | u64::from(v & 0xffff)
        }
        _ => u64::from(v),
    }
}

#[cfg(test)]
mod tests {
    use observer_common::args::{ARG_BIT_WORDS, ARG_VALUES, Place, place};

    use super::*;

    fn empty() -> ArgSets {
        ArgSets { bits: [0; ARG_BIT_WORDS], values: [0; ARG_VALUES], overflow: 0 }
    }

    /// What the kernel program does with a call, in plain Rust.
    fn record(sets: &mut ArgSets, kind: ArgKind, a: [u64; 3]) {
        let r = kind.region();
        match place(kind, a) {
            Place::Bit(b) => sets.bits[usize::from(r.bit_word) + (b / 64) as usize] |= 1 << (b % 64),
            Place::Value(v) => {
                let entries = &mut sets.values[usize::from(r.value_at)..usize::from(r.value_at + r.values)];
                if !entries.contains(&(VALUE_TAG | u64::from(v))) {
                    match entries.iter_mut().find(|e| **e == 0) {
                        Some(e) => *e = VALUE_TAG | u64::from(v),
                        None => sets.overflow |= 1 << kind as u64,
                    }
                }
            }
            Place::Overflow => sets.overflow |= 1 << kind as u64,
        }
    }

    #[test]
    fn kernel_sets_decode_to_the_values_called() {
        let mut s = empty();
        record(&mut s, ArgKind::Socket, [1, 1 | 0o2000000, 0]);
        record(&mut s, ArgKind::Socket, [10, 2, 0]);
        record(&mut s, ArgKind::Clone, [ns::CLONE_NEWUSER | ns::CLONE_NEWNS | 17, 0, 0]);
        record(&mut s, ArgKind::Clone, [0x3d0f00, 0, 0]);
        record(&mut s, ArgKind::Fcntl, [3, 1030, 0]);
        record(&mut s, ArgKind::Setsockopt, [3, 6, 1]);
        record(&mut s, ArgKind::Mmap, [0, 4096, 5]);
        record(&mut s, ArgKind::Prctl, [0x5356_4d41, 0, 0]);
        record(&mut s, ArgKind::Prctl, [38, 0, 0]);
        for r in 0..20 {
            record(&mut s, ArgKind::Ioctl, [1, 0x5400 + r, 0]);
        }
        let seen = SeenArgs::from_sets(&s);
        let values = |k: ArgKind| seen.get(k).map(|s| s.values.iter().copied().collect::<Vec<_>>());
        assert_eq!(values(ArgKind::Socket), Some(vec![1 << 32 | 1, 10 << 32 | 2]));
        assert_eq!(values(ArgKind::Clone), Some(vec![0, ns::CLONE_NEWNS | ns::CLONE_NEWUSER]));
        assert_eq!(values(ArgKind::Fcntl), Some(vec![1030]));
        assert_eq!(values(ArgKind::Setsockopt), Some(vec![6 << 32 | 1]));
        assert_eq!(values(ArgKind::Mmap), Some(vec![4]));
        assert_eq!(values(ArgKind::Prctl), Some(vec![38, 0x5356_4d41]));
        let ioctl = seen.get(ArgKind::Ioctl).unwrap();
        assert!(ioctl.overflowed);
        assert_eq!(ioctl.values.len(), 16);
        assert_eq!(seen.get(ArgKind::Kill), None, "kinds never called are absent");

        let mut merged = SeenArgs::default();
        merged.merge(&seen);
        merged.merge(&seen);
        assert_eq!(merged, seen, "merging is idempotent");
        let json = serde_json::to_string(&seen).unwrap();
        assert_eq!(serde_json::from_str::<SeenArgs>(&json).unwrap(), seen);
    }

    #[test]
    fn every_kind_has_names() {
        for kind in ArgKind::ALL {
            assert_eq!(kind_by_name(kind_name(kind)), Some(kind));
            assert!(!syscall_names(kind).is_empty());
            assert!(!argument_name(kind).is_empty());
        }
    }
}
