//! The driver's ioctl argument: `struct pvhdma_op` of
//! images/driver/pvhdma_uapi.h, field for field.

use crate::wire::{Direction, Op, OpKind, Pattern, Placement};

pub const UAPI_VERSION: u32 = 1;
pub const MAX_SEGS: usize = 16;
/// The device's per-transfer limit (REGISTERS.md: LENGTH 1..=1 MiB).
pub const MAX_XFER: u32 = 1 << 20;
/// The device's limit on an SG transfer's total.
pub const MAX_SG_TOTAL: u64 = 4 << 20;

/// `enum pvhdma_result`.
pub mod res {
    pub const OK: u32 = 0;
    pub const MAP_ERROR: u32 = 1;
    pub const NO_HIGH_MEM: u32 = 2;
    pub const NO_MEM: u32 = 3;
    pub const TIMEOUT: u32 = 4;
}

/// `struct pvhdma_op`. No implicit padding: every field is naturally aligned.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawOp {
    pub version: u32,
    pub kind: u32,
    pub placement: u32,
    pub dir: u32,
    pub pattern: u32,
    pub seed: u32,
    pub tag: u32,
    pub segments: u32,
    pub size: u32,
    pub flags: u32,
    pub raw_addr: u64,
    pub result: u32,
    pub nsegs: u32,
    pub map_error: u32,
    pub bounced: u32,
    pub irq: u32,
    pub intact: u32,
    pub dev_status: u32,
    pub dev_error: u32,
    pub dev_seq: u32,
    pub dev_checksum: u32,
    pub expected_checksum: u32,
    pub bytes_done: u32,
    pub len: u64,
    pub desc_addr: u64,
    pub fault_addr: u64,
    pub mismatch_offset: u64,
    pub dma_addr: [u64; MAX_SEGS],
    pub phys_addr: [u64; MAX_SEGS],
}

// The ioctl number encodes the size: a layout drift would be an ENOTTY at
// run time, so catch it at build time instead.
const _: () = assert!(std::mem::size_of::<RawOp>() == 384);

/// Turn a workload op into the driver's request, or say why it cannot be one.
pub fn request(op: &Op, tag: u32) -> Result<RawOp, String> {
    if op.kind == OpKind::NetTftp {
        return Err("net_tftp does not use the recorder".into());
    }
    let segments = if op.kind == OpKind::Sg { op.segments } else { 1 };
    if op.size == 0 || op.size > MAX_XFER {
        return Err(format!("size {} outside 1..={MAX_XFER}", op.size));
    }
    if op.kind == OpKind::Sg {
        if segments == 0 || segments as usize > MAX_SEGS {
            return Err(format!("segments {segments} outside 1..={MAX_SEGS}"));
        }
        if u64::from(segments) * u64::from(op.size) > MAX_SG_TOTAL {
            return Err(format!("sg total above {MAX_SG_TOTAL} bytes"));
        }
    }
    let raw_addr = match (op.kind, op.bus_addr) {
        (OpKind::Raw, Some(a)) => a,
        (OpKind::Raw, None) => return Err("raw op without bus_addr".into()),
        _ => 0,
    };
    Ok(RawOp {
        version: UAPI_VERSION,
        kind: match op.kind {
            OpKind::Coherent => 0,
            OpKind::Single => 1,
            OpKind::Sg => 2,
            OpKind::Raw => 3,
            OpKind::NetTftp => unreachable!("refused above"),
        },
        placement: match op.placement {
            Placement::Any => 0,
            Placement::Low => 1,
            Placement::High => 2,
        },
        dir: match op.dir {
            Direction::ToDevice => 0,
            Direction::FromDevice => 1,
        },
        pattern: match op.pattern {
            Pattern::Fill => 0,
            Pattern::Incrementing => 1,
            Pattern::Xorshift => 2,
        },
        seed: op.seed,
        tag,
        segments,
        size: op.size,
        raw_addr,
        ..RawOp::default()
    })
}

/// The driver's outcome in words, `None` when the op ran to completion.
pub fn result_error(r: &RawOp) -> Option<String> {
    match r.result {
        res::OK => None,
        // Reported through map_error; not an error of the rig.
        res::MAP_ERROR => None,
        res::NO_HIGH_MEM => Some("no memory above 4 GiB".into()),
        res::NO_MEM => Some("driver could not allocate the buffer".into()),
        res::TIMEOUT => Some("device never completed (timeout)".into()),
        other => Some(format!("unknown driver result {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind) -> Op {
        Op {
            name: "t".into(),
            kind,
            placement: Placement::High,
            size: 4096,
            count: 1,
            dir: Direction::FromDevice,
            pattern: Pattern::Incrementing,
            seed: 9,
            segments: 3,
            bus_addr: None,
            device: 0,
        }
    }

    #[test]
    fn request_encodes_enums_like_the_header() {
        let r = request(&op(OpKind::Sg), 5).unwrap();
        assert_eq!((r.kind, r.placement, r.dir, r.pattern), (2, 2, 1, 1));
        assert_eq!((r.version, r.tag, r.segments, r.size, r.seed), (1, 5, 3, 4096, 9));
    }

    #[test]
    fn layout_matches_gcc() {
        // Offsets printed by gcc for pvhdma_uapi.h (x86-64 and i386 agree).
        use std::mem::offset_of;
        assert_eq!(offset_of!(RawOp, result), 48);
        assert_eq!(offset_of!(RawOp, len), 96);
        assert_eq!(offset_of!(RawOp, dma_addr), 128);
        assert_eq!(offset_of!(RawOp, phys_addr), 256);
    }

    #[test]
    fn non_sg_ops_are_one_segment() {
        assert_eq!(request(&op(OpKind::Single), 1).unwrap().segments, 1);
    }

    #[test]
    fn request_rejects_what_the_driver_would() {
        let mut o = op(OpKind::Sg);
        o.segments = 17;
        assert!(request(&o, 1).is_err());
        o.segments = 8;
        o.size = 1 << 20;
        assert!(request(&o, 1).is_err());
        o.size = 0;
        assert!(request(&o, 1).is_err());
        let raw = op(OpKind::Raw);
        assert!(request(&raw, 1).unwrap_err().contains("bus_addr"));
    }
}
