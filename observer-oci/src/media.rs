//! The media types of a profile artifact: the ones the Security Profiles
//! Operator's `spoc push` writes for container runtimes and KEP-6061 documents
//! (kubernetes/enhancements, keps/sig-node, "OCI Artifact Format"): one layer
//! holding the OCI runtime-spec seccomp JSON, marked by a typed config media
//! type that is also the manifest's `artifactType`.

/// The config media type (and `artifactType`) runtimes identify a seccomp profile by.
pub const SECCOMP_PROFILE_CONFIG: &str = "application/vnd.cncf.seccomp-profile.config.v1+json";
/// The layer: the raw profile JSON (not a tar), as `spoc` labels it. KEP-6061 has
/// runtimes accept any layer media type, so this is for people reading the manifest.
pub const PROFILE_LAYER: &str = "application/json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The config blob's content: an empty JSON object (the profile is the layer).
pub const CONFIG_BLOB: &[u8] = b"{}";
/// The layer's file name (`org.opencontainers.image.title`), as pulled by ORAS.
pub const PROFILE_FILE_NAME: &str = "seccomp-profile.json";
