//! Whether a container-shaped cgroup really is the container it names.
//!
//! A path component shaped like `docker-<id>.scope` proves nothing: systemd
//! delegates subtrees (`user@1000.service`) to unprivileged users, who can
//! create any name there. A cgroup belongs to a container only when
//! - no unprivileged user could have made it: every directory from the v2 root
//!   down to the container's cgroup is owned by root and writable by root alone;
//! - the runtime knows the container; and, while the container runs, its init
//!   process (the runtime's answer, e.g. Docker's `State.Pid`) lives in the
//!   container's cgroup, of which this cgroup is the cgroup or a descendant.
//!
//! Where the init lives is asked by cgroup id ([`observer_probe::pid_cgroup`]), never
//! by the path in `/proc/PID/cgroup`: that path is relative to the agent's own
//! cgroup namespace, and a pod's private namespace would make every container
//! look like an impostor.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// The verdict on one cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// The runtime confirmed it: rules and kills may act on it.
    Confirmed,
    /// Not confirmed yet (the runtime is down, or the container is still being
    /// created): recorded with its container, never killed.
    #[default]
    Pending,
    /// Not the container it names.
    Impostor,
}

/// Why a cgroup is an impostor, for the log and the alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub confirmation: Confirmation,
    pub reason: String,
}

impl Verdict {
    fn new(confirmation: Confirmation, reason: impl Into<String>) -> Self {
        Verdict { confirmation, reason: reason.into() }
    }
}

/// The first directory from `mount` down to `cgroup` (relative to the mount,
/// e.g. `/docker/<id>`) that an unprivileged user owns or may write, if any.
/// Making a directory takes write access to its parent, so a cgroup already
/// removed (a container that lived milliseconds) is judged by the ancestors
/// still there.
pub fn unprivileged_ancestor(mount: &Path, cgroup: &str) -> Option<PathBuf> {
    let mut dir = mount.to_path_buf();
    let mut parts = cgroup.split('/').filter(|p| !p.is_empty());
    loop {
        match std::fs::metadata(&dir) {
            // Group or other write: someone besides root could create below it.
            Ok(m) if m.uid() != 0 || m.mode() & 0o022 != 0 => return Some(dir),
            Ok(_) => {}
            // Gone: its parent, already checked, decided who could make it.
            Err(_) if dir != mount => return None,
            Err(_) => return Some(dir),
        }
        dir.push(parts.next()?);
    }
}

/// Whether `path` is `ancestor` or lies below it.
pub fn is_at_or_below(path: &str, ancestor: &str) -> bool {
    let ancestor = ancestor.trim_end_matches('/');
    path == ancestor || path.strip_prefix(ancestor).is_some_and(|rest| rest.starts_with('/'))
}

/// What the runtime said about the container a cgroup names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeAnswer {
    /// The runtime could not be asked (down, timing out).
    Unavailable,
    /// The runtime does not know this container id.
    Unknown,
    /// The runtime knows it. `pid` is its init process in the host pid
    /// namespace, 0 when not running; `state` the runtime's word for it.
    Known { pid: u32, state: String },
}

/// Decides whether `cgroup` (relative to `mount`), which names a container
/// whose own cgroup is `container_cgroup`, is that container.
pub fn confirm(mount: &Path, cgroup: &str, container_cgroup: &str, answer: &RuntimeAnswer) -> Verdict {
    if let Some(dir) = unprivileged_ancestor(mount, cgroup) {
        return Verdict::new(
            Confirmation::Impostor,
            format!("{} is owned or writable by an unprivileged user", dir.display()),
        );
    }
    match answer {
        RuntimeAnswer::Unavailable => Verdict::new(Confirmation::Pending, "the runtime cannot be asked"),
        // Removed before the runtime was asked (`docker run --rm`, `docker rm`
        // under load): the runtime has forgotten it, and a root-owned path was
        // checked above. Its counts stay the container's; never killed.
        RuntimeAnswer::Unknown if !mount.join(cgroup.trim_start_matches('/')).exists() => {
            Verdict::new(Confirmation::Pending, "removed before its runtime was asked")
        }
        RuntimeAnswer::Unknown => Verdict::new(Confirmation::Impostor, "the runtime does not know this container"),
        RuntimeAnswer::Known { pid: 0, state } if state == "created" || state == "restarting" => {
            Verdict::new(Confirmation::Pending, format!("the container is {state}"))
        }
        // Ended: no process to check, and the path is root's alone.
        RuntimeAnswer::Known { pid: 0, state } => {
            Verdict::new(Confirmation::Confirmed, format!("root-owned path, container {state}"))
        }
        RuntimeAnswer::Known { pid, .. } => init_verdict(mount, container_cgroup, *pid),
    }
}

/// Whether the container's init `pid` lives in `container_cgroup` (or below it).
fn init_verdict(mount: &Path, container_cgroup: &str, pid: u32) -> Verdict {
    let id = match observer_probe::pid_cgroup::cgroup_id_of_pid(mount, pid) {
        Ok(id) => id,
        // The init just exited: the root-owned path stands.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Verdict::new(Confirmation::Confirmed, format!("root-owned path, init {pid} gone"));
        }
        Err(e) => return Verdict::new(Confirmation::Pending, format!("where the init (pid {pid}) lives: {e}")),
    };
    match observer_probe::pid_cgroup::is_id_at_or_below(mount, container_cgroup, id) {
        Ok(true) => Verdict::new(Confirmation::Confirmed, format!("its init (pid {pid}) is in it (cgroup id {id})")),
        Ok(false) => Verdict::new(
            Confirmation::Impostor,
            format!("the container's init (pid {pid}) is in cgroup id {id}, not in {container_cgroup}"),
        ),
        Err(e) => Verdict::new(Confirmation::Pending, format!("reading {container_cgroup}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn at_or_below_is_by_whole_components() {
        assert!(is_at_or_below("/docker/abc", "/docker/abc"));
        assert!(is_at_or_below("/docker/abc/sub", "/docker/abc"));
        assert!(!is_at_or_below("/docker/abcd", "/docker/abc"));
        assert!(!is_at_or_below("/user.slice/docker-abc.scope", "/docker/abc"));
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("observer-confirm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("docker/abc/sub")).unwrap();
        for d in ["", "docker", "docker/abc", "docker/abc/sub"] {
            std::fs::set_permissions(dir.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[test]
    fn a_writable_directory_on_the_way_makes_an_impostor() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // Ownership by root is what is checked; as another user every
            // directory is someone else's, which the next assertion covers.
            let dir = scratch("user");
            assert!(unprivileged_ancestor(&dir, "/docker/abc").is_some());
            return;
        }
        let dir = scratch("root");
        assert_eq!(unprivileged_ancestor(&dir, "/docker/abc/sub"), None);
        // Removed already: judged by the parent that let it be made.
        assert_eq!(unprivileged_ancestor(&dir, "/docker/abc/gone"), None);
        std::fs::set_permissions(dir.join("docker/abc"), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(unprivileged_ancestor(&dir, "/docker/abc/sub"), Some(dir.join("docker/abc")));
        assert_eq!(unprivileged_ancestor(&dir, "/docker/abc/gone"), Some(dir.join("docker/abc")));
        let v =
            confirm(&dir, "/docker/abc/sub", "/docker/abc", &RuntimeAnswer::Known { pid: 0, state: "exited".into() });
        assert_eq!(v.confirmation, Confirmation::Impostor, "{v:?}");
        std::os::unix::fs::chown(dir.join("docker/abc"), Some(1000), None).unwrap();
        std::fs::set_permissions(dir.join("docker/abc"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(unprivileged_ancestor(&dir, "/docker/abc"), Some(dir.join("docker/abc")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_runtime_answer_decides_for_root_owned_paths() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = scratch("answers");
        let c = |a: RuntimeAnswer| confirm(&dir, "/docker/abc", "/docker/abc", &a).confirmation;
        assert_eq!(c(RuntimeAnswer::Unavailable), Confirmation::Pending);
        // Gone before the runtime was asked: pending (its record), never an impostor.
        let gone = confirm(&dir, "/docker/gone", "/docker/gone", &RuntimeAnswer::Unknown);
        assert_eq!(gone.confirmation, Confirmation::Pending, "{gone:?}");
        assert_eq!(c(RuntimeAnswer::Unknown), Confirmation::Impostor);
        assert_eq!(c(RuntimeAnswer::Known { pid: 0, state: "created".into() }), Confirmation::Pending);
        assert_eq!(c(RuntimeAnswer::Known { pid: 0, state: "exited".into() }), Confirmation::Confirmed);
        // Our own pid lives in a cgroup of the real v2 tree, never in this
        // scratch directory: not this container's init.
        let v = confirm(
            &dir,
            "/docker/abc",
            "/docker/abc",
            &RuntimeAnswer::Known { pid: std::process::id(), state: "running".into() },
        );
        assert_eq!(v.confirmation, Confirmation::Impostor, "{v:?}");
        // The real mount, our own cgroup: confirmed by id, in a namespace or out of one.
        let mount = observer_probe::v2_mount::find_v2_mount().expect("a cgroup v2 mount");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = observer_probe::pid_cgroup::v2_line(&own).expect("a 0:: line").to_owned();
        let v = init_verdict(&mount, &own, std::process::id());
        assert_eq!(v.confirmation, Confirmation::Confirmed, "{v:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
