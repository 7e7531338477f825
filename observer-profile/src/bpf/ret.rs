//! Seccomp return values: what a filter's 32-bit result means, and which of
//! several stacked results the kernel acts on.

use crate::types::Action;

// include/uapi/linux/seccomp.h
pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const SECCOMP_RET_KILL_THREAD: u32 = 0x0000_0000;
pub const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
pub const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
pub const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
pub const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;
pub const SECCOMP_RET_DATA: u32 = 0x0000_ffff;

/// The kernel clamps errno data to `MAX_ERRNO` (kernel/seccomp.c,
/// `__seccomp_filter`).
const MAX_ERRNO: u32 = 4095;

/// `AUDIT_ARCH_*` values seen in `seccomp_data.arch` (include/uapi/linux/audit.h).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
pub const AUDIT_ARCH_ARM: u32 = 0x4000_0028;

/// The ordering key the kernel compares stacked results by: `ACTION_ONLY()`
/// in kernel/seccomp.c is the action bits read as a signed number, and the
/// lowest wins, so KILL_PROCESS (negative) beats everything and ALLOW loses.
/// (<https://github.com/torvalds/linux/blob/v6.18/kernel/seccomp.c>, `seccomp_run_filters`)
pub fn precedence(ret: u32) -> i32 {
    (ret & SECCOMP_RET_ACTION_FULL) as i32
}

/// What the kernel does for a filter result. An action value the kernel does
/// not know is handled like KILL_PROCESS (the `default:` case of
/// `__seccomp_filter`).
pub fn action_of(ret: u32) -> Action {
    let data = ret & SECCOMP_RET_DATA;
    match ret & SECCOMP_RET_ACTION_FULL {
        SECCOMP_RET_KILL_PROCESS => Action::KillProcess,
        SECCOMP_RET_KILL_THREAD => Action::KillThread,
        SECCOMP_RET_TRAP => Action::Trap,
        SECCOMP_RET_ERRNO => Action::Errno(data.min(MAX_ERRNO)),
        SECCOMP_RET_USER_NOTIF => Action::UserNotif,
        SECCOMP_RET_TRACE => Action::Trace(data),
        SECCOMP_RET_LOG => Action::Log,
        SECCOMP_RET_ALLOW => Action::Allow,
        _ => Action::KillProcess,
    }
}

/// The return value that encodes `action` (data truncated to 16 bits).
pub fn ret_of(action: Action) -> u32 {
    match action {
        Action::KillProcess => SECCOMP_RET_KILL_PROCESS,
        Action::KillThread => SECCOMP_RET_KILL_THREAD,
        Action::Trap => SECCOMP_RET_TRAP,
        Action::Errno(e) => SECCOMP_RET_ERRNO | (e & SECCOMP_RET_DATA),
        Action::UserNotif => SECCOMP_RET_USER_NOTIF,
        Action::Trace(d) => SECCOMP_RET_TRACE | (d & SECCOMP_RET_DATA),
        Action::Log => SECCOMP_RET_LOG,
        Action::Allow => SECCOMP_RET_ALLOW,
    }
}

/// Text of an action as the output contract spells it (`allow`, `errno(1)`...):
/// `Action`'s own `Display` (crate::action).
pub fn action_text(action: Action) -> String {
    action.to_string()
}

/// The name seccomp-tools style disassembly gives a return value.
pub fn ret_text(ret: u32) -> String {
    let data = ret & SECCOMP_RET_DATA;
    match ret & SECCOMP_RET_ACTION_FULL {
        SECCOMP_RET_KILL_PROCESS => "KILL_PROCESS".into(),
        SECCOMP_RET_KILL_THREAD => "KILL_THREAD".into(),
        SECCOMP_RET_TRAP => "TRAP".into(),
        SECCOMP_RET_ERRNO => format!("ERRNO({data})"),
        SECCOMP_RET_USER_NOTIF => "USER_NOTIF".into(),
        SECCOMP_RET_TRACE => format!("TRACE({data})"),
        SECCOMP_RET_LOG => "LOG".into(),
        SECCOMP_RET_ALLOW => "ALLOW".into(),
        _ => format!("{ret:#010x}"),
    }
}

/// Symbolic name of an `AUDIT_ARCH_*` value, if known.
pub fn audit_arch_name(k: u32) -> Option<&'static str> {
    match k {
        AUDIT_ARCH_X86_64 => Some("ARCH_X86_64"),
        AUDIT_ARCH_I386 => Some("ARCH_I386"),
        AUDIT_ARCH_AARCH64 => Some("ARCH_AARCH64"),
        AUDIT_ARCH_ARM => Some("ARCH_ARM"),
        _ => None,
    }
}
