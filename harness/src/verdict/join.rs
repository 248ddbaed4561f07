//! Joining the three views of a DMA: the agent's results (by `tag`, then bus
//! address), the device's records, and QEMU's IOMMU trace.
//!
//! QEMU traces every translation call: one line per IOMMU page that each DMA
//! message touches, hits and misses alike, and each line names its requester.
//! The trace carries no timestamps that match the device's, so the join walks
//! both in their own orders, per device: only lines of the device's own
//! requester id (the PCI address dom0 reported for it) are read, and each
//! message of each access (in the order the device sent them) takes, page by
//! page, the next unused line that covers that page. A line is used once:
//! an access never borrows a line from an earlier one, which after a remap
//! would be the old mapping, and a page with no line of its own stays
//! untranslated instead of inheriting its neighbour's.

use crate::machine::RamLayout;
use crate::outcome::{RunOutcome, TraceEntry};
use crate::scenario::parse_bdf;
use pvhdma_contract::record::{AccessOutcome, DmaMessage, DmaRecord};
use pvhdma_contract::wire::{OpResult, Summary};

/// The smallest page the IOMMUs translate; also the step over a page the
/// trace has no line for.
pub const PAGE: u64 = 4096;

/// A PCI requester id: bus, device, function.
pub type Bdf = (u8, u8, u8);

/// True when `e` is a successful translation whose page covers `iova`.
pub fn covers(e: &TraceEntry, iova: u64) -> bool {
    !e.fault && (iova & !e.mask) == (e.iova & !e.mask)
}

/// Where `e` sends `iova` (which it must cover).
pub fn translate(e: &TraceEntry, iova: u64) -> u64 {
    (e.target & !e.mask) | (iova & e.mask)
}

/// True when `e` is a fault at the page of `addr`.
fn faults_at(e: &TraceEntry, addr: u64) -> bool {
    e.fault && e.iova / PAGE == addr / PAGE
}

/// The translation of `iova` by the last line in `trace` that covers it.
pub fn last_miss_covering(trace: &[TraceEntry], iova: u64) -> Option<u64> {
    trace.iter().rev().find(|e| covers(e, iova)).map(|e| translate(e, iova))
}

/// `0000:00:03.0` (dom0's spelling, with the PCI domain) or `00:03.0` as a
/// requester id.
pub fn requester(bdf: &str) -> Option<Bdf> {
    let no_domain = match bdf.matches(':').count() {
        2 => bdf.split_once(':')?.1,
        _ => bdf,
    };
    parse_bdf(no_domain)
}

/// The requester id of each recorder instance (`pvhdma<N>` is instance N),
/// as dom0 reported it; `None` for an instance dom0 did not report.
pub fn requesters(summary: Option<&Summary>, instances: usize) -> Vec<Option<Bdf>> {
    (0..instances)
        .map(|i| {
            let name = format!("pvhdma{i}");
            summary?
                .devices
                .iter()
                .find(|d| d.name == name)
                .and_then(|d| requester(&d.bdf))
        })
        .collect()
}

/// The part of one DMA message inside one IOMMU page, as the trace accounts
/// for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracedPiece {
    pub iova: u64,
    pub len: u64,
    /// Where the trace sent `iova` (the piece runs on from there); `None`
    /// when no line of the device's own covers it, or it faulted.
    pub target: Option<u64>,
    /// The trace shows a fault here (a VT-d fault, an AMD-Vi walk with hpa 0).
    pub fault: bool,
}

impl TracedPiece {
    pub fn end(&self) -> u64 {
        self.iova.saturating_add(self.len)
    }
}

/// The messages an access took. A record from a device that did not list
/// them stands for one message over its whole range when it succeeded.
fn messages_of(r: &DmaRecord) -> Vec<DmaMessage> {
    if r.messages.is_empty() && r.outcome == AccessOutcome::Ok {
        return vec![DmaMessage {
            addr: r.decoded_addr,
            len: r.len.max(1),
            ok: true,
        }];
    }
    r.messages.clone()
}

/// Walks one message over `lines` (one requester's, in trace order) from
/// `*cursor`, page by page, and appends what the trace says of each piece.
fn walk_message(lines: &[&TraceEntry], cursor: &mut usize, m: &DmaMessage, out: &mut Vec<TracedPiece>) {
    let end = m.addr.saturating_add(m.len.max(1));
    let mut a = m.addr;
    while a < end {
        let found = lines[*cursor..].iter().position(|e| covers(e, a) || faults_at(e, a));
        let Some(off) = found else {
            let next = ((a | (PAGE - 1)).saturating_add(1)).min(end);
            out.push(TracedPiece {
                iova: a,
                len: next - a,
                target: None,
                fault: false,
            });
            a = next;
            continue;
        };
        let e = lines[*cursor + off];
        *cursor += off + 1;
        if e.fault {
            // Past a failed translation QEMU goes on through the rest of the
            // message in small accesses, each faulting on its own line
            // (VT-d: one per 4 bytes, at rising addresses); they are all this
            // message's. A fault at or below the last one starts another
            // message (a retry).
            let mut last = e.iova;
            while let Some(f) = lines.get(*cursor).filter(|f| f.fault && f.iova > last && f.iova < end) {
                last = f.iova;
                *cursor += 1;
            }
            out.push(TracedPiece {
                iova: a,
                len: end - a,
                target: None,
                fault: true,
            });
            return;
        }
        let next = ((a | e.mask).saturating_add(1)).min(end);
        out.push(TracedPiece {
            iova: a,
            len: next - a,
            target: Some(translate(e, a)),
            fault: false,
        });
        a = next;
    }
}

/// For each record of one device, in the order given (the order it made
/// them), the trace's account of every piece of every message it took.
pub fn join_pages(records: &[&DmaRecord], trace: &[TraceEntry], requester: Option<Bdf>) -> Vec<Vec<TracedPiece>> {
    let lines: Vec<&TraceEntry> = match requester {
        Some(want) => trace.iter().filter(|e| parse_bdf(&e.device) == Some(want)).collect(),
        None => Vec::new(),
    };
    let mut cursor = 0;
    records
        .iter()
        .map(|r| {
            let mut pieces = Vec::new();
            for m in messages_of(r) {
                walk_message(&lines, &mut cursor, &m, &mut pieces);
            }
            pieces
        })
        .collect()
}

/// The translation of `addr` among `pieces`.
pub fn target_of(pieces: &[TracedPiece], addr: u64) -> Option<u64> {
    pieces
        .iter()
        .filter(|p| p.iova <= addr && addr < p.end())
        .find_map(|p| p.target.map(|t| t + (addr - p.iova)))
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
    /// From the IOMMU trace: the translation of the access's first byte
    /// (successful accesses only).
    pub trace_target: Option<u64>,
    /// From the IOMMU trace: every piece of every message the access took,
    /// page by page (empty when no message was sent).
    pub pieces: Vec<TracedPiece>,
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
    /// Where the access's bytes went, as the first and last target byte of
    /// each translated piece; when the trace has no piece for it, only the
    /// first byte's translation is known, and only that is claimed.
    pub fn translated_spans(&self) -> Vec<(u64, u64)> {
        let spans: Vec<(u64, u64)> = self
            .pieces
            .iter()
            .filter_map(|p| p.target.map(|t| (t, t.saturating_add(p.len.max(1) - 1))))
            .collect();
        if spans.is_empty() {
            self.translated().map(|t| vec![(t, t)]).unwrap_or_default()
        } else {
            spans
        }
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

/// [`accesses`] of a whole run, with its RAM layout and the requester ids
/// dom0 reported.
pub fn of_outcome(o: &RunOutcome) -> Vec<Access<'_>> {
    let who = requesters(o.summary.as_ref(), o.device_records.len());
    accesses(
        &o.device_records,
        &o.results,
        &o.iommu_trace,
        o.ram_layout.as_ref(),
        &who,
    )
}

/// Every record of every device, in time order, joined with its result and
/// its translations. `requesters[d]` is device `d`'s PCI address: only trace
/// lines of that requester are its translations (none when unknown).
pub fn accesses<'a>(
    device_records: &'a [Vec<DmaRecord>],
    results: &'a [OpResult],
    trace: &[TraceEntry],
    layout: Option<&RamLayout>,
    requesters: &[Option<Bdf>],
) -> Vec<Access<'a>> {
    let mut all: Vec<(usize, &DmaRecord, Vec<TracedPiece>)> = Vec::new();
    for (d, rs) in device_records.iter().enumerate() {
        // One device's records are in its own order; the trace lines of its
        // requester id are in the same order.
        let mut mine: Vec<&DmaRecord> = rs.iter().collect();
        mine.sort_by_key(|r| (r.t_us, r.seq));
        let who = requesters.get(d).copied().flatten();
        let pieces = join_pages(&mine, trace, who);
        all.extend(mine.into_iter().zip(pieces).map(|(r, p)| (d, r, p)));
    }
    // Each device counts time from its own start; with one device this is
    // exact, with several it is the best order available.
    all.sort_by_key(|(d, r, _)| (r.t_us, *d, r.seq));
    all.into_iter()
        .map(|(device, record, pieces)| {
            let is_ok = record.outcome == AccessOutcome::Ok;
            Access {
                device,
                record,
                op: op_for_record(results, device, record),
                trace_target: if is_ok {
                    target_of(&pieces, record.decoded_addr)
                } else {
                    None
                },
                device_target: if is_ok { device_view(record, layout) } else { None },
                pieces,
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

    const REC: Option<Bdf> = Some((0, 3, 0));

    /// An ok record of `len` bytes at `bus`, with one message per entry of
    /// `msgs` (`(addr, len)`), or none listed.
    fn rec(seq: u64, bus: u64, len: u64, msgs: &[(u64, u64)]) -> DmaRecord {
        let messages: Vec<_> = msgs
            .iter()
            .map(|&(addr, len)| serde_json::json!({"addr": addr, "len": len, "ok": true}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "seq": seq, "t_us": seq, "tag": 1, "op_seq": seq, "kind": "data", "dir": "from_device",
            "bus_addr": bus, "decoded_addr": bus, "len": len, "outcome": "ok", "checksum": 1,
            "messages": messages
        }))
        .unwrap()
    }

    /// The translation of each record's first byte.
    fn firsts(recs: &[DmaRecord], trace: &[TraceEntry]) -> Vec<Option<u64>> {
        let refs: Vec<&DmaRecord> = recs.iter().collect();
        join_pages(&refs, trace, REC)
            .iter()
            .zip(recs)
            .map(|(p, r)| target_of(p, r.decoded_addr))
            .collect()
    }

    #[test]
    fn every_translation_call_is_a_line_so_a_hit_has_its_own() {
        // Two accesses to one page: two translation calls, two lines.
        let t = [miss(0x1000, 0xa000, 0xfff), miss(0x1000, 0xa000, 0xfff)];
        let recs = [rec(1, 0x1000, 0x800, &[]), rec(2, 0x1800, 0x800, &[])];
        assert_eq!(firsts(&recs, &t), vec![Some(0xa000), Some(0xa800)]);
    }

    #[test]
    fn a_line_from_before_a_remap_is_not_reused_after_it() {
        // Access 1 went to 0xa000; the page was remapped; access 2's own
        // line is missing. Borrowing access 1's line would claim 0xa000.
        let t = [miss(0x1000, 0xa000, 0xfff)];
        let recs = [rec(1, 0x1000, 0x1000, &[]), rec(2, 0x1000, 0x1000, &[])];
        assert_eq!(firsts(&recs, &t), vec![Some(0xa000), None]);
        // With both lines, each access has its own mapping.
        let t = [miss(0x1000, 0xa000, 0xfff), miss(0x1000, 0xc000, 0xfff)];
        assert_eq!(firsts(&recs, &t), vec![Some(0xa000), Some(0xc000)]);
        assert_eq!(last_miss_covering(&t, 0x1000), Some(0xc000));
    }

    #[test]
    fn a_multi_page_access_is_joined_page_by_page() {
        // An 8 KiB access over two 4 KiB pages (one message: QEMU translates
        // each page), then a 4 KiB access to the second page after a remap.
        let t = [
            miss(0x1_0000, 0xa_0000, 0xfff),
            miss(0x1_1000, 0xb_7000, 0xfff),
            miss(0x1_1000, 0xc_3000, 0xfff),
        ];
        let recs = [rec(1, 0x1_0000, 0x2000, &[]), rec(2, 0x1_1000, 0x1000, &[])];
        let refs: Vec<&DmaRecord> = recs.iter().collect();
        let j = join_pages(&refs, &t, REC);
        let piece = |iova, len, target| TracedPiece {
            iova,
            len,
            target,
            fault: false,
        };
        assert_eq!(
            j[0],
            vec![
                piece(0x1_0000, 0x1000, Some(0xa_0000)),
                piece(0x1_1000, 0x1000, Some(0xb_7000))
            ]
        );
        assert_eq!(j[1], vec![piece(0x1_1000, 0x1000, Some(0xc_3000))]);
        // A page with no line of its own stays untranslated: the first
        // page's line does not cover it.
        let j = join_pages(&refs[..1], &t[..1], REC);
        assert_eq!(j[0][1], piece(0x1_1000, 0x1000, None));
    }

    #[test]
    fn messages_say_how_many_lines_an_access_took() {
        // A 128 KiB access in one 2 MiB page, sent as two 64 KiB messages:
        // two lines. The next access, in the same page, has the third.
        let t = [
            miss(0x20_0000, 0x1_0020_0000, MB2),
            miss(0x20_0000, 0x1_0020_0000, MB2),
            miss(0x20_0000, 0x2_0020_0000, MB2),
        ];
        let recs = [
            rec(1, 0x20_0000, 0x2_0000, &[(0x20_0000, 0x1_0000), (0x21_0000, 0x1_0000)]),
            rec(2, 0x22_0000, 0x1000, &[(0x22_0000, 0x1000)]),
        ];
        assert_eq!(firsts(&recs, &t), vec![Some(0x1_0020_0000), Some(0x2_0022_0000)]);
    }

    #[test]
    fn another_devices_line_for_the_same_address_is_not_taken() {
        let nic = TraceEntry {
            device: "00:10.00".into(),
            ..miss(0x1000, 0xe000, 0xfff)
        };
        let t = [nic, miss(0x1000, 0xa000, 0xfff)];
        let recs = [rec(1, 0x1000, 0x1000, &[])];
        assert_eq!(firsts(&recs, &t), vec![Some(0xa000)]);
        // Without the device's requester id, nothing in the trace is its.
        let refs: Vec<&DmaRecord> = recs.iter().collect();
        assert_eq!(join_pages(&refs, &t, None)[0][0].target, None);
    }

    #[test]
    fn a_fault_line_ends_its_message_and_translates_nothing() {
        let fault = |addr| TraceEntry {
            fault: true,
            ..miss(addr, 0, 0)
        };
        // The failed message's rest faults in 4-byte steps, then the device
        // retries the failed page alone: a message of its own, faulting again.
        let t = [
            miss(0x1000, 0xa000, 0xfff),
            fault(0x2000),
            fault(0x2004),
            fault(0x2008),
            fault(0x2000),
        ];
        let recs = [rec(1, 0x1000, 0x2000, &[(0x1000, 0x2000), (0x2000, 0x1000)])];
        let refs: Vec<&DmaRecord> = recs.iter().collect();
        let j = join_pages(&refs, &t, REC);
        assert_eq!(j[0].len(), 3);
        assert_eq!((j[0][1].target, j[0][1].fault), (None, true));
        assert_eq!((j[0][2].iova, j[0][2].fault), (0x2000, true));
        // Every fault line was the record's: a later access to that page,
        // after a remap, takes its own line.
        let mut t = t.to_vec();
        t.push(miss(0x2000, 0xc000, 0xfff));
        let recs = [recs[0].clone(), rec(2, 0x2000, 0x1000, &[])];
        assert_eq!(firsts(&recs, &t)[1], Some(0xc000));
    }

    #[test]
    fn requester_ids_with_and_without_the_pci_domain() {
        assert_eq!(requester("0000:00:01.0"), Some((0, 1, 0)));
        assert_eq!(requester("00:10.00"), Some((0, 0x10, 0)));
        assert_eq!(requester("e1000"), None);
        let s = Summary {
            devices: vec![pvhdma_contract::wire::DeviceInfo {
                name: "pvhdma1".into(),
                bdf: "0000:00:04.0".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(requesters(Some(&s), 2), vec![None, Some((0, 4, 0))]);
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
        // One line per translation call: each access has its own.
        let trace = [
            miss(0x5c0_0000, 0x2_6dc0_0000, MB2),
            miss(0x5c0_0000, 0x2_6dc0_0000, MB2),
            miss(0x540_0000, 0x2_6d40_0000, MB2),
        ];
        let acc = accesses(&recs, &[], &trace, Some(&layout), &[REC]);
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
        let acc = accesses(&recs, &[], &trace, Some(&wrong), &[REC]);
        assert_eq!(acc[0].device_target, Some(0x2_6dcd_6000 + (1 << 30)));
        assert_eq!(acc[0].trace_target, Some(0x2_6dcd_6000));
    }
}
