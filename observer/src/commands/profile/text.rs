//! What `observer profile` prints for people: the live profile's table and
//! legend, the argument values seen, and the check and diff reports.

use std::fmt::Write as _;

use observer_contract::views::ProfileView;
use observer_profile::args::{SeenArgs, argument_name, kind_by_name, names::value_name};

use crate::printable::printable;

pub(super) fn table(view: &ProfileView) -> String {
    let mut out = String::new();
    // Names and comm come from the kernel, the container and profile files: escaped.
    let s = |v: &str| printable(v).into_owned();
    let state = view.state.as_str();
    let _ = writeln!(
        out,
        "container {} ({}), image {}, state {state}",
        s(&view.name),
        crate::printable::short(&s(&view.id)),
        s(&view.image)
    );
    if let Some(since) = &view.observed_since {
        let _ = writeln!(out, "observed since {since} (it was running before the agent saw it)");
    }
    let _ = writeln!(
        out,
        "{:<22} {:<7} {:<9} {:>10} {:>8} {:>7}  {:<28} {:<30} {:>7} COMM",
        "SYSCALL", "ABI", "USED BY", "CALLS", "ERRORS", "DENIED", "PHASES", "FIRST USE", "PID"
    );
    for r in &view.syscalls {
        let first = r.owners_first_use();
        let _ = writeln!(
            out,
            "{:<22} {:<7} {:<9} {:>10} {:>8} {:>7}  {:<28} {:<30} {:>7} {}",
            s(&r.name),
            s(&r.abi),
            r.owner.label(),
            r.calls,
            r.errors,
            r.denied,
            r.phases_label(),
            first.as_ref().map_or_else(|| "-".into(), |f| s(&f.first_seen)),
            first.as_ref().map_or_else(|| "-".into(), |f| f.pid.to_string()),
            first.as_ref().map_or_else(|| "-".into(), |f| s(&f.comm)),
        );
    }
    out.push_str(LEGEND);
    out.push_str(&args_table(&view.args));
    out
}

/// What the columns mean: said under every table, since a row's counts and
/// its phases are easily read as one thing.
const LEGEND: &str = "
CALLS, ERRORS and DENIED are totals over every phase (the kernel keeps one count per syscall).
USED BY  container: the container's own processes made the call (the runtime's init may have
         too); FIRST USE, PID and COMM are then the container's own first call.
         runtime: only the runtime's init made it, starting the container.
PHASES   init: the runtime's init before its seccomp filter; init-filtered: after it, before
         the exec; container: the container's own processes; denied:PHASE: seccomp denied it.
";

/// The argument values seen, per kind, by name: `socket (family, type): AF_UNIX, SOCK_STREAM; ...`.
pub(super) fn args_table(args: &SeenArgs) -> String {
    let mut out = String::new();
    if args.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\nARGUMENTS (in the phases a seccomp filter sees)");
    for (kind_name, set) in &args.0 {
        let Some(kind) = kind_by_name(kind_name) else {
            // A kind this CLI does not know (a newer agent): its numbers.
            let values: Vec<String> = set.values.iter().map(|v| format!("{v:#x}")).collect();
            let _ = writeln!(out, "{:<12} {}", printable(kind_name), values.join("; "));
            continue;
        };
        let values: Vec<String> = set.values.iter().map(|v| value_name(kind, *v)).collect();
        let more = if set.overflowed { " (and more: the set overflowed, export keeps the plain rule)" } else { "" };
        let _ =
            writeln!(out, "{:<12} {:<18} {}{more}", kind_name, format!("({})", argument_name(kind)), values.join("; "));
    }
    out
}

pub(super) fn check_text(report: &observer_profile::check::CheckReport) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let _ = writeln!(out, "{:<7} {:<22} {}", f.severity.to_string(), f.code, printable(&f.message));
    }
    if report.findings.is_empty() {
        out.push_str("no findings\n");
    }
    out
}

pub(super) fn diff_text(d: &observer_profile::diff::ProfileDiff) -> String {
    let mut out = String::new();
    if let Some(c) = &d.default_action {
        let _ = writeln!(out, "default action: {} -> {}", printable(&c.old), printable(&c.new));
    }
    let list = |names: &[String]| names.iter().map(|n| printable(n)).collect::<Vec<_>>().join(" ");
    for abi in &d.abis {
        let _ = writeln!(out, "{}:", observer_profile::model::arch::short_name(abi.arch));
        let _ = writeln!(out, "  added:   {}", list(&abi.added));
        let _ = writeln!(out, "  removed: {}", list(&abi.removed));
        for c in &abi.changed {
            let _ = writeln!(out, "  changed: {} {} -> {}", printable(&c.name), printable(&c.old), printable(&c.new));
        }
    }
    out
}
