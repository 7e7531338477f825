//! Whether an image rule (`image:IMAGE`) names a container's image.

/// `wanted` names `image`: equal, equal without the tag, equal after dropping
/// a registry host and `library/` (`docker.io/library/nginx:1.25` is `nginx:1.25`
/// and `nginx`), podman's `localhost/`, or the digest.
pub fn image_matches(image: &str, digest: &str, wanted: &str) -> bool {
    if wanted.is_empty() {
        return false;
    }
    if !digest.is_empty() && (digest == wanted || digest.strip_prefix("sha256:") == Some(wanted)) {
        return true;
    }
    let short = short_image(image);
    let without_tag = |s: &str| -> String {
        let s = s.split('@').next().unwrap_or(s);
        match s.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
            _ => s.to_owned(),
        }
    };
    let wanted_short = short_image(wanted);
    [image, short.as_str()]
        .iter()
        .any(|i| *i == wanted || *i == wanted_short || without_tag(i) == wanted || without_tag(i) == wanted_short)
}

/// An image reference without a registry host, `library/` or podman's `localhost/`.
pub fn short_image(image: &str) -> String {
    let mut rest = image;
    if let Some((first, tail)) = rest.split_once('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        rest = tail;
    }
    rest.strip_prefix("library/").unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_match_by_short_name_tag_and_digest() {
        assert!(image_matches("docker.io/library/nginx:1.25", "", "nginx"));
        assert!(image_matches("docker.io/library/nginx:1.25", "", "nginx:1.25"));
        assert!(!image_matches("docker.io/library/nginx:1.25", "", "nginx:1.26"));
        assert!(image_matches("localhost/observer-busybox:latest", "", "observer-busybox:latest"));
        assert!(image_matches("observer-busybox:latest", "", "observer-busybox"));
        assert!(image_matches("registry.local:5000/team/app:v1", "", "team/app"));
        assert!(image_matches("x", "sha256:abc", "sha256:abc"));
        assert!(!image_matches("observer-busybox:latest", "", "busybox"));
        assert!(!image_matches("observer-busybox:latest", "", ""));
    }
}
