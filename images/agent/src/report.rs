//! From the driver's answer to the console's [`OpResult`].

use std::fs;
use std::path::Path;

use crate::pattern::fnv1a;
use crate::uapi;
use crate::wire::{DeviceInfo, Op, OpKind, OpResult};
use pvhdma_contract::uapi::{res, RawOp, RawSeg};

/// Where one result sits in the run.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub index: u32,
    pub op: u32,
    pub run: u32,
    pub tag: u32,
}

/// A result for an op that never reached the device because something went
/// wrong on the way (no device node, a failed ioctl).
pub fn failed(slot: Slot, op: &Op, error: String) -> OpResult {
    OpResult {
        error: Some(error),
        ..not_run(slot, op)
    }
}

/// A result for an op that dom0 would not run at all: `why` is dom0's reason.
pub fn refused(slot: Slot, op: &Op, why: String) -> OpResult {
    OpResult {
        refused: Some(why),
        ..not_run(slot, op)
    }
}

fn not_run(slot: Slot, op: &Op) -> OpResult {
    OpResult {
        index: slot.index,
        name: op.name.clone(),
        kind: op.kind,
        tag: slot.tag,
        map_error: false,
        error: None,
        refused: None,
        dma_addrs: vec![],
        phys_addrs: vec![],
        bounced: false,
        device_status: 0,
        device_error: 0,
        device_seq: 0,
        intact: false,
        irq: false,
        len: 0,
        op: slot.op,
        run: slot.run,
        device: op.device,
        checksum: 0,
        expected_checksum: 0,
        bytes_done: 0,
        fault_addr: 0,
        desc_addr: None,
        mismatch_offset: None,
        bounces: 0,
        mismatch_at_done: false,
        foreign: None,
    }
}

/// The result of an op the driver ran (`raw` is the ioctl's filled-in
/// struct, `segs` the segment array it filled).
pub fn completed(slot: Slot, op: &Op, raw: &RawOp, segs: &[RawSeg], bounces: u64) -> OpResult {
    let segs = &segs[..(raw.nsegs as usize).min(segs.len())];
    let mut error = uapi::result_error(raw);
    // The driver checks data with its own C copy of the pattern code; an
    // independent Rust copy catches a bug in either before it reads as a DMA finding.
    if error.is_none() && raw.result == res::OK && op.kind != OpKind::Raw {
        let ours = fnv1a(&op.pattern.bytes(op.seed, raw.len as usize));
        if ours != raw.expected_checksum {
            error = Some(format!(
                "driver pattern checksum {:#x} != agent's {ours:#x}",
                raw.expected_checksum
            ));
        }
    }
    let ran = raw.result == res::OK || raw.result == res::TIMEOUT;
    OpResult {
        index: slot.index,
        name: op.name.clone(),
        kind: op.kind,
        tag: slot.tag,
        map_error: raw.map_error != 0,
        intact: raw.intact != 0 && error.is_none(),
        error,
        refused: None,
        dma_addrs: if raw.map_error != 0 {
            vec![]
        } else {
            segs.iter().map(|s| s.dma).collect()
        },
        // raw programs an address, not a buffer: there is no physical side.
        phys_addrs: if op.kind == OpKind::Raw {
            vec![]
        } else {
            segs.iter().map(|s| s.phys).collect()
        },
        bounced: raw.bounced != 0,
        device_status: raw.dev_status,
        device_error: raw.dev_error,
        device_seq: raw.dev_seq,
        irq: raw.irq != 0,
        len: raw.len,
        op: slot.op,
        run: slot.run,
        device: op.device,
        checksum: raw.dev_checksum,
        expected_checksum: raw.expected_checksum,
        bytes_done: raw.bytes_done,
        fault_addr: raw.fault_addr,
        desc_addr: (op.kind == OpKind::Sg && raw.desc_addr != 0).then_some(raw.desc_addr),
        mismatch_offset: (ran && raw.mismatch_offset != u64::MAX).then_some(raw.mismatch_offset),
        bounces,
        mismatch_at_done: raw.mismatch_at_done != 0,
        foreign: None,
    }
}

/// Whether a result counts as failed in the summary.
pub fn is_failure(r: &OpResult) -> bool {
    r.map_error || r.error.is_some() || r.refused.is_some() || !r.intact
}

/// The bound instances, from the driver's sysfs attributes under `/sys/class/misc`.
pub fn devices(class_misc: &Path) -> Vec<DeviceInfo> {
    let Ok(dir) = fs::read_dir(class_misc) else {
        return vec![];
    };
    let mut out: Vec<DeviceInfo> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("pvhdma") {
                return None;
            }
            let dev = e.path().join("device");
            let attr = |a: &str| fs::read_to_string(dev.join(a)).unwrap_or_default().trim().to_string();
            let caps = u32::from_str_radix(attr("caps").trim_start_matches("0x"), 16).unwrap_or(0);
            let bdf = fs::read_link(&dev)
                .ok()
                .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                .unwrap_or_default();
            Some(DeviceInfo {
                name,
                bdf,
                addr_bits: attr("addr_bits").parse().unwrap_or(0),
                caps,
                irq_mode: attr("irq_mode"),
                irq_count: attr("irq_count").parse().unwrap_or(0),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DataPattern, Direction, Placement};

    fn op(kind: OpKind) -> Op {
        Op {
            name: "n".into(),
            kind,
            placement: Placement::Any,
            size: 4096,
            count: 1,
            dir: Direction::FromDevice,
            pattern: DataPattern::Xorshift,
            seed: 7,
            segments: 1,
            bus_addr: None,
            device: 1,
            buffer: None,
        }
    }

    const SLOT: Slot = Slot {
        index: 3,
        op: 1,
        run: 2,
        tag: 4,
    };

    fn ok_raw() -> RawOp {
        let mut r = RawOp {
            nsegs: 1,
            intact: 1,
            irq: 1,
            dev_status: 2,
            len: 4096,
            mismatch_offset: u64::MAX,
            expected_checksum: fnv1a(&DataPattern::Xorshift.bytes(7, 4096)),
            ..RawOp::default()
        };
        r.nsegs = 1;
        r
    }

    const ONE_SEG: [RawSeg; 1] = [RawSeg {
        dma: 0x1000,
        phys: 0x1000,
    }];

    #[test]
    fn completed_op_copies_driver_view() {
        let r = completed(SLOT, &op(OpKind::Single), &ok_raw(), &ONE_SEG, 0);
        assert!(r.intact && r.irq && !r.map_error && r.error.is_none());
        assert_eq!((r.index, r.op, r.run, r.tag, r.device), (3, 1, 2, 4, 1));
        assert_eq!(r.dma_addrs, vec![0x1000]);
        assert_eq!(r.mismatch_offset, None);
        assert_eq!(r.desc_addr, None);
        assert!(!is_failure(&r));
    }

    #[test]
    fn a_look_at_done_that_saw_no_data_is_passed_on() {
        let r = completed(SLOT, &op(OpKind::Single), &ok_raw(), &ONE_SEG, 0);
        assert!(!r.mismatch_at_done);
        let mut raw = ok_raw();
        raw.mismatch_at_done = 1;
        let r = completed(SLOT, &op(OpKind::Single), &raw, &ONE_SEG, 0);
        assert!(r.mismatch_at_done && r.intact);
    }

    #[test]
    fn map_error_keeps_phys_but_no_dma() {
        let mut raw = ok_raw();
        raw.result = res::MAP_ERROR;
        raw.map_error = 1;
        raw.intact = 0;
        let seg = [RawSeg {
            dma: 0,
            phys: 0x1_2345_6000,
        }];
        let r = completed(SLOT, &op(OpKind::Single), &raw, &seg, 0);
        assert!(r.map_error && r.error.is_none() && !r.intact);
        assert!(r.dma_addrs.is_empty());
        assert_eq!(r.phys_addrs, vec![0x1_2345_6000]);
        assert!(is_failure(&r));
    }

    #[test]
    fn pattern_disagreement_is_an_error() {
        let mut raw = ok_raw();
        raw.expected_checksum ^= 1;
        let r = completed(SLOT, &op(OpKind::Coherent), &raw, &ONE_SEG, 0);
        assert!(!r.intact);
        assert!(r.error.unwrap().contains("pattern checksum"));
    }

    #[test]
    fn driver_outcomes_in_words() {
        let mut raw = ok_raw();
        raw.result = res::NO_HIGH_MEM;
        raw.intact = 0;
        let r = completed(SLOT, &op(OpKind::Single), &raw, &ONE_SEG, 0);
        assert_eq!(r.error.as_deref(), Some("no memory above 4 GiB"));
    }

    #[test]
    fn refused_op_is_a_failure_with_doms_words() {
        let r = refused(SLOT, &op(OpKind::Sg), "segments 300 outside 1..=256".into());
        assert_eq!(r.refused.as_deref(), Some("segments 300 outside 1..=256"));
        assert!(r.error.is_none() && is_failure(&r));
    }

    #[test]
    fn completed_reads_only_the_segments_the_driver_wrote() {
        let mut raw = ok_raw();
        raw.nsegs = 2;
        let segs = [
            RawSeg { dma: 1, phys: 2 },
            RawSeg { dma: 3, phys: 4 },
            RawSeg { dma: 9, phys: 9 },
        ];
        let r = completed(SLOT, &op(OpKind::Sg), &raw, &segs, 0);
        assert_eq!((r.dma_addrs, r.phys_addrs), (vec![1, 3], vec![2, 4]));
    }

    #[test]
    fn failed_result_serializes_on_one_line() {
        let r = failed(SLOT, &op(OpKind::Sg), "cannot open /dev/pvhdma1".into());
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains('\n'));
        let back: OpResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
