//! Syscall names and numbers per ABI, from maintained tables, never a
//! hand-written list: the `syscalls` crate's (generated from the kernel's
//! syscall tables) for the x86 ABIs, libseccomp's for arm64 (what runtimes
//! resolve a profile's names with when they compile it for arm64).

use std::{str::FromStr, sync::OnceLock};

use libseccomp::{ScmpArch, ScmpSyscall};

use crate::types::Arch;

/// Numbers scanned when reading libseccomp's arm64 table (arm64's highest
/// is below 500 in Linux 6.x).
const AARCH64_SCAN: u32 = 1024;

/// arm64's (number, name) pairs as the linked libseccomp knows them, read
/// once.
fn aarch64() -> &'static [(u32, String)] {
    static TABLE: OnceLock<Vec<(u32, String)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..AARCH64_SCAN)
            .filter_map(|nr| {
                let name = ScmpSyscall::from(nr as i32).get_name_by_arch(ScmpArch::Aarch64).ok()?;
                // libseccomp answers a number it does not know with no name
                // or with a made-up one; only a name that resolves back to
                // the same number is arm64's.
                let back = ScmpSyscall::from_name_by_arch(&name, ScmpArch::Aarch64).ok().map(i32::from);
                (back == Some(nr as i32)).then_some((nr, name))
            })
            .collect()
    })
}

/// Name of syscall `nr` in `arch`, if the table has one.
pub fn name(arch: Arch, nr: u32) -> Option<&'static str> {
    match arch {
        Arch::X86_64 => syscalls::x86_64::Sysno::new(nr as usize).map(|s| s.name()),
        Arch::I386 => syscalls::x86::Sysno::new(nr as usize).map(|s| s.name()),
        Arch::X32 => None,
        Arch::Aarch64 => aarch64().iter().find(|(n, _)| *n == nr).map(|(_, name)| name.as_str()),
    }
}

/// Number of syscall `name` in `arch`, if the ABI has it.
pub fn number(arch: Arch, name: &str) -> Option<u32> {
    match arch {
        Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok().map(|s| s.id() as u32),
        Arch::I386 => syscalls::x86::Sysno::from_str(name).ok().map(|s| s.id() as u32),
        Arch::X32 => None,
        Arch::Aarch64 => aarch64().iter().find(|(_, n)| n == name).map(|(nr, _)| *nr),
    }
}

/// Every (number, name) of an ABI, ascending by number.
pub fn all(arch: Arch) -> Vec<(u32, &'static str)> {
    match arch {
        Arch::X86_64 => syscalls::x86_64::Sysno::iter().map(|s| (s.id() as u32, s.name())).collect(),
        Arch::I386 => syscalls::x86::Sysno::iter().map(|s| (s.id() as u32, s.name())).collect(),
        Arch::X32 => Vec::new(),
        Arch::Aarch64 => aarch64().iter().map(|(nr, name)| (*nr, name.as_str())).collect(),
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

    #[test]
    fn arm64_names_are_libseccomps() {
        assert_eq!(number(Arch::Aarch64, "openat"), Some(56));
        assert_eq!(name(Arch::Aarch64, 79), Some("newfstatat"));
        assert_eq!(number(Arch::Aarch64, "clone3"), Some(435));
        // Names arm64 lacks: libseccomp gives them negative pseudo numbers.
        for missing in ["open", "stat", "fork", "pipe", "epoll_wait", "fstatat", "futex_time64"] {
            assert_eq!(number(Arch::Aarch64, missing), None, "{missing}");
        }
        let all = all(Arch::Aarch64);
        assert!(all.len() > 250, "libseccomp's arm64 table has {} names", all.len());
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
