//! The profile bound to an image: fetched from the registry by the image's
//! digest (tag `sha256-<hex>`), kept in a bounded on-disk cache, and checked
//! against its digest on every read (a file changed on disk is dropped and
//! fetched again). For `observer agent --profiles oci://REGISTRY/REPO`: the
//! agent asks for each confirmed container's image digest (joined to the agent
//! by the lead; not wired into the agent on this branch).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use crate::{artifact::sha256_digest, client::Registry, error::OciError, reference::valid_digest, tags};

/// A profile for an image, as read from the cache (already checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundProfile {
    pub image_digest: String,
    /// The profile layer's digest: what the bytes were checked against.
    pub digest: String,
    pub profile: Vec<u8>,
}

/// Profiles on disk under `dir`, at most `max_bytes` of them (oldest used go first).
/// `dir/blobs/<hex>` holds a profile named by its sha256; `dir/images/<hex>` names
/// the blob of image `sha256:<hex>`.
#[derive(Clone, Debug)]
pub struct BoundCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl BoundCache {
    pub fn new(dir: &Path, max_bytes: u64) -> Result<Self, OciError> {
        for sub in ["blobs", "images"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| cache_error(&dir.join(sub), &e))?;
        }
        Ok(Self { dir: dir.to_owned(), max_bytes })
    }

    /// The cached profile of `image_digest`, checked against its digest; None when
    /// absent, or when the file no longer matches (it is then removed).
    pub fn get(&self, image_digest: &str) -> Result<Option<BoundProfile>, OciError> {
        let image = hex_of(image_digest)?;
        let index = self.dir.join("images").join(image);
        let Ok(digest) = std::fs::read_to_string(&index) else { return Ok(None) };
        let digest = digest.trim().to_owned();
        let Some(hex) = digest.strip_prefix("sha256:").filter(|_| valid_digest(&digest)) else {
            let _ = std::fs::remove_file(&index);
            return Ok(None);
        };
        let blob = self.dir.join("blobs").join(hex);
        let Ok(profile) = std::fs::read(&blob) else {
            let _ = std::fs::remove_file(&index);
            return Ok(None);
        };
        if sha256_digest(&profile) != digest {
            let _ = std::fs::remove_file(&blob);
            let _ = std::fs::remove_file(&index);
            return Ok(None);
        }
        // Marks it used, for eviction.
        let _ = std::fs::File::options()
            .append(true)
            .open(&blob)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Ok(Some(BoundProfile { image_digest: image_digest.to_owned(), digest, profile }))
    }

    /// Stores `profile` (whose digest is `digest`) for `image_digest`, then evicts
    /// the least recently used profiles past the bound.
    pub fn put(&self, image_digest: &str, digest: &str, profile: &[u8]) -> Result<(), OciError> {
        let image = hex_of(image_digest)?;
        let actual = sha256_digest(profile);
        if actual != digest {
            return Err(OciError::DigestMismatch {
                what: format!("profile of {image_digest}"),
                expected: digest.to_owned(),
                actual,
            });
        }
        if profile.len() as u64 > self.max_bytes {
            return Err(OciError::BadArtifact {
                reference: image_digest.to_owned(),
                problem: format!(
                    "its profile ({} bytes) is larger than the whole cache ({} bytes)",
                    profile.len(),
                    self.max_bytes
                ),
            });
        }
        let hex = &digest["sha256:".len()..];
        write_atomic(&self.dir.join("blobs").join(hex), profile)?;
        write_atomic(&self.dir.join("images").join(image), digest.as_bytes())?;
        self.evict(hex)
    }

    fn evict(&self, keep: &str) -> Result<(), OciError> {
        let blobs = self.dir.join("blobs");
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(&blobs)
            .map_err(|e| cache_error(&blobs, &e))?
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if path.file_name().is_some_and(|n| n == keep) {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        Ok(())
    }
}

/// The profile bound to `image_digest` for `platform`: from the cache when it is
/// there and still matches its digest, else from `registry` (tag `sha256-<hex>`),
/// stored in the cache. None when the registry has no profile for that image.
pub async fn fetch_bound_profile(
    registry: &Registry,
    cache: &BoundCache,
    image_digest: &str,
    platform: &str,
) -> Result<Option<BoundProfile>, OciError> {
    if let Some(hit) = cache.get(image_digest)? {
        return Ok(Some(hit));
    }
    let tag = tags::image_digest_tag(image_digest)?;
    let pulled = match registry.pull(&registry.repository().with_tag(&tag), platform).await {
        Ok(p) => p,
        Err(OciError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    cache.put(image_digest, &pulled.layer_digest, &pulled.profile)?;
    // Read back through the cache: what is returned is what a later read checks.
    cache.get(image_digest)
}

fn hex_of(image_digest: &str) -> Result<String, OciError> {
    Ok(tags::image_digest_tag(image_digest)?["sha256-".len()..].to_owned())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| cache_error(&tmp, &e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| cache_error(&tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| cache_error(path, &e))
}

fn cache_error(path: &Path, e: &std::io::Error) -> OciError {
    OciError::Cache { path: path.display().to_string(), problem: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    #[test]
    fn a_cached_profile_is_checked_on_every_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BoundCache::new(dir.path(), 1 << 20).unwrap();
        assert_eq!(cache.get(&image(1)).unwrap(), None);
        let profile = br#"{"defaultAction":"SCMP_ACT_ERRNO"}"#;
        let digest = sha256_digest(profile);
        cache.put(&image(1), &digest, profile).unwrap();
        let hit = cache.get(&image(1)).unwrap().expect("cached");
        assert_eq!((hit.profile.as_slice(), hit.digest.as_str()), (&profile[..], digest.as_str()));
        // Changed on disk: not returned, and gone.
        let blob = dir.path().join("blobs").join(&digest["sha256:".len()..]);
        std::fs::write(&blob, br#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        assert_eq!(cache.get(&image(1)).unwrap(), None);
        assert!(!blob.exists());
        // A wrong digest is refused before anything is stored.
        let e = cache.put(&image(2), &image(9), profile).unwrap_err().to_string();
        assert!(e.contains("digest mismatch"), "{e}");
        assert!(cache.get("latest").is_err());
    }

    #[test]
    fn the_cache_stays_within_its_bound_dropping_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BoundCache::new(dir.path(), 250).unwrap();
        let profile = |n: u8| vec![b'a' + n; 100];
        for n in 0..2 {
            cache.put(&image(n), &sha256_digest(&profile(n)), &profile(n)).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Image 0 used last: image 1 goes when image 2 comes.
        assert!(cache.get(&image(0)).unwrap().is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(&image(2), &sha256_digest(&profile(2)), &profile(2)).unwrap();
        assert!(cache.get(&image(0)).unwrap().is_some());
        assert!(cache.get(&image(1)).unwrap().is_none());
        assert!(cache.get(&image(2)).unwrap().is_some());
        let e = cache.put(&image(3), &sha256_digest(&[0; 300]), &[0; 300]).unwrap_err().to_string();
        assert!(e.contains("larger than the whole cache"), "{e}");
    }
}
