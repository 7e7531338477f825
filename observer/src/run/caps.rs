//! Capabilities for `observer run`: names, the caller's effective set, and
//! the drop to a chosen set in the child before exec.

use std::{collections::BTreeSet, fs, io};

use anyhow::{Result, bail};
use observer_profile::resolve::normalize_cap;

/// Capability names by number (include/uapi/linux/capability.h).
pub const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const CAP_SYS_ADMIN: u32 = 21;

/// A set of capabilities as the kernel's 64-bit mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    /// `--caps` text: comma- or space-separated names, `CAP_` optional, any
    /// case; empty means none.
    pub fn parse(list: &str) -> Result<Self> {
        let mut mask = 0u64;
        for name in list.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
            let full = normalize_cap(name);
            let Some(nr) = CAP_NAMES.iter().position(|c| *c == full) else {
                bail!("unknown capability {name:?} in --caps (expected names like CAP_CHOWN or chown)");
            };
            mask |= 1 << nr;
        }
        Ok(Self(mask))
    }

    /// This process's effective set (`CapEff:` of /proc/self/status).
    pub fn effective() -> io::Result<Self> {
        let text = fs::read_to_string("/proc/self/status")?;
        let hex = text
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff: line"))?;
        u64::from_str_radix(hex.trim(), 16).map(Self).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    pub fn has(self, cap: u32) -> bool {
        self.0 & (1 << cap) != 0
    }

    /// Names as the profile resolver wants them.
    pub fn names(self) -> BTreeSet<String> {
        CAP_NAMES.iter().enumerate().filter(|(i, _)| self.has(*i as u32)).map(|(_, n)| (*n).to_owned()).collect()
    }
}

/// The highest capability number this kernel knows.
pub fn last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAP_NAMES.len() as u32 - 1)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// In the child: shrinks the bounding set and clears the ambient set. Needs
/// CAP_SETPCAP, so it runs before [`set_caps`].
pub fn drop_bounding(keep: CapSet, last_cap: u32) -> io::Result<()> {
    for cap in 0..=last_cap {
        if !keep.has(cap) {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    // SAFETY: as above. EINVAL means a kernel without ambient capabilities.
    let r = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) };
    if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In the child: effective, permitted and inheritable become `caps`
/// (intersected with what the process holds, as capset requires).
pub fn set_caps(caps: CapSet) -> io::Result<()> {
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: header and a two-element data array, as capget(2) wants for v3.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for (i, d) in data.iter_mut().enumerate() {
        let want = (caps.0 >> (32 * i)) as u32;
        d.permitted &= want;
        d.effective = d.permitted;
        d.inheritable = d.permitted;
    }
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_lists() {
        assert_eq!(CapSet::parse("").unwrap(), CapSet(0));
        let s = CapSet::parse("chown, CAP_SYS_ADMIN,net_raw").unwrap();
        assert!(s.has(0) && s.has(CAP_SYS_ADMIN) && s.has(13));
        assert_eq!(s.names().len(), 3);
        assert!(CapSet::parse("bogus").is_err());
    }
}
