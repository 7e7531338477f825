//! What can go wrong with a registry, said so that the user knows what to fix.

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{reference}: {problem}")]
    BadReference { reference: String, problem: String },
    #[error(
        "{registry}: plain http is only for a loopback registry (127.0.0.0/8, ::1, localhost), and only with --plain-http"
    )]
    PlainHttpNotLoopback { registry: String },
    #[error("{path}: {problem}")]
    Credentials { path: String, problem: String },
    #[error(
        "{registry}: the registry refused the credentials{user} (wrong user name or password?); they come from {source_of}"
    )]
    WrongCredentials { registry: String, user: String, source_of: String },
    #[error(
        "{registry}: the registry asks for credentials and there are none for it in {source_of} (docker login {registry})"
    )]
    NoCredentials { registry: String, source_of: String },
    #[error("{path}: cannot read the CA certificate: {problem}")]
    Ca { path: String, problem: String },
    #[error("{what}: digest mismatch: the registry sent content whose digest is {actual}, not {expected}")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("{reference}: no such tag or manifest in the registry")]
    NotFound { reference: String },
    #[error("{reference}: {problem}")]
    BadArtifact { reference: String, problem: String },
    #[error("{registry}: the registry did not answer ({during}): {problem}")]
    Unreachable { registry: String, during: String, problem: String },
    #[error("{path}: profile cache: {problem}")]
    Cache { path: String, problem: String },
    #[error("{registry}: {during}: {problem}")]
    Registry { registry: String, during: String, problem: String },
}
