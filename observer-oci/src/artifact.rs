//! The artifact: an OCI image index with one manifest per platform, each
//! manifest holding one profile as its single layer (KEP-6061's format), with
//! the provenance annotations on the index and on every manifest.

use std::collections::BTreeMap;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{error::OciError, media};

/// One platform's profile, as bytes that are pushed and pulled unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformProfile {
    pub os: String,
    /// The OCI (GOARCH) name: `amd64`, `arm64`.
    pub architecture: String,
    pub profile: Vec<u8>,
}

impl PlatformProfile {
    pub fn linux(architecture: &str, profile: Vec<u8>) -> Self {
        Self { os: "linux".to_owned(), architecture: architecture.to_owned(), profile }
    }
}

/// A blob to upload: content addressed by its sha256.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn new(data: Vec<u8>) -> Self {
        Self { digest: sha256_digest(&data), data }
    }
}

/// What to push, in order: blobs, then manifests (by digest), then the index
/// under its tags, so that a tag never names anything half uploaded.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub blobs: Vec<Blob>,
    pub manifests: Vec<Blob>,
    pub index: Blob,
    /// Per platform (`linux/amd64`), the digest of its profile layer.
    pub layer_digests: BTreeMap<String, String>,
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Builds the index and manifests for `platforms` (at least one, each platform once).
pub fn build(platforms: &[PlatformProfile], annotations: &BTreeMap<String, String>) -> Result<Artifact, OciError> {
    let bad = |problem: String| OciError::BadArtifact { reference: "the artifact".to_owned(), problem };
    if platforms.is_empty() {
        return Err(bad("no profile to push".to_owned()));
    }
    let config = Blob::new(media::CONFIG_BLOB.to_vec());
    let mut blobs = vec![config.clone()];
    let mut manifests = Vec::new();
    let mut entries = Vec::new();
    let mut layer_digests = BTreeMap::new();
    for p in platforms {
        let platform = format!("{}/{}", p.os, p.architecture);
        if layer_digests.contains_key(&platform) {
            return Err(bad(format!("{platform} is given twice")));
        }
        if p.profile.is_empty() {
            return Err(bad(format!("the {platform} profile is empty")));
        }
        let layer = Blob::new(p.profile.clone());
        layer_digests.insert(platform, layer.digest.clone());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "artifactType": media::SECCOMP_PROFILE_CONFIG,
            "config": {
                "mediaType": media::SECCOMP_PROFILE_CONFIG,
                "digest": config.digest,
                "size": config.data.len(),
            },
            "layers": [{
                "mediaType": media::PROFILE_LAYER,
                "digest": layer.digest,
                "size": layer.data.len(),
                "annotations": {"org.opencontainers.image.title": media::PROFILE_FILE_NAME},
            }],
            "annotations": annotations,
        });
        let manifest = Blob::new(serde_json::to_vec(&manifest).map_err(|e| bad(e.to_string()))?);
        entries.push(json!({
            "mediaType": media::OCI_MANIFEST,
            "artifactType": media::SECCOMP_PROFILE_CONFIG,
            "digest": manifest.digest,
            "size": manifest.data.len(),
            "platform": {"os": p.os, "architecture": p.architecture},
        }));
        if !blobs.iter().any(|b: &Blob| b.digest == layer.digest) {
            blobs.push(layer);
        }
        manifests.push(manifest);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "artifactType": media::SECCOMP_PROFILE_CONFIG,
        "manifests": entries,
        "annotations": annotations,
    });
    let index = Blob::new(serde_json::to_vec(&index).map_err(|e| bad(e.to_string()))?);
    Ok(Artifact { blobs, manifests, index, layer_digests })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_has_one_manifest_per_platform_in_kep_6061_format() {
        let mut ann = BTreeMap::new();
        ann.insert("dev.observer.profile.workload".to_owned(), "ns/Deployment/w/c".to_owned());
        let amd = PlatformProfile::linux("amd64", br#"{"defaultAction":"SCMP_ACT_ERRNO"}"#.to_vec());
        let arm = PlatformProfile::linux("arm64", br#"{"defaultAction":"SCMP_ACT_KILL"}"#.to_vec());
        let a = build(&[amd.clone(), arm], &ann).unwrap();
        let index: serde_json::Value = serde_json::from_slice(&a.index.data).unwrap();
        assert_eq!(index["mediaType"], media::OCI_INDEX);
        assert_eq!(index["annotations"]["dev.observer.profile.workload"], "ns/Deployment/w/c");
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["platform"], json!({"os": "linux", "architecture": "arm64"}));
        for (entry, manifest) in entries.iter().zip(&a.manifests) {
            assert_eq!(entry["digest"], manifest.digest);
            assert_eq!(entry["size"], manifest.data.len());
            assert_eq!(manifest.digest, sha256_digest(&manifest.data));
            let m: serde_json::Value = serde_json::from_slice(&manifest.data).unwrap();
            assert_eq!(m["config"]["mediaType"], "application/vnd.cncf.seccomp-profile.config.v1+json");
            assert_eq!(m["artifactType"], m["config"]["mediaType"]);
            assert_eq!(m["layers"].as_array().unwrap().len(), 1, "KEP-6061: exactly one layer");
            assert_eq!(m["annotations"]["dev.observer.profile.workload"], "ns/Deployment/w/c");
        }
        let m: serde_json::Value = serde_json::from_slice(&a.manifests[0].data).unwrap();
        assert_eq!(m["layers"][0]["digest"], sha256_digest(&amd.profile));
        assert_eq!(a.layer_digests["linux/amd64"], sha256_digest(&amd.profile));
        // The config blob (shared) and two layers.
        assert_eq!(a.blobs.len(), 3);
        assert_eq!(a.blobs[0].data, b"{}");
    }

    #[test]
    fn same_input_gives_the_same_digests_and_bad_input_is_refused() {
        let p = [PlatformProfile::linux("amd64", b"{}".to_vec())];
        assert_eq!(
            build(&p, &BTreeMap::new()).unwrap().index.digest,
            build(&p, &BTreeMap::new()).unwrap().index.digest
        );
        assert!(build(&[], &BTreeMap::new()).unwrap_err().to_string().contains("no profile"));
        let twice = [p[0].clone(), p[0].clone()];
        assert!(build(&twice, &BTreeMap::new()).unwrap_err().to_string().contains("linux/amd64 is given twice"));
        let empty = [PlatformProfile::linux("amd64", Vec::new())];
        assert!(build(&empty, &BTreeMap::new()).unwrap_err().to_string().contains("empty"));
    }
}
