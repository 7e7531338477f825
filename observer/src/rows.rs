//! Rows (ABI, syscall number) as people read them: one home for what the
//! trace report, the agent's profiles and its alerts show.

use observer_common::counters::{Abi, Row};
use observer_profile::{syscall_table, types::Arch};

pub fn arch_of(abi: Abi) -> Arch {
    match abi {
        Abi::X86_64 => Arch::X86_64,
        Abi::I386 => Arch::I386,
    }
}

/// The syscall's name and its ABI's; `("invalid", "any")` for the row that
/// counts numbers out of range.
pub fn describe(row: u32) -> (String, &'static str) {
    match Row::decode(row) {
        Some(r) => (syscall_table::display_name(arch_of(r.abi), r.nr), r.abi.name()),
        None => ("invalid".to_owned(), "any"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_as_names() {
        assert_eq!(describe(90), ("chmod".to_owned(), "x86_64"));
        assert_eq!(describe(512 + 15), ("chmod".to_owned(), "i386"));
        assert_eq!(describe(observer_common::counters::ROW_INVALID), ("invalid".to_owned(), "any"));
    }
}
