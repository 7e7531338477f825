//! Names the container (or systemd unit) a cgroup v2 path belongs to, from the
//! path alone. Pure string work: nothing here touches the filesystem or a daemon.
//!
//! Paths are relative to the v2 mount, as `/proc/PID/cgroup` shows them after
//! `0::` (e.g. `/docker/<id>`). A cgroup nested under a container's cgroup
//! (`/docker/<id>/sub`) rolls up to that container, and [`ContainerRef::cgroup`]
//! is the container's own cgroup so callers can group nested ones.

use std::fmt;

/// Who created the cgroup, as far as its path tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    /// containerd through its CRI plugin (Kubernetes). A bare 64-hex directory
    /// under a cgroupfs pod directory is also taken as containerd: the path
    /// alone cannot tell it from dockershim.
    Containerd,
    CriO,
    Podman,
    /// A systemd unit that is not a container (`nginx.service`, `session-3.scope`).
    Systemd,
    /// Nothing recognised; the cgroup is named by its path.
    Plain,
}

/// What the cgroup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A container's processes.
    Container,
    /// A runtime's per-container monitor (CRI-O's or podman's conmon), which is
    /// not the container: its syscalls must not end up in the container's profile.
    Monitor,
    /// A Kubernetes pod's cgroup itself (the parent of its containers).
    Pod,
    /// A systemd `.service` unit.
    Service,
    /// A systemd `.scope` unit that is not a container (a login session, ...).
    Scope,
    /// Anything else.
    Other,
}

/// What a cgroup path says about its owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub runtime: Runtime,
    /// The 64-hex container id for containers and monitors; the unit name for
    /// systemd units; the pod UID for pods; the path itself for anything else.
    pub id: String,
    /// The Kubernetes pod UID, with dashes (systemd paths spell it with `_`).
    pub pod_uid: Option<String>,
    /// The systemd unit name when the cgroup is one (`docker-<id>.scope`).
    pub unit: Option<String>,
    pub kind: Kind,
    /// The cgroup that identifies this owner: the container's own cgroup when
    /// the parsed path is nested below it, otherwise the (normalised) path.
    pub cgroup: String,
}

impl ContainerRef {
    pub fn is_container(&self) -> bool {
        self.kind == Kind::Container
    }
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Container | Kind::Monitor => {
                let short = self.id.get(..12).unwrap_or(&self.id);
                write!(f, "{:?} {short}", self.runtime)?;
                if self.kind == Kind::Monitor {
                    f.write_str(" (monitor)")?;
                }
                Ok(())
            }
            Kind::Pod => write!(f, "pod {}", self.id),
            Kind::Service | Kind::Scope => f.write_str(&self.id),
            Kind::Other => write!(f, "cgroup {}", self.id),
        }
    }
}

/// Parses a cgroup v2 path (relative to the v2 mount) into its owner.
///
/// The outermost container-shaped component wins, so a path nested anywhere
/// below a container's cgroup names that container. Without a container, the
/// innermost `.service`/`.scope` unit wins; then a pod's own cgroup; then the
/// path is [`Runtime::Plain`].
pub fn parse(path: &str) -> ContainerRef {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let joined = |n: usize| format!("/{}", parts[..n].join("/"));

    for (i, part) in parts.iter().enumerate() {
        let parent = i.checked_sub(1).map(|p| parts[p]);
        if let Some((runtime, kind, id, unit)) = container_component(part, parent, &parts[..i]) {
            return ContainerRef {
                runtime,
                id: id.to_owned(),
                pod_uid: pod_uid_in(&parts[..i]),
                unit: unit.then(|| (*part).to_owned()),
                kind,
                cgroup: joined(i + 1),
            };
        }
    }

    if let Some(i) = parts.iter().rposition(|p| is_unit(p)) {
        let unit = parts[i];
        let kind = if unit.ends_with(".service") { Kind::Service } else { Kind::Scope };
        return ContainerRef {
            runtime: Runtime::Systemd,
            id: unit.to_owned(),
            pod_uid: None,
            unit: Some(unit.to_owned()),
            kind,
            cgroup: joined(i + 1),
        };
    }

    // A pod's own cgroup (or a non-container child of it): `pod<uid>` under
    // `kubepods`, or a `kubepods-...-pod<uid>.slice`.
    if let Some(i) = parts.iter().rposition(|p| pod_uid_of(p).is_some())
        && (is_kubepods(parts[i]) || parts[..i].iter().any(|p| is_kubepods(p)))
        && let Some(uid) = pod_uid_of(parts[i])
    {
        return ContainerRef {
            runtime: Runtime::Plain,
            id: uid.clone(),
            pod_uid: Some(uid),
            unit: parts[i].ends_with(".slice").then(|| parts[i].to_owned()),
            kind: Kind::Pod,
            cgroup: joined(i + 1),
        };
    }

    let whole = joined(parts.len());
    ContainerRef {
        runtime: Runtime::Plain,
        id: whole.clone(),
        pod_uid: None,
        unit: None,
        kind: Kind::Other,
        cgroup: whole,
    }
}

/// Recognises one path component as a container (or monitor) cgroup. Returns
/// the runtime, kind, id and whether the component is a systemd unit name.
fn container_component<'a>(
    part: &'a str,
    parent: Option<&str>,
    ancestors: &[&str],
) -> Option<(Runtime, Kind, &'a str, bool)> {
    // systemd driver: `<prefix>-<id>.scope`. Longer prefixes first: `crio-conmon-`
    // also starts with `crio-`.
    const SCOPES: [(&str, Runtime, Kind); 5] = [
        ("crio-conmon-", Runtime::CriO, Kind::Monitor),
        ("crio-", Runtime::CriO, Kind::Container),
        ("cri-containerd-", Runtime::Containerd, Kind::Container),
        ("docker-", Runtime::Docker, Kind::Container),
        ("libpod-conmon-", Runtime::Podman, Kind::Monitor),
    ];
    if let Some(stem) = part.strip_suffix(".scope") {
        for (prefix, runtime, kind) in SCOPES {
            if let Some(id) = stem.strip_prefix(prefix).filter(|id| is_container_id(id)) {
                return Some((runtime, kind, id, true));
            }
        }
        if let Some(id) = stem.strip_prefix("libpod-").filter(|id| is_container_id(id)) {
            return Some((Runtime::Podman, Kind::Container, id, true));
        }
        return None;
    }

    // cgroupfs driver: a bare id (or `crio-<id>`, `libpod-<id>`) under a known parent.
    let in_pod = parent.is_some_and(|p| p.starts_with("pod") && pod_uid_of(p).is_some())
        && ancestors.iter().any(|a| is_kubepods(a));
    match parent {
        Some("docker") if is_container_id(part) => Some((Runtime::Docker, Kind::Container, part, false)),
        Some("libpod_parent") => {
            if let Some(id) = part.strip_prefix("libpod-conmon-").filter(|id| is_container_id(id)) {
                Some((Runtime::Podman, Kind::Monitor, id, false))
            } else {
                let id = part.strip_prefix("libpod-").filter(|id| is_container_id(id))?;
                Some((Runtime::Podman, Kind::Container, id, false))
            }
        }
        _ if in_pod => {
            if is_container_id(part) {
                Some((Runtime::Containerd, Kind::Container, part, false))
            } else if let Some(id) = part.strip_prefix("crio-conmon-").filter(|id| is_container_id(id)) {
                Some((Runtime::CriO, Kind::Monitor, id, false))
            } else {
                let id = part.strip_prefix("crio-").filter(|id| is_container_id(id))?;
                Some((Runtime::CriO, Kind::Container, id, false))
            }
        }
        _ => None,
    }
}

/// Docker, containerd, CRI-O and podman all use 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_unit(part: &str) -> bool {
    let stem = part.strip_suffix(".service").or_else(|| part.strip_suffix(".scope"));
    stem.is_some_and(|s| !s.is_empty())
}

fn is_kubepods(part: &str) -> bool {
    part == "kubepods" || part.starts_with("kubepods.") || part.starts_with("kubepods-")
}

/// The pod UID in a pod's cgroup name: `pod<uid>` (cgroupfs) or
/// `kubepods[-<qos>]-pod<uid_with_underscores>.slice` (systemd), with dashes.
fn pod_uid_of(part: &str) -> Option<String> {
    let raw = if let Some(slice) = part.strip_suffix(".slice") {
        let i = slice.rfind("-pod")?;
        if !slice.starts_with("kubepods") {
            return None;
        }
        &slice[i + 4..]
    } else {
        part.strip_prefix("pod")?
    };
    let uid = raw.replace('_', "-");
    // UIDs are RFC 4122 (36 chars with dashes); static pods use a 32-hex hash.
    let hex = uid.bytes().filter(|b| b.is_ascii_hexdigit()).count();
    let ok = uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') && hex == 32;
    ok.then_some(uid)
}

fn pod_uid_in(ancestors: &[&str]) -> Option<String> {
    if !ancestors.iter().any(|a| is_kubepods(a)) {
        return None;
    }
    ancestors.iter().rev().find_map(|a| pod_uid_of(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e2c1b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";
    const UID: &str = "8f6d4b2a-1c3e-4a5b-9d7f-0e2c4a6b8d1f";
    const UID_US: &str = "8f6d4b2a_1c3e_4a5b_9d7f_0e2c4a6b8d1f";

    fn check(path: &str, runtime: Runtime, kind: Kind, pod: Option<&str>, unit: Option<&str>) -> ContainerRef {
        let r = parse(path);
        assert_eq!(r.runtime, runtime, "{path}: {r:?}");
        assert_eq!(r.kind, kind, "{path}: {r:?}");
        assert_eq!(r.pod_uid.as_deref(), pod, "{path}: {r:?}");
        assert_eq!(r.unit.as_deref(), unit, "{path}: {r:?}");
        r
    }

    #[test]
    fn docker_cgroupfs() {
        let p = format!("/docker/{ID}");
        let r = check(&p, Runtime::Docker, Kind::Container, None, None);
        assert_eq!(r.id, ID);
        assert_eq!(r.cgroup, p);
    }

    #[test]
    fn docker_systemd() {
        let unit = format!("docker-{ID}.scope");
        let p = format!("/system.slice/{unit}");
        let r = check(&p, Runtime::Docker, Kind::Container, None, Some(&unit));
        assert_eq!(r.id, ID);
        assert_eq!(r.cgroup, p);
    }

    #[test]
    fn nested_cgroups_roll_up() {
        let own = format!("/docker/{ID}");
        let r = parse(&format!("{own}/sub/deeper"));
        assert_eq!(r, parse(&own));
        assert_eq!(r.cgroup, own);

        let own = format!("/system.slice/docker-{ID}.scope");
        assert_eq!(parse(&format!("{own}/init.scope")).cgroup, own);
        assert_eq!(parse(&format!("{own}/init.scope")).runtime, Runtime::Docker);

        let r = parse("/system.slice/nginx.service/worker");
        assert_eq!((r.id.as_str(), r.cgroup.as_str()), ("nginx.service", "/system.slice/nginx.service"));
    }

    #[test]
    fn kubernetes_cgroupfs() {
        for qos in ["/kubepods/burstable", "/kubepods/besteffort", "/kubepods"] {
            let p = format!("{qos}/pod{UID}/{ID}");
            let r = check(&p, Runtime::Containerd, Kind::Container, Some(UID), None);
            assert_eq!((r.id.as_str(), r.cgroup.as_str()), (ID, p.as_str()));

            let p = format!("{qos}/pod{UID}/crio-{ID}");
            let r = check(&p, Runtime::CriO, Kind::Container, Some(UID), None);
            assert_eq!(r.id, ID);

            let p = format!("{qos}/pod{UID}/crio-conmon-{ID}");
            check(&p, Runtime::CriO, Kind::Monitor, Some(UID), None);
        }
    }

    #[test]
    fn kubernetes_systemd() {
        let pod = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_US}.slice");
        let unit = format!("cri-containerd-{ID}.scope");
        let r = check(&format!("{pod}/{unit}"), Runtime::Containerd, Kind::Container, Some(UID), Some(&unit));
        assert_eq!(r.id, ID);

        let unit = format!("crio-{ID}.scope");
        let r = check(&format!("{pod}/{unit}"), Runtime::CriO, Kind::Container, Some(UID), Some(&unit));
        assert_eq!(r.id, ID);
        // Newer CRI-O puts the payload in a `container` child of the scope.
        assert_eq!(parse(&format!("{pod}/{unit}/container")).cgroup, format!("{pod}/{unit}"));

        let unit = format!("crio-conmon-{ID}.scope");
        let r = check(&format!("{pod}/{unit}"), Runtime::CriO, Kind::Monitor, Some(UID), Some(&unit));
        assert_eq!(r.id, ID);

        // Guaranteed QoS pods sit directly under kubepods.slice.
        let unit = format!("cri-containerd-{ID}.scope");
        let p = format!("/kubepods.slice/kubepods-pod{UID_US}.slice/{unit}");
        check(&p, Runtime::Containerd, Kind::Container, Some(UID), Some(&unit));
    }

    #[test]
    fn pod_cgroup_is_not_a_container() {
        let slice = format!("kubepods-burstable-pod{UID_US}.slice");
        let p = format!("/kubepods.slice/kubepods-burstable.slice/{slice}");
        let r = check(&p, Runtime::Plain, Kind::Pod, Some(UID), Some(&slice));
        assert_eq!(r.id, UID);
        assert!(!r.is_container());

        let r = check(&format!("/kubepods/besteffort/pod{UID}"), Runtime::Plain, Kind::Pod, Some(UID), None);
        assert!(!r.is_container());

        check("/kubepods.slice/kubepods-burstable.slice", Runtime::Plain, Kind::Other, None, None);
        check("/kubepods/burstable", Runtime::Plain, Kind::Other, None, None);
    }

    #[test]
    fn podman() {
        let unit = format!("libpod-{ID}.scope");
        let r = check(&format!("/machine.slice/{unit}"), Runtime::Podman, Kind::Container, None, Some(&unit));
        assert_eq!(r.id, ID);

        let p = format!("/user.slice/user-1000.slice/user@1000.service/user.slice/{unit}");
        let r = check(&p, Runtime::Podman, Kind::Container, None, Some(&unit));
        assert_eq!((r.id.as_str(), r.cgroup.as_str()), (ID, p.as_str()));

        let p = format!("/libpod_parent/libpod-{ID}");
        let r = check(&p, Runtime::Podman, Kind::Container, None, None);
        assert_eq!(r.id, ID);

        let unit = format!("libpod-conmon-{ID}.scope");
        check(&format!("/machine.slice/{unit}"), Runtime::Podman, Kind::Monitor, None, Some(&unit));
    }

    #[test]
    fn systemd_units() {
        let r = check("/system.slice/nginx.service", Runtime::Systemd, Kind::Service, None, Some("nginx.service"));
        assert_eq!(r.id, "nginx.service");
        let r = check(
            "/user.slice/user-1000.slice/session-3.scope",
            Runtime::Systemd,
            Kind::Scope,
            None,
            Some("session-3.scope"),
        );
        assert_eq!(r.id, "session-3.scope");
        // The innermost unit names the cgroup.
        let p = "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service";
        check(p, Runtime::Systemd, Kind::Service, None, Some("foo.service"));
        check(
            "/user.slice/user-1000.slice/user@1000.service",
            Runtime::Systemd,
            Kind::Service,
            None,
            Some("user@1000.service"),
        );
    }

    #[test]
    fn everything_else_is_plain() {
        for p in [
            "/",
            "",
            "/init.scope.d",
            "/docker",
            "/docker/not-a-container-id",
            // Uppercase and wrong lengths are not ids.
            "/docker/3F4E2C1B9A8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F3A2B1C0D9E8F7A6B5C4D3E2F",
            "/docker/3f4e2c1b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2",
            "/mygroup/sub",
            "/system.slice",
            "/libpod_parent",
        ] {
            let r = check(p, Runtime::Plain, Kind::Other, None, None);
            let norm = if p.is_empty() { "/" } else { p };
            assert_eq!((r.id.as_str(), r.cgroup.as_str()), (norm, norm), "{p}");
        }
        // A hex id outside a known parent is not a container.
        check(&format!("/mygroup/{ID}"), Runtime::Plain, Kind::Other, None, None);
        // A `docker-<non-hex>.scope` is a unit, not a container.
        check("/system.slice/docker-foo.scope", Runtime::Systemd, Kind::Scope, None, Some("docker-foo.scope"));
        // `docker.service` is dockerd itself.
        check("/system.slice/docker.service", Runtime::Systemd, Kind::Service, None, Some("docker.service"));
        // A hex dir under a `pod…` that is not under kubepods is not a container.
        check(&format!("/pod{UID}/{ID}"), Runtime::Plain, Kind::Other, None, None);
    }

    #[test]
    fn slashes_are_normalised() {
        let r = parse(&format!("docker/{ID}/"));
        assert_eq!(r.cgroup, format!("/docker/{ID}"));
        assert_eq!(r.runtime, Runtime::Docker);
    }
}
