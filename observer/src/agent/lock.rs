//! One agent per host: an exclusive lock on a file in the state directory.

use std::{fs::File, io::Write as _, os::fd::AsRawFd as _, path::Path};

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
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another observer agent is already running (pid {}; lock {}); stop it first",
                holder.trim(),
                path.display()
            );
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(Self { _file: file })
    }
}
