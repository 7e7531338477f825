//! `observer compare` as text: per group of processes, what was used but
//! denied, what is conditional, how much allowed went unused, and the
//! argument drift.

use std::fmt::Write as _;

use observer_profile::args::drift::{ArgDrift, Value};

use super::report::{CompareReport, label};
use crate::printable::printable;

pub fn text(out: &CompareReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "container {} ({})", out.container.name, out.container.image);
    for g in &out.groups {
        let pids = serde_json::to_string(&g.pids).unwrap_or_default();
        let _ = writeln!(s, "\n{} — pids {pids}", g.source);
        let _ = writeln!(s, "  used but denied:  {}", g.used_but_denied.join(" "));
        let _ = writeln!(s, "  conditional:      {}", g.conditional.join(" "));
        let _ = writeln!(s, "  denied attempts:  {}", serde_json::to_string(&g.denied_attempts).unwrap_or_default());
        for abi in ["x86_64", "i386"] {
            if let Some(a) = g.abis.get(abi) {
                let _ = writeln!(
                    s,
                    "  {abi}: {} allowed, {} used, {} allowed but unused ({:.0}%)",
                    a.allowed,
                    a.used,
                    a.allowed_but_unused,
                    a.unused_share * 100.0
                );
            }
        }
        s.push_str(&drift_text(&g.argument_drift));
        if let Some(tiers) = &g.reach_tiers {
            s.push_str(&tiers_text(tiers));
        }
        let _ = writeln!(s, "  verdict: {}", g.verdict);
    }
    if let Some(r) = &out.reach {
        s.push_str(&crate::commands::reach_groups::text(r));
    }
    s
}

/// `--reach`: per ABI, each list of a group split by what the image can make.
fn tiers_text(tiers: &std::collections::BTreeMap<String, super::reach::ReachTiers>) -> String {
    let mut s = String::new();
    let list = |names: &[String]| {
        if names.is_empty() { "-".to_owned() } else { names.iter().map(|n| printable(n)).collect::<Vec<_>>().join(" ") }
    };
    for (abi, t) in tiers {
        let _ = writeln!(s, "  {abi} by what the image can reach:");
        for (what, names) in [
            ("used, reachable", &t.used_reachable),
            ("used, NOT reachable", &t.used_unreachable),
            ("denied, reachable", &t.denied_reachable),
            ("denied, not reachable", &t.denied_unreachable),
            ("allowed unused, reachable", &t.allowed_unused_reachable),
            ("allowed unused, not reachable", &t.allowed_unused_unreachable),
        ] {
            let _ = writeln!(s, "    {what} ({}): {}", names.len(), list(names));
        }
    }
    s
}

/// The `argument_drift` list as lines: per syscall, the values used but
/// denied, those undecided, and what the conditions allow unused.
pub fn drift_text(drifts: &[ArgDrift]) -> String {
    let mut s = String::new();
    if drifts.is_empty() {
        return s;
    }
    let _ = writeln!(s, "  argument drift:");
    let names = |v: &[Value]| v.iter().map(|x| printable(&x.name).into_owned()).collect::<Vec<_>>().join("; ");
    for d in drifts {
        let arch = match d.arch {
            observer_profile::types::Arch::X86_64 => "x86_64",
            observer_profile::types::Arch::I386 => "i386",
            observer_profile::types::Arch::X32 => "x32",
            observer_profile::types::Arch::Aarch64 => "aarch64",
        };
        let syscall = label(arch, &d.syscall);
        if !d.denied.is_empty() {
            let _ = writeln!(s, "    {syscall}: used but denied by a condition: {}", names(&d.denied));
        }
        if !d.undecided.is_empty() {
            let _ = writeln!(
                s,
                "    {syscall}: used, allowed or denied by argument bits not recorded: {}",
                names(&d.undecided)
            );
        }
        if !d.allowed_unused.is_empty() {
            let _ = writeln!(s, "    {syscall}: allowed but never used: {}", names(&d.allowed_unused));
        }
        for c in &d.unexercised_conditions {
            let _ = writeln!(s, "    {syscall}: condition never exercised: {c}");
        }
        if d.overflowed {
            let _ = writeln!(s, "    {syscall}: more values were used than recorded: unused ones are not listed");
        }
    }
    s
}
