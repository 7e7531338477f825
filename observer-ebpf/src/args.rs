//! Records the deciding argument of the few syscalls that have one
//! (`observer_common::args`) in the slot's value sets. Called from
//! `sys_enter` only for those syscalls, and only in the phases a seccomp
//! filter sees: every other call pays one compare chain on its number.

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{bpf_probe_read_kernel, bpf_probe_read_user},
    programs::RawTracePointContext,
};
use observer_common::{
    args::{ArgKind, ArgSets, MAX_REGION_VALUES, Place, VALUE_TAG, place},
    counters::Abi,
    stats::helper,
};

use crate::{
    failures::count_failure,
    maps::{cmpxchg64, opaque, set_bit},
};

/// The user registers from `rbx` to `rdi` as `pt_regs` lays them out
/// (arch/x86/include/asm/ptrace.h): one read covers the first three
/// arguments of both ABIs.
#[repr(C)]
#[derive(Clone, Copy)]
struct ArgRegs {
    rbx: u64,
    _r11: u64,
    _r10: u64,
    _r9: u64,
    _r8: u64,
    _rax: u64,
    rcx: u64,
    rdx: u64,
    rsi: u64,
    rdi: u64,
}

/// Adds this call's value to its kind's set.
#[inline(never)]
pub fn record(ctx: &RawTracePointContext, sets: &mut ArgSets, kind: ArgKind, abi: u32) -> Option<()> {
    if sets.overflow & (1 << kind as u64) != 0 {
        // Overflowed: export falls back to the name for this kind, and no
        // value can change that.
        return None;
    }
    // `TP_PROTO(struct pt_regs *regs, long id)`: the saved user registers.
    let regs: *const pt_regs = ctx.arg(0);
    // SAFETY: only the field's address is computed (no load); the helper reads
    // the 80 bytes from there to the end of `rdi` and fails cleanly on a bad pointer.
    let r: ArgRegs = match unsafe { bpf_probe_read_kernel((&raw const (*regs).rbx).cast::<ArgRegs>()) } {
        Ok(r) => r,
        Err(_) => {
            count_failure(helper::ARGS_READ_REGS);
            return None;
        }
    };
    // x86_64 passes arguments in rdi, rsi, rdx (then r10, r8, r9); i386 in
    // ebx, ecx, edx (then esi, edi, ebp), zero-extended into the registers.
    let mut a = if abi == Abi::X86_64 as u32 { [r.rdi, r.rsi, r.rdx] } else { [r.rbx, r.rcx, r.rdx] };
    if kind == ArgKind::Clone3 {
        // `struct clone_args` starts with `__aligned_u64 flags`
        // (include/uapi/linux/sched.h). A pointer that does not read (a bad
        // one, or a page not present) leaves the set overflowed: unknown.
        // SAFETY: the helper reads user memory and fails cleanly on a bad address.
        match unsafe { bpf_probe_read_user(a[0] as *const u64) } {
            Ok(flags) => a[0] = flags,
            Err(_) => {
                count_failure(helper::CLONE3_READ_FLAGS);
                set_bit(&mut sets.overflow, 1 << kind as u64);
                return None;
            }
        }
    }
    let region = kind.region();
    match place(kind, a) {
        Place::Bit(bit) => {
            let word = sets.bits.get_mut(opaque(u32::from(region.bit_word) + bit / 64) as usize)?;
            let mask = 1u64 << (bit % 64);
            if *word & mask == 0 {
                set_bit(word, mask);
            }
        }
        Place::Value(value) => {
            if !insert_value(sets, region.value_at, region.values, VALUE_TAG | u64::from(value)) {
                set_bit(&mut sets.overflow, 1 << kind as u64);
            }
        }
        Place::Overflow => {
            set_bit(&mut sets.overflow, 1 << kind as u64);
        }
    }
    Some(())
}

/// Finds `tagged` among the `len` entries from `at`, or claims a free one for
/// it (one compare-and-swap from 0: a reader sees a whole entry or none).
/// False when the set is full. Two CPUs adding the same value at once may
/// both claim an entry: user space reads a set, so a duplicate is harmless.
#[inline(always)]
fn insert_value(sets: &mut ArgSets, at: u16, len: u16, tagged: u64) -> bool {
    for i in 0..MAX_REGION_VALUES as u32 {
        if i >= u32::from(len) {
            return false;
        }
        let Some(entry) = sets.values.get_mut(opaque(u32::from(at) + i) as usize) else {
            return false;
        };
        // SAFETY: a valid, aligned u64 of the slot; other CPUs change it only
        // through `cmpxchg64`, and a word-sized load sees it whole.
        let current = unsafe { core::ptr::read_volatile(entry) };
        if current == tagged {
            return true;
        }
        if current == 0 {
            let old = cmpxchg64(entry, 0, tagged);
            if old == 0 || old == tagged {
                return true;
            }
        }
    }
    false
}
