//! What can fail in the kernel seam. Each variant says what failed (the
//! build, a capability, the kernel's BTF, the pin directory, a map or program
//! by name, a step on a file or syscall), so the agent can tell the user what
//! to fix; a step keeps its cause as its `source`.

use std::{error::Error as StdError, path::PathBuf};

/// An error of the kernel seam.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A build made with `OBSERVER_SKIP_EBPF_BUILD=fuzz` has no kernel programs.
    #[error(
        "this observer was built without its kernel programs (OBSERVER_SKIP_EBPF_BUILD=fuzz, for fuzzing only): rebuild it without that variable"
    )]
    NotBuilt,
    /// The process lacks the capabilities to load tracing programs.
    #[error("observer needs {missing} (or CAP_SYS_ADMIN) to load its eBPF programs; run it as root")]
    Privileges { missing: String },
    /// The running kernel's BTF is missing or does not describe what the programs read.
    #[error("{0}")]
    Btf(String),
    /// Another agent holds the pin directory.
    #[error(
        "another observer agent{} is using the pin directory {} (one agent per pin directory, whatever its --state-dir): stop it first, or give this one another --pin-dir",
        holder_note(*.holder),
        .dir.display()
    )]
    PinDirBusy { dir: PathBuf, holder: Option<u32> },
    /// A map, program or line that should be there is not, or has another type.
    #[error("{0}")]
    Missing(String),
    /// bpffs could not be mounted at /sys/fs/bpf.
    #[error("mounting bpffs at /sys/fs/bpf: {0}")]
    BpffsMount(std::io::Error),
    /// One step failed: `step` names it (the map, program, pin, file), `source` says why.
    #[error("{step}")]
    Step {
        step: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error(transparent)]
    Map(#[from] aya::maps::MapError),
    #[error(transparent)]
    Program(#[from] aya::programs::ProgramError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Mount(#[from] crate::v2_mount::MountError),
}

fn holder_note(holder: Option<u32>) -> String {
    holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// Names the step a fallible call was (`anyhow`'s `context`, for this crate's error).
pub(crate) trait Step<T> {
    fn step(self, step: &str) -> Result<T, ProbeError>;
    fn with_step(self, step: impl FnOnce() -> String) -> Result<T, ProbeError>;
}

impl<T, E: StdError + Send + Sync + 'static> Step<T> for Result<T, E> {
    fn step(self, step: &str) -> Result<T, ProbeError> {
        self.map_err(|e| ProbeError::Step { step: step.to_owned(), source: Box::new(e) })
    }

    fn with_step(self, step: impl FnOnce() -> String) -> Result<T, ProbeError> {
        self.map_err(|e| ProbeError::Step { step: step(), source: Box::new(e) })
    }
}

/// A missing value is named by the step that looked for it.
impl<T> Step<T> for Option<T> {
    fn step(self, step: &str) -> Result<T, ProbeError> {
        self.ok_or_else(|| ProbeError::Missing(step.to_owned()))
    }

    fn with_step(self, step: impl FnOnce() -> String) -> Result<T, ProbeError> {
        self.ok_or_else(|| ProbeError::Missing(step()))
    }
}

/// The error and its causes, joined as `anyhow` shows them with `{:#}`.
pub(crate) fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_shows_its_cause_in_the_chain() {
        let e = Err::<(), _>(std::io::Error::from_raw_os_error(libc::EPERM)).step("writing CGROUPS").unwrap_err();
        assert_eq!(e.to_string(), "writing CGROUPS");
        assert!(chain(&e).starts_with("writing CGROUPS: Operation not permitted"), "{}", chain(&e));
        let missing = None::<u8>.with_step(|| "no map TIMES".to_owned()).unwrap_err();
        assert_eq!(chain(&missing), "no map TIMES");
    }

    #[test]
    fn a_busy_pin_dir_names_the_holder() {
        let e = ProbeError::PinDirBusy { dir: "/sys/fs/bpf/x".into(), holder: Some(42) };
        assert!(e.to_string().starts_with("another observer agent (pid 42) is using the pin directory /sys/fs/bpf/x"));
        let e = ProbeError::PinDirBusy { dir: "/sys/fs/bpf/x".into(), holder: None };
        assert!(e.to_string().starts_with("another observer agent is using"));
    }
}
