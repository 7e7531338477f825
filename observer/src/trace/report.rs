//! The trace report: per syscall and ABI, calls, errors and denials, sorted by
//! name, as a table (like `strace -c -S name`) or as JSON (docs/cli.md).

use std::fmt::Write as _;

use serde::Serialize;

use crate::probe::RowCounts;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReportRow {
    pub name: String,
    pub abi: String,
    pub calls: u64,
    pub errors: u64,
    pub denied: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub exit_code: i32,
    pub syscalls: Vec<ReportRow>,
}

impl Report {
    pub fn empty(exit_code: i32) -> Self {
        Self { exit_code, syscalls: Vec::new() }
    }

    pub fn from_rows(exit_code: i32, rows: &[RowCounts]) -> Self {
        let mut syscalls: Vec<ReportRow> = rows
            .iter()
            .map(|r| {
                let (name, abi) = crate::rows::describe(r.row);
                ReportRow {
                    name,
                    abi: abi.to_owned(),
                    calls: u64::from(r.calls),
                    errors: u64::from(r.errors),
                    denied: u64::from(r.denied),
                }
            })
            .collect();
        syscalls.sort_by(|a, b| (&a.name, &a.abi).cmp(&(&b.name, &b.abi)));
        Self { exit_code, syscalls }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{:<24} {:<7} {:>12} {:>10} {:>8}", "syscall", "abi", "calls", "errors", "denied");
        let _ = writeln!(out, "{:-<24} {:-<7} {:->12} {:->10} {:->8}", "", "", "", "", "");
        let (mut calls, mut errors, mut denied) = (0, 0, 0);
        for r in &self.syscalls {
            let _ = writeln!(out, "{:<24} {:<7} {:>12} {:>10} {:>8}", r.name, r.abi, r.calls, r.errors, r.denied);
            calls += r.calls;
            errors += r.errors;
            denied += r.denied;
        }
        let _ = writeln!(out, "{:-<24} {:-<7} {:->12} {:->10} {:->8}", "", "", "", "", "");
        let _ = writeln!(out, "{:<24} {:<7} {:>12} {:>10} {:>8}", "total", "", calls, errors, denied);
        out
    }

    #[cfg(test)]
    pub fn row(&self, name: &str, abi: &str) -> Option<&ReportRow> {
        self.syscalls.iter().find(|r| r.name == name && r.abi == abi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_rows_per_abi_and_sorts_them() {
        let rows = [
            RowCounts { row: 90, calls: 2, errors: 1, denied: 0 },
            RowCounts { row: 512 + 15, calls: 1, errors: 0, denied: 1 },
            RowCounts { row: 0, calls: 3, errors: 0, denied: 0 },
            RowCounts { row: 1024, calls: 4, errors: 4, denied: 0 },
        ];
        let r = Report::from_rows(0, &rows);
        let names: Vec<_> = r.syscalls.iter().map(|r| (r.name.as_str(), r.abi.as_str())).collect();
        assert_eq!(names, [("chmod", "i386"), ("chmod", "x86_64"), ("invalid", "any"), ("read", "x86_64")]);
        assert_eq!(r.row("chmod", "i386").unwrap().denied, 1);
        let table = r.table();
        let cells = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let lines: Vec<Vec<String>> = table.lines().map(cells).collect();
        // Header, rule, one line per row in the sorted order, rule, totals.
        assert_eq!(lines.len(), 2 + 4 + 2, "{table}");
        assert_eq!(lines[0], ["syscall", "abi", "calls", "errors", "denied"]);
        assert_eq!(lines[2], ["chmod", "i386", "1", "0", "1"]);
        assert_eq!(lines[3], ["chmod", "x86_64", "2", "1", "0"]);
        assert_eq!(lines[4], ["invalid", "any", "4", "4", "0"]);
        assert_eq!(lines[5], ["read", "x86_64", "3", "0", "0"]);
        assert_eq!(lines[7], ["total", "10", "5", "1"], "{table}");
    }
}
