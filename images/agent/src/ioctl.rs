//! The driver's RUN ioctl: the one place the agent needs `unsafe`.
//!
//! Neither rustix nor nix offers a safe generic ioctl: the kernel cannot
//! check that the argument's type matches the request number, so both make
//! the caller promise it. This module keeps that promise in one place.
#![allow(unsafe_code)]

use std::os::fd::AsFd;

use rustix::ioctl::{ioctl, opcode, Opcode, Updater};

use pvhdma_contract::uapi::{RawOp, RawSeg, IOC_NR_RUN, IOC_TYPE};

/// `PVHDMA_IOC_RUN = _IOWR(0xd3, 1, struct pvhdma_op)`.
pub const RUN: Opcode = opcode::read_write::<RawOp>(IOC_TYPE, IOC_NR_RUN);

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

#[cfg(test)]
mod tests {
    #[test]
    fn opcode_matches_the_c_macro() {
        // _IOWR: dir 3 in bits 31:30, size in 29:16, type in 15:8, nr in 7:0.
        assert_eq!(u64::from(super::RUN), (3 << 30) | (144 << 16) | (0xd3 << 8) | 1);
    }
}
