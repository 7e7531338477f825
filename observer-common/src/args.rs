//! The deciding argument of a few syscalls, recorded per container as value
//! sets inside its slot (`ArgSets`).
//!
//! For the syscalls whose behaviour one argument decides (`socket`'s family,
//! `clone`'s namespace flags, `prctl`'s option, ...), the kernel program
//! records which values the container used. Small domains are bitmaps (one
//! test-and-set per call); open ones (`ioctl` requests, socket options) are
//! bounded sets of exact values with an overflow bit, which makes export fall
//! back to the name-level rule for that syscall.
//!
//! Only the phases a seccomp filter sees are recorded (the runtime's init
//! after its filter, and the container's own processes): values used before
//! the filter, by the runtime setting the container up, belong in no profile,
//! the way names of that phase stay out of the exported profile.

/// Which syscall argument a value set is for. Both ABIs record into the same
/// set: a profile's rule names a syscall for every architecture it lists.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArgKind {
    /// `socket(family, type)`: (family, type & SOCK_TYPE_MASK) pairs.
    Socket = 0,
    /// `clone(flags)`: the namespace flags.
    Clone = 1,
    /// `unshare(flags)`: the namespace flags (CLONE_NEWTIME included).
    Unshare = 2,
    /// `setns(fd, nstype)`: the namespace flags of `nstype`.
    Setns = 3,
    /// `personality(persona)`.
    Personality = 4,
    /// `prctl(option)`.
    Prctl = 5,
    /// `fcntl(fd, cmd)` (and i386 `fcntl64`).
    Fcntl = 6,
    /// `ioctl(fd, request)`.
    Ioctl = 7,
    /// `setsockopt(fd, level, optname)`: (level, optname) pairs.
    Setsockopt = 8,
    /// `getsockopt(fd, level, optname)`.
    Getsockopt = 9,
    /// `mmap(addr, len, prot)` (i386 `mmap2`): whether PROT_EXEC was asked.
    Mmap = 10,
    /// `mprotect(addr, len, prot)`: whether PROT_EXEC was asked.
    Mprotect = 11,
    /// `kill(pid, sig)`.
    Kill = 12,
    /// i386 `socketcall(call)`: the multiplexed call.
    Socketcall = 13,
    /// `clone3(args)`: the namespace flags of `args->flags`, read from the
    /// caller's memory. No seccomp condition can test them (they are not in a
    /// register): export uses them to decide whether clone3 may fall back to
    /// `clone`, whose flags can be tested.
    Clone3 = 14,
}

pub const ARG_KINDS: usize = 15;

impl ArgKind {
    pub const ALL: [ArgKind; ARG_KINDS] = [
        ArgKind::Socket,
        ArgKind::Clone,
        ArgKind::Unshare,
        ArgKind::Setns,
        ArgKind::Personality,
        ArgKind::Prctl,
        ArgKind::Fcntl,
        ArgKind::Ioctl,
        ArgKind::Setsockopt,
        ArgKind::Getsockopt,
        ArgKind::Mmap,
        ArgKind::Mprotect,
        ArgKind::Kill,
        ArgKind::Socketcall,
        ArgKind::Clone3,
    ];

    /// Where the kind's values live in `ArgSets`.
    #[inline(always)]
    pub const fn region(self) -> Region {
        // (first bitmap word, bitmap words, first value entry, value entries)
        let (bit_word, bit_words, value_at, values) = match self {
            ArgKind::Socket => (0, 0, 0, 8),
            ArgKind::Clone => (0, 2, 0, 0),
            ArgKind::Unshare => (2, 4, 0, 0),
            ArgKind::Setns => (6, 4, 0, 0),
            ArgKind::Personality => (0, 0, 8, 4),
            // Options below 128 in the bitmap, larger ones (PR_SET_VMA) as values.
            ArgKind::Prctl => (10, 2, 12, 4),
            ArgKind::Fcntl => (12, 2, 0, 0),
            ArgKind::Ioctl => (0, 0, 16, 16),
            ArgKind::Setsockopt => (0, 0, 32, 8),
            ArgKind::Getsockopt => (0, 0, 40, 8),
            ArgKind::Mmap => (14, 1, 0, 0),
            ArgKind::Mprotect => (15, 1, 0, 0),
            ArgKind::Kill => (16, 2, 0, 0),
            ArgKind::Socketcall => (18, 1, 0, 0),
            ArgKind::Clone3 => (19, 4, 0, 0),
        };
        Region { bit_word, bit_words, value_at, values }
    }

    pub fn from_index(i: u8) -> Option<ArgKind> {
        ArgKind::ALL.get(i as usize).copied()
    }
}

/// A kind's part of `ArgSets`: bitmap words and value entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub bit_word: u16,
    pub bit_words: u16,
    pub value_at: u16,
    pub values: u16,
}

pub const ARG_BIT_WORDS: usize = 23;
pub const ARG_VALUES: usize = 48;
/// The largest value region (a bounded loop in the kernel scans it).
pub const MAX_REGION_VALUES: usize = 16;

/// The value sets of one container (inside its `Slot`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ArgSets {
    /// Bitmap kinds, each in its `Region::bit_word..+bit_words`.
    pub bits: [u64; ARG_BIT_WORDS],
    /// Value kinds: each entry is 0 (free) or `VALUE_TAG | value`, claimed
    /// with one compare-and-swap from 0, so no reader ever sees half an entry.
    pub values: [u64; ARG_VALUES],
    /// Bit `kind`: a value did not fit its set (or its bitmap's domain).
    pub overflow: u64,
}

const _: () = assert!(core::mem::size_of::<ArgSets>() == 8 * (ARG_BIT_WORDS + ARG_VALUES + 1));

// SAFETY: `#[repr(C)]` integers and arrays of integers, no implicit padding
// (size checked above), and every bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ArgSets {}

/// Marks a used value entry (values are at most 32 bits).
pub const VALUE_TAG: u64 = 1 << 32;

/// The namespace flags `clone`, `unshare` and `setns` take (linux/sched.h).
pub mod ns {
    pub const CLONE_NEWTIME: u64 = 0x0000_0080;
    pub const CLONE_NEWNS: u64 = 0x0002_0000;
    pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
    pub const CLONE_NEWUTS: u64 = 0x0400_0000;
    pub const CLONE_NEWIPC: u64 = 0x0800_0000;
    pub const CLONE_NEWUSER: u64 = 0x1000_0000;
    pub const CLONE_NEWPID: u64 = 0x2000_0000;
    pub const CLONE_NEWNET: u64 = 0x4000_0000;
    /// `clone`'s namespace flags: the low byte of its flags is the exit
    /// signal, so CLONE_NEWTIME (0x80) is not among them (clone3 only).
    pub const CLONE_MASK: u64 =
        CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
    /// `unshare`'s and `setns`'s.
    pub const NS_MASK: u64 = CLONE_MASK | CLONE_NEWTIME;

    /// The namespace flags of `flags` as an 8-bit index: bits 0-5 NEWCGROUP..NEWNET,
    /// bit 6 NEWNS, bit 7 NEWTIME.
    #[inline(always)]
    pub const fn compress(flags: u64) -> u32 {
        (((flags >> 25) & 0x3f) | (((flags >> 17) & 1) << 6) | (((flags >> 7) & 1) << 7)) as u32
    }

    /// The flags an index of `compress` stands for.
    pub const fn expand(index: u32) -> u64 {
        let i = index as u64;
        ((i & 0x3f) << 25) | (((i >> 6) & 1) << 17) | (((i >> 7) & 1) << 7)
    }
}

/// PROT_EXEC (asm-generic/mman-common.h).
pub const PROT_EXEC: u64 = 4;
/// SOCK_TYPE_MASK (linux/net.h): `socket`'s type without SOCK_NONBLOCK/SOCK_CLOEXEC.
pub const SOCK_TYPE_MASK: u64 = 0xf;
/// F_LINUX_SPECIFIC_BASE (uapi/linux/fcntl.h): fcntl commands from here get
/// bits 64..128 of the bitmap.
pub const F_LINUX_SPECIFIC_BASE: u64 = 1024;

/// The argument kind a syscall records, by ABI (`counters::Abi` index) and number.
#[inline(always)]
pub fn arg_kind(abi: u32, nr: i64) -> Option<ArgKind> {
    if abi == 0 {
        match nr {
            41 => Some(ArgKind::Socket),
            56 => Some(ArgKind::Clone),
            272 => Some(ArgKind::Unshare),
            308 => Some(ArgKind::Setns),
            135 => Some(ArgKind::Personality),
            157 => Some(ArgKind::Prctl),
            72 => Some(ArgKind::Fcntl),
            16 => Some(ArgKind::Ioctl),
            54 => Some(ArgKind::Setsockopt),
            55 => Some(ArgKind::Getsockopt),
            9 => Some(ArgKind::Mmap),
            10 => Some(ArgKind::Mprotect),
            62 => Some(ArgKind::Kill),
            435 => Some(ArgKind::Clone3),
            _ => None,
        }
    } else {
        match nr {
            359 => Some(ArgKind::Socket),
            120 => Some(ArgKind::Clone),
            310 => Some(ArgKind::Unshare),
            346 => Some(ArgKind::Setns),
            136 => Some(ArgKind::Personality),
            172 => Some(ArgKind::Prctl),
            55 | 221 => Some(ArgKind::Fcntl),
            54 => Some(ArgKind::Ioctl),
            366 => Some(ArgKind::Setsockopt),
            365 => Some(ArgKind::Getsockopt),
            192 => Some(ArgKind::Mmap),
            125 => Some(ArgKind::Mprotect),
            37 => Some(ArgKind::Kill),
            102 => Some(ArgKind::Socketcall),
            435 => Some(ArgKind::Clone3),
            _ => None,
        }
    }
}

/// Where one call's value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Bit `n` of the kind's bitmap region.
    Bit(u32),
    /// An entry of the kind's value region.
    Value(u32),
    /// Outside what the kind can hold: the set overflows.
    Overflow,
}

/// Where a call of `kind` with arguments `a` (the first three, by the ABI's
/// calling convention) is recorded. For `Clone3`, `a[0]` is `args->flags`,
/// which the caller read from user memory.
#[inline(always)]
pub fn place(kind: ArgKind, a: [u64; 3]) -> Place {
    let small = |v: u64, bits: u64| if v < bits { Place::Bit(v as u32) } else { Place::Overflow };
    match kind {
        ArgKind::Socket => {
            if a[0] < 0x1_0000 {
                Place::Value(((a[0] as u32) << 16) | (a[1] & SOCK_TYPE_MASK) as u32)
            } else {
                Place::Overflow
            }
        }
        ArgKind::Clone => Place::Bit(ns::compress(a[0] & ns::CLONE_MASK)),
        ArgKind::Clone3 => Place::Bit(ns::compress(a[0] & ns::NS_MASK)),
        ArgKind::Unshare => Place::Bit(ns::compress(a[0] & ns::NS_MASK)),
        ArgKind::Setns => Place::Bit(ns::compress(a[1] & ns::NS_MASK)),
        ArgKind::Personality => u32_value(a[0]),
        ArgKind::Prctl => {
            if a[0] < 128 {
                Place::Bit(a[0] as u32)
            } else {
                u32_value(a[0])
            }
        }
        ArgKind::Fcntl => {
            let cmd = a[1] & 0xffff_ffff;
            if cmd < 64 {
                Place::Bit(cmd as u32)
            } else if (F_LINUX_SPECIFIC_BASE..F_LINUX_SPECIFIC_BASE + 64).contains(&cmd) {
                Place::Bit((cmd - F_LINUX_SPECIFIC_BASE + 64) as u32)
            } else {
                Place::Overflow
            }
        }
        // The request is an `unsigned int` in the kernel: the register's upper
        // half is whatever the caller's libc left there.
        ArgKind::Ioctl => Place::Value(a[1] as u32),
        ArgKind::Setsockopt | ArgKind::Getsockopt => {
            let (level, name) = (a[1] & 0xffff_ffff, a[2] & 0xffff_ffff);
            if level < 0x1_0000 && name < 0x1_0000 {
                Place::Value(((level as u32) << 16) | name as u32)
            } else {
                Place::Overflow
            }
        }
        ArgKind::Mmap | ArgKind::Mprotect => Place::Bit(u32::from(a[2] & PROT_EXEC != 0)),
        ArgKind::Kill => small(a[1] & 0xffff_ffff, 128),
        ArgKind::Socketcall => small(a[0], 64),
    }
}

/// A 32-bit argument as a value; a register with more set is out of the domain.
#[inline(always)]
fn u32_value(v: u64) -> Place {
    if v >> 32 == 0 { Place::Value(v as u32) } else { Place::Overflow }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_do_not_overlap_and_fit() {
        let mut bits = [None; ARG_BIT_WORDS];
        let mut values = [None; ARG_VALUES];
        for kind in ArgKind::ALL {
            let r = kind.region();
            assert!(r.bit_words > 0 || r.values > 0, "{kind:?} has no room");
            assert!(usize::from(r.values) <= MAX_REGION_VALUES);
            for w in r.bit_word..r.bit_word + r.bit_words {
                assert_eq!(bits[w as usize].replace(kind), None, "bitmap word {w}");
            }
            for v in r.value_at..r.value_at + r.values {
                assert_eq!(values[v as usize].replace(kind), None, "value entry {v}");
            }
        }
        assert!(bits.iter().all(Option::is_some) && values.iter().all(Option::is_some), "no unused room");
        for (i, kind) in ArgKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
            assert_eq!(ArgKind::from_index(i as u8), Some(*kind));
        }
    }

    #[test]
    fn namespace_flags_compress_and_expand() {
        for i in 0..256 {
            assert_eq!(ns::compress(ns::expand(i)), i);
        }
        assert_eq!(ns::expand(ns::compress(ns::NS_MASK)), ns::NS_MASK);
        assert_eq!(ns::compress(ns::CLONE_NEWUSER), 1 << 3);
        // The clone kind never has NEWTIME: its bitmap is 128 bits.
        assert!(ns::compress(ns::CLONE_MASK) < 128);
    }

    #[test]
    fn calls_land_in_their_kind() {
        // socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC)
        assert_eq!(place(ArgKind::Socket, [2, 1 | 0o2000000, 0]), Place::Value(2 << 16 | 1));
        // clone(CLONE_NEWUSER | SIGCHLD) keeps only the namespace flag.
        assert_eq!(place(ArgKind::Clone, [ns::CLONE_NEWUSER | 17, 0, 0]), Place::Bit(1 << 3));
        assert_eq!(place(ArgKind::Clone, [0x3d0f00, 0, 0]), Place::Bit(0), "a thread's clone");
        assert_eq!(place(ArgKind::Setns, [3, ns::CLONE_NEWNET, 0]), Place::Bit(1 << 5));
        assert_eq!(place(ArgKind::Personality, [0xffff_ffff, 0, 0]), Place::Value(0xffff_ffff));
        assert_eq!(place(ArgKind::Prctl, [38, 1, 0]), Place::Bit(38));
        assert_eq!(place(ArgKind::Prctl, [0x5356_4d41, 0, 0]), Place::Value(0x5356_4d41));
        assert_eq!(place(ArgKind::Fcntl, [3, 1030, 0]), Place::Bit(64 + 6), "F_DUPFD_CLOEXEC");
        assert_eq!(place(ArgKind::Fcntl, [3, 5000, 0]), Place::Overflow);
        assert_eq!(place(ArgKind::Ioctl, [1, 0xffff_ffff_8004_5401, 0]), Place::Value(0x8004_5401));
        assert_eq!(place(ArgKind::Setsockopt, [3, 1, 2]), Place::Value(1 << 16 | 2));
        assert_eq!(place(ArgKind::Mmap, [0, 4096, 5]), Place::Bit(1));
        assert_eq!(place(ArgKind::Mprotect, [0, 4096, 1]), Place::Bit(0));
        assert_eq!(place(ArgKind::Kill, [1, 9, 0]), Place::Bit(9));
        assert_eq!(place(ArgKind::Socketcall, [1, 0, 0]), Place::Bit(1));
        assert_eq!(place(ArgKind::Clone3, [ns::CLONE_NEWTIME | ns::CLONE_NEWPID, 0, 0]), Place::Bit(1 << 7 | 1 << 4));
        assert_eq!(arg_kind(0, 435), Some(ArgKind::Clone3));
        assert_eq!(arg_kind(0, 41), Some(ArgKind::Socket));
        assert_eq!(arg_kind(1, 102), Some(ArgKind::Socketcall));
        assert_eq!(arg_kind(0, 102), None, "getuid on x86_64");
    }

    #[test]
    fn bitmap_places_stay_inside_their_regions() {
        for kind in ArgKind::ALL {
            let bits = u32::from(kind.region().bit_words) * 64;
            for a in [0, 1, 63, 64, 127, 128, 1023, 1024, 1087, 1088, u64::MAX, ns::NS_MASK] {
                for args in [[a, 0, 0], [0, a, 0], [0, 0, a], [a, a, a]] {
                    match place(kind, args) {
                        Place::Bit(b) => assert!(b < bits, "{kind:?} {args:?} -> bit {b} of {bits}"),
                        Place::Value(_) => assert!(kind.region().values > 0, "{kind:?} has no values"),
                        Place::Overflow => {}
                    }
                }
            }
        }
    }
}
