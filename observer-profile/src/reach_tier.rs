//! The reachable tier's data (`--reachable log|allow`): what the export is
//! given and what it reports. How the tier is added is `tiers.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::types::{Action, Arch};

/// What the second tier does with a reachable name never seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TierAction {
    /// `SCMP_ACT_LOG`: the call runs and the kernel logs it.
    Log,
    /// `SCMP_ACT_ALLOW`.
    Allow,
}

impl TierAction {
    pub fn action(self) -> Action {
        match self {
            TierAction::Log => Action::Log,
            TierAction::Allow => Action::Allow,
        }
    }
}

/// The reachable syscalls per ABI and what to do with the unlearned ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReachableTier {
    pub names: BTreeMap<Arch, BTreeSet<String>>,
    pub action: TierAction,
    /// Where the set came from (`observer reach` target), for the metadata.
    pub source: String,
    /// False when the analysis listed undecided sites or files it could not
    /// read: the truth may hold more than `names`.
    pub complete: bool,
}

/// How many names each tier of an exported profile holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TierCounts {
    /// Names the profile lets through because they were learned.
    pub learned: usize,
    /// Reachable names never learned, with the tier's action.
    pub reachable: usize,
    pub reachable_action: Option<TierAction>,
    pub reachable_source: String,
    pub reachable_complete: bool,
    /// Reachable names the upper bound (Docker's default or the base) denies:
    /// they keep the default action.
    pub reachable_denied: BTreeSet<String>,
}
