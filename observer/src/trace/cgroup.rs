//! The cgroup a traced command runs in: created under the cgroup v2 mount,
//! removed in every case (Drop), also after SIGINT or an error.

use std::{fs, os::unix::fs::MetadataExt as _, path::PathBuf, time::Duration};

use anyhow::Context as _;

pub struct TraceCgroup {
    path: PathBuf,
    id: u64,
}

impl TraceCgroup {
    pub fn create() -> anyhow::Result<Self> {
        let root =
            observer_probe::v2_mount::find_v2_mount().context("observer records per cgroup v2 and needs its mount")?;
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
                // SAFETY: kill has no memory preconditions; the pids are the trace's own cgroup's.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
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
