//! What a seccomp filter sees of a call besides its number and ABI: the six
//! argument registers and the instruction pointer (`seccomp_data`), read from
//! the saved user registers in one helper call. An enter note of a call that
//! its filter may deny carries them (see `observer_common::marker`).

use aya_ebpf::{bindings::pt_regs, helpers::bpf_probe_read_kernel};
use observer_common::marker::Fingerprint;

/// The user registers from `rbp` to `rip` as `pt_regs` lays them out
/// (arch/x86/include/asm/ptrace.h): the arguments of both ABIs, the syscall
/// number (`orig_rax`) and the instruction pointer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CallRegs {
    rbp: u64,
    rbx: u64,
    _r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    _rax: u64,
    rcx: u64,
    rdx: u64,
    rsi: u64,
    rdi: u64,
    pub orig_rax: u64,
    rip: u64,
}

impl CallRegs {
    /// One read of the saved registers; `None` if the helper failed.
    #[inline(always)]
    pub fn read(regs: *const pt_regs) -> Option<CallRegs> {
        // SAFETY: only the field's address is computed (no load); the helper
        // reads the 104 bytes from `rbp` to the end of `rip` and fails cleanly
        // on a bad pointer.
        unsafe { bpf_probe_read_kernel((&raw const (*regs).rbp).cast::<CallRegs>()) }.ok()
    }

    /// The arguments as the call's ABI passes them (x86_64: rdi, rsi, rdx,
    /// r10, r8, r9; i386: ebx, ecx, edx, esi, edi, ebp), then the instruction
    /// pointer: what `seccomp_data` holds besides the number and the ABI.
    #[inline(always)]
    pub fn fingerprint(&self, abi: u32) -> Fingerprint {
        if abi == 0 {
            [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9, self.rip]
        } else {
            [self.rbx, self.rcx, self.rdx, self.rsi, self.rdi, self.rbp, self.rip]
        }
    }
}
