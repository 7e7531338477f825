//! `oci://REGISTRY/REPO[:TAG|@DIGEST]`: where a profile lives in a registry.

use std::net::IpAddr;

use crate::error::OciError;

/// A repository in a registry, and optionally one tag or digest in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host[:port]`, as written.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl RegistryRef {
    /// Parses `oci://REGISTRY/REPO[:TAG]` or `oci://REGISTRY/REPO@sha256:HEX`.
    pub fn parse(text: &str) -> Result<Self, OciError> {
        let bad = |problem: &str| OciError::BadReference { reference: text.to_owned(), problem: problem.to_owned() };
        let rest = text.strip_prefix("oci://").ok_or_else(|| bad("a registry reference starts with oci://"))?;
        let (registry, path) =
            rest.split_once('/').ok_or_else(|| bad("expected oci://REGISTRY/REPOSITORY[:TAG], with a repository"))?;
        if registry.is_empty() || !registry.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) {
            return Err(bad("the registry must be a host name or address, with an optional :port"));
        }
        let (path, digest) = match path.split_once('@') {
            Some((p, d)) => (p, Some(d.to_owned())),
            None => (path, None),
        };
        // A tag follows the last ':' after the last '/'.
        let last = path.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match path[last..].rfind(':') {
            Some(i) => (&path[..last + i], Some(path[last + i + 1..].to_owned())),
            None => (path, None),
        };
        if !valid_repository(repository) {
            return Err(bad(
                "the repository must be lower-case path components of letters and digits separated by . _ - and /",
            ));
        }
        if let Some(tag) = &tag
            && !valid_tag(tag)
        {
            return Err(bad("a tag is 1 to 128 of A-Z a-z 0-9 _ . - and does not start with . or -"));
        }
        if let Some(d) = &digest
            && !valid_digest(d)
        {
            return Err(bad("a digest is sha256: and 64 lower-case hex digits"));
        }
        if tag.is_some() && digest.is_some() {
            return Err(bad("give a tag or a digest, not both"));
        }
        Ok(Self { registry: registry.to_owned(), repository: repository.to_owned(), tag, digest })
    }

    /// The same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self { tag: Some(tag.to_owned()), digest: None, ..self.clone() }
    }

    /// The same repository at a digest.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self { tag: None, digest: Some(digest.to_owned()), ..self.clone() }
    }

    /// The host without the port (or brackets).
    pub fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(rest) = r.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        r.rsplit_once(':').map_or(r, |(h, _)| h)
    }

    /// Whether the registry is on this machine's loopback (the only place plain http goes).
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    pub fn to_oci(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => {
                oci_client::Reference::with_digest(self.registry.clone(), self.repository.clone(), d.clone())
            }
            (Some(t), None) => {
                oci_client::Reference::with_tag(self.registry.clone(), self.repository.clone(), t.clone())
            }
            (None, None) => {
                oci_client::Reference::with_tag(self.registry.clone(), self.repository.clone(), "latest".to_owned())
            }
        }
    }
}

impl std::fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The distribution spec's repository grammar: `[a-z0-9]+([._-][a-z0-9]+)*(/...)*`.
fn valid_repository(repo: &str) -> bool {
    !repo.is_empty()
        && repo.len() <= 255
        && repo.split('/').all(|part| {
            !part.is_empty()
                && part.split(['.', '_', '-']).all(|w| !w.is_empty())
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        })
}

/// The distribution spec's tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

pub fn valid_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_repository_and_tag() {
        let r = RegistryRef::parse("oci://127.0.0.1:5000/team/profiles:web-1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/profiles");
        assert_eq!(r.tag.as_deref(), Some("web-1"));
        assert!(r.is_loopback());
        let r = RegistryRef::parse("oci://registry.example:443/profiles").unwrap();
        assert_eq!((r.host(), r.tag.as_deref(), r.is_loopback()), ("registry.example", None, false));
        let r = RegistryRef::parse(&format!("oci://[::1]:5000/p@sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(r.host(), "::1");
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), format!("oci://[::1]:5000/p@sha256:{}", "a".repeat(64)));
        assert!(RegistryRef::parse("oci://localhost/p").unwrap().is_loopback());
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let err = |t: &str| RegistryRef::parse(t).unwrap_err().to_string();
        assert!(err("docker://r/p").contains("starts with oci://"), "{}", err("docker://r/p"));
        assert!(err("oci://r").contains("with a repository"));
        assert!(err("oci://r/Upper").contains("lower-case"));
        assert!(err("oci://r/p:-bad").contains("a tag is"));
        assert!(err("oci://r/p@sha256:12").contains("a digest is"));
        assert!(err("oci://r/p:t@sha256:".to_owned().as_str()).contains("digest"));
        assert!(err(&format!("oci://r/p:{}", "x".repeat(129))).contains("a tag is"));
    }
}
