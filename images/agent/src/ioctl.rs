//! The driver's ioctls: the one place the agent needs `unsafe` for them
//! (gntalloc.rs, for a guest's grants, and xen_cpuid.rs are the others).
//!
//! Neither rustix nor nix offers a safe generic ioctl: the kernel cannot
//! check that the argument's type matches the request number, so both make
//! the caller promise it. This module keeps that promise in one place.
#![allow(unsafe_code)]

use std::os::fd::AsFd;

use rustix::ioctl::{ioctl, opcode, Opcode, Setter, Updater};

use pvhdma_contract::uapi::{RawGrantOp, RawGrantSeg, RawOp, RawSeg, IOC_NR_RUN, IOC_NR_RUN_GRANT, IOC_TYPE};

/// `PVHDMA_IOC_RUN = _IOWR(0xd3, 1, struct pvhdma_op)`.
pub const RUN: Opcode = opcode::read_write::<RawOp>(IOC_TYPE, IOC_NR_RUN);
/// `PVHDMA_IOC_RUN_GRANT = _IOW(0xd3, 2, struct pvhdma_grant_op)`.
pub const RUN_GRANT: Opcode = opcode::write::<RawGrantOp>(IOC_TYPE, IOC_NR_RUN_GRANT);

/// Run one operation on an open `/dev/pvhdmaN`; the driver fills the output
/// half of `op` and the first `op.nsegs` entries of `segs`.
pub fn run(fd: impl AsFd, op: &mut RawOp, segs: &mut [RawSeg]) -> rustix::io::Result<()> {
    op.segs_ptr = segs.as_mut_ptr() as u64;
    op.seg_cap = u32::try_from(segs.len()).unwrap_or(u32::MAX);
    // SAFETY: RUN is `_IOWR(0xd3, 1, struct pvhdma_op)` and `RawOp` is
    // `#[repr(C)]` with exactly that struct's layout (held to the C header by
    // the contract crate's drift test), so the kernel reads and writes `*op`
    // and, through `segs_ptr`, at most `seg_cap` `struct pvhdma_seg`s, which
    // `RawSeg` lays out alike. Both exclusive borrows keep that memory alive
    // and unaliased for the call. Any other driver behind the fd rejects the
    // number (ENOTTY) without touching memory.
    unsafe { ioctl(fd, Updater::<RUN, RawOp>::new(op)) }
}

/// Run one operation on another domain's granted pages, one per entry of
/// `grants` (`op.segments` of them); the driver fills `op` and `segs` as
/// for [`run`] and each grant's map status.
pub fn run_grant(
    fd: impl AsFd,
    domid: u32,
    flags: u32,
    op: &mut RawOp,
    segs: &mut [RawSeg],
    grants: &mut [RawGrantSeg],
) -> rustix::io::Result<()> {
    if grants.len() != op.segments as usize {
        return Err(rustix::io::Errno::INVAL);
    }
    op.segs_ptr = segs.as_mut_ptr() as u64;
    op.seg_cap = u32::try_from(segs.len()).unwrap_or(u32::MAX);
    let arg = RawGrantOp {
        op_ptr: std::ptr::from_mut(op) as u64,
        grants_ptr: grants.as_mut_ptr() as u64,
        domid,
        flags,
    };
    // SAFETY: RUN_GRANT is `_IOW(0xd3, 2, struct pvhdma_grant_op)` and
    // `RawGrantOp` has that struct's layout (the drift test holds it to the
    // header). The kernel reads `arg`, then reads and writes the `RawOp` at
    // `op_ptr`, at most `seg_cap` `RawSeg`s at `segs_ptr` and
    // `op.segments` `RawGrantSeg`s at `grants_ptr` (checked equal to
    // `grants.len()` above); the exclusive borrows keep all three alive and
    // unaliased for the call.
    unsafe { ioctl(fd, Setter::<RUN_GRANT, RawGrantOp>::new(arg)) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn opcodes_match_the_c_macros() {
        // _IOWR: dir 3 in bits 31:30, size in 29:16, type in 15:8, nr in 7:0.
        assert_eq!(u64::from(super::RUN), (3 << 30) | (144 << 16) | (0xd3 << 8) | 1);
        // _IOW: dir 1 (the kernel reads the struct).
        assert_eq!(u64::from(super::RUN_GRANT), (1 << 30) | (24 << 16) | (0xd3 << 8) | 2);
    }
}
