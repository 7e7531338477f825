//! `observer enforce`: have the agent's kernel program act when a container's
//! own processes make a syscall outside a profile (alert, or alert and kill).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use observer_contract::{
    api::Request,
    rules::{EnforceAnswer, ReleaseAnswer, Target},
};

use crate::api::{call_as, socket_path};

#[derive(Args, Debug)]
pub struct EnforceArgs {
    /// Container id, unique id prefix or name (or use --match).
    pub container: Option<String>,
    /// name:NAME, image:IMAGE, pod:NAMESPACE/NAME, namespace:NAME or
    /// label:KEY=VALUE: also containers yet to start, and restarted ones.
    #[arg(long = "match", value_name = "name:NAME|image:IMAGE|pod:NS/NAME|namespace:NS|label:K=V")]
    pub matcher: Option<String>,
    /// The profile whose syscalls are allowed.
    #[arg(long, required_unless_present_any = ["off", "unreachable"])]
    pub profile: Option<PathBuf>,
    /// Allow what the container's binaries can reach (`observer reach` on the
    /// container's root, or on the image of `--match image:IMAGE`) and act on
    /// every other call: alert, or alert and kill. Instead of --profile.
    #[arg(long, value_enum, value_name = "alert|kill", conflicts_with_all = ["profile", "action", "caps"])]
    pub unreachable: Option<observer_contract::rules::EnforceAction>,
    /// With --unreachable: what to analyse instead (an image, a container, a root directory).
    #[arg(long, requires = "unreachable")]
    pub reach_target: Option<String>,
    /// alert: write an `enforce` alert line; kill: also SIGKILL the caller from the kernel.
    #[arg(long, value_enum, default_value = "alert")]
    pub action: observer_contract::rules::EnforceAction,
    /// Capabilities to resolve the profile for (default Docker's set).
    #[arg(long)]
    pub caps: Option<String>,
    /// Stop enforcing.
    #[arg(long, conflicts_with_all = ["profile", "unreachable"])]
    pub off: bool,
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

pub fn run(args: &EnforceArgs) -> anyhow::Result<i32> {
    let target = match (&args.container, &args.matcher) {
        (Some(c), None) => Target::Container(c.clone()),
        (None, Some(m)) => Target::parse_match(m).map_err(|e| anyhow::anyhow!("--match {e}"))?,
        (Some(_), Some(_)) => bail!("give a CONTAINER or --match, not both"),
        (None, None) => bail!("give a CONTAINER or --match name:NAME|image:IMAGE|pod:NS/NAME|namespace:NS|label:K=V"),
    };
    let socket = socket_path(args.socket.as_deref());
    let answer = if args.off {
        let released: ReleaseAnswer = call_as(&socket, &Request::EnforceOff { target })?;
        serde_json::to_string_pretty(&released)?
    } else if let Some(action) = args.unreachable {
        let (source, rows) = reachable_rows(&target, args.reach_target.as_deref())?;
        eprintln!("observer: {} syscall rows reachable in {source}; every other call: {action:?}", rows.len());
        let request = Request::Enforce {
            target,
            action,
            allowed_rows: rows.into_iter().collect(),
            profile: format!("reachable set of {source}"),
        };
        let armed: EnforceAnswer = call_as(&socket, &request)?;
        serde_json::to_string_pretty(&armed)?
    } else {
        let profile = args.profile.as_ref().expect("clap requires --profile without --off");
        let rows = crate::profile_rows::allowed_rows_of_file(profile, args.caps.as_deref())?;
        let request = Request::Enforce {
            target,
            action: args.action,
            allowed_rows: rows.into_iter().collect(),
            profile: profile.display().to_string(),
        };
        let armed: EnforceAnswer = call_as(&socket, &request)?;
        serde_json::to_string_pretty(&armed)?
    };
    println!("{answer}");
    Ok(0)
}

/// What `--unreachable` allows: the rows `observer reach` finds for the
/// target (a container through its root as mounted, an image as stored).
fn reachable_rows(
    target: &Target,
    reach_target: Option<&str>,
) -> anyhow::Result<(String, std::collections::BTreeSet<u32>)> {
    let source = match (reach_target, target) {
        (Some(t), _) => t.to_owned(),
        (None, Target::Container(c)) => c.clone(),
        (None, Target::Image(i)) => i.clone(),
        (None, _) => bail!("--unreachable needs a CONTAINER, --match image:IMAGE or --reach-target to analyse"),
    };
    let (source, reach) = crate::commands::reach_groups::find_reach(Some(&source), &[])?;
    if !reach.complete {
        eprintln!(
            "observer: the analysis of {source} is incomplete (undecided sites or unread files: see observer reach {source}); calls it could not decide are not allowed"
        );
    }
    Ok((source, crate::reach_rows::rows_of(&reach)))
}
