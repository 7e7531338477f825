//! Architecture names as profiles write them: libseccomp's `SCMP_ARCH_*`
//! tokens and the Go `GOARCH` names Docker compares `includes.arches` with.

use crate::types::Arch;

/// Every `SCMP_ARCH_*` token libseccomp accepts; a profile naming anything
/// else is rejected, as runc rejects it.
pub const SCMP_ARCHES: &[&str] = &[
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_SH",
];

/// The `SCMP_ARCH_*` token of an ABI observer models.
pub fn scmp_name(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "SCMP_ARCH_X86_64",
        Arch::I386 => "SCMP_ARCH_X86",
        Arch::X32 => "SCMP_ARCH_X32",
        Arch::Aarch64 => "SCMP_ARCH_AARCH64",
    }
}

/// The ABI an `SCMP_ARCH_*` token names, if observer models it.
pub fn from_scmp_name(name: &str) -> Option<Arch> {
    match name {
        "SCMP_ARCH_X86_64" => Some(Arch::X86_64),
        "SCMP_ARCH_X86" => Some(Arch::I386),
        "SCMP_ARCH_X32" => Some(Arch::X32),
        "SCMP_ARCH_AARCH64" => Some(Arch::Aarch64),
        _ => None,
    }
}

/// Whether a name from `includes.arches` / `excludes.arches` means `arch`.
/// Docker compares these with Go's `GOARCH` (`amd64`, `386`); profiles also
/// write `x86_64`, `x86` and `x32`, so those count too.
pub fn docker_arch_matches(name: &str, arch: Arch) -> bool {
    let name = name.to_ascii_lowercase();
    match arch {
        Arch::X86_64 => matches!(name.as_str(), "amd64" | "x86_64"),
        Arch::I386 => matches!(name.as_str(), "386" | "x86" | "i386" | "i686"),
        Arch::X32 => name == "x32",
        Arch::Aarch64 => matches!(name.as_str(), "arm64" | "aarch64"),
    }
}

/// Whether two ABIs run on the same machine: a filter for one may list the
/// other as a sub-architecture (x86_64 with i386 and x32). observer models
/// no 32-bit arm ABI, so arm64 stands alone.
pub fn same_machine(a: Arch, b: Arch) -> bool {
    (a == Arch::Aarch64) == (b == Arch::Aarch64)
}

/// The ABI a `--arch` value names (short names, Go's `GOARCH` names and
/// `SCMP_ARCH_*` tokens).
pub fn parse_arch(name: &str) -> Option<Arch> {
    Some(match name {
        "x86_64" | "amd64" | "SCMP_ARCH_X86_64" => Arch::X86_64,
        "i386" | "x86" | "386" | "SCMP_ARCH_X86" => Arch::I386,
        "aarch64" | "arm64" | "SCMP_ARCH_AARCH64" => Arch::Aarch64,
        _ => return None,
    })
}

/// Short lower-case name used in reports and keys (`x86_64`, `i386`, `x32`,
/// `aarch64`).
pub fn short_name(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::I386 => "i386",
        Arch::X32 => "x32",
        Arch::Aarch64 => "aarch64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        for arch in [Arch::X86_64, Arch::I386, Arch::X32] {
            assert_eq!(from_scmp_name(scmp_name(arch)), Some(arch));
            assert!(SCMP_ARCHES.contains(&scmp_name(arch)));
        }
        assert_eq!(from_scmp_name("SCMP_ARCH_ARM"), None);
        assert_eq!(from_scmp_name("SCMP_ARCH_AARCH64"), Some(Arch::Aarch64));
        assert!(docker_arch_matches("arm64", Arch::Aarch64));
        assert!(!same_machine(Arch::X86_64, Arch::Aarch64));
        assert!(same_machine(Arch::X86_64, Arch::X32));
        assert_eq!(parse_arch("arm64"), Some(Arch::Aarch64));
        assert!(docker_arch_matches("amd64", Arch::X86_64));
        assert!(!docker_arch_matches("x32", Arch::X86_64));
        assert!(docker_arch_matches("x86", Arch::I386));
    }
}
