//! From a workload op to the driver's request (`struct pvhdma_op`, whose
//! layout is in `pvhdma_contract::uapi`), and the driver's result in words.

use pvhdma_contract::limits::{self, GRANT_PAGE_SIZE, MAX_GRANT_PAGES};
use pvhdma_contract::uapi::{dir, kind, place, res, RawGrantSeg, RawOp, GRANT_READONLY, UAPI_VERSION};

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

/// The driver's request for an op on a guest's granted pages (one page per
/// segment, `refs[i]` the grant of segment i), its `flags`, and the grant
/// entries; or why dom0 refuses it.
pub fn grant_request(op: &Op, tag: u32, refs: &[u32]) -> Result<(RawOp, u32, Vec<RawGrantSeg>), String> {
    let Some(buffer) = &op.buffer else {
        return Err("the op names no guest buffer".into());
    };
    if !matches!(op.kind, OpKind::Single | OpKind::Sg) {
        return Err("only single and sg ops can use a guest's pages".into());
    }
    if op.size > GRANT_PAGE_SIZE {
        return Err(format!("size {} above one granted page", op.size));
    }
    let raw = request(op, tag)?;
    if raw.segments > MAX_GRANT_PAGES {
        return Err(format!(
            "{} segments above {MAX_GRANT_PAGES} granted pages",
            raw.segments
        ));
    }
    if refs.len() != raw.segments as usize {
        return Err(format!("{} grant refs for {} segments", refs.len(), raw.segments));
    }
    let grants = refs.iter().map(|&gref| RawGrantSeg { gref, status: 0 }).collect();
    let flags = if buffer.readonly { GRANT_READONLY } else { 0 };
    // Where the pages lie is the granting domain's choice, not dom0's.
    Ok((
        RawOp {
            placement: place::ANY,
            ..raw
        },
        flags,
        grants,
    ))
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
        res::GRANT_MAP => Some("a grant ref did not map into dom0 (see grant_status)".into()),
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
            buffer: None,
        }
    }

    #[test]
    fn grant_requests_carry_refs_and_refuse_misfits() {
        let mut o = op(OpKind::Sg);
        o.buffer = Some(crate::wire::GuestBuffer {
            guest: "g".into(),
            readonly: true,
        });
        let (raw, flags, grants) = grant_request(&o, 2, &[7, 8, 9]).unwrap();
        assert_eq!(
            (flags, raw.segments, raw.placement, raw.tag),
            (GRANT_READONLY, 3, place::ANY, 2)
        );
        assert_eq!(grants.iter().map(|g| g.gref).collect::<Vec<_>>(), [7, 8, 9]);
        assert!(grant_request(&o, 2, &[7]).unwrap_err().contains("1 grant refs"));
        o.segments = MAX_GRANT_PAGES + 1;
        assert!(grant_request(&o, 2, &[0; 17]).unwrap_err().contains("granted pages"));
        o.segments = 3;
        o.size = 8192;
        assert!(grant_request(&o, 2, &[7, 8, 9]).is_err());
        let mut c = op(OpKind::Coherent);
        c.buffer = o.buffer.clone();
        assert!(grant_request(&c, 2, &[7]).is_err());
        assert!(grant_request(&op(OpKind::Single), 2, &[7])
            .unwrap_err()
            .contains("no guest buffer"));
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
