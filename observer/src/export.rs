//! Learned profiles written in the formats people deploy.

use anyhow::bail;
use serde_json::json;

use crate::trace::Report;

/// The profile `observer trace --profile-out` writes: exactly the syscalls the
/// command made and seccomp did not deny, everything else EPERM.
pub fn trace_profile(report: &Report, format: &str, command: &[String]) -> anyhow::Result<String> {
    if format != "docker" {
        bail!("unknown profile format {format:?} (expected docker, oci or spo)");
    }
    let mut names: Vec<&str> = report
        .syscalls
        .iter()
        .filter(|r| r.abi != "any" && r.calls > 0)
        .map(|r| r.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
        "comment": format!("learned by observer trace from: {}", command.join(" ")),
    });
    Ok(serde_json::to_string_pretty(&profile)? + "\n")
}
