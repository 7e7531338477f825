//! One agent per host: an exclusive lock on a file in the state directory.

use std::{
    fs::File,
    io::Write as _,
    os::{
        fd::AsRawFd as _,
        unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    },
    path::Path,
};

use anyhow::{Context as _, bail};

pub struct AgentLock {
    _file: File,
}

impl AgentLock {
    pub fn acquire(state_dir: &Path) -> anyhow::Result<Self> {
        let path = state_dir.join("agent.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // Also when an older agent created it world-readable.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} root-only", path.display()))?;
        // The lock is held through a read-only descriptor: an agent holding a
        // file open for writing would stop the state directory's filesystem
        // from being remounted read-only (the kernel refuses: busy).
        let held = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: the fd is open and owned by `held` for the whole call.
        if unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another observer agent is already running (pid {}; lock {}); stop it first",
                holder.trim(),
                path.display()
            );
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(Self { _file: held })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_is_for_root_only_also_when_it_was_not() {
        let dir = std::env::temp_dir().join(format!("observer-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.lock");
        let mode = || std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        drop(AgentLock::acquire(&dir).unwrap());
        assert_eq!(mode(), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _lock = AgentLock::acquire(&dir).unwrap();
        assert_eq!(mode(), 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), std::process::id().to_string());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
