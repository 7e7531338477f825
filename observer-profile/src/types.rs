//! The resolved form of a seccomp profile: what a filter is compiled from and
//! what filters are compared with, whatever file format it came from.

use serde::{Deserialize, Serialize};

/// A seccomp action, as the output contract spells it (docs/cli.md):
/// `allow`, `errno(N)`, `kill_process`, `kill_thread`, `trap`, `log`,
/// `trace(N)`, `user_notif`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    Allow,
    Errno(u32),
    KillProcess,
    KillThread,
    Trap,
    Log,
    Trace(u32),
    UserNotif,
}

/// Architectures (seccomp ABIs) observer knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Arch {
    X86_64,
    I386,
    X32,
    /// arm64. Observer only evaluates and writes profiles for it (no probe
    /// runs there); its names and numbers come from libseccomp.
    Aarch64,
}

/// Comparison of one syscall argument, as in libseccomp / the OCI spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CmpOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`
    MaskedEq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ArgCond {
    pub index: u32,
    pub value: u64,
    pub value_two: u64,
    pub op: CmpOp,
}

/// One rule after Docker's conditions (caps, arch, minKernel) were resolved.
/// All `args` must match (AND); several rules for one name are an OR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRule {
    pub name: String,
    pub action: Action,
    pub args: Vec<ArgCond>,
}

/// A profile resolved for one set of capabilities, architecture and kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedProfile {
    pub default_action: Action,
    /// Architectures the filter accepts (the native one first); others get
    /// the action runc gives an unlisted ABI.
    pub arches: Vec<Arch>,
    pub rules: Vec<ResolvedRule>,
    /// Syscall names the profile uses that no listed architecture knows;
    /// they are skipped, with a warning, as runc does.
    pub unknown_names: Vec<String>,
}
