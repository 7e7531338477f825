//! The agent's scheduling priority (`--nice`). Twenty containers starting at
//! once keep both cores of a small node busy with runc, containerd and dockerd;
//! at the default priority the agent's event reader then waits its turn for
//! tens of milliseconds (measured: p99 11-141 ms from a syscall at a
//! container's start to the agent knowing it, 7-16 ms at nice -15). The agent
//! uses little CPU, so running it above the runtimes costs them little.

/// Sets the calling thread's nice value; threads it creates later inherit it
/// (Linux keeps nice per thread), so call it before starting the runtime.
pub fn set_nice(nice: i32) {
    // SAFETY: setpriority has no memory preconditions; `who` 0 is the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        tracing::warn!(
            nice,
            "could not set the agent's nice value ({}; CAP_SYS_NICE is needed below 0): events at container starts may reach it late on a busy node",
            std::io::Error::last_os_error()
        );
    }
}
