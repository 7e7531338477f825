//! `observer compare`: what a container does (its live profile, from the
//! agent) against the seccomp filter the kernel really applies to it (dumped
//! from each of its processes) or against a profile file.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use observer_contract::{
    api::Request,
    views::{ProfileView, PsRow},
};
use observer_profile::{
    args::drift::{ArgDrift, drift},
    bpf::Insn,
    types::Arch,
};

use self::report::{CompareReport, ContainerRef, GroupReport, Use};
use super::policy::PolicyTable;
use crate::{
    api::{call_as, socket_path},
    seccomp::{SeccompMode, dump_filters, read_status},
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
    /// Also split the syscalls by what the container's binaries can make
    /// (`observer reach`): used, denied and allowed-but-unused, reachable or not.
    #[arg(long)]
    pub reach: bool,
    /// The `observer reach` TARGET for `--reach` (default the container's image, else the container).
    #[arg(long, value_name = "TARGET", requires = "reach")]
    pub reach_target: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

mod reach;
mod report;
mod text;

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

    let found = if args.reach {
        let candidates = [profile.image.clone(), profile.id.clone()];
        Some(crate::commands::reach_groups::find_reach(args.reach_target.as_deref(), &candidates)?)
    } else {
        None
    };
    let reports: Vec<GroupReport> = groups
        .into_iter()
        .map(|(pids, label, table, counts, drifts)| {
            let mut g = GroupReport::new(&used, pids, label, table.as_ref(), counts, drifts);
            g.reach_tiers = found.as_ref().map(|(_, r)| reach::tiers(&g, &used, r));
            g
        })
        .collect();
    let out = CompareReport {
        first: reports[0].clone(),
        container: ContainerRef { id, name: profile.name.clone(), image: profile.image.clone() },
        groups: reports,
        reach: found.as_ref().map(|(source, r)| crate::commands::reach_groups::groups(&profile, source, r)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", text::text(&out));
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

#[cfg(test)]
mod tests {
    use observer_common::args::ns;
    use observer_profile::{args::SeenArgs, model};
    use serde_json::json;

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

        let text = text::drift_text(&drifts);
        assert!(text.contains("socket: used but denied by a condition: AF_VSOCK, SOCK_STREAM"), "{text}");
        assert!(text.contains("clone: used but denied by a condition: CLONE_NEWUSER"), "{text}");
        assert_eq!(text.matches("personality: condition never exercised").count(), 4, "{text}");
    }
}
