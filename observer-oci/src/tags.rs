//! Tag names: a profile found from what a node already knows, without a lookup
//! service. An image's profile is tagged `sha256-<hex>` after the image digest
//! (cosign's convention for what belongs to an image); a workload's merged
//! profile and each node's partial one get tags derived from the workload key.

use sha2::{Digest, Sha256};

use crate::{error::OciError, reference::valid_digest};

/// `sha256:<hex>` → `sha256-<hex>`.
pub fn image_digest_tag(image_digest: &str) -> Result<String, OciError> {
    // Docker reports image ids and repo digests with a `NAME@` prefix at times.
    let digest = image_digest.rsplit('@').next().unwrap_or(image_digest);
    if !valid_digest(digest) {
        return Err(OciError::BadReference {
            reference: image_digest.to_owned(),
            problem: "an image digest is sha256: and 64 lower-case hex digits".to_owned(),
        });
    }
    Ok(digest.replacen(':', "-", 1))
}

/// The merged profile of a workload (`NAMESPACE/KIND/NAME/CONTAINER`):
/// `wl-<readable key>-<12 hex of its sha256>`. The hash keeps two keys apart
/// that read the same once made tag-safe (or cut to fit).
pub fn workload_tag(workload: &str) -> Result<String, OciError> {
    if workload.is_empty() || workload.split('/').count() != 4 || workload.split('/').any(str::is_empty) {
        return Err(OciError::BadReference {
            reference: workload.to_owned(),
            problem: "a workload key is NAMESPACE/KIND/NAME/CONTAINER".to_owned(),
        });
    }
    Ok(format!("wl-{}-{}", readable(workload, 60), short_hash(workload, 12)))
}

/// What every node's partial tag of the workload starts with.
pub fn partial_prefix(workload: &str) -> Result<String, OciError> {
    Ok(format!("{}.node-", workload_tag(workload)?))
}

/// One node's partial profile of a workload: `<workload tag>.node-<node>-<8 hex>`.
pub fn partial_tag(workload: &str, node: &str) -> Result<String, OciError> {
    if node.is_empty() {
        return Err(OciError::BadReference { reference: node.to_owned(), problem: "a node name is needed".to_owned() });
    }
    Ok(format!("{}{}-{}", partial_prefix(workload)?, readable(node, 30), short_hash(node, 8)))
}

/// Lower-case letters and digits kept, anything else one `_`, cut to `max`.
fn readable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
        if out.len() >= max {
            break;
        }
    }
    out
}

fn short_hash(text: &str, len: usize) -> String {
    let mut h = hex::encode(Sha256::digest(text.as_bytes()));
    h.truncate(len);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::valid_tag;

    #[test]
    fn image_digest_tags_follow_cosign() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(image_digest_tag(&d).unwrap(), format!("sha256-{}", "ab".repeat(32)));
        assert_eq!(image_digest_tag(&format!("busybox@{d}")).unwrap(), format!("sha256-{}", "ab".repeat(32)));
        assert!(image_digest_tag("sha256:xyz").unwrap_err().to_string().contains("64 lower-case hex"));
        assert!(image_digest_tag("latest").is_err());
    }

    #[test]
    fn workload_and_partial_tags_are_valid_distinct_and_prefixed() {
        let w = "default/Deployment/web/app";
        let t = workload_tag(w).unwrap();
        assert!(t.starts_with("wl-default_deployment_web_app-"), "{t}");
        assert!(valid_tag(&t), "{t}");
        // Keys that read the same once made tag-safe still differ.
        assert_ne!(t, workload_tag("default/Deployment/web/app_").unwrap_or_default());
        assert_ne!(t, workload_tag("default/deployment/web/app").unwrap());
        let p = partial_tag(w, "node-1.example").unwrap();
        assert!(p.starts_with(&partial_prefix(w).unwrap()), "{p}");
        assert!(valid_tag(&p), "{p}");
        assert_ne!(p, partial_tag(w, "node-1_example").unwrap());
        // The longest keys and node names still give valid tags.
        let long = format!("{0}/{0}/{0}/{0}", "n".repeat(250));
        assert!(valid_tag(&partial_tag(&long, &"x".repeat(300)).unwrap()));
        // The merged tag is never a partial tag of the same workload.
        assert!(!t.starts_with(&partial_prefix(w).unwrap()));
    }

    #[test]
    fn bad_workload_keys_are_refused() {
        assert!(workload_tag("web").unwrap_err().to_string().contains("NAMESPACE/KIND/NAME/CONTAINER"));
        assert!(workload_tag("a//b/c").is_err());
        assert!(partial_tag("a/b/c/d", "").is_err());
    }
}
