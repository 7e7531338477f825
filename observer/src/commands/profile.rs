//! `observer profile ...`: show a container's live profile; export, merge,
//! diff and check profile files.

use std::{fmt::Write as _, path::PathBuf};

use clap::Subcommand;

use observer_profile::{
    args::{SeenArgs, argument_name, kind_by_name, names::value_name},
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
            if let Some(workload) = workload {
                let socket = socket_path(socket.as_deref());
                let data: observer_contract::workload::WorkloadView =
                    call_as(&socket, &Request::Workload { workload: workload.clone() })?;
                let reachable = match reachable {
                    Some(action) => Some(reach_tier(action, reach_target.as_deref(), &data.images)?),
                    None => None,
                };
                let request = learned::ExportRequest {
                    format,
                    include_denied,
                    beyond_default,
                    base,
                    caps,
                    name,
                    namespace,
                    args,
                    reachable,
                };
                let text = crate::commands::workload::render(&data, &request)?;
                learned::write_out(output.as_deref(), &text)?;
                return Ok(0);
            }
            let container = container.unwrap_or_default();
            let view: ProfileView = call_as(&socket_path(socket.as_deref()), &Request::Profile { container })?;
            let learned = learned::learned_from_agent(&view);
            let reachable = match reachable {
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
            let request = learned::ExportRequest {
                format,
                include_denied,
                beyond_default,
                base,
                caps,
                name,
                namespace,
                args,
                reachable,
            };
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
        ProfileCommand::Merge { from: Some(from), workload, registry, output, .. } => {
            crate::commands::registry::merge_from(&from, &workload.unwrap_or_default(), &registry, output.as_deref())
        }
        ProfileCommand::Merge { files, output, format, name, namespace, .. } => {
            let options = learned::resolve_options(None);
            let mut inputs = Vec::new();
            for f in &files {
                let profile = crate::profile_rows::resolve_with(f, None, &options)?;
                inputs.push(MergeInput { source: f.display().to_string(), profile });
            }
            let merged = merge(&inputs);
            let request = learned::ExportRequest {
                format,
                include_denied: false,
                beyond_default: false,
                base: None,
                caps: None,
                name,
                namespace,
                args: false,
                reachable: None,
            };
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

fn table(view: &ProfileView) -> String {
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
fn args_table(args: &SeenArgs) -> String {
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

fn check_text(report: &observer_profile::check::CheckReport) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let _ = writeln!(out, "{:<7} {:<22} {}", f.severity.to_string(), f.code, printable(&f.message));
    }
    if report.findings.is_empty() {
        out.push_str("no findings\n");
    }
    out
}

fn diff_text(d: &observer_profile::diff::ProfileDiff) -> String {
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

#[cfg(test)]
mod tests {
    use observer_profile::{model, resolve::ResolveOptions};

    use super::*;

    const EVIL: &str = "x\u{1b}[2J\u{1b}]0;owned\u{7}";

    #[test]
    fn show_escapes_control_characters_in_names_and_comm() {
        let data = serde_json::json!({
            "name": "web", "id": "0123456789abcdef", "image": "busybox", "runtime": "runc", "state": "running",
            "first_seen": "2026-01-01T00:00:00Z", "observed_since": null, "seccomp_mode": 2, "calls": 4, "baseline": null,
            "syscalls": [
                {"name": "read", "abi": "x86_64", "phase": "container", "phases": ["container"], "owner": "container",
                 "calls": 3, "errors": 0, "denied": 0, "first_seen": "2026-01-01T00:00:00Z", "pid": 42, "comm": "sh",
                 "container_first_use": {"first_seen": "2026-01-01T00:00:00Z", "pid": 42, "comm": "sh"}},
                {"name": EVIL, "abi": "x86_64", "phase": "container", "phases": ["container"], "owner": "container",
                 "calls": 1, "errors": 0, "denied": 0, "first_seen": "2026-01-01T00:00:00Z", "pid": 43, "comm": "x",
                 "container_first_use": {"first_seen": "2026-01-01T00:00:00Z", "pid": 43, "comm": format!("evil{EVIL}\n")}},
            ],
        });
        let view: ProfileView = serde_json::from_value(data).expect("a profile view");
        let text = table(&view);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert_eq!(text.lines().take_while(|l| !l.is_empty()).count(), 4, "one line per row: {text:?}");
        assert!(text.contains("x\\u{1b}[2J\\u{1b}]0;owned\\u{7}"), "{text:?}");
        assert!(text.contains("evilx\\u{1b}[2J"), "{text:?}");
        assert!(text.contains(" sh\n"), "a plain comm is unchanged: {text:?}");
    }

    /// Issue 29: runc's init made `newfstatat` first and the container's `ls`
    /// then made it hundreds of times; `pivot_root` was runc's alone.
    #[test]
    fn show_says_whose_each_row_is_with_every_phase() {
        let row = |name: &str, phases: &[&str], denied: &[&str], comm: &str, own: Option<&str>| {
            let owner = if phases.iter().chain(denied).any(|p| *p == "container") { "container" } else { "runtime" };
            serde_json::json!({"name": name, "abi": "x86_64", "phase": phases.first().or(denied.first()),
                "phases": phases, "denied_phases": denied, "owner": owner, "calls": 668, "errors": 0,
                "denied": denied.len(), "first_seen": "2026-12-07T20:18:08.282870312Z", "pid": 32755, "comm": comm,
                "container_first_use": own.map(|c| serde_json::json!({"first_seen": "2026-12-07T20:18:08.501066793Z",
                    "pid": 321, "comm": c}))})
        };
        let data = serde_json::json!({
            "name": "web", "id": "0123456789abcdef", "image": "busybox", "runtime": "runc", "state": "running",
            "first_seen": "2026-01-01T00:00:00Z", "observed_since": null, "seccomp_mode": 2, "calls": 4, "baseline": null,
            "syscalls": [
                row("newfstatat", &["init_before_filter", "init_after_filter", "container"], &[], "runc:[0:PARENT]", Some("ls")),
                row("pivot_root", &["init_before_filter"], &[], "runc:[2:INIT]", None),
                row("clone3", &["init_before_filter"], &["container"], "runc:[2:INIT]", Some("sh")),
                // A record saved before the container's first use was kept apart.
                row("openat", &["init_before_filter", "container"], &[], "runc", None),
            ],
        });
        let view: ProfileView = serde_json::from_value(data).expect("a profile view");
        let text = table(&view);
        let line = |name: &str| -> Vec<&str> {
            text.lines().find(|l| l.starts_with(&format!("{name} "))).expect(name).split_whitespace().collect()
        };
        let header: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["SYSCALL", "ABI", "USED", "BY", "CALLS", "ERRORS", "DENIED", "PHASES", "FIRST", "USE", "PID", "COMM"]
        );
        assert_eq!(
            line("newfstatat"),
            [
                "newfstatat",
                "x86_64",
                "container",
                "668",
                "0",
                "0",
                "init,init-filtered,container",
                "2026-12-07T20:18:08.501066793Z",
                "321",
                "ls"
            ]
        );
        assert_eq!(
            line("pivot_root"),
            [
                "pivot_root",
                "x86_64",
                "runtime",
                "668",
                "0",
                "0",
                "init",
                "2026-12-07T20:18:08.282870312Z",
                "32755",
                "runc:[2:INIT]"
            ]
        );
        assert_eq!(line("clone3")[2..7], ["container", "668", "0", "1", "init,denied:container"]);
        assert_eq!(line("clone3")[7..], ["2026-12-07T20:18:08.501066793Z", "321", "sh"]);
        // Not known: said as such, never runc's first use under the container's name.
        assert_eq!(line("openat")[2..], ["container", "668", "0", "0", "init,container", "-", "-", "-"]);
        assert!(text.contains("\nCALLS, ERRORS and DENIED are totals over every phase"), "{text}");
    }

    #[test]
    fn show_lists_argument_values_by_name() {
        let args: SeenArgs = serde_json::from_value(serde_json::json!({
            "socket": {"values": [(1u64 << 32) | 1, (2u64 << 32) | 2]},
            "clone": {"values": [0, 0x1002_0000]},
            "ioctl": {"values": [0x5413], "overflowed": true},
            "future\u{1b}[2J": {"values": [1]},
        }))
        .expect("seen args");
        let text = args_table(&args);
        assert!(text.contains("socket       (family, type)     AF_UNIX, SOCK_STREAM; AF_INET, SOCK_DGRAM\n"), "{text}");
        assert!(text.contains("clone        (namespace flags)  0; CLONE_NEWUSER|CLONE_NEWNS\n"), "{text}");
        assert!(text.contains("TIOCGWINSZ (and more"), "{text}");
        assert!(text.contains("future\\u{1b}[2J 0x1"), "{text}");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert_eq!(args_table(&SeenArgs::default()), "");
    }

    #[test]
    fn check_escapes_control_characters_in_names() {
        let text = format!(
            r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{{"names": ["read", {}], "action": "SCMP_ACT_ALLOW"}}]}}"#,
            serde_json::to_string(EVIL).unwrap()
        );
        let profile = model::parse(&text, "p.json").unwrap().resolve(&ResolveOptions::docker_default());
        let shown = check_text(&check(&profile));
        assert!(shown.contains("unknown-name"), "{shown:?}");
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{shown:?}");
        assert!(shown.contains("x\\u{1b}[2J"), "{shown:?}");
    }

    #[test]
    fn diff_text_names_what_changed() {
        let parse = |text: &str| model::parse(text, "p.json").unwrap().resolve(&ResolveOptions::docker_default());
        let old = parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "chmod"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let new = parse(
            r#"{"defaultAction": "SCMP_ACT_KILL", "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let shown = diff_text(&observer_profile::diff::diff(&old, &new));
        assert!(shown.starts_with("default action: errno(1) -> kill_thread\n"), "{shown}");
        assert!(shown.contains("x86_64:\n  added:   write\n  removed: chmod\n"), "{shown}");
    }
}
