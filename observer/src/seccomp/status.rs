//! The seccomp lines of `/proc/PID/status`: whether a task is filtered at all,
//! before anything stops it.

use std::{fs, io};

/// `Seccomp:` in `/proc/PID/status` (fs/proc/array.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeccompMode {
    /// 0: no seccomp.
    Disabled,
    /// 1: `SECCOMP_MODE_STRICT`, only read/write/exit/sigreturn.
    Strict,
    /// 2: `SECCOMP_MODE_FILTER`.
    Filter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeccompStatus {
    pub mode: SeccompMode,
    /// `Seccomp_filters:` (kernel 5.9+): how many filters are stacked.
    pub filters: Option<u32>,
}

/// Parses the text of a `/proc/PID/status` file.
pub fn parse_status(text: &str) -> Option<SeccompStatus> {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim));
    let mode = match field("Seccomp")? {
        "0" => SeccompMode::Disabled,
        "1" => SeccompMode::Strict,
        "2" => SeccompMode::Filter,
        _ => return None,
    };
    let filters = field("Seccomp_filters").and_then(|v| v.parse().ok());
    Some(SeccompStatus { mode, filters })
}

/// Reads `/proc/<pid>/status` (`pid` 0 means this process).
pub fn read_status(pid: i32) -> io::Result<SeccompStatus> {
    let path = if pid == 0 { "/proc/self/status".to_owned() } else { format!("/proc/{pid}/status") };
    let text = fs::read_to_string(path)?;
    parse_status(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Seccomp: line"))
}

/// Whether this process has CAP_SYS_ADMIN in its effective set (`CapEff:`).
pub fn self_has_cap_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            let v = t.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim().to_owned();
            u64::from_str_radix(&v, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let text = "Name:\tsleep\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t3\nSpeculation_Store_Bypass:\tthread vulnerable\n";
        assert_eq!(parse_status(text), Some(SeccompStatus { mode: SeccompMode::Filter, filters: Some(3) }));
        assert_eq!(parse_status("Seccomp:\t0\n"), Some(SeccompStatus { mode: SeccompMode::Disabled, filters: None }));
        assert_eq!(parse_status("Name:\tx\n"), None);
    }
}
