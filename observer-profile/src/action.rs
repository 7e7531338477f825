//! Seccomp actions as text: the output contract's spelling (`allow`,
//! `errno(1)`, ...) and the `SCMP_ACT_*` names profiles use, with the errno
//! defaults runc applies.

use std::{fmt, str::FromStr};

use crate::types::Action;

/// errno runc returns for `SCMP_ACT_ERRNO` (and `SCMP_ACT_TRACE`) without an
/// `errnoRet`: EPERM.
pub const DEFAULT_ERRNO: u32 = 1;

/// ENOSYS, which makes glibc fall back from `clone3` to `clone`.
pub const ENOSYS: u32 = 38;

/// An action string that is neither a contract spelling nor an `SCMP_ACT_*`
/// name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action \"{0}\"")]
pub struct UnknownAction(pub String);

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Allow => f.write_str("allow"),
            Action::Errno(n) => write!(f, "errno({n})"),
            Action::KillProcess => f.write_str("kill_process"),
            Action::KillThread => f.write_str("kill_thread"),
            Action::Trap => f.write_str("trap"),
            Action::Log => f.write_str("log"),
            Action::Trace(n) => write!(f, "trace({n})"),
            Action::UserNotif => f.write_str("user_notif"),
        }
    }
}

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownAction(s.to_owned());
        let with_number = |prefix: &str| -> Option<Result<u32, UnknownAction>> {
            let rest = s.strip_prefix(prefix)?.strip_suffix(')')?;
            Some(rest.trim().parse().map_err(|_| unknown()))
        };
        if let Some(n) = with_number("errno(") {
            return Ok(Action::Errno(n?));
        }
        if let Some(n) = with_number("trace(") {
            return Ok(Action::Trace(n?));
        }
        let action = match s {
            "allow" => Action::Allow,
            "kill_process" => Action::KillProcess,
            "kill_thread" => Action::KillThread,
            "trap" => Action::Trap,
            "log" => Action::Log,
            "user_notif" => Action::UserNotif,
            _ => return Err(unknown()),
        };
        Ok(action)
    }
}

/// The contract spelling of an action, e.g. `errno(38)`.
pub fn to_contract(action: Action) -> String {
    action.to_string()
}

/// Parses a contract spelling, e.g. `kill_process`.
pub fn from_contract(s: &str) -> Result<Action, UnknownAction> {
    s.parse()
}

/// An `SCMP_ACT_*` name without its return value: what a profile's `action`
/// field holds before `errnoRet` is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScmpAct {
    Allow,
    Errno,
    Kill,
    KillProcess,
    KillThread,
    Trap,
    Log,
    Trace,
    Notify,
}

impl ScmpAct {
    /// Whether `errnoRet` means something for this action (runc accepts it
    /// for `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` only).
    pub fn takes_errno_ret(self) -> bool {
        matches!(self, Self::Errno | Self::Trace)
    }

    /// The action with its return value; without one, runc's EPERM.
    pub fn with_ret(self, errno_ret: Option<u32>) -> Action {
        let ret = errno_ret.unwrap_or(DEFAULT_ERRNO);
        match self {
            Self::Allow => Action::Allow,
            Self::Errno => Action::Errno(ret),
            // runc maps SCMP_ACT_KILL to libseccomp's ActKillThread.
            Self::Kill | Self::KillThread => Action::KillThread,
            Self::KillProcess => Action::KillProcess,
            Self::Trap => Action::Trap,
            Self::Log => Action::Log,
            Self::Trace => Action::Trace(ret),
            Self::Notify => Action::UserNotif,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "SCMP_ACT_ALLOW",
            Self::Errno => "SCMP_ACT_ERRNO",
            Self::Kill => "SCMP_ACT_KILL",
            Self::KillProcess => "SCMP_ACT_KILL_PROCESS",
            Self::KillThread => "SCMP_ACT_KILL_THREAD",
            Self::Trap => "SCMP_ACT_TRAP",
            Self::Log => "SCMP_ACT_LOG",
            Self::Trace => "SCMP_ACT_TRACE",
            Self::Notify => "SCMP_ACT_NOTIFY",
        }
    }
}

impl FromStr for ScmpAct {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "SCMP_ACT_ALLOW" => Self::Allow,
            "SCMP_ACT_ERRNO" => Self::Errno,
            "SCMP_ACT_KILL" => Self::Kill,
            "SCMP_ACT_KILL_PROCESS" => Self::KillProcess,
            "SCMP_ACT_KILL_THREAD" => Self::KillThread,
            "SCMP_ACT_TRAP" => Self::Trap,
            "SCMP_ACT_LOG" => Self::Log,
            "SCMP_ACT_TRACE" => Self::Trace,
            "SCMP_ACT_NOTIFY" => Self::Notify,
            _ => return Err(UnknownAction(s.to_owned())),
        })
    }
}

/// The profile spelling of an action: its `SCMP_ACT_*` name and the
/// `errnoRet` to write next to it.
pub fn to_profile(action: Action) -> (&'static str, Option<u32>) {
    match action {
        Action::Allow => (ScmpAct::Allow.name(), None),
        Action::Errno(n) => (ScmpAct::Errno.name(), Some(n)),
        Action::KillProcess => (ScmpAct::KillProcess.name(), None),
        Action::KillThread => (ScmpAct::KillThread.name(), None),
        Action::Trap => (ScmpAct::Trap.name(), None),
        Action::Log => (ScmpAct::Log.name(), None),
        Action::Trace(n) => (ScmpAct::Trace.name(), Some(n)),
        Action::UserNotif => (ScmpAct::Notify.name(), None),
    }
}

/// Parses an `SCMP_ACT_*` name with its `errnoRet`.
pub fn from_profile(name: &str, errno_ret: Option<u32>) -> Result<Action, UnknownAction> {
    Ok(name.parse::<ScmpAct>()?.with_ret(errno_ret))
}

/// How strict an action is, in libseccomp's precedence order (highest
/// first: kill_process, kill_thread, trap, errno, user_notif, trace, log,
/// allow); used to pick the strictest default when merging.
pub fn strictness(action: Action) -> u8 {
    match action {
        Action::KillProcess => 7,
        Action::KillThread => 6,
        Action::Trap => 5,
        Action::Errno(_) => 4,
        Action::UserNotif => 3,
        Action::Trace(_) => 2,
        Action::Log => 1,
        Action::Allow => 0,
    }
}

/// Whether the call goes through to the kernel (`allow`, `log`).
pub fn lets_through(action: Action) -> bool {
    matches!(action, Action::Allow | Action::Log)
}

/// `#[serde(with = "crate::action::contract")]`: an [`Action`] as its
/// contract string in JSON.
pub mod contract {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::types::Action;

    pub fn serialize<S: Serializer>(action: &Action, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(action)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        let text = String::deserialize(d)?;
        super::from_contract(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Action; 8] = [
        Action::Allow,
        Action::Errno(38),
        Action::KillProcess,
        Action::KillThread,
        Action::Trap,
        Action::Log,
        Action::Trace(7),
        Action::UserNotif,
    ];

    #[test]
    fn contract_strings_round_trip() {
        let texts: Vec<String> = ALL.iter().map(|a| to_contract(*a)).collect();
        assert_eq!(
            texts,
            ["allow", "errno(38)", "kill_process", "kill_thread", "trap", "log", "trace(7)", "user_notif"]
        );
        for (text, action) in texts.iter().zip(ALL) {
            assert_eq!(from_contract(text), Ok(action));
        }
        assert!(from_contract("errno(x)").is_err());
        assert!(from_contract("errno(1").is_err());
        assert!(from_contract("SCMP_ACT_ALLOW").is_err());
    }

    #[test]
    fn profile_names_follow_runc() {
        assert_eq!(from_profile("SCMP_ACT_ERRNO", None), Ok(Action::Errno(1)));
        assert_eq!(from_profile("SCMP_ACT_ERRNO", Some(38)), Ok(Action::Errno(38)));
        assert_eq!(from_profile("SCMP_ACT_KILL", None), Ok(Action::KillThread));
        assert_eq!(from_profile("SCMP_ACT_KILL_PROCESS", None), Ok(Action::KillProcess));
        assert_eq!(from_profile("SCMP_ACT_NOTIFY", None), Ok(Action::UserNotif));
        assert_eq!(from_profile("SCMP_ACT_TRACE", Some(3)), Ok(Action::Trace(3)));
        assert_eq!(from_profile("SCMP_ACT_FOO", None), Err(UnknownAction("SCMP_ACT_FOO".into())));
        for action in ALL {
            let (name, ret) = to_profile(action);
            assert_eq!(from_profile(name, ret), Ok(action));
        }
    }

    #[test]
    fn serde_uses_the_contract_string() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Row {
            #[serde(with = "contract")]
            action: Action,
        }
        let json = serde_json::to_string(&Row { action: Action::Errno(1) }).unwrap();
        assert_eq!(json, r#"{"action":"errno(1)"}"#);
        let back: Row = serde_json::from_str(&json).unwrap();
        assert_eq!(back.action, Action::Errno(1));
    }

    #[test]
    fn strictness_orders_kill_over_errno_over_allow() {
        assert!(strictness(Action::KillProcess) > strictness(Action::Errno(1)));
        assert!(strictness(Action::Errno(1)) > strictness(Action::Allow));
        assert!(strictness(Action::Log) > strictness(Action::Allow));
    }
}
