//! The single `unsafe` in the workspace: the driver's RUN ioctl.
//!
//! Neither rustix nor nix offers a safe generic ioctl: the kernel cannot
//! check that the argument's type matches the request number, so both make
//! the caller promise it. This module keeps that promise in one place.
#![allow(unsafe_code)]

use std::os::fd::AsFd;

use rustix::ioctl::{ioctl, opcode, Opcode, Updater};

use crate::uapi::RawOp;

/// `PVHDMA_IOC_RUN = _IOWR(0xd3, 1, struct pvhdma_op)`.
pub const RUN: Opcode = opcode::read_write::<RawOp>(0xd3, 1);

/// Run one operation on an open `/dev/pvhdmaN`; the driver fills the output half of `op`.
pub fn run(fd: impl AsFd, op: &mut RawOp) -> rustix::io::Result<()> {
    // SAFETY: RUN is `_IOWR(0xd3, 1, struct pvhdma_op)` and `RawOp` is
    // `#[repr(C)]` with exactly that struct's layout (size asserted in uapi.rs),
    // so the kernel reads and writes only within `*op`, which the exclusive
    // borrow keeps alive and unaliased for the call. Any other driver behind
    // the fd rejects the number (ENOTTY) without touching memory.
    unsafe { ioctl(fd, Updater::<RUN, RawOp>::new(op)) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn opcode_matches_the_c_macro() {
        // _IOWR: dir 3 in bits 31:30, size in 29:16, type in 15:8, nr in 7:0.
        assert_eq!(u64::from(super::RUN), (3 << 30) | (384 << 16) | (0xd3 << 8) | 1);
    }
}
