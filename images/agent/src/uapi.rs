//! From a workload op to the driver's request (`struct pvhdma_op`, whose
//! layout is in `pvhdma_contract::uapi`), and the driver's result in words.

use pvhdma_contract::limits;
use pvhdma_contract::uapi::{dir, kind, place, res, RawOp, UAPI_VERSION};

use crate::wire::{Direction, Op, OpKind, Placement};

/// Turn a workload op into the driver's request, or say why dom0 refuses it.
pub fn request(op: &Op, tag: u32) -> Result<RawOp, String> {
    let kind = match op.kind {
        OpKind::Coherent => kind::COHERENT,
        OpKind::Single => kind::SINGLE,
        OpKind::Sg => kind::SG,
        OpKind::Raw => kind::RAW,
        OpKind::NetTftp => return Err("net_tftp does not use the recorder".into()),
    };
    let sg = op.kind == OpKind::Sg;
    if let Some(why) = limits::refusal(op.size, op.segments, sg) {
        return Err(why);
    }
    let raw_addr = match (op.kind, op.bus_addr) {
        (OpKind::Raw, Some(a)) => a,
        (OpKind::Raw, None) => return Err("raw op without bus_addr".into()),
        _ => 0,
    };
    Ok(RawOp {
        version: UAPI_VERSION,
        kind,
        placement: match op.placement {
            Placement::Any => place::ANY,
            Placement::Low => place::LOW,
            Placement::High => place::HIGH,
        },
        dir: match op.dir {
            Direction::ToDevice => dir::TO_DEVICE,
            Direction::FromDevice => dir::FROM_DEVICE,
        },
        pattern: op.pattern.register_value(),
        seed: op.seed,
        tag,
        segments: if sg { op.segments } else { 1 },
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
    use crate::wire::DataPattern;

    fn op(kind: OpKind) -> Op {
        Op {
            name: "t".into(),
            kind,
            placement: Placement::High,
            size: 4096,
            count: 1,
            dir: Direction::FromDevice,
            pattern: DataPattern::Incrementing,
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
        assert_eq!(
            (r.version, r.tag, r.segments, r.size, r.seed),
            (UAPI_VERSION, 5, 3, 4096, 9)
        );
    }

    #[test]
    fn non_sg_ops_are_one_segment() {
        assert_eq!(request(&op(OpKind::Single), 1).unwrap().segments, 1);
    }

    #[test]
    fn request_takes_the_devices_segment_limit() {
        let mut o = op(OpKind::Sg);
        o.segments = 256;
        assert_eq!(request(&o, 1).unwrap().segments, 256);
        o.segments = 257;
        assert!(request(&o, 1).unwrap_err().contains("segments 257 outside 1..=256"));
        o.segments = 8;
        o.size = 1 << 20;
        assert!(request(&o, 1).is_err());
        o.size = 0;
        assert!(request(&o, 1).is_err());
        let raw = op(OpKind::Raw);
        assert!(request(&raw, 1).unwrap_err().contains("bus_addr"));
    }
}
