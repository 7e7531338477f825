//! An `observer reach` result as the kernel's rows (ABI, number): what the
//! agent judges calls against (`unreachable_syscall`) and what
//! `observer enforce --unreachable` arms.

use std::collections::BTreeSet;

use observer_common::counters::row_of;
use observer_reach::Reach;

/// `restart_syscall` (x86_64 219, i386 0): the kernel makes a task enter it
/// after a signal interrupted a sleep; no instruction of an image names it.
const KERNEL_MADE: [(u32, i64); 2] = [(0, 219), (1, 0)];

/// The rows a result reaches, per ABI, and those the kernel makes itself.
pub fn rows_of(reach: &Reach) -> BTreeSet<u32> {
    let mut rows: BTreeSet<u32> = KERNEL_MADE.iter().map(|&(abi, nr)| row_of(abi, nr)).collect();
    for (abi, calls) in &reach.abis {
        let index = match abi.as_str() {
            "x86_64" => 0,
            "i386" => 1,
            _ => continue,
        };
        rows.extend(calls.iter().map(|c| row_of(index, c.nr as i64)));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_abis_apart_and_restart_syscall_is_always_reachable() {
        let reach: Reach = serde_json::from_value(serde_json::json!({
            "root": "/", "complete": true, "files": 1, "executables": 1, "dlopen_roots": 0,
            "undecided": [], "undecided_total": 0, "incomplete_files": [], "foreign_files": [],
            "missing_libraries": [], "timing": {"files": 0.0, "loader": 0.0, "reachability": 0.0},
            "abis": {
                "x86_64": [{"name": "chmod", "nr": 90, "binaries": [], "binaries_total": 0, "sites": []}],
                "i386": [{"name": "chmod", "nr": 15, "binaries": [], "binaries_total": 0, "sites": []}]
            }
        }))
        .unwrap();
        let rows = rows_of(&reach);
        assert!(rows.contains(&90) && rows.contains(&(512 + 15)));
        assert!(!rows.contains(&15) && !rows.contains(&(512 + 90)));
        assert!(rows.contains(&219) && rows.contains(&512));
        assert_eq!(rows.len(), 4);
    }
}
