//! `observer profile ...`: show a container's live profile; export, merge,
//! diff and check profile files.

use std::path::PathBuf;

use clap::Subcommand;

use observer_profile::{
    check::check,
    diff::diff,
    merge::{MergeInput, merge},
    tiers::{ReachableTier, TierAction},
    types::Arch,
};

use anyhow::Context as _;
use observer_contract::{
    api::Request,
    views::{ExportFormat, ProfileView},
};

use crate::{
    api::{call_as, socket_path},
    commands::reach_groups,
    learned,
    printable::printable,
};

#[cfg(test)]
mod tests;
mod text;

use self::text::{check_text, diff_text, table};

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Write a container's learned profile (also of an ended container), or a
    /// workload's: every replica of NAMESPACE/KIND/NAME/CONTAINER merged.
    Export {
        #[arg(required_unless_present = "workload", conflicts_with = "workload")]
        container: Option<String>,
        /// A Kubernetes workload's container, NAMESPACE/KIND/NAME/CONTAINER (see `observer ps`'s `workload`).
        #[arg(long, value_name = "NAMESPACE/KIND/NAME/CONTAINER")]
        workload: Option<observer_contract::pod::WorkloadKey>,
        /// docker (Docker/moby JSON), oci (runtime-spec linux.seccomp) or spo (SeccompProfile YAML).
        #[arg(long, value_enum, default_value = "docker")]
        format: ExportFormat,
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Also allow syscalls that were only ever denied.
        #[arg(long)]
        include_denied: bool,
        /// Also allow syscalls Docker's default profile denies.
        #[arg(long)]
        beyond_default: bool,
        /// What this profile denies stays denied.
        #[arg(long)]
        base: Option<PathBuf>,
        /// Capabilities the container runs with (default Docker's set).
        #[arg(long)]
        caps: Option<String>,
        /// SeccompProfile name (spo).
        #[arg(long)]
        name: Option<String>,
        /// SeccompProfile namespace (spo).
        #[arg(long)]
        namespace: Option<String>,
        /// Allow only the argument values the container used (socket families, clone's
        /// namespaces, prctl options, ioctl requests...), as libseccomp argument conditions,
        /// never looser than Docker's default's; a syscall whose values overflowed keeps
        /// its plain rule.
        #[arg(long)]
        args: bool,
        /// Write the profile for this architecture: aarch64 maps calls arm64 lacks
        /// (open, stat...) to the ones it has (openat, newfstatat...) and prints each
        /// change on stderr (docs/arch.md).
        #[arg(long, value_name = "ARCH", conflicts_with = "workload")]
        arch: Option<String>,
        /// Also let through the syscalls the container's image can make (`observer reach`) that
        /// were never learned: `log` (SCMP_ACT_LOG: allowed, and the kernel logs each call) or
        /// `allow`. Never beyond Docker's default.
        #[arg(long, value_enum, value_name = "log|allow")]
        reachable: Option<ReachableArg>,
        /// Where the reachable set comes from (an `observer reach` TARGET: image, container,
        /// root directory, ELF file); default the container's image, else the container.
        #[arg(long, value_name = "TARGET", requires = "reachable")]
        reach_target: Option<String>,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// The union of several profiles (replicas, nodes, runs), with the strictest default;
    /// with --from, every node's partial profile of --workload in a registry, pushed back
    /// under the workload's tag (nothing pushed when unchanged).
    Merge {
        #[arg(required_unless_present = "from", conflicts_with = "from", num_args = 1..)]
        files: Vec<PathBuf>,
        /// A registry repository, oci://REGISTRY/REPO, holding the nodes' partial profiles.
        #[arg(long, value_name = "oci://REGISTRY/REPO", requires = "workload")]
        from: Option<String>,
        /// The workload whose partial profiles --from merges.
        #[arg(long, value_name = "NAMESPACE/KIND/NAME/CONTAINER", requires = "from")]
        workload: Option<String>,
        #[command(flatten)]
        registry: crate::commands::registry::RegistryArgs,
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// The format of -o's copy (with --from, the registry always gets Docker's JSON,
        /// the format its media type names).
        #[arg(long, value_enum, default_value = "docker")]
        format: ExportFormat,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Syscalls added, removed and changed from A to B, per ABI; exit status 1 when they differ.
    Diff {
        a: PathBuf,
        b: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        caps: Option<String>,
    },
    /// Problems in a profile: unknown or duplicate names, rules equal to the default,
    /// conflicts, the 32-bit hole; exit status 1 when there are errors.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        caps: Option<String>,
        /// Refuse FILE (exit status 1) if it lets through anything this baseline profile
        /// denies, argument conditions included, as a runtime intersecting a pulled profile
        /// with its baseline would; also warn past the limits runtimes enforce on pulled
        /// profiles (docs/arch.md).
        #[arg(long, value_name = "BASELINE")]
        within: Option<PathBuf>,
    },
    /// Push a profile to a registry as an OCI artifact (an index, one manifest per platform).
    Push(crate::commands::registry::PushArgs),
    /// Pull a profile from a registry, every byte checked against its digest.
    Pull(crate::commands::registry::PullArgs),
    /// A container's syscalls: per ABI, whose each is (the container's or its runtime's), every
    /// start phase it was seen in, counts (totals over every phase) and first use.
    Show {
        /// Container id, unique id prefix or name.
        container: String,
        #[arg(long)]
        json: bool,
        /// Also set the container's syscalls against what its image can call (`observer reach`):
        /// seen and reachable; reachable, not seen; seen, not reachable.
        #[arg(long)]
        reach: bool,
        /// The `observer reach` TARGET for `--reach` (default the container's image, else the container).
        #[arg(long, value_name = "TARGET", requires = "reach")]
        reach_target: Option<String>,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
}

pub fn run(cmd: ProfileCommand) -> anyhow::Result<i32> {
    match cmd {
        ProfileCommand::Export {
            container,
            workload,
            format,
            output,
            include_denied,
            beyond_default,
            base,
            caps,
            name,
            namespace,
            args,
            arch,
            reachable,
            reach_target,
            socket,
        } => {
            let arch = arch.as_deref().map(crate::export_arch::parse).transpose()?;
            let mut request = learned::ExportRequest {
                format,
                include_denied,
                beyond_default,
                base,
                caps,
                name,
                namespace,
                args,
                reachable: None,
            };
            if let Some(workload) = workload {
                let socket = socket_path(socket.as_deref());
                let data: observer_contract::workload::WorkloadView =
                    call_as(&socket, &Request::Workload { workload: workload.clone() })?;
                request.reachable = match reachable {
                    Some(action) => Some(reach_tier(action, reach_target.as_deref(), &data.images)?),
                    None => None,
                };
                let text = crate::commands::workload::render(&data, &request)?;
                learned::write_out(output.as_deref(), &text)?;
                return Ok(0);
            }
            let container = container.unwrap_or_default();
            let view: ProfileView = call_as(&socket_path(socket.as_deref()), &Request::Profile { container })?;
            let learned = learned::learned_from_agent(&view);
            request.reachable = match reachable {
                Some(action) => {
                    Some(reach_tier(action, reach_target.as_deref(), &[view.image.clone(), view.id.clone()])?)
                }
                None => None,
            };
            if args && view.args.is_empty() {
                eprintln!(
                    "observer: the agent recorded no argument values for {}: every syscall keeps its plain rule",
                    printable(&view.name)
                );
            }
            let (exported, text) = learned::export_learned(&learned, &request)?;
            learned::report_left_out(&exported);
            let text = match arch {
                Some(arch) => crate::export_arch::render_for(&exported, arch, &request)?,
                None => text,
            };
            report_tiers(&exported);
            learned::write_out(output.as_deref(), &text)?;
            Ok(0)
        }
        ProfileCommand::Merge { from: Some(from), workload, registry, output, format, name, namespace, .. } => {
            let copy = output.map(|path| crate::commands::registry::MergedCopy { path, format, name, namespace });
            crate::commands::registry::merge_from(&from, &workload.unwrap_or_default(), &registry, copy.as_ref())
        }
        ProfileCommand::Merge { files, output, format, name, namespace, .. } => {
            let options = learned::resolve_options(None);
            let mut inputs = Vec::new();
            for f in &files {
                let profile = crate::profile_rows::resolve_with(f, None, &options)?;
                inputs.push(MergeInput { source: f.display().to_string(), profile });
            }
            let merged = merge(&inputs);
            let request = learned::ExportRequest { name, namespace, ..learned::ExportRequest::plain(format) };
            learned::write_out(output.as_deref(), &learned::render(&merged, &request)?)?;
            Ok(0)
        }
        ProfileCommand::Diff { a, b, json, caps } => {
            let d = (|| -> anyhow::Result<_> {
                let options = learned::resolve_options(caps.as_deref());
                let pa = crate::profile_rows::resolve_with(&a, None, &options)?;
                let pb = crate::profile_rows::resolve_with(&b, None, &options)?;
                Ok(diff(&pa, &pb))
            })();
            let d = match d {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("observer: {}", printable(&format!("{e:#}")));
                    return Ok(2);
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!("{}", diff_text(&d));
            }
            Ok(if d.is_empty() { 0 } else { 1 })
        }
        ProfileCommand::Check { file, json, caps, within: Some(baseline) } => {
            let options = learned::resolve_options(caps.as_deref());
            crate::commands::within::run(&file, &baseline, &options, json)
        }
        ProfileCommand::Check { file, json, caps, within: None } => {
            let options = learned::resolve_options(caps.as_deref());
            let profile = match crate::profile_rows::resolve_with(&file, None, &options) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("observer: {}", printable(&format!("{e:#}")));
                    return Ok(2);
                }
            };
            let report = check(&profile);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", check_text(&report));
            }
            Ok(i32::from(report.has_errors()))
        }
        ProfileCommand::Push(args) => crate::commands::registry::push(&args),
        ProfileCommand::Pull(args) => crate::commands::registry::pull(&args),
        ProfileCommand::Show { container, json, reach, reach_target, socket } => {
            let view: ProfileView = call_as(&socket_path(socket.as_deref()), &Request::Profile { container })?;
            let groups = if reach {
                let (source, r) =
                    reach_groups::find_reach(reach_target.as_deref(), &[view.image.clone(), view.id.clone()])?;
                Some(reach_groups::groups(&view, &source, &r))
            } else {
                None
            };
            if json {
                let mut value = serde_json::to_value(&view)?;
                if let (Some(object), Some(g)) = (value.as_object_mut(), &groups) {
                    object.insert("reach".into(), serde_json::to_value(g)?);
                }
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", table(&view));
                if let Some(g) = &groups {
                    print!("{}", reach_groups::text(g));
                }
            }
            Ok(0)
        }
    }
}

/// `--reachable log|allow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReachableArg {
    Log,
    Allow,
}

/// The reachable tier: `observer reach` on `target`, or on the first of
/// `candidates` (the container's image, then the container) that resolves.
fn reach_tier(action: ReachableArg, target: Option<&str>, candidates: &[String]) -> anyhow::Result<ReachableTier> {
    let action = match action {
        ReachableArg::Log => TierAction::Log,
        ReachableArg::Allow => TierAction::Allow,
    };
    let (source, reach) = reach_groups::find_reach(target, candidates).context("--reachable")?;
    if !reach.complete {
        eprintln!(
            "observer: the reachable set of {} is incomplete ({} undecided sites, {} files not fully analysed): `observer reach {}` lists them",
            printable(&source),
            reach.undecided_total,
            reach.incomplete_files.len(),
            printable(&source)
        );
    }
    let names = [Arch::X86_64, Arch::I386].into_iter().map(|arch| (arch, reach.names(arch))).collect();
    Ok(ReachableTier { names, action, source, complete: reach.complete })
}

/// Says how many names each tier of the export holds (stderr).
fn report_tiers(exported: &observer_profile::export::ExportedProfile) {
    let Some(t) = &exported.tiers else { return };
    let action = match t.reachable_action {
        Some(TierAction::Log) => "logged (SCMP_ACT_LOG)",
        _ => "allowed",
    };
    eprintln!(
        "observer: tiers: {} learned names allowed; {} reachable but unlearned names {action} (from {}); everything else {}",
        t.learned,
        t.reachable,
        printable(&t.reachable_source),
        exported.profile.default_action
    );
    if !t.reachable_denied.is_empty() {
        let names: Vec<&str> = t.reachable_denied.iter().map(String::as_str).collect();
        eprintln!("observer: reachable but denied by Docker's default (or the base), left denied: {}", names.join(" "));
    }
}
