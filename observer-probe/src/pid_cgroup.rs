//! The cgroup v2 a process is in, by the id the kernel gives it, whatever
//! cgroup namespace the agent runs in.
//!
//! `/proc/PID/cgroup` is written relative to the *reader's* cgroup namespace:
//! in a pod's private namespace (containerd and CRI-O give one to every
//! non-privileged pod on a cgroup-v2 node) it reads `0::/../../docker/<id>`,
//! which names nothing in the v2 mount. The cgroup id does not depend on the
//! reader: it is what `bpf_get_current_cgroup_id()` returns and the inode of
//! the cgroup's directory in a mount of the host's tree. Since Linux 6.13 a
//! pidfd answers it (`PIDFD_GET_INFO` with `PIDFD_INFO_CGROUPID`: the id of
//! the task's default-hierarchy cgroup, see
//! <https://github.com/torvalds/linux/blob/v6.18/fs/pidfs.c>). Older kernels
//! fall back to the /proc path, used only when it is a path in the mount: the
//! mount's root is the reader's namespace root (mountinfo's root field `/`).

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

use super::v2_mount;

/// The cgroup id of process `pid` (a pid of the agent's pid namespace).
/// `NotFound` when the process is gone.
pub fn cgroup_id_of_pid(mount: &Path, pid: u32) -> io::Result<u64> {
    match cgroup_id_from_pidfd(pid) {
        Ok(id) => Ok(id),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(e) => cgroup_id_from_proc(mount, pid)
            .map_err(|proc| io::Error::new(proc.kind(), format!("{proc} (and PIDFD_GET_INFO: {e})"))),
    }
}

/// `PIDFD_GET_INFO` on a pidfd of `pid`.
fn cgroup_id_from_pidfd(pid: u32) -> io::Result<u64> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::NotFound))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(vanished_as_not_found(io::Error::last_os_error()));
    }
    // SAFETY: fd is a new pidfd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: pidfd_info is plain integers; all zero is a valid value.
    let mut info: libc::pidfd_info = unsafe { std::mem::zeroed() };
    info.mask = u64::from(libc::PIDFD_INFO_CGROUPID);
    // SAFETY: the ioctl writes at most size_of::<pidfd_info>() bytes (the size
    // is encoded in the request) into `info`, which lives across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::PIDFD_GET_INFO, &raw mut info) };
    if rc < 0 {
        return Err(vanished_as_not_found(io::Error::last_os_error()));
    }
    if info.mask & u64::from(libc::PIDFD_INFO_CGROUPID) == 0 {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "the kernel gave no cgroup id for the pidfd"));
    }
    Ok(info.cgroupid)
}

/// ESRCH (no such process, or it exited before the ioctl) as `NotFound`.
fn vanished_as_not_found(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ESRCH) { io::Error::new(io::ErrorKind::NotFound, e) } else { e }
}

/// The `0::` path of `/proc/PID/cgroup` joined to the mount, where that is
/// right: when the mount's root is this process's cgroup namespace root.
fn cgroup_id_from_proc(mount: &Path, pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = v2_line(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/cgroup has no 0:: line")))?;
    let root = v2_mount::mount_root(mount)?;
    if root != "/" || path.split('/').any(|p| p == "..") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "/proc/{pid}/cgroup reads {path:?} relative to a cgroup namespace, and the mount at {} has root {root:?}",
                mount.display()
            ),
        ));
    }
    v2_mount::cgroup_id(mount, path)
}

/// The path of the `0::PATH` line of a `/proc/PID/cgroup` file.
pub fn v2_line(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// Whether the cgroup `id` is the cgroup at `cgroup` (relative to the mount)
/// or one below it. `Ok(false)` when that cgroup is gone.
pub fn is_id_at_or_below(mount: &Path, cgroup: &str, id: u64) -> io::Result<bool> {
    let dir = mount.join(cgroup.trim_start_matches('/'));
    match v2_mount::path_to_id(&dir) {
        Ok(own) if own == id => return Ok(true),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    // A container's processes usually sit in its own cgroup; a nested one
    // costs a walk of the container's subtree only.
    match v2_mount::walk_ids(&dir) {
        Ok(below) => Ok(below.contains_key(&id)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against this machine's kernel: our own cgroup's id, by pidfd and by
    /// the /proc path, is the inode of our directory in the v2 mount.
    #[test]
    fn the_pidfd_and_the_mount_agree_on_our_own_cgroup() {
        let mount = v2_mount::find_v2_mount().expect("this machine has a cgroup v2 mount");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = v2_line(&own).expect("a 0:: line");
        let by_path = v2_mount::cgroup_id(&mount, path).unwrap();
        assert_eq!(cgroup_id_from_pidfd(std::process::id()).expect("PIDFD_GET_INFO (Linux 6.13+)"), by_path);
        assert_eq!(cgroup_id_of_pid(&mount, std::process::id()).unwrap(), by_path);
        assert!(is_id_at_or_below(&mount, "/", by_path).unwrap());
        assert!(is_id_at_or_below(&mount, path, by_path).unwrap());
        assert!(!is_id_at_or_below(&mount, "/no-such-cgroup", by_path).unwrap());
    }

    #[test]
    fn a_process_that_is_gone_is_not_found() {
        let mount = v2_mount::find_v2_mount().expect("this machine has a cgroup v2 mount");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let err = cgroup_id_of_pid(&mount, pid).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn the_v2_line_gives_the_path() {
        let text = "12:cpu,cpuacct:/user.slice\n0::/../../docker/abc\n";
        assert_eq!(v2_line(text), Some("/../../docker/abc"));
        assert_eq!(v2_line("3:memory:/x\n"), None);
    }
}
