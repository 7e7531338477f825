//! Syscall names and numbers per ABI, from the maintained tables of the
//! `syscalls` crate (generated from the kernel's syscall tables), never a
//! hand-written list.

use std::str::FromStr;

use crate::types::Arch;

/// Name of syscall `nr` in `arch`, if the table has one.
pub fn name(arch: Arch, nr: u32) -> Option<&'static str> {
    match arch {
        Arch::X86_64 => syscalls::x86_64::Sysno::new(nr as usize).map(|s| s.name()),
        Arch::I386 => syscalls::x86::Sysno::new(nr as usize).map(|s| s.name()),
        Arch::X32 => None,
    }
}

/// Number of syscall `name` in `arch`, if the ABI has it.
pub fn number(arch: Arch, name: &str) -> Option<u32> {
    match arch {
        Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok().map(|s| s.id() as u32),
        Arch::I386 => syscalls::x86::Sysno::from_str(name).ok().map(|s| s.id() as u32),
        Arch::X32 => None,
    }
}

/// Every (number, name) of an ABI, ascending by number.
pub fn all(arch: Arch) -> Vec<(u32, &'static str)> {
    match arch {
        Arch::X86_64 => syscalls::x86_64::Sysno::iter().map(|s| (s.id() as u32, s.name())).collect(),
        Arch::I386 => syscalls::x86::Sysno::iter().map(|s| (s.id() as u32, s.name())).collect(),
        Arch::X32 => Vec::new(),
    }
}

/// Name to show for a number the table lacks.
pub fn display_name(arch: Arch, nr: u32) -> String {
    name(arch, nr).map_or_else(|| format!("syscall_{nr}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abis_differ_for_the_same_number() {
        assert_eq!(name(Arch::X86_64, 90), Some("chmod"));
        assert_eq!(name(Arch::I386, 15), Some("chmod"));
        assert_eq!(number(Arch::I386, "chmod"), Some(15));
        assert_eq!(number(Arch::X86_64, "socketcall"), None);
        assert_eq!(number(Arch::I386, "socketcall"), Some(102));
        assert_eq!(display_name(Arch::X86_64, 4000), "syscall_4000");
    }
}
