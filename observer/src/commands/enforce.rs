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
    #[arg(long, required_unless_present = "off")]
    pub profile: Option<PathBuf>,
    /// alert: write an `enforce` alert line; kill: also SIGKILL the caller from the kernel.
    #[arg(long, value_enum, default_value = "alert")]
    pub action: observer_contract::rules::EnforceAction,
    /// Capabilities to resolve the profile for (default Docker's set).
    #[arg(long)]
    pub caps: Option<String>,
    /// Stop enforcing.
    #[arg(long, conflicts_with = "profile")]
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
