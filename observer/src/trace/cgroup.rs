//! The cgroup a traced command runs in: created under the cgroup v2 mount,
//! removed in every case (Drop), also after SIGINT or an error.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};

/// The cgroup v2 mount point, from /proc/self/mountinfo.
pub fn v2_mount() -> anyhow::Result<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    parse_v2_mount(&mountinfo).context("no cgroup2 file system is mounted (see /proc/self/mountinfo); observer records per cgroup v2")
}

fn parse_v2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

pub struct TraceCgroup {
    path: PathBuf,
    id: u64,
}

impl TraceCgroup {
    pub fn create() -> anyhow::Result<Self> {
        let root = v2_mount()?;
        let path = root.join(format!("observer-trace-{}-{}", std::process::id(), nanos()));
        fs::create_dir(&path).with_context(|| format!("creating the cgroup {}", path.display()))?;
        // A cgroup's id (what bpf_get_current_cgroup_id returns) is its directory's inode.
        let id = fs::metadata(&path)?.ino();
        Ok(Self { path, id })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    pub fn is_empty(&self) -> anyhow::Result<bool> {
        Ok(fs::read_to_string(self.procs_file())?.trim().is_empty())
    }

    /// Kills every process in the cgroup (cgroup.kill, Linux 5.14+; SIGKILL per pid otherwise).
    pub fn kill(&self) {
        if fs::write(self.path.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        if let Ok(procs) = fs::read_to_string(self.procs_file()) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TraceCgroup {
    fn drop(&mut self) {
        for _ in 0..200 {
            match fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => {
                    self.kill();
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        eprintln!("observer: could not remove the cgroup {}", self.path.display());
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

pub fn check_dir(path: &Path) -> anyhow::Result<()> {
    if !path.is_dir() {
        bail!("{} is not a directory", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v2_mount_in_a_hybrid_layout() {
        let mi = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(parse_v2_mount(mi), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(parse_v2_mount("35 31 0:32 / /x rw - cgroup cgroup rw\n"), None);
    }
}
