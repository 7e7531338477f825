//! The registry client: pushes an artifact (blobs, manifests by digest, then
//! the index under its tags, so a tag never names a half-written artifact),
//! pulls one platform's profile and checks every byte against its digest,
//! lists tags. Plain http goes only to a loopback registry, and only when asked.

use std::{path::PathBuf, time::Duration};

use futures_util::StreamExt as _;
use oci_client::{
    Client,
    client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol},
    errors::{OciDistributionError, OciErrorCode},
    manifest::OciDescriptor,
    secrets::RegistryAuth,
};
use sha2::{Digest, Sha256};

use crate::{
    annotations::Provenance,
    artifact::{Artifact, sha256_digest},
    credentials::{self, Credentials},
    error::OciError,
    media,
    reference::RegistryRef,
};

/// The largest profile pulled: a runtime refuses far smaller ones (KEP-6061),
/// this only bounds what a hostile registry can make us hold.
pub const MAX_PROFILE_BYTES: u64 = 16 << 20;
/// The largest manifest or index read (the distribution spec's suggested limit).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Speak http, not https: only to a loopback registry.
    pub plain_http: bool,
    /// A PEM CA certificate trusted besides the system's roots.
    pub ca: Option<PathBuf>,
    /// The Docker config (file, or directory with config.json) to take credentials from.
    pub docker_config: Option<PathBuf>,
}

/// One repository in one registry, with its credentials.
pub struct Registry {
    client: Client,
    repo: RegistryRef,
    creds: Credentials,
}

/// One platform's profile as pulled, checked against its digests.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub profile: Vec<u8>,
    pub provenance: Provenance,
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The digest the tag resolved to (the index's, or the manifest's when not an index).
    pub digest: String,
    pub manifest_digest: String,
    pub layer_digest: String,
}

impl Registry {
    pub fn connect(repo: &RegistryRef, options: &ClientOptions) -> Result<Self, OciError> {
        install_crypto_provider();
        if options.plain_http && !repo.is_loopback() {
            return Err(OciError::PlainHttpNotLoopback { registry: repo.registry.clone() });
        }
        let mut extra_root_certificates = Vec::new();
        if let Some(ca) = &options.ca {
            let data = std::fs::read(ca)
                .map_err(|e| OciError::Ca { path: ca.display().to_string(), problem: e.to_string() })?;
            if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
                return Err(OciError::Ca {
                    path: ca.display().to_string(),
                    problem: "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned(),
                });
            }
            extra_root_certificates.push(Certificate { encoding: CertificateEncoding::Pem, data });
        }
        let config = ClientConfig {
            protocol: if options.plain_http {
                ClientProtocol::HttpsExcept(vec![repo.registry.clone()])
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            // Never a proxy from the environment: the registry is named explicitly.
            ..ClientConfig::default()
        };
        let path = credentials::config_path(options.docker_config.as_deref());
        let creds = credentials::for_registry(path.as_deref(), &repo.registry)?;
        Ok(Self { client: Client::new(config), repo: repo.clone(), creds })
    }

    pub fn repository(&self) -> &RegistryRef {
        &self.repo
    }

    /// Pushes `artifact` and points every tag in `tags` at its index; returns the index digest.
    pub async fn push(&self, artifact: &Artifact, tags: &[String]) -> Result<String, OciError> {
        let first = tags.first().ok_or_else(|| OciError::BadReference {
            reference: self.repo.to_string(),
            problem: "no tag to push to".to_owned(),
        })?;
        let image = self.repo.with_tag(first).to_oci();
        let during = |what: &str| format!("pushing {what} to {}", self.repo);
        self.client
            .auth(&image, &self.creds.auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| self.error(e, &during("(logging in)"), &self.repo.to_string()))?;
        for blob in &artifact.blobs {
            let exists = self
                .client
                .blob_exists(&image, &blob.digest)
                .await
                .map_err(|e| self.error(e, &during(&format!("blob {}", blob.digest)), &self.repo.to_string()))?;
            if !exists {
                self.client
                    .push_blob(&image, blob.data.clone(), &blob.digest)
                    .await
                    .map_err(|e| self.error(e, &during(&format!("blob {}", blob.digest)), &self.repo.to_string()))?;
            }
        }
        for m in &artifact.manifests {
            let at = self.repo.with_digest(&m.digest);
            self.client
                .push_manifest_raw(&at.to_oci(), m.data.clone(), header(media::OCI_MANIFEST))
                .await
                .map_err(|e| self.error(e, &during(&format!("manifest {}", m.digest)), &at.to_string()))?;
        }
        for tag in tags {
            let at = self.repo.with_tag(tag);
            self.client
                .push_manifest_raw(&at.to_oci(), artifact.index.data.clone(), header(media::OCI_INDEX))
                .await
                .map_err(|e| self.error(e, &during(&format!("the index under tag {tag}")), &at.to_string()))?;
        }
        Ok(artifact.index.digest.clone())
    }

    /// Pulls the profile for `platform` (`linux/amd64`) at `at` (a tag or digest
    /// of this repository); every manifest and the layer are checked against
    /// their digests, and refused on a mismatch.
    pub async fn pull(&self, at: &RegistryRef, platform: &str) -> Result<Pulled, OciError> {
        let image = at.to_oci();
        let shown = at.to_string();
        let during = format!("pulling {shown}");
        self.client
            .auth(&image, &self.creds.auth, oci_client::RegistryOperation::Pull)
            .await
            .map_err(|e| self.error(e, &during, &shown))?;
        let (top, digest) = self.manifest(at, &during).await?;
        let top_json: serde_json::Value = parse_json(&top, &shown)?;
        let (manifest_json, manifest_digest) = if let Some(entries) = top_json["manifests"].as_array() {
            let entry = entries
                .iter()
                .find(|e| {
                    let p = &e["platform"];
                    format!("{}/{}", p["os"].as_str().unwrap_or(""), p["architecture"].as_str().unwrap_or(""))
                        == platform
                })
                .ok_or_else(|| {
                    let have: Vec<String> = entries
                        .iter()
                        .map(|e| {
                            format!(
                                "{}/{}",
                                e["platform"]["os"].as_str().unwrap_or("?"),
                                e["platform"]["architecture"].as_str().unwrap_or("?")
                            )
                        })
                        .collect();
                    OciError::BadArtifact {
                        reference: shown.clone(),
                        problem: format!("no profile for {platform} in it (it has: {})", have.join(", ")),
                    }
                })?;
            let d = entry["digest"].as_str().unwrap_or_default().to_owned();
            let (bytes, _) = self.manifest(&at.with_digest(&d), &during).await?;
            (parse_json(&bytes, &shown)?, d)
        } else {
            (top_json, digest.clone())
        };
        let config_type = manifest_json["config"]["mediaType"].as_str().unwrap_or_default();
        let artifact_type = manifest_json["artifactType"].as_str().unwrap_or_default();
        if config_type != media::SECCOMP_PROFILE_CONFIG
            && !(config_type == "application/vnd.oci.empty.v1+json" && artifact_type == media::SECCOMP_PROFILE_CONFIG)
        {
            return Err(OciError::BadArtifact {
                reference: shown,
                problem: format!(
                    "not a seccomp profile artifact: its config media type is {config_type:?}, not {}",
                    media::SECCOMP_PROFILE_CONFIG
                ),
            });
        }
        let layers = manifest_json["layers"].as_array().cloned().unwrap_or_default();
        if layers.len() != 1 {
            return Err(OciError::BadArtifact {
                reference: shown,
                problem: format!("a profile artifact has exactly one layer (KEP-6061); this one has {}", layers.len()),
            });
        }
        let layer: OciDescriptor = serde_json::from_value(layers[0].clone()).map_err(|e| OciError::BadArtifact {
            reference: shown.clone(),
            problem: format!("its layer descriptor is not valid: {e}"),
        })?;
        let profile = self.blob(at, &layer, &during).await?;
        let annotations: std::collections::BTreeMap<String, String> =
            serde_json::from_value(manifest_json["annotations"].clone()).unwrap_or_default();
        Ok(Pulled {
            provenance: Provenance::from_annotations(&annotations),
            annotations,
            profile,
            digest,
            manifest_digest,
            layer_digest: layer.digest,
        })
    }

    /// The digest of `platform`'s profile layer at `tag`, or None when there is no such tag.
    pub async fn layer_digest(&self, tag: &str, platform: &str) -> Result<Option<String>, OciError> {
        match self.pull(&self.repo.with_tag(tag), platform).await {
            Ok(p) => Ok(Some(p.layer_digest)),
            Err(OciError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every tag of the repository, sorted, page by page where the registry pages
    /// (distribution 2.8 ignores `n` and `last` for tags and answers them all: a
    /// page that brings nothing new ends the listing).
    pub async fn tags(&self) -> Result<Vec<String>, OciError> {
        const PAGE: usize = 1000;
        let image = self.repo.with_tag("latest").to_oci();
        let during = format!("listing the tags of {}", self.repo);
        let mut all = std::collections::BTreeSet::new();
        let mut last: Option<String> = None;
        loop {
            let page = self.client.list_tags(&image, &self.creds.auth, Some(PAGE), last.as_deref()).await;
            let page = match page {
                Ok(p) => p,
                // A repository nothing was pushed to yet has no tags.
                Err(e) => match self.error(e, &during, &self.repo.to_string()) {
                    OciError::NotFound { .. } => break,
                    other => return Err(other),
                },
            };
            let n = page.tags.len();
            let before = all.len();
            last = page.tags.last().cloned();
            all.extend(page.tags);
            if n != PAGE || all.len() == before {
                break;
            }
        }
        Ok(all.into_iter().collect())
    }

    async fn manifest(&self, at: &RegistryRef, during: &str) -> Result<(Vec<u8>, String), OciError> {
        let accepted = [media::OCI_INDEX, media::OCI_MANIFEST];
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&at.to_oci(), &self.creds.auth, &accepted)
            .await
            .map_err(|e| self.error(e, during, &at.to_string()))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(OciError::BadArtifact {
                reference: at.to_string(),
                problem: format!("its manifest is {} bytes, over the {MAX_MANIFEST_BYTES} read", bytes.len()),
            });
        }
        let actual = sha256_digest(&bytes);
        let expected = at.digest.clone().unwrap_or(digest);
        if actual != expected {
            return Err(OciError::DigestMismatch { what: format!("manifest {at}"), expected, actual });
        }
        Ok((bytes.to_vec(), actual))
    }

    async fn blob(&self, at: &RegistryRef, layer: &OciDescriptor, during: &str) -> Result<Vec<u8>, OciError> {
        let what = format!("the profile layer {} of {at}", layer.digest);
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > MAX_PROFILE_BYTES {
            return Err(OciError::BadArtifact {
                reference: at.to_string(),
                problem: format!("its profile is {size} bytes, over the {MAX_PROFILE_BYTES} read"),
            });
        }
        let mut stream = self
            .client
            .pull_blob_stream(&at.to_oci(), layer)
            .await
            .map_err(|e| self.error(e, during, &at.to_string()))?;
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // The client checks the digest as the stream ends, and says so as an io::Error.
                Err(e) => {
                    if let Some(oci_client::errors::DigestError::VerificationError { expected, actual }) =
                        e.get_ref().and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>())
                    {
                        return Err(OciError::DigestMismatch {
                            what,
                            expected: expected.clone(),
                            actual: actual.clone(),
                        });
                    }
                    return Err(OciError::Unreachable {
                        registry: self.repo.registry.clone(),
                        during: during.to_owned(),
                        problem: chain(&e),
                    });
                }
            };
            data.extend_from_slice(&chunk);
            if data.len() as u64 > size {
                break;
            }
        }
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        if actual != layer.digest || data.len() as u64 != size {
            return Err(OciError::DigestMismatch { what, expected: layer.digest.clone(), actual });
        }
        Ok(data)
    }

    /// Names what went wrong: credentials, a missing tag, a dead registry, a digest.
    fn error(&self, e: OciDistributionError, during: &str, reference: &str) -> OciError {
        let registry = self.repo.registry.clone();
        let credentials = || match &self.creds.auth {
            RegistryAuth::Anonymous => {
                OciError::NoCredentials { registry: registry.clone(), source_of: self.creds.source.clone() }
            }
            _ => OciError::WrongCredentials {
                registry: registry.clone(),
                user: self.creds.user.as_ref().map(|u| format!(" of user {u}")).unwrap_or_default(),
                source_of: self.creds.source.clone(),
            },
        };
        let not_found = || OciError::NotFound { reference: reference.to_owned() };
        match e {
            OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => {
                credentials()
            }
            OciDistributionError::ServerError { code: 401, .. } => credentials(),
            OciDistributionError::ServerError { code: 404, .. } => not_found(),
            OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
            OciDistributionError::RegistryError { ref envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                    credentials()
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                            | OciErrorCode::BlobUnknown
                    )
                }) {
                    not_found()
                } else {
                    OciError::Registry { registry, during: during.to_owned(), problem: envelope.to_string() }
                }
            }
            OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
                expected,
                actual,
            }) => OciError::DigestMismatch { what: reference.to_owned(), expected, actual },
            OciDistributionError::RequestError(ref r)
                if r.status().is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
            {
                credentials()
            }
            OciDistributionError::RequestError(ref r) if r.status().is_some_and(|s| s.as_u16() == 404) => not_found(),
            OciDistributionError::RequestError(ref r) if r.status().is_none() => {
                OciError::Unreachable { registry, during: during.to_owned(), problem: chain(&e) }
            }
            other => OciError::Registry { registry, during: during.to_owned(), problem: chain(&other) },
        }
    }
}

/// reqwest is built without a default crypto provider: ring's is installed for the
/// process (a second install fails harmlessly).
#[expect(
    deprecated,
    reason = "ring's provider lacks rustls' post-quantum key exchange; aws-lc-rs has it but its C build takes               minutes here. Registry TLS gets X25519/ECDHE, as most registries offer"
)]
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn header(media_type: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(media_type).unwrap_or_else(|_| http::HeaderValue::from_static("application/json"))
}

fn parse_json(bytes: &[u8], reference: &str) -> Result<serde_json::Value, OciError> {
    serde_json::from_slice(bytes).map_err(|e| OciError::BadArtifact {
        reference: reference.to_owned(),
        problem: format!("its manifest is not JSON: {e}"),
    })
}

/// An error and its causes, one line: reqwest's top-level message alone hides
/// "connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
