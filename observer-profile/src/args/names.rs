//! Recorded argument values as people read them: `AF_UNIX, SOCK_STREAM`,
//! `CLONE_NEWUSER|CLONE_NEWNS`, `PR_SET_NAME`, `TIOCGWINSZ`, `SOL_SOCKET, SO_REUSEADDR`.
//!
//! The numbers come from the `libc` crate wherever it has them (x86_64 Linux
//! values); only the names no crate provides as names are listed here. A value
//! with no known name is shown as a number, never dropped.

use observer_common::args::{PROT_EXEC, ns};

use super::ArgKind;

/// `(value, "NAME")` pairs from `libc` constants of the same name.
macro_rules! named {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name as u64, stringify!($name))),*]
    };
}

type Table = &'static [(u64, &'static str)];

const FAMILIES: Table = named!(
    AF_UNSPEC,
    AF_UNIX,
    AF_INET,
    AF_AX25,
    AF_IPX,
    AF_APPLETALK,
    AF_NETROM,
    AF_BRIDGE,
    AF_ATMPVC,
    AF_X25,
    AF_INET6,
    AF_ROSE,
    AF_DECnet,
    AF_NETBEUI,
    AF_SECURITY,
    AF_KEY,
    AF_NETLINK,
    AF_PACKET,
    AF_ASH,
    AF_ECONET,
    AF_ATMSVC,
    AF_RDS,
    AF_SNA,
    AF_IRDA,
    AF_PPPOX,
    AF_WANPIPE,
    AF_LLC,
    AF_IB,
    AF_MPLS,
    AF_CAN,
    AF_TIPC,
    AF_BLUETOOTH,
    AF_IUCV,
    AF_RXRPC,
    AF_ISDN,
    AF_PHONET,
    AF_IEEE802154,
    AF_CAIF,
    AF_ALG,
    AF_NFC,
    AF_VSOCK,
    AF_XDP,
);

/// Families `libc` does not have (linux/socket.h).
const FAMILIES_MORE: Table = &[(41, "AF_KCM"), (42, "AF_QIPCRTR"), (43, "AF_SMC"), (45, "AF_MCTP")];

const SOCK_TYPES: Table = named!(SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM, SOCK_SEQPACKET, SOCK_DCCP);

/// `libc` marks it deprecated (it is obsolete), but old programs still ask for it.
const SOCK_TYPES_MORE: Table = &[(10, "SOCK_PACKET")];

/// Namespace flags, the one that matters most first.
const NAMESPACES: Table = &[
    (ns::CLONE_NEWUSER, "CLONE_NEWUSER"),
    (ns::CLONE_NEWNS, "CLONE_NEWNS"),
    (ns::CLONE_NEWPID, "CLONE_NEWPID"),
    (ns::CLONE_NEWNET, "CLONE_NEWNET"),
    (ns::CLONE_NEWUTS, "CLONE_NEWUTS"),
    (ns::CLONE_NEWIPC, "CLONE_NEWIPC"),
    (ns::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    (ns::CLONE_NEWTIME, "CLONE_NEWTIME"),
];

/// Execution domains (the low byte of a persona; linux/personality.h): `libc`
/// has the flags but not these.
const PERSONAS: Table = &[
    (0x00, "PER_LINUX"),
    (0x01, "PER_SVR4"),
    (0x02, "PER_SVR3"),
    (0x03, "PER_SCOSVR3"),
    (0x05, "PER_WYSEV386"),
    (0x06, "PER_ISCR4"),
    (0x07, "PER_BSD"),
    (0x08, "PER_LINUX32"),
    (0x09, "PER_RISCOS"),
    (0x0a, "PER_IRIX32"),
    (0x0b, "PER_IRIXN32"),
    (0x0c, "PER_IRIX64"),
    (0x0d, "PER_SOLARIS"),
    (0x0e, "PER_UW7"),
    (0x0f, "PER_OSF4"),
    (0x10, "PER_HPUX"),
];

const PERSONA_FLAGS: Table = named!(
    UNAME26,
    ADDR_NO_RANDOMIZE,
    FDPIC_FUNCPTRS,
    MMAP_PAGE_ZERO,
    ADDR_COMPAT_LAYOUT,
    READ_IMPLIES_EXEC,
    ADDR_LIMIT_32BIT,
    SHORT_INODE,
    WHOLE_SECONDS,
    STICKY_TIMEOUTS,
    ADDR_LIMIT_3GB,
);

/// `personality(0xffffffff)` changes nothing and returns the current persona.
const PERSONA_QUERY: u64 = 0xffff_ffff;

const PRCTL_OPTIONS: Table = named!(
    PR_SET_PDEATHSIG,
    PR_GET_PDEATHSIG,
    PR_GET_DUMPABLE,
    PR_SET_DUMPABLE,
    PR_GET_UNALIGN,
    PR_SET_UNALIGN,
    PR_GET_KEEPCAPS,
    PR_SET_KEEPCAPS,
    PR_GET_FPEMU,
    PR_SET_FPEMU,
    PR_GET_FPEXC,
    PR_SET_FPEXC,
    PR_GET_TIMING,
    PR_SET_TIMING,
    PR_SET_NAME,
    PR_GET_NAME,
    PR_GET_ENDIAN,
    PR_SET_ENDIAN,
    PR_GET_SECCOMP,
    PR_SET_SECCOMP,
    PR_CAPBSET_READ,
    PR_CAPBSET_DROP,
    PR_GET_TSC,
    PR_SET_TSC,
    PR_GET_SECUREBITS,
    PR_SET_SECUREBITS,
    PR_SET_TIMERSLACK,
    PR_GET_TIMERSLACK,
    PR_TASK_PERF_EVENTS_DISABLE,
    PR_TASK_PERF_EVENTS_ENABLE,
    PR_MCE_KILL,
    PR_MCE_KILL_GET,
    PR_SET_MM,
    PR_SET_CHILD_SUBREAPER,
    PR_GET_CHILD_SUBREAPER,
    PR_SET_NO_NEW_PRIVS,
    PR_GET_NO_NEW_PRIVS,
    PR_GET_TID_ADDRESS,
    PR_SET_THP_DISABLE,
    PR_GET_THP_DISABLE,
    PR_MPX_ENABLE_MANAGEMENT,
    PR_MPX_DISABLE_MANAGEMENT,
    PR_SET_FP_MODE,
    PR_GET_FP_MODE,
    PR_CAP_AMBIENT,
    PR_GET_SPECULATION_CTRL,
    PR_SET_SPECULATION_CTRL,
    PR_SCHED_CORE,
    PR_SET_MDWE,
    PR_GET_MDWE,
    PR_SET_MEMORY_MERGE,
    PR_GET_MEMORY_MERGE,
    PR_SET_VMA,
);

/// Options `libc` does not have yet (linux/prctl.h).
const PRCTL_MORE: Table = &[
    (55, "PR_SET_TAGGED_ADDR_CTRL"),
    (56, "PR_GET_TAGGED_ADDR_CTRL"),
    (57, "PR_SET_IO_FLUSHER"),
    (58, "PR_GET_IO_FLUSHER"),
    (59, "PR_SET_SYSCALL_USER_DISPATCH"),
    (71, "PR_RISCV_SET_ICACHE_FLUSH_CTX"),
    (0x4149_5846, "PR_GET_AUXV"),
];

const FCNTL_CMDS: Table = named!(
    F_DUPFD,
    F_GETFD,
    F_SETFD,
    F_GETFL,
    F_SETFL,
    F_GETLK,
    F_SETLK,
    F_SETLKW,
    F_SETOWN,
    F_GETOWN,
    F_OFD_GETLK,
    F_OFD_SETLK,
    F_OFD_SETLKW,
    F_SETLEASE,
    F_GETLEASE,
    F_NOTIFY,
    F_CANCELLK,
    F_DUPFD_CLOEXEC,
    F_SETPIPE_SZ,
    F_GETPIPE_SZ,
    F_ADD_SEALS,
    F_GET_SEALS,
);

/// Commands `libc` does not name on x86_64 (uapi/asm-generic/fcntl.h, linux/fcntl.h).
const FCNTL_MORE: Table = &[
    (10, "F_SETSIG"),
    (11, "F_GETSIG"),
    (15, "F_SETOWN_EX"),
    (16, "F_GETOWN_EX"),
    (17, "F_GETOWNER_UIDS"),
    (1035, "F_GET_RW_HINT"),
    (1036, "F_SET_RW_HINT"),
    (1037, "F_GET_FILE_RW_HINT"),
    (1038, "F_SET_FILE_RW_HINT"),
    (1039, "F_DUPFD_QUERY"),
];

const IOCTLS: Table = named!(
    TCGETS,
    TCSETS,
    TCSETSW,
    TCSETSF,
    TCGETA,
    TCSETA,
    TCSETAW,
    TCSETAF,
    TCSBRK,
    TCXONC,
    TCFLSH,
    TIOCEXCL,
    TIOCNXCL,
    TIOCSCTTY,
    TIOCGPGRP,
    TIOCSPGRP,
    TIOCOUTQ,
    TIOCSTI,
    TIOCGWINSZ,
    TIOCSWINSZ,
    TIOCMGET,
    TIOCMBIS,
    TIOCMBIC,
    TIOCMSET,
    TIOCGSOFTCAR,
    TIOCSSOFTCAR,
    FIONREAD,
    TIOCLINUX,
    TIOCCONS,
    TIOCGSERIAL,
    TIOCSSERIAL,
    TIOCPKT,
    FIONBIO,
    TIOCNOTTY,
    TIOCSETD,
    TIOCGETD,
    TCSBRKP,
    TIOCSBRK,
    TIOCCBRK,
    TIOCGSID,
    TCGETS2,
    TCSETS2,
    TCSETSW2,
    TCSETSF2,
    TIOCGRS485,
    TIOCSRS485,
    TIOCGPTN,
    TIOCSPTLCK,
    TIOCGDEV,
    TIOCSIG,
    TIOCVHANGUP,
    TIOCGPKT,
    TIOCGPTLCK,
    TIOCGEXCL,
    TIOCGPTPEER,
    FIONCLEX,
    FIOCLEX,
    FIOASYNC,
    FIOQSIZE,
    TIOCMIWAIT,
    TIOCGICOUNT,
    SIOCGIFNAME,
    SIOCGIFCONF,
    SIOCGIFFLAGS,
    SIOCSIFFLAGS,
    SIOCGIFADDR,
    SIOCGIFNETMASK,
    SIOCGIFMTU,
    SIOCGIFHWADDR,
    SIOCGIFINDEX,
    FICLONE,
    FICLONERANGE,
    FS_IOC_GETFLAGS,
    FS_IOC_SETFLAGS,
    NS_GET_USERNS,
    NS_GET_PARENT,
    TUNSETIFF,
);

/// Requests `libc` does not name (linux/sockios.h, linux/fs.h, asm-generic/ioctls.h).
const IOCTLS_MORE: Table = &[
    (0x8901, "FIOSETOWN"),
    (0x8902, "SIOCSPGRP"),
    (0x8903, "FIOGETOWN"),
    (0x8904, "SIOCGPGRP"),
    (0x8905, "SIOCATMARK"),
    (0x8906, "SIOCGSTAMP_OLD"),
    (0x8907, "SIOCGSTAMPNS_OLD"),
    (0x8008_1272, "BLKGETSIZE64"),
    (0x1260, "BLKGETSIZE"),
];

/// Socket option levels: `SOL_*` and the `IPPROTO_*` that are levels.
const LEVELS: Table = named!(
    SOL_SOCKET,
    IPPROTO_IP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_IPV6,
    IPPROTO_ICMPV6,
    IPPROTO_RAW,
    IPPROTO_SCTP,
    IPPROTO_UDPLITE,
    IPPROTO_MPTCP,
    SOL_NETLINK,
    SOL_PACKET,
    SOL_TLS,
    SOL_ALG,
    SOL_XDP,
);

const SO_NAMES: Table = named!(
    SO_DEBUG,
    SO_REUSEADDR,
    SO_TYPE,
    SO_ERROR,
    SO_DONTROUTE,
    SO_BROADCAST,
    SO_SNDBUF,
    SO_RCVBUF,
    SO_KEEPALIVE,
    SO_OOBINLINE,
    SO_NO_CHECK,
    SO_PRIORITY,
    SO_LINGER,
    SO_BSDCOMPAT,
    SO_REUSEPORT,
    SO_PASSCRED,
    SO_PEERCRED,
    SO_RCVLOWAT,
    SO_SNDLOWAT,
    SO_RCVTIMEO,
    SO_SNDTIMEO,
    SO_BINDTODEVICE,
    SO_ATTACH_FILTER,
    SO_DETACH_FILTER,
    SO_PEERNAME,
    SO_TIMESTAMP,
    SO_ACCEPTCONN,
    SO_PEERSEC,
    SO_SNDBUFFORCE,
    SO_RCVBUFFORCE,
    SO_PASSSEC,
    SO_TIMESTAMPNS,
    SO_MARK,
    SO_TIMESTAMPING,
    SO_PROTOCOL,
    SO_DOMAIN,
    SO_RXQ_OVFL,
    SO_WIFI_STATUS,
    SO_PEEK_OFF,
    SO_NOFCS,
    SO_LOCK_FILTER,
    SO_SELECT_ERR_QUEUE,
    SO_BUSY_POLL,
    SO_MAX_PACING_RATE,
    SO_BPF_EXTENSIONS,
    SO_INCOMING_CPU,
    SO_ATTACH_BPF,
    SO_ATTACH_REUSEPORT_CBPF,
    SO_ATTACH_REUSEPORT_EBPF,
    SO_CNX_ADVICE,
    SO_MEMINFO,
    SO_INCOMING_NAPI_ID,
    SO_COOKIE,
    SO_PEERGROUPS,
    SO_ZEROCOPY,
    SO_TXTIME,
    SO_BINDTOIFINDEX,
);

const TCP_NAMES: Table = named!(
    TCP_NODELAY,
    TCP_MAXSEG,
    TCP_CORK,
    TCP_KEEPIDLE,
    TCP_KEEPINTVL,
    TCP_KEEPCNT,
    TCP_SYNCNT,
    TCP_LINGER2,
    TCP_DEFER_ACCEPT,
    TCP_WINDOW_CLAMP,
    TCP_INFO,
    TCP_QUICKACK,
    TCP_CONGESTION,
    TCP_MD5SIG,
    TCP_THIN_LINEAR_TIMEOUTS,
    TCP_THIN_DUPACK,
    TCP_USER_TIMEOUT,
    TCP_REPAIR,
    TCP_REPAIR_QUEUE,
    TCP_QUEUE_SEQ,
    TCP_REPAIR_OPTIONS,
    TCP_FASTOPEN,
    TCP_TIMESTAMP,
    TCP_NOTSENT_LOWAT,
    TCP_CC_INFO,
    TCP_SAVE_SYN,
    TCP_SAVED_SYN,
    TCP_REPAIR_WINDOW,
    TCP_FASTOPEN_CONNECT,
    TCP_ULP,
    TCP_MD5SIG_EXT,
    TCP_FASTOPEN_KEY,
    TCP_FASTOPEN_NO_COOKIE,
    TCP_ZEROCOPY_RECEIVE,
    TCP_INQ,
);

const IP_NAMES: Table = named!(
    IP_TOS,
    IP_TTL,
    IP_HDRINCL,
    IP_OPTIONS,
    IP_RECVOPTS,
    IP_RETOPTS,
    IP_PKTINFO,
    IP_PKTOPTIONS,
    IP_MTU_DISCOVER,
    IP_RECVERR,
    IP_RECVTTL,
    IP_RECVTOS,
    IP_MTU,
    IP_FREEBIND,
    IP_IPSEC_POLICY,
    IP_XFRM_POLICY,
    IP_PASSSEC,
    IP_TRANSPARENT,
    IP_ORIGDSTADDR,
    IP_MINTTL,
    IP_NODEFRAG,
    IP_CHECKSUM,
    IP_BIND_ADDRESS_NO_PORT,
    IP_RECVFRAGSIZE,
    IP_MULTICAST_IF,
    IP_MULTICAST_TTL,
    IP_MULTICAST_LOOP,
    IP_ADD_MEMBERSHIP,
    IP_DROP_MEMBERSHIP,
    IP_UNBLOCK_SOURCE,
    IP_BLOCK_SOURCE,
    IP_ADD_SOURCE_MEMBERSHIP,
    IP_DROP_SOURCE_MEMBERSHIP,
    IP_MSFILTER,
    IP_MULTICAST_ALL,
    IP_UNICAST_IF,
);

const IPV6_NAMES: Table = named!(
    IPV6_ADDRFORM,
    IPV6_2292PKTINFO,
    IPV6_2292HOPOPTS,
    IPV6_2292DSTOPTS,
    IPV6_2292RTHDR,
    IPV6_2292PKTOPTIONS,
    IPV6_CHECKSUM,
    IPV6_2292HOPLIMIT,
    IPV6_NEXTHOP,
    IPV6_AUTHHDR,
    IPV6_UNICAST_HOPS,
    IPV6_MULTICAST_IF,
    IPV6_MULTICAST_HOPS,
    IPV6_MULTICAST_LOOP,
    IPV6_ADD_MEMBERSHIP,
    IPV6_DROP_MEMBERSHIP,
    IPV6_ROUTER_ALERT,
    IPV6_MTU_DISCOVER,
    IPV6_MTU,
    IPV6_RECVERR,
    IPV6_V6ONLY,
    IPV6_JOIN_ANYCAST,
    IPV6_LEAVE_ANYCAST,
    IPV6_IPSEC_POLICY,
    IPV6_XFRM_POLICY,
    IPV6_HDRINCL,
    IPV6_RECVPKTINFO,
    IPV6_PKTINFO,
    IPV6_RECVHOPLIMIT,
    IPV6_HOPLIMIT,
    IPV6_RECVHOPOPTS,
    IPV6_HOPOPTS,
    IPV6_RTHDRDSTOPTS,
    IPV6_RECVRTHDR,
    IPV6_RTHDR,
    IPV6_RECVDSTOPTS,
    IPV6_DSTOPTS,
    IPV6_RECVPATHMTU,
    IPV6_PATHMTU,
    IPV6_DONTFRAG,
    IPV6_RECVTCLASS,
    IPV6_TCLASS,
    IPV6_AUTOFLOWLABEL,
    IPV6_ADDR_PREFERENCES,
    IPV6_MINHOPCOUNT,
    IPV6_ORIGDSTADDR,
    IPV6_TRANSPARENT,
    IPV6_UNICAST_IF,
    IPV6_RECVFRAGSIZE,
    IPV6_FREEBIND,
);

const SIGNALS: Table = named!(
    SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE,
    SIGALRM, SIGTERM, SIGSTKFLT, SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU, SIGXFSZ,
    SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR, SIGSYS,
);

/// The kernel's first real-time signal (glibc keeps 32 and 33 for itself and
/// calls 34 `SIGRTMIN`, so a raw number is clearer than a relative name).
const KERNEL_SIGRTMIN: u64 = 32;
const KERNEL_SIGRTMAX: u64 = 64;

/// `socketcall`'s calls (linux/net.h `SYS_*`): no crate names them.
const SOCKETCALLS: Table = &[
    (1, "SYS_SOCKET"),
    (2, "SYS_BIND"),
    (3, "SYS_CONNECT"),
    (4, "SYS_LISTEN"),
    (5, "SYS_ACCEPT"),
    (6, "SYS_GETSOCKNAME"),
    (7, "SYS_GETPEERNAME"),
    (8, "SYS_SOCKETPAIR"),
    (9, "SYS_SEND"),
    (10, "SYS_RECV"),
    (11, "SYS_SENDTO"),
    (12, "SYS_RECVFROM"),
    (13, "SYS_SHUTDOWN"),
    (14, "SYS_SETSOCKOPT"),
    (15, "SYS_GETSOCKOPT"),
    (16, "SYS_SENDMSG"),
    (17, "SYS_RECVMSG"),
    (18, "SYS_ACCEPT4"),
    (19, "SYS_RECVMMSG"),
    (20, "SYS_SENDMMSG"),
];

fn lookup(tables: &[Table], value: u64) -> Option<&'static str> {
    tables.iter().flat_map(|t| t.iter()).find(|(v, _)| *v == value).map(|(_, n)| *n)
}

/// One recorded value of `kind` (in `SeenArgs`'s encoding), by name.
pub fn value_name(kind: ArgKind, value: u64) -> String {
    let or_number = |tables: &[Table], v: u64| lookup(tables, v).map_or_else(|| v.to_string(), str::to_owned);
    match kind {
        ArgKind::Socket => {
            let (family, ty) = (value >> 32, value & 0xffff_ffff);
            format!(
                "{}, {}",
                or_number(&[FAMILIES, FAMILIES_MORE], family),
                or_number(&[SOCK_TYPES, SOCK_TYPES_MORE], ty)
            )
        }
        ArgKind::Clone | ArgKind::Clone3 | ArgKind::Unshare | ArgKind::Setns => namespace_flags(value),
        ArgKind::Personality => persona(value),
        ArgKind::Prctl => or_number(&[PRCTL_OPTIONS, PRCTL_MORE], value),
        ArgKind::Fcntl => or_number(&[FCNTL_CMDS, FCNTL_MORE], value),
        ArgKind::Ioctl => lookup(&[IOCTLS, IOCTLS_MORE], value).map_or_else(|| format!("{value:#x}"), str::to_owned),
        ArgKind::Setsockopt | ArgKind::Getsockopt => socket_option(value >> 32, value & 0xffff_ffff),
        ArgKind::Mmap | ArgKind::Mprotect => {
            if value & PROT_EXEC != 0 { "PROT_EXEC" } else { "no PROT_EXEC" }.to_owned()
        }
        ArgKind::Kill => signal(value),
        ArgKind::Socketcall => or_number(&[SOCKETCALLS], value),
    }
}

/// `CLONE_NEWUSER|CLONE_NEWNS`; `0` for none; bits that are no namespace flag in hex.
pub fn namespace_flags(flags: u64) -> String {
    flag_set(flags, NAMESPACES)
}

fn flag_set(flags: u64, table: Table) -> String {
    if flags == 0 {
        return "0".into();
    }
    let mut parts: Vec<String> = table.iter().filter(|(v, _)| flags & v == *v).map(|(_, n)| (*n).to_owned()).collect();
    let rest = table.iter().fold(flags, |rest, (v, _)| rest & !v);
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

/// `PER_LINUX32|UNAME26`; the query value as such.
fn persona(value: u64) -> String {
    if value == PERSONA_QUERY {
        return "query (0xffffffff)".into();
    }
    let base = value & 0xff;
    let base_name = lookup(&[PERSONAS], base).map_or_else(|| format!("{base:#x}"), str::to_owned);
    let flags = value & !0xff;
    if flags == 0 { base_name } else { format!("{base_name}|{}", flag_set(flags, PERSONA_FLAGS)) }
}

/// `SOL_SOCKET, SO_REUSEADDR`: the option named in its level's table.
fn socket_option(level: u64, name: u64) -> String {
    let names: &[Table] = match level {
        l if l == libc::SOL_SOCKET as u64 => &[SO_NAMES],
        l if l == libc::IPPROTO_TCP as u64 => &[TCP_NAMES],
        l if l == libc::IPPROTO_IP as u64 => &[IP_NAMES],
        l if l == libc::IPPROTO_IPV6 as u64 => &[IPV6_NAMES],
        _ => &[],
    };
    let level_name = lookup(&[LEVELS], level).map_or_else(|| level.to_string(), str::to_owned);
    let option = lookup(names, name).map_or_else(|| name.to_string(), str::to_owned);
    format!("{level_name}, {option}")
}

fn signal(sig: u64) -> String {
    match lookup(&[SIGNALS], sig) {
        Some(n) => n.to_owned(),
        None if sig == 0 => "0 (no signal: a check)".into(),
        None if (KERNEL_SIGRTMIN..=KERNEL_SIGRTMAX).contains(&sig) => format!("{sig} (real-time)"),
        None => sig.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_name_family_and_type() {
        assert_eq!(value_name(ArgKind::Socket, 1 << 32 | 1), "AF_UNIX, SOCK_STREAM");
        assert_eq!(value_name(ArgKind::Socket, 10 << 32 | 2), "AF_INET6, SOCK_DGRAM");
        assert_eq!(value_name(ArgKind::Socket, 16 << 32 | 3), "AF_NETLINK, SOCK_RAW");
        assert_eq!(value_name(ArgKind::Socket, 40 << 32 | 5), "AF_VSOCK, SOCK_SEQPACKET");
        assert_eq!(value_name(ArgKind::Socket, 999 << 32 | 9), "999, 9");
    }

    #[test]
    fn namespace_flag_sets() {
        assert_eq!(value_name(ArgKind::Clone, 0), "0");
        assert_eq!(value_name(ArgKind::Clone, ns::CLONE_NEWUSER | ns::CLONE_NEWNS), "CLONE_NEWUSER|CLONE_NEWNS");
        assert_eq!(value_name(ArgKind::Unshare, ns::NS_MASK).split('|').count(), 8);
        assert_eq!(value_name(ArgKind::Setns, ns::CLONE_NEWNET | 1), "CLONE_NEWNET|0x1");
    }

    #[test]
    fn docker_default_personas() {
        // The five values Docker's default profile allows.
        assert_eq!(value_name(ArgKind::Personality, 0), "PER_LINUX");
        assert_eq!(value_name(ArgKind::Personality, 0x8), "PER_LINUX32");
        assert_eq!(value_name(ArgKind::Personality, 0x20000), "PER_LINUX|UNAME26");
        assert_eq!(value_name(ArgKind::Personality, 0x20008), "PER_LINUX32|UNAME26");
        assert_eq!(value_name(ArgKind::Personality, 0xffff_ffff), "query (0xffffffff)");
        assert_eq!(value_name(ArgKind::Personality, 0x0040000), "PER_LINUX|ADDR_NO_RANDOMIZE");
    }

    #[test]
    fn prctl_fcntl_ioctl() {
        assert_eq!(value_name(ArgKind::Prctl, 15), "PR_SET_NAME");
        assert_eq!(value_name(ArgKind::Prctl, 38), "PR_SET_NO_NEW_PRIVS");
        assert_eq!(value_name(ArgKind::Prctl, 0x5356_4d41), "PR_SET_VMA");
        assert_eq!(value_name(ArgKind::Prctl, 57), "PR_SET_IO_FLUSHER");
        assert_eq!(value_name(ArgKind::Prctl, 127), "127");
        assert_eq!(value_name(ArgKind::Fcntl, 1), "F_GETFD");
        assert_eq!(value_name(ArgKind::Fcntl, 1030), "F_DUPFD_CLOEXEC");
        assert_eq!(value_name(ArgKind::Fcntl, 1033), "F_ADD_SEALS");
        assert_eq!(value_name(ArgKind::Ioctl, 0x5401), "TCGETS");
        assert_eq!(value_name(ArgKind::Ioctl, 0x5402), "TCSETS");
        assert_eq!(value_name(ArgKind::Ioctl, 0x5413), "TIOCGWINSZ");
        assert_eq!(value_name(ArgKind::Ioctl, 0x5421), "FIONBIO");
        assert_eq!(value_name(ArgKind::Ioctl, 0x5451), "FIOCLEX");
        assert_eq!(value_name(ArgKind::Ioctl, 0x8008_6601), "FS_IOC_GETFLAGS");
        assert_eq!(value_name(ArgKind::Ioctl, 0x8008_1272), "BLKGETSIZE64");
        assert_eq!(value_name(ArgKind::Ioctl, 0xdead_beef), "0xdeadbeef");
    }

    #[test]
    fn socket_options_by_level() {
        assert_eq!(value_name(ArgKind::Setsockopt, 1 << 32 | 2), "SOL_SOCKET, SO_REUSEADDR");
        assert_eq!(value_name(ArgKind::Setsockopt, 6 << 32 | 1), "IPPROTO_TCP, TCP_NODELAY");
        assert_eq!(value_name(ArgKind::Getsockopt, 41 << 32 | 26), "IPPROTO_IPV6, IPV6_V6ONLY");
        assert_eq!(value_name(ArgKind::Getsockopt, 1 << 32 | 999), "SOL_SOCKET, 999");
        assert_eq!(value_name(ArgKind::Getsockopt, 300 << 32 | 5), "300, 5");
    }

    #[test]
    fn signals_calls_and_exec() {
        assert_eq!(value_name(ArgKind::Kill, 9), "SIGKILL");
        assert_eq!(value_name(ArgKind::Kill, 15), "SIGTERM");
        assert_eq!(value_name(ArgKind::Kill, 0), "0 (no signal: a check)");
        assert_eq!(value_name(ArgKind::Kill, 34), "34 (real-time)");
        assert_eq!(value_name(ArgKind::Kill, 100), "100");
        assert_eq!(value_name(ArgKind::Socketcall, 1), "SYS_SOCKET");
        assert_eq!(value_name(ArgKind::Socketcall, 20), "SYS_SENDMMSG");
        assert_eq!(value_name(ArgKind::Mmap, 4), "PROT_EXEC");
        assert_eq!(value_name(ArgKind::Mprotect, 0), "no PROT_EXEC");
    }

    #[test]
    fn tables_have_no_two_names_for_one_value() {
        // libc aliases (SIGIOT, SOCK_...) would make a name depend on table order.
        for table in [FAMILIES, SOCK_TYPES, PRCTL_OPTIONS, FCNTL_CMDS, LEVELS, SO_NAMES, TCP_NAMES, SIGNALS] {
            let mut values: Vec<u64> = table.iter().map(|(v, _)| *v).collect();
            values.sort_unstable();
            let n = values.len();
            values.dedup();
            assert_eq!(values.len(), n, "{table:?}");
        }
    }
}
