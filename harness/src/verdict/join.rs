//! Joining the three views of a DMA: the agent's results (by `tag`, then bus
//! address), the device's records, and QEMU's IOMMU trace.
//!
//! The trace only shows IOTLB misses, once per IOMMU page, and carries no
//! timestamps that match the device's. The translation of an access is
//! `target | (iova & mask)` of the last miss that covers its address *before*
//! the access. [`align_trace`] approximates "before" by walking records and
//! trace in their own orders: an access consumes the next not-yet-used miss
//! that covers it (it caused that miss), or else reuses the last one already
//! passed (an IOTLB hit). With stable mappings this equals the exact answer;
//! when a page is remapped it still never uses a miss from before the remap
//! for an access after it, which the naive "last covering miss in the whole
//! trace" ([`last_miss_covering`]) would.

use crate::machine::RamLayout;
use crate::outcome::{RunOutcome, TraceEntry};
use pvhdma_contract::record::{AccessOutcome, DmaRecord};
use pvhdma_contract::wire::OpResult;

/// True when `e` is a successful translation whose page covers `iova`.
pub fn covers(e: &TraceEntry, iova: u64) -> bool {
    !e.fault && (iova & !e.mask) == (e.iova & !e.mask)
}

/// Where `e` sends `iova` (which it must cover).
pub fn translate(e: &TraceEntry, iova: u64) -> u64 {
    (e.target & !e.mask) | (iova & e.mask)
}

/// The translation of `iova` by the last miss in `trace` that covers it.
pub fn last_miss_covering(trace: &[TraceEntry], iova: u64) -> Option<u64> {
    trace.iter().rev().find(|e| covers(e, iova)).map(|e| translate(e, iova))
}

/// For each iova, in access order, its translation per the trace (see the
/// module docs for the alignment rule).
pub fn align_trace(trace: &[TraceEntry], iovas: &[u64]) -> Vec<Option<u64>> {
    let mut cursor = 0; // trace entries before it are "in the past"
    iovas
        .iter()
        .map(|&iova| {
            if let Some(off) = trace[cursor..].iter().position(|e| covers(e, iova)) {
                let idx = cursor + off;
                cursor = idx + 1;
                Some(translate(&trace[idx], iova))
            } else {
                last_miss_covering(&trace[..cursor], iova)
            }
        })
        .collect()
}

/// What the device itself knows of where an access went: the `dma_map`
/// translation covering its decoded address, as a guest-physical address.
/// QEMU's vfio-user client names guest RAM by its memfd, so the device records
/// `target_kind: fd_offset` (an offset in that file) and `layout` (the run's,
/// which the harness knows and the device does not) turns it into an address.
/// `unknown` (no fd: ROM, or default RAM) says nothing; a target of any other
/// kind is taken as an address already.
pub fn device_view(r: &DmaRecord, layout: Option<&RamLayout>) -> Option<u64> {
    let addr = r.decoded_addr;
    let t = r
        .translated
        .iter()
        .filter(|t| t.source == "dma_map" && t.target_kind != "unknown")
        .find(|t| addr >= t.iova && addr - t.iova < t.len.max(1))?;
    let target = t.target + (addr - t.iova);
    match t.target_kind.as_str() {
        "fd_offset" => layout?.gpa_of_offset(target),
        _ => Some(target),
    }
}

/// The agent result a device record belongs to: same device instance and
/// `tag`; when several results share them, the one whose DMA addresses
/// contain the record's bus address.
pub fn op_for_record<'a>(results: &'a [OpResult], device: usize, r: &DmaRecord) -> Option<&'a OpResult> {
    let mut same_tag = results.iter().filter(|x| x.tag == r.tag && x.device as usize == device);
    let first = same_tag.next()?;
    let contains = |x: &OpResult| {
        x.dma_addrs
            .iter()
            .any(|&a| r.bus_addr >= a && r.bus_addr - a < x.len.max(1))
    };
    if contains(first) {
        return Some(first);
    }
    Some(same_tag.find(|x| contains(x)).unwrap_or(first))
}

/// One device access with everything known about it.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    /// Index into `RunOutcome::device_records`.
    pub device: usize,
    pub record: &'a DmaRecord,
    pub op: Option<&'a OpResult>,
    /// From the IOMMU trace (successful accesses only).
    pub trace_target: Option<u64>,
    /// From the device's DMA_MAP table (successful accesses only).
    pub device_target: Option<u64>,
}

impl Access<'_> {
    pub fn ok(&self) -> bool {
        self.record.outcome == AccessOutcome::Ok
    }
    /// The best known translation: the trace's, else the device's.
    pub fn translated(&self) -> Option<u64> {
        self.trace_target.or(self.device_target)
    }
    /// `seq 12 (device 0, tag 3, op "high-single")` for messages.
    pub fn describe(&self) -> String {
        let op = self.op.map(|o| format!(", op \"{}\"", o.name)).unwrap_or_default();
        let dev = if self.device > 0 {
            format!("device {}, ", self.device)
        } else {
            String::new()
        };
        format!("record seq {} ({dev}tag {}{op})", self.record.seq, self.record.tag)
    }
}

/// [`accesses`] of a whole run, with its RAM layout.
pub fn of_outcome(o: &RunOutcome) -> Vec<Access<'_>> {
    accesses(&o.device_records, &o.results, &o.iommu_trace, o.ram_layout.as_ref())
}

/// Every record of every device, in time order, joined with its result and
/// its translations.
pub fn accesses<'a>(
    device_records: &'a [Vec<DmaRecord>],
    results: &'a [OpResult],
    trace: &[TraceEntry],
    layout: Option<&RamLayout>,
) -> Vec<Access<'a>> {
    let mut all: Vec<(usize, &DmaRecord)> = device_records
        .iter()
        .enumerate()
        .flat_map(|(d, rs)| rs.iter().map(move |r| (d, r)))
        .collect();
    // Each device counts time from its own start; with one device this is
    // exact, with several it is the best order available.
    all.sort_by_key(|(d, r)| (r.t_us, *d, r.seq));
    let ok: Vec<u64> = all
        .iter()
        .filter(|(_, r)| r.outcome == AccessOutcome::Ok)
        .map(|(_, r)| r.decoded_addr)
        .collect();
    let mut via_trace = align_trace(trace, &ok).into_iter();
    all.into_iter()
        .map(|(device, record)| {
            let is_ok = record.outcome == AccessOutcome::Ok;
            Access {
                device,
                record,
                op: op_for_record(results, device, record),
                trace_target: if is_ok { via_trace.next().flatten() } else { None },
                device_target: if is_ok { device_view(record, layout) } else { None },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miss(iova: u64, target: u64, mask: u64) -> TraceEntry {
        TraceEntry {
            device: "00:03.00".into(),
            iova,
            target,
            mask,
            fault: false,
        }
    }

    const MB2: u64 = 0x1f_ffff;

    #[test]
    fn translation_keeps_the_offset_within_the_page() {
        // A VT-d line seen in a real run: iova 0x5400000 -> 0x26d400000, mask 2 MiB.
        let e = miss(0x540_0000, 0x2_6d40_0000, MB2);
        assert!(covers(&e, 0x54e_2000));
        assert_eq!(translate(&e, 0x54e_2000), 0x2_6d4e_2000);
        assert!(!covers(&e, 0x560_0000));
    }

    #[test]
    fn faults_translate_nothing() {
        let mut e = miss(0x1000, 0x9000, 0xfff);
        e.fault = true;
        assert!(!covers(&e, 0x1000));
        assert_eq!(last_miss_covering(&[e], 0x1000), None);
    }

    #[test]
    fn last_covering_miss_wins() {
        let t = [
            miss(0x1000, 0xa000, 0xfff),
            miss(0x2000, 0xb000, 0xfff),
            miss(0x1000, 0xc000, 0xfff),
        ];
        assert_eq!(last_miss_covering(&t, 0x1234), Some(0xc234));
        assert_eq!(last_miss_covering(&t, 0x2010), Some(0xb010));
        assert_eq!(last_miss_covering(&t, 0x3000), None);
    }

    #[test]
    fn alignment_reuses_misses_for_hits() {
        // Two accesses to one page: one miss, then an IOTLB hit.
        let t = [miss(0x1000, 0xa000, 0xfff)];
        assert_eq!(align_trace(&t, &[0x1000, 0x1800]), vec![Some(0xa000), Some(0xa800)]);
    }

    #[test]
    fn alignment_follows_a_remap() {
        // Access 1 misses (-> 0xa000); the page is remapped; access 2 misses
        // again (-> 0xc000). The naive join would give both 0xc000.
        let t = [miss(0x1000, 0xa000, 0xfff), miss(0x1000, 0xc000, 0xfff)];
        assert_eq!(align_trace(&t, &[0x1000, 0x1000]), vec![Some(0xa000), Some(0xc000)]);
        assert_eq!(last_miss_covering(&t, 0x1000), Some(0xc000));
        // A third access, a hit, keeps the newest mapping.
        assert_eq!(
            align_trace(&t, &[0x1000, 0x1000, 0x1004]),
            vec![Some(0xa000), Some(0xc000), Some(0xc004)]
        );
    }

    /// A record of one ok 4 KiB access at `bus`, with the DMA_MAP window
    /// `[map_iova, +2 MiB)` that QEMU sent with fd offset `map_off`.
    fn fd_record(seq: u64, bus: u64, map_iova: u64, map_off: u64) -> DmaRecord {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "t_us": seq, "tag": 1, "op_seq": seq, "kind": "data", "dir": "from_device",
            "bus_addr": bus, "decoded_addr": bus, "len": 4096, "outcome": "ok", "checksum": 1,
            "translated": [{"iova": bus, "len": 4096, "target": map_off + (bus - map_iova),
                            "source": "dma_map", "target_kind": "fd_offset",
                            "map_iova": map_iova, "map_size": 0x20_0000, "map_flags": 3}]
        }))
        .unwrap()
    }

    #[test]
    fn dma_map_view_converts_fd_offsets_with_the_layout() {
        // Numbers from a pvh-vtd-noforce run (8G, so 2G below 4 GiB).
        let layout = RamLayout::q35(8 << 30);
        let r = fd_record(1, 0x5cd_6000, 0x5c0_0000, 0x1_edc0_0000);
        assert_eq!(device_view(&r, Some(&layout)), Some(0x2_6dcd_6000));
        assert_eq!(device_view(&r, None), None, "an offset without a layout says nothing");
        let mut low = r.clone();
        low.translated[0].target = 0x1234_5000; // below the 2G boundary: identity
        assert_eq!(device_view(&low, Some(&layout)), Some(0x1234_5000));
        let mut unknown = r.clone();
        unknown.translated[0].target_kind = "unknown".into();
        assert_eq!(device_view(&unknown, Some(&layout)), None);
    }

    #[test]
    fn both_views_agree_on_a_real_run_and_split_under_a_wrong_layout() {
        let layout = RamLayout::q35(8 << 30);
        let recs = vec![vec![
            fd_record(1, 0x5cd_6000, 0x5c0_0000, 0x1_edc0_0000),
            fd_record(2, 0x5cd_6800, 0x5c0_0000, 0x1_edc0_0000),
            fd_record(3, 0x546_2000, 0x540_0000, 0x1_ed40_0000),
        ]];
        let trace = [
            miss(0x5c0_0000, 0x2_6dc0_0000, MB2),
            miss(0x540_0000, 0x2_6d40_0000, MB2),
        ];
        let acc = accesses(&recs, &[], &trace, Some(&layout));
        let pairs: Vec<_> = acc.iter().map(|a| (a.device_target, a.trace_target)).collect();
        assert_eq!(
            pairs,
            vec![
                (Some(0x2_6dcd_6000), Some(0x2_6dcd_6000)),
                (Some(0x2_6dcd_6800), Some(0x2_6dcd_6800)),
                (Some(0x2_6d46_2000), Some(0x2_6d46_2000)),
            ]
        );
        // The negative twin's layout (1G below 4 GiB): the DMA_MAP view moves
        // by the layout error, the trace does not.
        let wrong = RamLayout::with_below_4g(8 << 30, 1 << 30);
        let acc = accesses(&recs, &[], &trace, Some(&wrong));
        assert_eq!(acc[0].device_target, Some(0x2_6dcd_6000 + (1 << 30)));
        assert_eq!(acc[0].trace_target, Some(0x2_6dcd_6000));
    }

    #[test]
    fn alignment_skips_other_pages_and_unknowns() {
        let t = [
            miss(0x1000, 0xa000, 0xfff),
            miss(0x5000, 0xe000, 0xfff),
            miss(0x2000, 0xb000, 0xfff),
        ];
        assert_eq!(
            align_trace(&t, &[0x2000, 0x1000, 0x7000]),
            vec![Some(0xb000), Some(0xa000), None]
        );
        assert_eq!(align_trace(&[], &[0x1000]), vec![None]);
    }
}
