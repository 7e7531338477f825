//! Cgroup v2 paths, as the agent finds them in the v2 tree: anyone who can
//! make a cgroup (a container with cgroup namespaces and delegation, a
//! systemd user) chooses its name. Also the mountinfo text the v2 mount is
//! found in (mount points are named by whoever mounts).
//!
//! A path's owner must be the owner of the cgroup `parse` names for it: the
//! agent groups nested cgroups under that one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::container::cgroup_path;
use observer_probe::v2_mount;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let owner = cgroup_path::parse(path);
    let _ = owner.to_string();
    assert!(owner.cgroup.starts_with('/'), "{path:?}: cgroup {:?} is not absolute", owner.cgroup);
    let again = cgroup_path::parse(&owner.cgroup);
    assert_eq!(
        (again.runtime, again.kind, &again.id, &again.cgroup),
        (owner.runtime, owner.kind, &owner.id, &owner.cgroup),
        "{path:?} names {owner:?}, but that owner's cgroup names {again:?}"
    );
    let _ = v2_mount::parse_mountinfo(path);
});
