//! The crate's one error type at its boundary: what failed, by the part that
//! failed. Each part keeps its own precise error (a profile's file, line and
//! field; a filter's instruction; an argument the target architecture takes
//! differently), which converts into this one, so a caller that handles
//! several parts needs one type and still shows the part's own message.

/// An error of observer-profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A profile file could not be read or parsed (names the file, line and field).
    #[error(transparent)]
    Profile(#[from] crate::model::ProfileError),
    /// An action name that is no seccomp action.
    #[error(transparent)]
    Action(#[from] crate::action::UnknownAction),
    /// A profile that cannot be mapped to another architecture (names the rule and argument).
    #[error(transparent)]
    ArchMap(#[from] crate::arch_map::ArchMapError),
    /// Bytes that are not a classic-BPF program.
    #[error(transparent)]
    Decode(#[from] crate::bpf::DecodeError),
    /// A filter that could not be evaluated (names the instruction).
    #[error(transparent)]
    Eval(#[from] crate::bpf::eval::EvalError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_part_s_own_message() {
        let e: Error = crate::action::UnknownAction("SCMP_ACT_NOPE".to_owned()).into();
        assert_eq!(e.to_string(), "unknown action \"SCMP_ACT_NOPE\"");
        let e: Error = crate::model::parse("{", "p.json").unwrap_err().into();
        assert!(e.to_string().starts_with("p.json"), "{e}");
    }
}
