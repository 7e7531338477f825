//! The trace report: per syscall and ABI, calls, errors and denials, sorted by
//! name, as a table (like `strace -c -S name`) or as JSON (docs/cli.md); with
//! `--time`, strace's time columns too (`strace -c -w -S name`).

use std::fmt::Write as _;

use observer_probe::RowCounts;
use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReportRow {
    pub name: String,
    pub abi: String,
    pub calls: u64,
    pub errors: u64,
    pub denied: u64,
    /// `--time` only: nanoseconds from entry to return, summed over the calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_ns: Option<u64>,
    /// `--time` only: strace's `usecs/call` (time over calls, rounded down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usecs_per_call: Option<u64>,
    /// `--time` only: strace's `% time`, this row's share of all the time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_time: Option<f64>,
    /// The kernel's row (ABI and number), for adding times.
    #[serde(skip)]
    pub row: u32,
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
                    calls: r.calls,
                    errors: r.errors,
                    denied: r.denied,
                    time_ns: None,
                    usecs_per_call: None,
                    percent_time: None,
                    row: r.row,
                }
            })
            .collect();
        syscalls.sort_by(|a, b| (&a.name, &a.abi).cmp(&(&b.name, &b.abi)));
        Self { exit_code, syscalls }
    }

    /// Adds the time columns from the kernel's per-row totals.
    pub fn add_times(&mut self, time_ns: impl Fn(u32) -> u64) {
        let times: Vec<u64> = self.syscalls.iter().map(|r| time_ns(r.row)).collect();
        let total: u64 = times.iter().fold(0, |a, t| a.saturating_add(*t));
        for (r, t) in self.syscalls.iter_mut().zip(times) {
            r.time_ns = Some(t);
            r.usecs_per_call = Some((t / 1000).checked_div(r.calls).unwrap_or(0));
            r.percent_time = Some(if total == 0 { 0.0 } else { t as f64 * 100.0 / total as f64 });
        }
    }

    fn timed(&self) -> bool {
        self.syscalls.iter().any(|r| r.time_ns.is_some())
    }

    pub fn table(&self) -> String {
        if self.timed() {
            return self.timed_table();
        }
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

    /// strace -c -w's layout: `% time seconds usecs/call calls errors`, then
    /// denials, the syscall and its ABI.
    fn timed_table(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, cells: [&str; 8]| {
            let [pct, secs, per, calls, errors, denied, name, abi] = cells;
            let _ = writeln!(out, "{pct:>6} {secs:>11} {per:>11} {calls:>9} {errors:>9} {denied:>8} {name:<24} {abi}");
        };
        let rule = |out: &mut String| {
            let _ = writeln!(
                out,
                "{:->6} {:->11} {:->11} {:->9} {:->9} {:->8} {:-<24} {:-<7}",
                "", "", "", "", "", "", "", ""
            );
        };
        line(&mut out, ["% time", "seconds", "usecs/call", "calls", "errors", "denied", "syscall", "abi"]);
        rule(&mut out);
        let (mut calls, mut errors, mut denied, mut time) = (0u64, 0u64, 0u64, 0u64);
        let blank_zero = |n: u64| if n == 0 { String::new() } else { n.to_string() };
        for r in &self.syscalls {
            let t = r.time_ns.unwrap_or(0);
            line(
                &mut out,
                [
                    &format!("{:.2}", r.percent_time.unwrap_or(0.0)),
                    &seconds(t),
                    &r.usecs_per_call.unwrap_or(0).to_string(),
                    &r.calls.to_string(),
                    &blank_zero(r.errors),
                    &blank_zero(r.denied),
                    &r.name,
                    &r.abi,
                ],
            );
            calls = calls.saturating_add(r.calls);
            errors = errors.saturating_add(r.errors);
            denied = denied.saturating_add(r.denied);
            time = time.saturating_add(t);
        }
        rule(&mut out);
        let per_call = (time / 1000).checked_div(calls).unwrap_or(0);
        line(
            &mut out,
            [
                "100.00",
                &seconds(time),
                &per_call.to_string(),
                &calls.to_string(),
                &blank_zero(errors),
                &blank_zero(denied),
                "total",
                "",
            ],
        );
        out
    }

    #[cfg(test)]
    pub fn row(&self, name: &str, abi: &str) -> Option<&ReportRow> {
        self.syscalls.iter().find(|r| r.name == name && r.abi == abi)
    }
}

/// Seconds with microseconds, as strace prints them.
fn seconds(ns: u64) -> String {
    format!("{}.{:06}", ns / 1_000_000_000, ns % 1_000_000_000 / 1000)
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

    #[test]
    fn time_columns_follow_strace() {
        let rows = [
            RowCounts { row: 230, calls: 2, errors: 0, denied: 0 },
            RowCounts { row: 0, calls: 4, errors: 1, denied: 0 },
        ];
        let mut r = Report::from_rows(0, &rows);
        r.add_times(|row| if row == 230 { 600_000_000 } else { 200_000_000 });
        let nanosleep = r.row("clock_nanosleep", "x86_64").unwrap();
        assert_eq!(nanosleep.time_ns, Some(600_000_000));
        assert_eq!(nanosleep.usecs_per_call, Some(300_000));
        assert_eq!(nanosleep.percent_time, Some(75.0));
        let table = r.table();
        let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["%", "time", "seconds", "usecs/call", "calls", "errors", "denied", "syscall", "abi"]);
        assert_eq!(lines[2], ["75.00", "0.600000", "300000", "2", "clock_nanosleep", "x86_64"], "{table}");
        assert_eq!(lines[3], ["25.00", "0.200000", "50000", "4", "1", "read", "x86_64"], "{table}");
        assert_eq!(lines[5], ["100.00", "0.800000", "133333", "6", "1", "total"], "{table}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["syscalls"][0]["time_ns"], 600_000_000);
        // Without --time the JSON keeps its old shape.
        let plain = serde_json::to_value(Report::from_rows(0, &rows)).unwrap();
        assert!(plain["syscalls"][0].get("time_ns").is_none());
    }
}
