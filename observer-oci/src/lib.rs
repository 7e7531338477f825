//! Seccomp profiles as OCI artifacts in a registry (issue 28): the artifact's
//! layout and annotations, tags bound to image digests and workloads, and the
//! registry client that pushes, pulls (digest-checked) and lists them.

pub mod annotations;
pub mod artifact;
pub mod bound;
pub mod client;
pub mod credentials;
pub mod error;
pub mod media;
pub mod reference;
pub mod tags;

pub use error::OciError;
