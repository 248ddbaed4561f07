//! The dom0 driver's ioctls on `/dev/pvhdmaN`: `PVHDMA_IOC_RUN` (an op on
//! dom0's own memory) and `PVHDMA_IOC_RUN_GRANT` (an op on another domain's
//! granted pages); the layout of `struct pvhdma_op`, `struct pvhdma_seg`,
//! `struct pvhdma_grant_op` and `struct pvhdma_grant_seg` and the values of
//! their enums. images/driver/pvhdma_uapi.h is the C spelling of the same;
//! `tests/c_side.rs` fails on any drift between the two.
//!
//! Every field is naturally aligned and neither struct has implicit padding,
//! so 32- and 64-bit callers share one layout.

use crate::limits::{MAX_GRANT_PAGES, MAX_SEGMENTS};

pub const UAPI_VERSION: u32 = 3;
/// `_IOWR(IOC_TYPE, IOC_NR_RUN, struct pvhdma_op)`.
pub const IOC_TYPE: u8 = 0xd3;
pub const IOC_NR_RUN: u8 = 1;
/// `_IOW(IOC_TYPE, IOC_NR_RUN_GRANT, struct pvhdma_grant_op)`: the kernel
/// only reads the struct; it writes through its pointers.
pub const IOC_NR_RUN_GRANT: u8 = 2;
/// The driver's cap on `segments` (the device's descriptor limit).
pub const MAX_SEGS: u32 = MAX_SEGMENTS;
/// The driver's cap on `segments` of an op on granted pages.
pub const MAX_GRANT_SEGS: u32 = MAX_GRANT_PAGES;
/// `PVHDMA_GRANT_READONLY` in `pvhdma_grant_op.flags`: map the grants
/// read-only (the device may read them, never write them).
pub const GRANT_READONLY: u32 = 1;

/// `enum pvhdma_kind`.
pub mod kind {
    pub const COHERENT: u32 = 0;
    pub const SINGLE: u32 = 1;
    pub const SG: u32 = 2;
    pub const RAW: u32 = 3;
}

/// `enum pvhdma_placement`.
pub mod place {
    pub const ANY: u32 = 0;
    pub const LOW: u32 = 1;
    pub const HIGH: u32 = 2;
}

/// `enum pvhdma_dir`: the device's CONTROL.FROM_DEVICE bit.
pub mod dir {
    pub const TO_DEVICE: u32 = 0;
    pub const FROM_DEVICE: u32 = 1;
}

/// `enum pvhdma_result`: the driver's part; the device's view is in `dev_*`.
pub mod res {
    /// DMA programmed and completed (maybe with a device error).
    pub const OK: u32 = 0;
    /// The DMA API refused the mapping; nothing was programmed.
    pub const MAP_ERROR: u32 = 1;
    /// placement=high but no page at or above 4 GiB was found.
    pub const NO_HIGH_MEM: u32 = 2;
    /// An allocation failed.
    pub const NO_MEM: u32 = 3;
    /// The device never reported DONE or ERROR.
    pub const TIMEOUT: u32 = 4;
    /// A grant ref did not map into dom0 (its status says why).
    pub const GRANT_MAP: u32 = 5;
}

/// Declares a `#[repr(C)]` struct and a table of its fields (name, size,
/// offset) that the drift test compares with the C header.
macro_rules! c_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }

        impl $name {
            /// (name, size, offset) of every field, in declaration order.
            pub const FIELDS: &'static [(&'static str, usize, usize)] = &[
                $((stringify!($f), std::mem::size_of::<$t>(), std::mem::offset_of!($name, $f)),)*
            ];
        }
    };
}

c_struct! {
    /// `struct pvhdma_op`: the request (up to `raw_addr`) and its outcome.
    pub struct RawOp {
        pub version: u32,
        pub kind: u32,
        pub placement: u32,
        pub dir: u32,
        pub pattern: u32,
        pub seed: u32,
        /// Written to TAG: the join key with the device's records.
        pub tag: u32,
        /// 1 except for sg: 1..=MAX_SEGS.
        pub segments: u32,
        /// Bytes per segment, 1..=MAX_XFER; an sg total is at most MAX_SG_TOTAL.
        pub size: u32,
        pub flags: u32,
        /// raw only: the bus address to program.
        pub raw_addr: u64,
        /// User address of `seg_cap` [`RawSeg`]s that the driver fills.
        pub segs_ptr: u64,
        pub seg_cap: u32,
        pub result: u32,
        /// Entries the driver wrote at `segs_ptr`.
        pub nsegs: u32,
        pub map_error: u32,
        /// Some segment's bus address differs from its physical address.
        pub bounced: u32,
        /// The completion interrupt arrived in time.
        pub irq: u32,
        /// Data and CHECKSUM match the pattern.
        pub intact: u32,
        pub dev_status: u32,
        pub dev_error: u32,
        pub dev_seq: u32,
        pub dev_checksum: u32,
        pub expected_checksum: u32,
        pub bytes_done: u32,
        /// From-device data still differed from the pattern at the driver's
        /// first look after it saw DONE (the data may arrive later and pass
        /// `intact`): a completion reported before the data moved.
        pub mismatch_at_done: u32,
        /// Total bytes of the transfer.
        pub len: u64,
        /// sg: bus address of the descriptor list, else 0.
        pub desc_addr: u64,
        /// FAULT_ADDR_HI:LO.
        pub fault_addr: u64,
        /// First wrong byte of from-device data, or !0.
        pub mismatch_offset: u64,
    }
}

c_struct! {
    /// `struct pvhdma_seg`: where one segment was, for the CPU and for the device.
    pub struct RawSeg {
        pub dma: u64,
        pub phys: u64,
    }
}

c_struct! {
    /// `struct pvhdma_grant_op`: run the op at `op_ptr` on pages domain
    /// `domid` granted, one page per segment, mapped the way a backend maps
    /// a frontend's buffers. The op must be single or sg, `size` at most one
    /// page, `placement` any, `segments` at most [`MAX_GRANT_SEGS`].
    pub struct RawGrantOp {
        /// User address of the [`RawOp`]: request in, outcome out, as for RUN.
        pub op_ptr: u64,
        /// User address of the op's `segments` [`RawGrantSeg`]s.
        pub grants_ptr: u64,
        pub domid: u32,
        /// [`GRANT_READONLY`] or 0.
        pub flags: u32,
    }
}

c_struct! {
    /// `struct pvhdma_grant_seg`: one segment's grant, and how its map went.
    pub struct RawGrantSeg {
        /// In: the grant ref of the segment's page.
        pub gref: u32,
        /// Out: Xen's GNTST_* of the map (0 = okay).
        pub status: i32,
    }
}

/// The offset of `result`: the driver copies in only the request half.
pub const REQUEST_LEN: usize = std::mem::offset_of!(RawOp, result);

const _: () = assert!(std::mem::size_of::<RawOp>() == 144);
const _: () = assert!(std::mem::size_of::<RawSeg>() == 16);
const _: () = assert!(std::mem::size_of::<RawGrantOp>() == 24);
const _: () = assert!(std::mem::size_of::<RawGrantSeg>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_implicit_padding() {
        for fields in [RawOp::FIELDS, RawSeg::FIELDS, RawGrantOp::FIELDS, RawGrantSeg::FIELDS] {
            let mut end = 0;
            for &(name, size, off) in fields {
                assert_eq!(off, end, "{name} does not follow its predecessor");
                assert_eq!(off % size, 0, "{name} is not naturally aligned");
                end = off + size;
            }
        }
        assert_eq!(
            RawOp::FIELDS.last().map(|f| f.2 + f.1),
            Some(std::mem::size_of::<RawOp>())
        );
    }
}
