//! vfio-user wire format (QEMU's docs/interop/vfio-user.rst), written for this
//! device rather than taken from the `vfio_user` crate: that crate cannot send
//! DMA_READ/DMA_WRITE and reads DMA_UNMAP's flags differently from QEMU.
//!
//! The protocol's structures are little-endian; everything here is plain
//! byte parsing and encoding, and sizes are checked before any allocation.

mod header;
mod messages;
pub mod replies;
mod stream;
mod version;

pub use header::{Command, Header, ProtoError, HEADER_LEN, MAX_DATA, MAX_MSG_SIZE};
pub use messages::{
    decode_message, decode_request, encode_dma_read, encode_dma_write, encode_error, encode_reply,
    parse_dma_read_reply, parse_dma_write_reply, u32s, DmaMap, DmaRefused, DmaUnmap, IrqSet, RegionAccess, Request,
};
pub use stream::{read_frame, read_frame_from_socket, Frame, ReadError};
pub use version::{negotiate, Version};

/// `flags` bits of `VFIO_USER_DMA_MAP`.
pub const DMA_MAP_READ: u32 = 1;
pub const DMA_MAP_WRITE: u32 = 2;
/// `VFIO_DMA_UNMAP_FLAG_ALL`: QEMU sets it when it drops every mapping at once.
pub const DMA_UNMAP_ALL: u32 = 2;

pub mod errno {
    //! The errno values the protocol carries in error replies.
    pub const EPERM: u32 = 1;
    pub const EFAULT: u32 = 14;
    pub const EEXIST: u32 = 17;
    pub const ENODEV: u32 = 19;
    pub const EINVAL: u32 = 22;
    pub const E2BIG: u32 = 7;
    pub const ENOSYS: u32 = 38;
}

#[cfg(test)]
mod tests;
