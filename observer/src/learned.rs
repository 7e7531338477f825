//! From what observer saw (an agent profile, or a trace report) to a learned
//! profile in the formats people deploy, through observer-profile's exporter.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::Context as _;
use observer_contract::views::{ExportFormat, Phase, ProfileView};
use observer_profile::{
    args::narrow::KeptByName,
    export::{ExportMeta, ExportOptions, ExportedProfile, Learned},
    model,
    resolve::ResolveOptions,
    tiers::ReachableTier,
    types::Arch,
};

/// Docker's current default profile (moby/profiles), the reference an exported
/// profile is never looser than. Attribution: profiles/SOURCE.md.
pub const MOBY_DEFAULT: &str = include_str!("../../profiles/moby/default.json");

/// What the runtime's init does after it installed the filter and before it
/// execs the container (seen on this project's machines with runc 1.1 and crun 1.8).
/// Used when the agent did not watch a container start (it ran before the agent).
pub const RUNC_AFTER_FILTER: &[&str] = &[
    "capget",
    "capset",
    "chdir",
    "close",
    "epoll_ctl",
    "epoll_pwait",
    "execve",
    "exit_group",
    "faccessat2",
    "fchdir",
    "fcntl",
    "fstat",
    "fstatfs",
    "futex",
    "getcwd",
    "getdents64",
    "getpid",
    "getppid",
    "gettid",
    "madvise",
    "mmap",
    "mprotect",
    "munmap",
    "nanosleep",
    "newfstatat",
    "openat",
    "prctl",
    "read",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_yield",
    "setgid",
    "setgroups",
    "setuid",
    "sigaltstack",
    "tgkill",
    "write",
];
pub const CRUN_AFTER_FILTER: &[&str] = &[
    "capset",
    "close",
    "execve",
    "fstat",
    "prctl",
    "pselect6",
    "read",
    "rt_sigaction",
    "rt_sigprocmask",
    "setgroups",
    "setresgid",
    "setresuid",
    "write",
];

#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub format: ExportFormat,
    pub include_denied: bool,
    pub beyond_default: bool,
    pub base: Option<std::path::PathBuf>,
    pub caps: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Narrow rules to the argument values seen (`--args`).
    pub args: bool,
    /// `--reachable log|allow`: the image's reachable set and the action for
    /// its unlearned names.
    pub reachable: Option<ReachableTier>,
}

impl ExportRequest {
    /// A request for `format` with every option off: the learned names only,
    /// no base, no argument narrowing, no reachable tier, no names.
    pub fn plain(format: ExportFormat) -> Self {
        Self {
            format,
            include_denied: false,
            beyond_default: false,
            base: None,
            caps: None,
            name: None,
            namespace: None,
            args: false,
            reachable: None,
        }
    }
}

fn arch_of(abi: &str) -> Option<Arch> {
    match abi {
        "x86_64" => Some(Arch::X86_64),
        "i386" => Some(Arch::I386),
        _ => None,
    }
}

/// What an agent profile (`profile show --json`) says the container needs.
///
/// Every decision reads what happened in the phases under the filter, never
/// totals: a row's counts mix the runtime's init before its filter (runc calls
/// clone3 and keyctl there) with the container's own calls, and errors are only
/// counted with `--count-errors`. `phases` are the phases in which the call
/// entered the kernel (the filter let it through); `denied_phases` those in
/// which seccomp denied it.
pub fn learned_from_agent(profile: &ProfileView) -> Learned {
    let mut syscalls: BTreeMap<Arch, BTreeSet<String>> = BTreeMap::new();
    let mut denied_only = BTreeSet::new();
    let mut saw_after_filter = false;
    for r in &profile.syscalls {
        let Some(arch) = arch_of(&r.abi) else { continue };
        saw_after_filter |= r.phases.contains(&Phase::InitAfterFilter);
        if r.phases.iter().any(|p| p.under_filter()) {
            // It entered the kernel under the container's filter: allowed. (For
            // clone3 this means the container's clone3 was not answered ENOSYS.)
            syscalls.entry(arch).or_default().insert(r.name.clone());
        } else if r.denied_phases.iter().any(|p| p.under_filter()) {
            denied_only.insert((arch, r.name.clone()));
        }
    }
    if !saw_after_filter {
        let set = if profile.runtime == "crun" { CRUN_AFTER_FILTER } else { RUNC_AFTER_FILTER };
        syscalls.entry(Arch::X86_64).or_default().extend(set.iter().map(|s| (*s).to_owned()));
    }
    Learned {
        syscalls,
        denied_only,
        args: profile.args.clone(),
        metadata: ExportMeta {
            container: profile.name.clone(),
            image: profile.image.clone(),
            since: profile.observed_since.clone().unwrap_or_else(|| profile.first_seen.clone()),
            calls: profile.calls,
            generator: format!("observer {}", env!("CARGO_PKG_VERSION")),
        },
    }
}

/// What a trace report says the command needs (everything it ran; nothing was init).
pub fn learned_from_trace(report: &crate::trace::report::Report, command: &[String]) -> Learned {
    let mut syscalls: BTreeMap<Arch, BTreeSet<String>> = BTreeMap::new();
    let mut denied_only = BTreeSet::new();
    for r in &report.syscalls {
        let Some(arch) = arch_of(&r.abi) else { continue };
        if r.calls > 0 {
            syscalls.entry(arch).or_default().insert(r.name.clone());
        } else if r.denied > 0 {
            denied_only.insert((arch, r.name.clone()));
        }
    }
    Learned {
        syscalls,
        denied_only,
        // `observer trace` records no argument values.
        args: Default::default(),
        metadata: ExportMeta {
            container: format!("observer trace -- {}", command.join(" ")),
            image: String::new(),
            since: crate::clock::now(),
            calls: report.syscalls.iter().map(|r| r.calls).sum(),
            generator: format!("observer {}", env!("CARGO_PKG_VERSION")),
        },
    }
}

pub fn resolve_options(caps: Option<&str>) -> ResolveOptions {
    let mut o = ResolveOptions::docker_default();
    if let Some(caps) = caps {
        o.caps = crate::profile_rows::parse_caps(caps);
    }
    o
}

pub fn export_learned(learned: &Learned, req: &ExportRequest) -> anyhow::Result<(ExportedProfile, String)> {
    let exported = observer_profile::tiers::export_with_tier(learned, &export_options(req)?);
    let text = render(&exported, req)?;
    Ok((exported, text))
}

/// The exporter's options for `req`: Docker's default for its capabilities, its base, its tiers.
pub fn export_options(req: &ExportRequest) -> anyhow::Result<ExportOptions> {
    let options = resolve_options(req.caps.as_deref());
    let reference =
        model::parse(MOBY_DEFAULT, "moby default.json").map_err(|e| anyhow::anyhow!("{e}"))?.resolve(&options);
    let mut export_options = ExportOptions::new(reference);
    export_options.include_denied = req.include_denied;
    export_options.beyond_default = req.beyond_default;
    export_options.args = req.args;
    export_options.reachable = req.reachable.clone();
    if let Some(base) = &req.base {
        export_options.base = Some(crate::profile_rows::resolve_with(base, req.caps.as_deref(), &options)?);
    }
    Ok(export_options)
}

pub fn render(exported: &ExportedProfile, req: &ExportRequest) -> anyhow::Result<String> {
    Ok(match req.format {
        ExportFormat::Docker => exported.to_docker_json(),
        ExportFormat::Oci => exported.to_oci_json(),
        ExportFormat::Spo => exported.to_spo_yaml(
            req.name.as_deref().unwrap_or("observer-profile"),
            req.namespace.as_deref().unwrap_or("default"),
        ),
    })
}

/// Writes `text` to `path` atomically (nothing half-written), or to stdout.
pub fn write_out(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => crate::state::write_atomic(p, text.as_bytes()).with_context(|| format!("writing {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// Tells the user what the exporter left out, and why; with `--args`, which
/// names kept a rule for every argument value.
pub fn report_left_out(exported: &ExportedProfile) {
    for l in &exported.left_out {
        eprintln!("observer: left out {l}");
    }
    for (name, why) in &exported.kept_by_name {
        eprintln!("observer: {name} allowed for any argument value: {}", kept_by_name_text(*why));
    }
    for door in &exported.side_doors {
        eprintln!("observer: note: {door}");
    }
}

fn kept_by_name_text(why: KeptByName) -> &'static str {
    match why {
        KeptByName::Overflowed => "it used more values than the agent keeps",
        KeptByName::NotRecorded => {
            "no value was recorded (the container started before the agent, or the call came from the runtime's init)"
        }
        KeptByName::EveryValue => "every value was used",
        KeptByName::Undecidable => "the base or Docker's default conditions test what the recording cannot tell",
        KeptByName::Untestable => {
            "it made namespaces (or its flags could not be read), and its flags are in memory, where no condition can test them"
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn request() -> ExportRequest {
        ExportRequest::plain(ExportFormat::Docker)
    }

    /// A `profile show` answer with these syscall rows.
    fn view(runtime: &str, rows: Value) -> ProfileView {
        serde_json::from_value(json!({
            "id": "c", "name": "c", "image": "busybox", "runtime": runtime, "state": "running",
            "first_seen": "2026-01-01T00:00:00Z", "observed_since": null, "seccomp_mode": 2, "calls": 0,
            "baseline": null, "syscalls": rows,
        }))
        .expect("a profile view")
    }

    fn row(name: &str, phases: &[&str], denied_phases: &[&str], calls: u64, denied: u64) -> Value {
        let phase = phases.first().or(denied_phases.first()).copied().unwrap_or("container");
        json!({"name": name, "abi": "x86_64", "phase": phase, "phases": phases, "denied_phases": denied_phases,
               "calls": calls, "errors": 0, "denied": denied, "first_seen": null, "pid": null, "comm": null})
    }

    fn clone3_action(profile: &ProfileView) -> Option<Value> {
        let text = export_learned(&learned_from_agent(profile), &request()).expect("export").1;
        let doc: Value = serde_json::from_str(&text).expect("JSON");
        doc["syscalls"]
            .as_array()?
            .iter()
            .find(|r| r["names"].as_array().is_some_and(|n| n.iter().any(|n| n == "clone3")))
            .cloned()
    }

    /// What runc gives: its init calls clone3 before its filter (counted as
    /// calls), the container's own clone3 is denied with ENOSYS, errors are not
    /// counted. The export must still answer clone3 with ENOSYS.
    #[test]
    fn clone3_called_by_runc_init_and_denied_in_the_container_gets_enosys() {
        let profile = view(
            "runc",
            json!([
                row("clone3", &["init_before_filter"], &["container"], 12, 3),
                row("clone", &["container"], &[], 3, 0),
                row("execve", &["init_after_filter"], &[], 1, 0),
            ]),
        );
        let learned = learned_from_agent(&profile);
        assert!(!learned.syscalls[&Arch::X86_64].contains("clone3"), "{learned:?}");
        assert!(learned.denied_only.contains(&(Arch::X86_64, "clone3".to_owned())));
        let rule = clone3_action(&profile).expect("a clone3 rule");
        assert_eq!(rule["action"], "SCMP_ACT_ERRNO");
        assert_eq!(rule["errnoRet"], 38);
    }

    #[test]
    fn clone3_let_through_in_the_container_is_not_answered_enosys() {
        let profile = view(
            "crun",
            json!([row("clone3", &["container"], &[], 2, 0), row("execve", &["init_after_filter"], &[], 1, 0)]),
        );
        let learned = learned_from_agent(&profile);
        assert!(learned.syscalls[&Arch::X86_64].contains("clone3"));
    }

    /// runc and crun call keyctl in their init before the filter; only a
    /// denial in a filtered phase makes it "seen denied", whatever the counts.
    #[test]
    fn init_before_filter_calls_are_not_the_containers_needs() {
        let profile = view(
            "runc",
            json!([
                row("keyctl", &["init_before_filter"], &[], 1, 0),
                row("execve", &["init_after_filter"], &[], 1, 0)
            ]),
        );
        let learned = learned_from_agent(&profile);
        assert!(!learned.syscalls[&Arch::X86_64].contains("keyctl"));
        assert!(!learned.denied_only.iter().any(|(_, n)| n == "keyctl"));
    }

    /// `--args` end to end below the agent: the view's `args` field, the
    /// export, libseccomp's compilation, and the compiled filter run on calls.
    #[test]
    fn export_with_args_compiles_to_a_filter_that_allows_only_what_was_seen() {
        use observer_profile::bpf::{SeccompData, evaluate_call};
        let mut profile = view(
            "runc",
            json!([
                row("socket", &["container"], &[], 2, 0),
                row("clone", &["container"], &[], 1, 0),
                row("ioctl", &["container"], &[], 9, 0),
                row("execve", &["init_after_filter"], &[], 1, 0),
            ]),
        );
        profile.args = serde_json::from_value(json!({
            "socket": {"values": [(1u64 << 32) | 1]},
            "clone": {"values": [0]},
            "ioctl": {"values": [0x5401], "overflowed": true},
        }))
        .expect("seen args");
        let text = export_learned(&learned_from_agent(&profile), &ExportRequest { args: true, ..request() })
            .expect("export")
            .1;
        let resolved = model::parse(&text, "exported.json").expect("the export parses").resolve(&resolve_options(None));
        let filter = crate::run::compile(&resolved).expect("libseccomp compiles the export");
        let action = |nr: u32, args: [u64; 6]| {
            evaluate_call(&[&filter.insns], &SeccompData::call(Arch::X86_64, nr, args)).expect("evaluates")
        };
        let (socket, clone, ioctl) = (41, 56, 16);
        let allow = observer_profile::types::Action::Allow;
        // socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): seen; AF_INET: not.
        assert_eq!(action(socket, [1, 1 | 0o2000000, 0, 0, 0, 0]), allow);
        assert_ne!(action(socket, [2, 1, 0, 0, 0, 0]), allow);
        assert_ne!(action(socket, [1, 2, 0, 0, 0, 0]), allow, "SOCK_DGRAM was not seen");
        // A thread's clone (no namespace flags) runs; CLONE_NEWUSER does not.
        assert_eq!(action(clone, [0x3d0f00, 0, 0, 0, 0, 0]), allow);
        assert_ne!(action(clone, [0x1000_0000 | 17, 0, 0, 0, 0, 0]), allow);
        // The ioctl set overflowed: any request.
        assert_eq!(action(ioctl, [1, 0xdead, 0, 0, 0, 0]), allow);
    }
}
