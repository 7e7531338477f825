//! `observer compare`: what a container does (its live profile, from the
//! agent) against the seccomp filter the kernel really applies to it (dumped
//! from each of its processes) or against a profile file.

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use observer_profile::{
    args::drift::{ArgDrift, drift},
    bpf::Insn,
    types::Arch,
};
use serde_json::{Value, json};

use super::policy::{Outcome, PolicyTable};
use crate::{
    api::{Request, call_as, socket_path},
    seccomp::{SeccompMode, dump_filters, read_status},
    views::{ProfileView, PsRow},
};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Container id, unique id prefix or name.
    pub container: Option<String>,
    /// A process of a watched container instead.
    #[arg(long, conflicts_with = "container")]
    pub pid: Option<i32>,
    /// Compare with this profile file instead of the applied filter.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Capabilities to resolve --against for (default Docker's set).
    #[arg(long)]
    pub caps: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

/// A syscall the container used: under the filter (the runtime's init after
/// it, or the container's own processes), or denied.
#[derive(Clone, Debug, Default)]
struct Use {
    denied: u64,
}

/// Processes that run under one policy: (pids, what the policy is, its table,
/// instruction counts, its argument drift).
type Group = (Vec<i64>, String, Option<PolicyTable>, Vec<usize>, Vec<ArgDrift>);

pub fn run(args: &CompareArgs) -> anyhow::Result<i32> {
    let socket = socket_path(args.socket.as_deref());
    let ps: Vec<PsRow> = call_as(&socket, &Request::Ps)?;
    let target = match (&args.container, args.pid) {
        (Some(c), _) => c.clone(),
        (None, Some(pid)) => ps
            .iter()
            .find(|c| c.pids.iter().any(|p| i64::from(*p) == i64::from(pid)))
            .map(|c| c.id.clone())
            .with_context(|| format!("process {pid} is in no container the agent watches (see observer ps)"))?,
        (None, None) => bail!("give a CONTAINER or --pid PID"),
    };
    let profile: ProfileView = call_as(&socket, &Request::Profile { container: target })?;
    let id = profile.id.clone();
    let container_pids: Vec<i64> =
        ps.iter().find(|c| c.id == id).map(|c| c.pids.iter().map(|p| i64::from(*p)).collect()).unwrap_or_default();
    let used = used_syscalls(&profile);
    let used_names: Vec<(Arch, String)> = used
        .keys()
        .filter_map(|(abi, name)| match abi.as_str() {
            "x86_64" => Some((Arch::X86_64, name.clone())),
            "i386" => Some((Arch::I386, name.clone())),
            _ => None,
        })
        .collect();
    // The argument values used, against the conditions of a filter stack.
    let arg_drift = |stack: &[Vec<Insn>]| -> anyhow::Result<Vec<ArgDrift>> {
        let all = drift(stack, &profile.args, &used_names).context("evaluating the filter's argument conditions")?;
        Ok(all.into_iter().filter(|d| !d.is_empty()).collect())
    };

    // The policies to compare with: one file, or one per distinct applied filter.
    let mut groups: Vec<Group> = Vec::new();
    if let Some(file) = &args.against {
        let resolved = crate::profile_rows::resolve_file(file, args.caps.as_deref())?;
        // Argument drift needs the filter itself: compiled as runc would.
        let drifts = if profile.args.is_empty() {
            Vec::new()
        } else {
            match crate::run::compile(&resolved) {
                Ok(compiled) => arg_drift(&[compiled.insns])?,
                Err(e) => {
                    tracing::warn!("no argument drift: compiling {}: {e:#}", file.display());
                    Vec::new()
                }
            }
        };
        groups.push((
            Vec::new(),
            format!("profile {}", file.display()),
            Some(PolicyTable::from_profile(&resolved)),
            Vec::new(),
            drifts,
        ));
    } else {
        let pids: Vec<i64> = match args.pid {
            Some(p) => vec![i64::from(p)],
            None => container_pids,
        };
        if pids.is_empty() {
            bail!(
                "{} has no running process to read a filter from; use --against FILE",
                crate::printable::printable(&profile.name)
            );
        }
        let mut by_filter: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for pid in pids {
            let status = match read_status(pid as i32) {
                Ok(s) => s,
                Err(_) => continue, // the process ended meanwhile
            };
            let (key, label, table, counts, drifts) = match status.mode {
                SeccompMode::Disabled => {
                    (Vec::new(), "no filter (seccomp mode 0)".to_owned(), None, Vec::new(), Vec::new())
                }
                SeccompMode::Strict => (vec![1], "seccomp strict mode".to_owned(), None, Vec::new(), Vec::new()),
                SeccompMode::Filter => {
                    let applied = match dump_filters(pid as i32) {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!("process {pid}: {e}");
                            continue;
                        }
                    };
                    let key: Vec<u8> = applied.filters.iter().flat_map(|f| observer_profile::bpf::encode(f)).collect();
                    let table =
                        applied.table().with_context(|| format!("evaluating the filter dumped from process {pid}"))?;
                    let counts = applied.filters.iter().map(Vec::len).collect();
                    let drifts = arg_drift(&applied.filters)?;
                    (key, "applied filter".to_owned(), Some(PolicyTable::from_filter(&table)), counts, drifts)
                }
            };
            match by_filter.get(&key) {
                Some(i) => groups[*i].0.push(pid),
                None => {
                    by_filter.insert(key, groups.len());
                    groups.push((vec![pid], label, table, counts, drifts));
                }
            }
        }
        if groups.is_empty() {
            bail!("every process of the container ended before its filter could be read");
        }
    }

    let reports: Vec<Value> = groups
        .iter()
        .map(|(pids, label, table, counts, drifts)| {
            let mut report = compare(&used, pids, label, table.as_ref(), counts);
            report["argument_drift"] = json!(drifts);
            report
        })
        .collect();
    let mut out = reports[0].clone();
    out["container"] = json!({"id": id, "name": profile.name, "image": profile.image});
    out["groups"] = json!(reports);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", text(&out));
    }
    Ok(0)
}

fn used_syscalls(profile: &ProfileView) -> BTreeMap<(String, String), Use> {
    let mut used = BTreeMap::new();
    for r in &profile.syscalls {
        let under_filter = r.phases.iter().any(|p| p.under_filter());
        if (!under_filter && r.denied == 0) || r.abi == "any" {
            continue;
        }
        used.insert((r.abi.clone(), r.name.clone()), Use { denied: r.denied });
    }
    used
}

fn label(abi: &str, name: &str) -> String {
    if abi == "x86_64" { name.to_owned() } else { format!("{abi}:{name}") }
}

fn compare(
    used: &BTreeMap<(String, String), Use>,
    pids: &[i64],
    source: &str,
    table: Option<&PolicyTable>,
    counts: &[usize],
) -> Value {
    let mut used_but_denied = Vec::new();
    let mut conditional = Vec::new();
    let mut denied_attempts = serde_json::Map::new();
    for ((abi, name), u) in used {
        if u.denied > 0 {
            denied_attempts.insert(label(abi, name), json!(u.denied));
        }
        let outcome = table.and_then(|t| t.get(abi, name)).map_or(Outcome::Allowed, |d| d.outcome);
        match outcome {
            Outcome::Denied => used_but_denied.push(label(abi, name)),
            Outcome::Conditional => conditional.push(label(abi, name)),
            Outcome::Allowed if u.denied > 0 => conditional.push(label(abi, name)),
            Outcome::Allowed => {}
        }
    }
    let mut abis = serde_json::Map::new();
    let mut top_unused = Vec::new();
    for (abi, _) in super::policy::ABIS {
        let names: Vec<String> = match table {
            Some(t) => t
                .abis
                .get(abi)
                .map(|m| {
                    m.iter()
                        .filter(|(n, d)| d.outcome != Outcome::Denied && !n.starts_with("syscall_"))
                        .map(|(n, _)| n.clone())
                        .collect()
                })
                .unwrap_or_default(),
            None => observer_profile::syscall_table::all(if abi == "i386" {
                observer_profile::types::Arch::I386
            } else {
                observer_profile::types::Arch::X86_64
            })
            .into_iter()
            .map(|(_, n)| n.to_owned())
            .collect(),
        };
        let unused: Vec<String> =
            names.iter().filter(|n| !used.contains_key(&(abi.to_owned(), (*n).clone()))).cloned().collect();
        let used_here = used.keys().filter(|(a, _)| a == abi).count();
        let share = if names.is_empty() { 0.0 } else { unused.len() as f64 / names.len() as f64 };
        abis.insert(
            abi.to_owned(),
            json!({"allowed": names.len(), "used": used_here, "allowed_but_unused": unused.len(), "unused_share": (share * 1000.0).round() / 1000.0, "allowed_but_unused_names": unused}),
        );
        if abi == "x86_64" {
            top_unused = unused;
        }
    }
    let x = &abis["x86_64"];
    let verdict = if used_but_denied.is_empty() {
        format!(
            "everything used is allowed; {} of {} allowed x86_64 syscalls ({:.0}%) were never used: a profile learned from this container would remove them",
            x["allowed_but_unused"],
            x["allowed"],
            x["unused_share"].as_f64().unwrap_or(0.0) * 100.0
        )
    } else {
        format!(
            "{} used syscall(s) denied by the {source} ({}); {} of {} allowed x86_64 syscalls never used",
            used_but_denied.len(),
            used_but_denied.join(", "),
            x["allowed_but_unused"],
            x["allowed"]
        )
    };
    json!({
        "source": source,
        "pids": pids,
        "mode": if table.is_none() && source.starts_with("no filter") { 0 } else { 2 },
        "filters": counts,
        "used_but_denied": used_but_denied,
        "allowed_but_unused": top_unused,
        "conditional": conditional,
        "denied_attempts": denied_attempts,
        "abis": abis,
        "verdict": verdict,
    })
}

fn text(out: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "container {} ({})",
        out["container"]["name"].as_str().unwrap_or(""),
        out["container"]["image"].as_str().unwrap_or("")
    );
    for g in out["groups"].as_array().into_iter().flatten() {
        let _ = writeln!(s, "\n{} — pids {}", g["source"].as_str().unwrap_or(""), g["pids"]);
        let list = |k: &str| {
            g[k].as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        let _ = writeln!(s, "  used but denied:  {}", list("used_but_denied"));
        let _ = writeln!(s, "  conditional:      {}", list("conditional"));
        let _ = writeln!(s, "  denied attempts:  {}", g["denied_attempts"]);
        for abi in ["x86_64", "i386"] {
            let a = &g["abis"][abi];
            let _ = writeln!(
                s,
                "  {abi}: {} allowed, {} used, {} allowed but unused ({:.0}%)",
                a["allowed"],
                a["used"],
                a["allowed_but_unused"],
                a["unused_share"].as_f64().unwrap_or(0.0) * 100.0
            );
        }
        s.push_str(&drift_text(&g["argument_drift"]));
        let _ = writeln!(s, "  verdict: {}", g["verdict"].as_str().unwrap_or(""));
    }
    s
}

/// The `argument_drift` list as lines: per syscall, the values used but
/// denied, those undecided, and what the conditions allow unused.
fn drift_text(drifts: &Value) -> String {
    let mut s = String::new();
    let Some(drifts) = drifts.as_array().filter(|d| !d.is_empty()) else {
        return s;
    };
    let _ = writeln!(s, "  argument drift:");
    let names = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| crate::printable::printable(x["name"].as_str().unwrap_or("")).into_owned())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    };
    for d in drifts {
        let syscall = label(d["arch"].as_str().unwrap_or(""), d["syscall"].as_str().unwrap_or(""));
        let count = |k: &str| d[k].as_array().map_or(0, Vec::len);
        if count("denied") > 0 {
            let _ = writeln!(s, "    {syscall}: used but denied by a condition: {}", names(&d["denied"]));
        }
        if count("undecided") > 0 {
            let _ = writeln!(
                s,
                "    {syscall}: used, allowed or denied by argument bits not recorded: {}",
                names(&d["undecided"])
            );
        }
        if count("allowed_unused") > 0 {
            let _ = writeln!(s, "    {syscall}: allowed but never used: {}", names(&d["allowed_unused"]));
        }
        for c in d["unexercised_conditions"].as_array().into_iter().flatten() {
            let _ = writeln!(s, "    {syscall}: condition never exercised: {}", c.as_str().unwrap_or(""));
        }
        if d["overflowed"].as_bool() == Some(true) {
            let _ = writeln!(s, "    {syscall}: more values were used than recorded: unused ones are not listed");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use observer_common::args::ns;
    use observer_profile::{args::SeenArgs, model};

    use super::*;

    /// Docker's default profile compiled with libseccomp, as the filter a
    /// container runs under.
    fn docker_default_filter() -> Vec<Insn> {
        let resolved = model::parse(crate::learned::MOBY_DEFAULT, "default.json")
            .expect("Docker's default parses")
            .resolve(&crate::learned::resolve_options(None));
        crate::run::compile(&resolved).expect("libseccomp compiles it").insns
    }

    #[test]
    fn argument_drift_against_the_compiled_docker_default() {
        let seen: SeenArgs = serde_json::from_value(json!({
            "socket": {"values": [(1u64 << 32) | 1, (40u64 << 32) | 1]},
            "clone": {"values": [0, ns::CLONE_NEWUSER]},
            "personality": {"values": [8]},
            "prctl": {"values": [15]},
        }))
        .expect("seen args");
        let used: Vec<(Arch, String)> =
            ["socket", "clone", "personality", "prctl"].iter().map(|n| (Arch::X86_64, (*n).to_owned())).collect();
        let drifts = drift(&[docker_default_filter()], &seen, &used).expect("evaluates");
        let by = |name: &str| drifts.iter().find(|d| d.syscall == name).unwrap_or_else(|| panic!("no {name}"));
        let names = |v: &[observer_profile::args::drift::Value]| v.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&by("socket").denied), ["AF_VSOCK, SOCK_STREAM"]);
        assert_eq!(names(&by("clone").denied), ["CLONE_NEWUSER"]);
        assert!(by("clone").allowed_unused.is_empty(), "Docker allows clone without namespaces only");
        // Docker allows five personas; one was used: four paths never taken.
        let personality = by("personality");
        assert!(personality.denied.is_empty() && personality.undecided.is_empty());
        assert_eq!(personality.unexercised_conditions.len(), 4, "{:?}", personality.unexercised_conditions);
        assert!(!drifts.iter().any(|d| d.syscall == "prctl"), "Docker allows prctl whatever its option");

        let text = drift_text(&json!(drifts));
        assert!(text.contains("socket: used but denied by a condition: AF_VSOCK, SOCK_STREAM"), "{text}");
        assert!(text.contains("clone: used but denied by a condition: CLONE_NEWUSER"), "{text}");
        assert_eq!(text.matches("personality: condition never exercised").count(), 4, "{text}");
    }
}
