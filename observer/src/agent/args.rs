//! `observer agent`'s command-line arguments.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use super::{DEFAULT_PIN_DIR, DEFAULT_STATE_DIR, Watch, core, delivery, store};

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// What to record: `containers` (default) or `all` cgroups.
    #[arg(long, value_enum, default_value = "containers")]
    pub watch: Watch,
    /// The API socket (root only).
    #[arg(long, default_value = observer_contract::api::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Where profiles, alerts and settings are kept.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Where the kernel programs and maps are pinned.
    #[arg(long, default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// How long profiles of ended containers are kept (e.g. 24h, 30m).
    #[arg(long, default_value = "7days", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// Learn a baseline for each container over this window, then alert on anything new.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub learn_for: Option<Duration>,
    /// A baseline profile: NAME=FILE (container name), or image:IMAGE=FILE,
    /// pod:NAMESPACE/NAME=FILE, namespace:NAME=FILE, label:KEY=VALUE=FILE.
    #[arg(long, value_name = "NAME=FILE")]
    pub baseline: Vec<String>,
    /// Bind each container to the profile of its image digest, DIR/sha256-<hex>.json
    /// or the tag sha256-<hex> of oci://REGISTRY/REPO (cosign's tag convention): its
    /// baseline, for drift alerts, unless a --baseline names it (docs/cli.md,
    /// `observer agent --profiles`). A registry is asked off the agent's lock, its
    /// profiles cached under the state directory.
    #[arg(long, value_name = "DIR|oci://REGISTRY/REPO")]
    pub profiles: Option<PathBuf>,
    /// Also enforce the bound profile: `alert` or `kill` on a syscall outside it.
    #[arg(long, value_enum, value_name = "ACTION", requires = "profiles")]
    pub enforce_bound: Option<observer_contract::rules::EnforceAction>,
    /// Serve Prometheus metrics at this address (e.g. 127.0.0.1:9464). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// How many cgroups the kernel can record at once (about 3.4 KiB each).
    #[arg(long, default_value_t = 1024)]
    pub slots: u32,
    /// At most this many slots for the cgroups of one owner other than root
    /// (the uid of the cgroup's directory: a user's delegated subtree, a
    /// rootless container). Default: an eighth of `--slots`. Past it, that
    /// owner's new cgroups are not recorded (one `overflow` alert names the
    /// owner), and a container root's runtime starts when the table is full
    /// takes one of their slots.
    #[arg(long, value_name = "N")]
    pub slots_per_owner: Option<u32>,
    /// Size of the kernel's event ring buffer in KiB (a power of two, at least
    /// 4): 2 MiB holds 32,768 events, about ten seconds of 10,000 cgroups
    /// starting a minute (e.g. while the agent restarts). Set when the programs
    /// are loaded; pinned programs keep theirs.
    #[arg(long, default_value_t = 2048, value_name = "KIB", value_parser = ring_kib)]
    pub event_ring_kib: u32,
    /// Also count syscalls that returned an error (costs a little on every failed call).
    #[arg(long)]
    pub count_errors: bool,
    /// The agent's nice value. Below 0 (the default, -10) its event reader keeps
    /// up while container runtimes starting many containers take every CPU: a
    /// syscall at a container's start reaches the agent within milliseconds.
    /// The agent itself uses little CPU. Needs CAP_SYS_NICE; without it the
    /// agent says so and runs at its inherited priority.
    #[arg(long, default_value_t = -10, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: i32,
    /// What to do with a container an enforcement rule names when every slot is
    /// taken, so the kernel can neither record nor enforce it: `alert` (an
    /// `overflow` alert) or `kill`.
    #[arg(long, value_enum, default_value = "alert")]
    pub on_overflow: core::OverflowAction,
    /// A CRI runtime's socket (containerd, CRI-O) to ask about Kubernetes
    /// containers; repeatable. Default: /run/containerd/containerd.sock and
    /// /var/run/crio/crio.sock (a missing socket is skipped, and looked for again later).
    #[arg(long = "cri-socket", value_name = "PATH")]
    pub cri_socket: Vec<PathBuf>,
    /// dockerd's socket. Default: `DOCKER_HOST` (unix://PATH), else /var/run/docker.sock.
    #[arg(long, value_name = "PATH")]
    pub docker_socket: Option<PathBuf>,
    /// alerts.jsonl moves to alerts.jsonl.1 (replacing it) when it would grow past this size.
    #[arg(long, default_value_t = store::DEFAULT_ALERTS_MAX_BYTES, value_name = "BYTES")]
    pub alerts_max_bytes: u64,
    /// At most this many records (containers, cgroups) are kept, in memory and on
    /// disk: past it the longest-ended go first, plain cgroups before containers.
    #[arg(long, default_value_t = 20_000)]
    pub max_records: usize,
    /// How to reach the registry of --profiles oci://REGISTRY/REPO.
    #[command(flatten)]
    pub registry: crate::commands::registry::RegistryArgs,
    /// Analyse each running image's binaries (as `observer reach` does, one image at a
    /// time, off the agent's lock) and alert on calls outside what they can reach:
    /// `unreachable_syscall`, and `unlearned_syscall` for reachable calls outside the
    /// baseline (docs/reach.md).
    #[arg(long)]
    pub reach: bool,
    /// Where alerts go besides stdout and alerts.jsonl.
    #[command(flatten)]
    pub alert_outputs: delivery::OutputArgs,
    /// Detach and unpin everything an agent left behind, then exit.
    #[arg(long)]
    pub uninstall: bool,
}

/// `--event-ring-kib`: the kernel takes a power of two of pages.
fn ring_kib(s: &str) -> Result<u32, String> {
    let kib: u32 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(4..=1 << 20).contains(&kib) || !kib.is_power_of_two() {
        return Err(format!("{kib}: a power of two from 4 to 1048576 KiB"));
    }
    Ok(kib)
}
