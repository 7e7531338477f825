//! What the contract refuses: text that does not name a rule target or a workload.

/// A name the contract could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// A `--match` or `--baseline` target that is not `KIND:VALUE` of a known kind.
    #[error("{spec:?}: {why}")]
    Match { spec: String, why: String },
    /// A workload key that is not `NAMESPACE/KIND/NAME/CONTAINER`.
    #[error(
        "workload {given:?}: expected NAMESPACE/KIND/NAME/CONTAINER, none empty (the owner's kind, e.g. Deployment, is part of the key)"
    )]
    WorkloadKey { given: String },
}
