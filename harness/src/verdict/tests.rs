//! Every assertion, passing and failing, on hand-built runs; then the
//! expect_failure rule.

use super::*;
use crate::machine::RamLayout;
use crate::outcome::{EndKind, RunEnd, RunOutcome, Timings, TraceEntry};
use crate::scenario::parse_str;
use pvhdma_contract::markers::BOUNCE_TRACEPOINT;
use pvhdma_contract::record::{AccessOutcome, DmaRecord, Translation};
use pvhdma_contract::wire::{DeviceInfo, OpKind, OpResult, Range, Summary, VbdFacts, VifFacts};
use std::path::{Path, PathBuf};

const G4: u64 = 1 << 32;

/// The one place that builds a `RunOutcome` (adjust here when it grows).
fn outcome(end: RunEnd, results: Vec<OpResult>, records: Vec<DmaRecord>, trace: Vec<TraceEntry>) -> RunOutcome {
    RunOutcome {
        end,
        console: "Xen 4.20\nLinux version 6.12\nPVHDMA-BOOTED\nPVHDMA-DONE\n".into(),
        results,
        summary: Some(Summary {
            ops: 1,
            tracepoints: vec![BOUNCE_TRACEPOINT.into(), "dma".into()],
            // The recorder's PCI address, which `miss` lines carry.
            devices: vec![DeviceInfo {
                name: "pvhdma0".into(),
                bdf: "0000:00:03.0".into(),
                ..DeviceInfo::default()
            }],
            kmsg_from_start: true,
            ..Summary::default()
        }),
        device_records: vec![records],
        iommu_trace: trace,
        milestones: vec![],
        artifacts: PathBuf::from("/tmp/none"),
        timings: Timings::default(),
        ram_layout: Some(RamLayout::q35(8 << 30)),
        guest_payloads: vec![],
        guest_disks: vec![],
        guest_served: vec![],
    }
}

fn result(index: u32, name: &str, kind: OpKind, tag: u32, dma: u64) -> OpResult {
    // Through serde, so fields the agent adds later (with defaults) need no edit here.
    serde_json::from_value(serde_json::json!({
        "index": index, "name": name, "kind": kind, "tag": tag, "map_error": false, "error": null,
        "dma_addrs": [dma], "phys_addrs": [dma], "bounced": false, "device_status": 2, "device_error": 0,
        "device_seq": index + 1, "intact": true, "irq": true, "len": 4096, "bytes_done": 4096
    }))
    .unwrap()
}

fn record(seq: u64, tag: u32, bus: u64) -> DmaRecord {
    serde_json::from_value(serde_json::json!({
        "seq": seq, "t_us": seq * 10, "tag": tag, "op_seq": seq, "kind": "data", "dir": "from_device",
        "bus_addr": bus, "decoded_addr": bus, "len": 4096, "outcome": "ok", "checksum": 1
    }))
    .unwrap()
}

fn translation(iova: u64, target: u64, target_kind: &str) -> Translation {
    serde_json::from_value(serde_json::json!({
        "iova": iova, "len": 4096, "target": target, "source": "dma_map", "target_kind": target_kind
    }))
    .unwrap()
}

fn miss(iova: u64, target: u64) -> TraceEntry {
    TraceEntry {
        device: "00:03.00".into(),
        iova,
        target,
        mask: 0xfff,
        fault: false,
    }
}

fn scenario(expect: &str) -> Scenario {
    let text = format!(
        "description: t\nworkload:\n  - {{name: coh, kind: coherent, size: 4K}}\n  - {{name: hs, kind: single, size: 4K}}\n\
         \x20 - {{name: raw, kind: raw, size: 4K, bus_addr: 0x70000000}}\nexpect:\n{expect}"
    );
    parse_str(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn twin(expect: &str, assertion: &str) -> Scenario {
    let mut s = scenario(expect);
    let f = parse_str(
        &format!("description: t\nexpect:\n{expect}expect_failure: {{assertion: {assertion}, reason: because}}\n"),
        Path::new("t.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    s.expect_failure = f.expect_failure;
    s
}

/// A healthy run of the main scenario: low bus addresses, high translations.
fn good_run() -> RunOutcome {
    outcome(
        RunEnd::finished(),
        vec![
            result(0, "coh", OpKind::Coherent, 1, 0x10_0000),
            result(1, "hs", OpKind::Single, 2, 0x20_0000),
        ],
        vec![record(1, 1, 0x10_0000), record(2, 2, 0x20_0000)],
        vec![miss(0x10_0000, 0x2_6d40_0000), miss(0x20_0000, 0x2_6d60_0000)],
    )
}

fn one(s: &Scenario, o: &RunOutcome, id: &str) -> AssertionResult {
    let v = evaluate(s, o);
    v.assertions
        .into_iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("no assertion {id}"))
}

fn passes(expect: &str, o: &RunOutcome, id: &str) {
    let a = one(&scenario(expect), o, id);
    assert_eq!(a.status, Status::Pass, "{a}");
}

fn passes_with(expect: &str, o: &RunOutcome, id: &str) -> String {
    let a = one(&scenario(expect), o, id);
    assert_eq!(a.status, Status::Pass, "{a}");
    a.to_string()
}

fn fails(expect: &str, o: &RunOutcome, id: &str) -> String {
    let a = one(&scenario(expect), o, id);
    assert_eq!(a.status, Status::Fail, "{a}");
    a.to_string()
}

#[test]
fn hex_groups_by_four() {
    assert_eq!(hex(0x1_2345_6000), "0x1_2345_6000");
    assert_eq!(hex(0x1000), "0x1000");
    assert_eq!(hex(0), "0x0");
    assert_eq!(hex(G4), "0x1_0000_0000");
}

#[test]
fn boot_ok_and_failure_kind_first() {
    passes("  boot: finished\n", &good_run(), "boot");
    let mut o = good_run();
    o.end = RunEnd::new(EndKind::XenPanic, "Couldn't enable IOMMU");
    let s = scenario("  data_intact: true\n  log: {contains: [Xen]}\n");
    let v = evaluate(&s, &o);
    assert!(!v.passed());
    assert_eq!(v.failure_kind.map(|k| k.name()), Some("xen_panic"));
    let text = v.to_string();
    let first = text.lines().next().unwrap();
    assert!(
        first.contains("xen_panic") && first.contains("Couldn't enable IOMMU"),
        "{text}"
    );
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("  boot: expected the run to end with finished"),
        "{text}"
    );
    // Consequences are not judged; the log still is.
    let by_id = |id: &str| v.assertions.iter().find(|a| a.id == id).unwrap().status;
    assert_eq!(by_id("data_intact"), Status::Skipped);
    assert_eq!(by_id("log.contains"), Status::Pass);
}

#[test]
fn boot_expecting_a_panic() {
    let mut o = good_run();
    o.end = RunEnd::new(EndKind::XenPanic, "Couldn't enable IOMMU and iommu=required/force");
    passes("  boot: xen_panic\n", &o, "boot");
    passes("  boot: {outcome: xen_panic, message: '(?i)iommu'}\n", &o, "boot");
    let msg = fails("  boot: {outcome: xen_panic, message: 'out of memory'}\n", &o, "boot");
    assert!(msg.contains("the end's own text does not match"), "{msg}");
    let msg = fails("  boot: xen_panic\n", &good_run(), "boot");
    assert!(msg.contains("ended with finished"), "{msg}");
    o.end = RunEnd::new(EndKind::Dom0Crash, "SVM Insn len");
    passes("  boot: dom0_crash\n", &o, "boot");
    o.end = RunEnd::new(EndKind::BootTimeout, "");
    passes("  boot: boot_timeout\n", &o, "boot");
}

#[test]
fn device_addrs_below() {
    passes("  device_addrs: {below: 4G}\n", &good_run(), "device_addrs.below");
    let mut o = good_run();
    o.device_records[0][1].bus_addr = 0x1_2345_6000;
    o.device_records[0][1].seq = 12;
    let msg = fails("  device_addrs: {below: 4G}\n", &o, "device_addrs.below");
    assert_eq!(
        msg,
        "device_addrs.below: expected every bus address < 0x1_0000_0000, record seq 12 (tag 2, op \"hs\") had bus_addr 0x1_2345_6000 len 0x1000"
    );
    // An access that starts below but runs past the limit fails too.
    let mut o = good_run();
    o.device_records[0][0].bus_addr = G4 - 0x800;
    fails("  device_addrs: {below: 4G}\n", &o, "device_addrs.below");
}

#[test]
fn device_addrs_at_least_one() {
    passes(
        "  device_addrs: {at_least_one_access: true}\n",
        &good_run(),
        "device_addrs.at_least_one_access",
    );
    let mut o = good_run();
    o.device_records = vec![vec![]];
    fails(
        "  device_addrs: {at_least_one_access: true}\n",
        &o,
        "device_addrs.at_least_one_access",
    );
}

#[test]
fn translated_addrs_from_the_trace() {
    passes(
        "  translated_addrs: {some_at_or_above: 4G}\n",
        &good_run(),
        "translated_addrs.some_at_or_above",
    );
    let mut o = good_run();
    o.iommu_trace = vec![miss(0x10_0000, 0x4000_0000)];
    let msg = fails(
        "  translated_addrs: {some_at_or_above: 4G}\n",
        &o,
        "translated_addrs.some_at_or_above",
    );
    assert!(msg.contains("highest byte 0x4000_0fff"), "{msg}");
    passes(
        "  translated_addrs: {all_below: 4G}\n",
        &o,
        "translated_addrs.all_below",
    );
    let msg = fails(
        "  translated_addrs: {all_below: 4G}\n",
        &good_run(),
        "translated_addrs.all_below",
    );
    assert!(msg.contains("went to [0x2_6d40_0000, 0x2_6d40_0fff]"), "{msg}");
}

#[test]
fn translated_addrs_judge_every_page_not_the_first_byte() {
    // An 8 KiB access whose first page went below 4 GiB and second above.
    let mut o = two_page_run(vec![]);
    o.iommu_trace = vec![miss(0x30_0000, 0x8000_0000), miss(0x30_1000, 0x1_2000_0000)];
    let msg = fails(
        "  translated_addrs: {all_below: 4G}\n",
        &o,
        "translated_addrs.all_below",
    );
    assert!(
        msg.contains("op \"hs2\") at bus 0x30_0000 went to [0x1_2000_0000, 0x1_2000_0fff]"),
        "{msg}"
    );
    let msg = passes_with(
        "  translated_addrs: {some_at_or_above: 4G}\n",
        &o,
        "translated_addrs.some_at_or_above",
    );
    assert!(msg.contains("[0x1_2000_0000, 0x1_2000_0fff]"), "{msg}");
    // Both pages low: all below, none above, every piece counted.
    o.iommu_trace = vec![miss(0x30_0000, 0x8000_0000), miss(0x30_1000, 0x9000_0000)];
    let msg = passes_with(
        "  translated_addrs: {all_below: 4G}\n",
        &o,
        "translated_addrs.all_below",
    );
    assert!(msg.contains("2 translated pieces checked"), "{msg}");
    fails(
        "  translated_addrs: {some_at_or_above: 4G}\n",
        &o,
        "translated_addrs.some_at_or_above",
    );
}

/// good_run plus one from-device access of 8 KiB (two pages) at 0x30_0000,
/// op "hs2", with a line for each of its pages per `lines`.
fn two_page_run(lines: Vec<TraceEntry>) -> RunOutcome {
    let mut o = good_run();
    let mut r = result(2, "hs2", OpKind::Single, 3, 0x30_0000);
    r.len = 0x2000;
    o.results.push(r);
    let mut rec = record(3, 3, 0x30_0000);
    rec.len = 0x2000;
    o.device_records[0].push(rec);
    o.iommu_trace.extend(lines);
    o
}

#[test]
fn every_page_needs_its_own_translation() {
    let e = "  translated_addrs: {every_page: true}\n";
    let id = "translated_addrs.every_page";
    passes(e, &good_run(), id);
    let both = vec![miss(0x30_0000, 0x2_7000_0000), miss(0x30_1000, 0x2_7000_1000)];
    passes(e, &two_page_run(both), id);
    // The first page's line does not cover the second.
    let why = fails(e, &two_page_run(vec![miss(0x30_0000, 0x2_7000_0000)]), id);
    assert!(
        why.contains("op \"hs2\"") && why.contains("page 0x30_1000 untranslated") && why.contains("requester"),
        "{why}"
    );
    // Another device's line for that page is not the recorder's.
    let nic = TraceEntry {
        device: "00:10.00".into(),
        ..miss(0x30_1000, 0x2_7000_1000)
    };
    fails(e, &two_page_run(vec![miss(0x30_0000, 0x2_7000_0000), nic]), id);
    // A fault there is named as one.
    let fault = TraceEntry {
        fault: true,
        mask: 0,
        ..miss(0x30_1000, 0)
    };
    let why = fails(e, &two_page_run(vec![miss(0x30_0000, 0x2_7000_0000), fault]), id);
    assert!(why.contains("shows a fault"), "{why}");
    // Nothing to judge is no pass.
    let mut o = good_run();
    o.device_records = vec![vec![]];
    assert!(fails(e, &o, id).contains("nothing to judge"));
}

#[test]
fn buffers_scattered_both_ways() {
    let id = "translated_addrs.buffers_scattered";
    let yes = "  translated_addrs: {buffers_scattered: true}\n";
    let no = "  translated_addrs: {buffers_scattered: false}\n";
    let scattered = two_page_run(vec![miss(0x30_0000, 0x2_7000_0000), miss(0x30_1000, 0x2_5555_3000)]);
    let why = passes_with(yes, &scattered, id);
    assert!(
        why.contains("bus 0x30_1000 (the next byte) to 0x2_5555_3000, not 0x2_7000_1000"),
        "{why}"
    );
    fails(no, &scattered, id);
    let contiguous = two_page_run(vec![miss(0x30_0000, 0x2_7000_0000), miss(0x30_1000, 0x2_7000_1000)]);
    passes(no, &contiguous, id);
    let why = fails(yes, &contiguous, id);
    assert!(
        why.contains("1 accesses over several pages, each on contiguous"),
        "{why}"
    );
    // One-page accesses say nothing either way.
    assert!(fails(yes, &good_run(), id).contains("nothing to judge"));
    assert!(fails(no, &good_run(), id).contains("nothing to judge"));
}

#[test]
fn translated_addrs_from_the_device_view() {
    let mut o = good_run();
    o.iommu_trace.clear();
    o.device_records[0][0].translated = vec![translation(0x10_0000, 0x2_0010_0000, "")];
    passes(
        "  translated_addrs: {some_at_or_above: 4G}\n",
        &o,
        "translated_addrs.some_at_or_above",
    );
    // With default RAM QEMU sends no address: such a target means nothing.
    o.device_records[0][0].translated[0].target_kind = "unknown".into();
    fails(
        "  translated_addrs: {some_at_or_above: 4G}\n",
        &o,
        "translated_addrs.some_at_or_above",
    );
}

#[test]
fn translations_agree() {
    // good_run's trace: 0x10_0000 -> 0x2_6d40_0000, 0x20_0000 -> 0x2_6d60_0000.
    // With 8G (2G below 4 GiB) those are memfd offsets 0x1_ed40_0000 and 0x1_ed60_0000.
    let fd = |iova, off| vec![translation(iova, off, "fd_offset")];
    let mut o = good_run();
    // No DMA_MAP view at all: nothing shows agreement.
    let msg = fails("  translations_agree: true\n", &o, "translations_agree");
    assert!(msg.contains("record seq 1") && msg.contains("DMA_MAP view"), "{msg}");
    // One access with both views is not enough: every ok access needs both.
    o.device_records[0][0].translated = fd(0x10_0000, 0x1_ed40_0000);
    let msg = fails("  translations_agree: true\n", &o, "translations_agree");
    assert!(msg.contains("record seq 2"), "{msg}");
    o.device_records[0][1].translated = fd(0x20_0000, 0x1_ed60_0000);
    passes("  translations_agree: true\n", &o, "translations_agree");
    fails("  translations_agree: false\n", &o, "translations_agree");
    // No layout: fd offsets cannot be read.
    let mut no_layout = o.clone();
    no_layout.ram_layout = None;
    fails("  translations_agree: true\n", &no_layout, "translations_agree");
    // A missing trace view fails too.
    let mut no_trace = o.clone();
    no_trace.iommu_trace.pop();
    let msg = fails("  translations_agree: true\n", &no_trace, "translations_agree");
    assert!(msg.contains("record seq 2") && msg.contains("IOMMU trace"), "{msg}");
    // A disagreement names both addresses.
    o.device_records[0][1].translated = fd(0x20_0000, 0x1_0000_0000);
    let msg = fails("  translations_agree: true\n", &o, "translations_agree");
    assert!(
        msg.contains("DMA_MAP view says 0x1_8000_0000, trace says 0x2_6d60_0000"),
        "{msg}"
    );
    passes("  translations_agree: false\n", &o, "translations_agree");
}

#[test]
fn injected_ram_layout_makes_translations_agree_fail() {
    let mut o = good_run();
    o.device_records[0][0].translated = vec![translation(0x10_0000, 0x1_ed40_0000, "fd_offset")];
    o.device_records[0][1].translated = vec![translation(0x20_0000, 0x1_ed60_0000, "fd_offset")];
    let plain = twin("  translations_agree: true\n", "translations_agree");
    assert_eq!(evaluate(&plain, &o).outcome, Judgement::UnexpectedPass);
    let mut s = plain.clone();
    s.inject = Some(crate::scenario::Inject {
        ram_below_4g: Some(crate::scenario::MemSize::gib(1)),
        device: None,
    });
    let v = evaluate(&s, &o);
    assert_eq!(v.outcome, Judgement::ExpectedFailure, "{v}");
    let a = v.assertions.iter().find(|a| a.id == "translations_agree").unwrap();
    // Off by the layout error: 1G below 4 GiB instead of 2G.
    assert!(a.detail.contains("DMA_MAP view says 0x2_ad40_0000"), "{a}");
    // The outcome itself (written to outcome.json) keeps the real layout.
    assert_eq!(o.ram_layout, Some(RamLayout::q35(8 << 30)));
}

#[test]
fn data_intact() {
    passes("  data_intact: true\n", &good_run(), "data_intact");
    let mut o = good_run();
    o.results[1].intact = false;
    let msg = fails("  data_intact: true\n", &o, "data_intact");
    assert!(msg.contains("result #1 (tag 2, op \"hs\") was not intact"), "{msg}");
    passes("  data_intact: false\n", &o, "data_intact");
    fails("  data_intact: false\n", &good_run(), "data_intact");
    // Mapping errors moved nothing and are not judged here; but something must be.
    let mut o = good_run();
    o.results.iter_mut().for_each(|r| {
        r.map_error = true;
        r.intact = false;
    });
    let msg = fails("  data_intact: true\n", &o, "data_intact");
    assert!(msg.contains("nothing to judge"), "{msg}");
}

#[test]
fn iommu_faults() {
    passes("  iommu_faults: 0\n", &good_run(), "iommu_faults");
    let mut o = good_run();
    o.results.push(result(2, "raw", OpKind::Raw, 3, 0x7000_0000));
    let mut r = record(3, 3, 0x7000_0000);
    r.outcome = AccessOutcome::IommuFault;
    o.device_records[0].push(r);
    o.iommu_trace.push(TraceEntry {
        device: "00:03.00".into(),
        iova: 0x7000_0000,
        target: 0,
        mask: 0,
        fault: true,
    });
    let msg = fails("  iommu_faults: 0\n", &o, "iommu_faults");
    assert!(
        msg.contains("saw 1") && msg.contains("op \"raw\"") && msg.contains("1 faults in the IOMMU trace"),
        "{msg}"
    );
    passes("  iommu_faults: {min: 1}\n", &o, "iommu_faults");
    passes("  iommu_faults: true\n", &o, "iommu_faults");
    fails("  iommu_faults: {min: 2, max: 3}\n", &o, "iommu_faults");
}

#[test]
fn bounces() {
    passes("  bounces: 0\n", &good_run(), "bounces");
    let mut o = good_run();
    o.summary.as_mut().unwrap().bounces = 4;
    let msg = fails("  bounces: 0\n", &o, "bounces");
    assert!(msg.contains("expected exactly 0 swiotlb bounces, saw 4"), "{msg}");
    passes("  bounces: {min: 1}\n", &o, "bounces");
    o.summary = None;
    let msg = fails("  bounces: {min: 1}\n", &o, "bounces");
    assert!(msg.contains("PVHDMA-SUMMARY"), "{msg}");
}

#[test]
fn device_addrs_in_swiotlb() {
    let mut o = good_run();
    // Only the streaming op's data is judged: the coherent buffer is elsewhere.
    o.summary.as_mut().unwrap().swiotlb = Some(Range {
        start: 0x20_0000,
        end: 0x40_0000,
    });
    passes("  device_addrs_in_swiotlb: true\n", &o, "device_addrs_in_swiotlb");
    o.summary.as_mut().unwrap().swiotlb = Some(Range {
        start: 0x30_0000,
        end: 0x40_0000,
    });
    let msg = fails("  device_addrs_in_swiotlb: true\n", &o, "device_addrs_in_swiotlb");
    assert!(
        msg.contains("record seq 2 (tag 2, op \"hs\") had bus_addr 0x20_0000"),
        "{msg}"
    );
    o.summary.as_mut().unwrap().swiotlb = None;
    let msg = fails("  device_addrs_in_swiotlb: true\n", &o, "device_addrs_in_swiotlb");
    assert!(msg.contains("no swiotlb pool"), "{msg}");
}

#[test]
fn mapping_errors() {
    passes("  mapping_errors: 0\n", &good_run(), "mapping_errors");
    let mut o = good_run();
    o.results[1].map_error = true;
    let msg = fails("  mapping_errors: 0\n", &o, "mapping_errors");
    assert!(msg.contains("first: result #1 (tag 2, op \"hs\")"), "{msg}");
    passes("  mapping_errors: true\n", &o, "mapping_errors");
    passes("  mapping_errors: 1\n", &o, "mapping_errors");
}

#[test]
fn guest_disk_payload_intact() {
    use crate::outcome::GuestPayload;
    let id = "guest_disk.payload_intact";
    let (yes, no) = (
        "  guest_disk: { payload_intact: true }\n",
        "  guest_disk: { payload_intact: false }\n",
    );
    let want = [9u8; 64];
    let mut o = good_run();
    // No guest wrote anything: neither claim has evidence.
    assert!(fails(yes, &o, id).contains("nothing was written"));
    fails(no, &o, id);
    // The image holds the pattern, but the guest never reported: one witness.
    o.guest_disks = vec![GuestPayload::judge("g1", &want, &want)];
    let msg = fails(yes, &o, id);
    assert!(
        msg.contains("no PVHDMA-GUEST-DISK line), so the guest's own word is missing"),
        "{msg}"
    );
    o.console += "PVHDMA-GUEST g1 PVHDMA-GUEST-DISK {\"wrote\":64,\"read\":64,\"intact\":true}\n";
    // The image and the guest agree, but dom0 never said blkback moved it.
    let msg = fails(yes, &o, id);
    assert!(msg.contains("; dom0 reported no blkback counters"), "{msg}");
    // blkback moved less than the write: the data went some other way.
    o.summary.as_mut().unwrap().vbds = vec![vbd("g1", None, Some(1), Some(0))];
    let msg = fails(yes, &o, id);
    assert!(
        msg.contains("; blkback wrote 0 and read 1 sectors (1 each way needed), short of it"),
        "{msg}"
    );
    o.summary.as_mut().unwrap().vbds = vec![vbd("g1", None, Some(8), Some(1))];
    let msg = passes_with(yes, &o, id);
    assert!(
        msg.contains("g1: image 64 of 64 bytes, intact (the guest: {\"wrote\":64"),
        "{msg}"
    );
    fails(no, &o, id);
    // The guest read its pattern back, but the image does not hold it
    // (say, a cache in between answered the read): the witnesses disagree.
    let mut wrong = want;
    wrong[17] = 0;
    let mut split = o.clone();
    split.guest_disks = vec![GuestPayload::judge("g1", &want, &wrong)];
    for claim in [yes, no] {
        let msg = fails(claim, &split, id);
        assert!(msg.contains("first wrong byte at 17"), "{msg}");
        assert!(msg.contains("the image and the guest's read-back disagree"), "{msg}");
    }
    // Both say the write failed: the false claim holds, the true one fails.
    let mut failed = split.clone();
    failed.console = failed.console.replace(
        "{\"wrote\":64,\"read\":64,\"intact\":true}",
        "{\"wrote\":0,\"read\":0,\"intact\":false,\"error\":\"write /dev/xvda after 0 bytes: Input/output error\"}",
    );
    passes(no, &failed, id);
    fails(yes, &failed, id);
}

fn vbd(guest: &str, persistent: Option<bool>, rd_sect: Option<u64>, wr_sect: Option<u64>) -> VbdFacts {
    VbdFacts {
        guest: guest.into(),
        persistent,
        rd_sect,
        wr_sect,
    }
}

#[test]
fn guest_disk_persistent_grants() {
    use crate::outcome::GuestPayload;
    let id = "guest_disk.persistent_grants";
    let (yes, no) = (
        "  guest_disk: { persistent_grants: true }\n",
        "  guest_disk: { persistent_grants: false }\n",
    );
    let mut o = good_run();
    assert!(fails(no, &o, id).contains("nothing was written"));
    o.guest_disks = vec![GuestPayload::judge("g1", &[1; 8], &[1; 8])];
    // Neither side said anything: no claim holds.
    for claim in [yes, no] {
        let msg = fails(claim, &o, id);
        assert!(
            msg.contains("blkfront's own line: missing; dom0's xenstore: missing"),
            "{msg}"
        );
    }
    let line = |p: bool| {
        format!("PVHDMA-GUEST g1 PVHDMA-GUEST-DISK {{\"wrote\":8,\"read\":8,\"intact\":true,\"persistent\":{p}}}\n")
    };
    let mut both_off = o.clone();
    both_off.console += &line(false);
    // The guest's word alone is one witness.
    fails(no, &both_off, id);
    both_off.summary.as_mut().unwrap().vbds = vec![vbd("g1", Some(false), None, None)];
    let msg = passes_with(no, &both_off, id);
    assert!(
        msg.contains("blkfront's own line: did not use; dom0's xenstore: did not use"),
        "{msg}"
    );
    fails(yes, &both_off, id);
    // blkfront negotiated them but dom0's keys say one end does not offer them.
    let mut split = both_off.clone();
    split.console = split.console.replace("\"persistent\":false", "\"persistent\":true");
    for claim in [yes, no] {
        fails(claim, &split, id);
    }
    split.summary.as_mut().unwrap().vbds[0].persistent = Some(true);
    passes(yes, &split, id);
}

#[test]
fn guest_net_payload_intact() {
    use crate::outcome::GuestPayload;
    let want = [7u8; 64];
    let mut o = good_run();
    // No guest sent anything: neither claim has evidence.
    let msg = fails(
        "  guest_net: { payload_intact: true }\n",
        &o,
        "guest_net.payload_intact",
    );
    assert!(msg.contains("nothing was sent"), "{msg}");
    fails(
        "  guest_net: { payload_intact: false }\n",
        &o,
        "guest_net.payload_intact",
    );
    o.guest_payloads = vec![GuestPayload::judge("g1", &want, &want)];
    o.console += "PVHDMA-GUEST g1 PVHDMA-GUEST-NET {\"sent\":64,\"acked\":true}\n";
    // The file and the guest agree, but netback's own count is the third
    // witness that the bytes went through it: missing, or short, fails.
    let vif = |rx| VifFacts {
        guest: "g1".into(),
        rx_bytes: rx,
        tx_bytes: None,
    };
    for (rx, why) in [(None, "dom0 reported no netback counters"), (Some(63), "short of it")] {
        o.summary.as_mut().unwrap().vifs = vec![vif(rx)];
        let msg = fails(
            "  guest_net: { payload_intact: true }\n",
            &o,
            "guest_net.payload_intact",
        );
        assert!(msg.contains(why), "{msg}");
    }
    o.summary.as_mut().unwrap().vifs = vec![vif(Some(130))];
    let msg = passes_with(
        "  guest_net: { payload_intact: true }\n",
        &o,
        "guest_net.payload_intact",
    );
    assert!(
        msg.contains("g1: 64 of 64 bytes, intact (the guest: {\"sent\":64"),
        "{msg}"
    );
    fails(
        "  guest_net: { payload_intact: false }\n",
        &o,
        "guest_net.payload_intact",
    );
    // An intact file whose sender saw its bytes unacknowledged: the two
    // witnesses disagree, and neither claim holds.
    let mut split = o.clone();
    split.console = split.console.replace("\"acked\":true", "\"acked\":false");
    let msg = fails(
        "  guest_net: { payload_intact: true }\n",
        &split,
        "guest_net.payload_intact",
    );
    assert!(msg.contains("disagree"), "{msg}");
    // A second guest whose send never arrived breaks "every".
    o.guest_payloads.push(GuestPayload::judge("g2", &want, &[]));
    let msg = fails(
        "  guest_net: { payload_intact: true }\n",
        &o,
        "guest_net.payload_intact",
    );
    assert!(
        msg.contains("g2: 0 of 64 bytes, ends at 0 (the guest: no PVHDMA-GUEST-NET line)"),
        "{msg}"
    );
    // An empty file alone is one witness: the guest may have died before
    // sending, which is not the loss the claim is about.
    let msg = fails(
        "  guest_net: { payload_intact: false }\n",
        &o,
        "guest_net.payload_intact",
    );
    assert!(msg.contains("so the guest's own word is missing"), "{msg}");
    o.console += "PVHDMA-GUEST g2 PVHDMA-GUEST-NET {\"sent\":0,\"acked\":false,\"error\":\"timed out\"}\n";
    passes(
        "  guest_net: { payload_intact: false }\n",
        &o,
        "guest_net.payload_intact",
    );
    let mut wrong = want;
    wrong[9] = 0;
    o.guest_payloads = vec![GuestPayload::judge("g1", &want, &wrong)];
    let msg = fails(
        "  guest_net: { payload_intact: true }\n",
        &o,
        "guest_net.payload_intact",
    );
    assert!(msg.contains("first wrong byte at 9"), "{msg}");
}

#[test]
fn guest_net_received_intact() {
    use crate::outcome::Served;
    let (yes, no, id) = (
        "  guest_net: { received_intact: true }\n",
        "  guest_net: { received_intact: false }\n",
        "guest_net.received_intact",
    );
    let mut o = good_run();
    // Nothing served: neither claim has evidence.
    for claim in [yes, no] {
        let msg = fails(claim, &o, id);
        assert!(msg.contains("nothing was served"), "{msg}");
    }
    o.guest_served = vec![Served {
        guest: "g1".into(),
        bytes: 4096,
        fnv1a: 0xdead_beef,
    }];
    // Served, but the guest never said what it got.
    for claim in [yes, no] {
        let msg = fails(claim, &o, id);
        assert!(msg.contains("no PVHDMA-GUEST-NET line"), "{msg}");
    }
    let line = |bytes: u64, sum: u32| {
        format!(
            "PVHDMA-GUEST g1 PVHDMA-GUEST-NET {{\"sent\":0,\"acked\":false,\"received\":{{\"bytes\":{bytes},\"fnv1a\":{sum}}}}}\n"
        )
    };
    let base = o.console.clone();
    o.console = base.clone() + &line(4096, 0xdead_beef);
    // Whole in the guest, but netback's count is missing or short of it.
    let vif = |tx| VifFacts {
        guest: "g1".into(),
        rx_bytes: Some(100),
        tx_bytes: tx,
    };
    for (tx, why) in [(None, "dom0 reported no netback counters"), (Some(4000), "short of it")] {
        o.summary.as_mut().unwrap().vifs = vec![vif(tx)];
        let msg = fails(yes, &o, id);
        assert!(msg.contains(why), "{msg}");
    }
    o.summary.as_mut().unwrap().vifs = vec![vif(Some(4400))];
    let msg = passes_with(yes, &o, id);
    assert!(
        msg.contains(
            "g1: got 4096 of 4096 bytes, FNV-1a 0xdeadbeef against 0xdeadbeef; netback gave the guest 4400 bytes"
        ),
        "{msg}"
    );
    fails(no, &o, id);
    // A wrong checksum or a short file: the broken case is caught.
    for (bytes, sum) in [(4096, 0xdead_beee), (1428, 0xdead_beef)] {
        o.console = base.clone() + &line(bytes, sum);
        fails(yes, &o, id);
        passes(no, &o, id);
    }
}

#[test]
fn guest_sees_is_held_to_doms_read() {
    let s = parse_str(
        "description: t\nguests: [{name: g1, type: pvh, memory: 256M, vcpus: 1}]\n\
         dom0: {cmdline: [swiotlb=noforce]}\n\
         workload: [{name: gw, kind: single, size: 4K, dir: from_device, buffer: {guest: g1, grant: ro}}]\n\
         expect:\n  ops: {gw: {guest_sees: unchanged}}\n",
        Path::new("t.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let judge = |o: &RunOutcome| one(&s, o, "ops.gw.guest_sees");
    let mut r = result(0, "gw", OpKind::Single, 1, 0x10_0000);
    r.intact = false;
    r.foreign = serde_json::from_value(serde_json::json!({
        "guest": "g1", "domid": 1, "readonly": true, "grant_status": [0]
    }))
    .unwrap();
    let mut o = outcome(RunEnd::finished(), vec![r], vec![], vec![]);
    // No word from the guest is no evidence.
    let a = judge(&o);
    assert_eq!(a.status, Status::Fail, "{a}");
    assert!(a.to_string().contains("never reported on op \"gw\""), "{a}");
    let line = |sees: &str| format!("PVHDMA-GUEST g1 PVHDMA-GUEST-CHECK {{\"op\":\"gw\",\"sees\":\"{sees}\"}}\n");
    let base = o.console.clone();
    o.console = base.clone() + &line("unchanged");
    let a = judge(&o);
    assert_eq!(a.status, Status::Pass, "{a}");
    assert!(
        a.to_string()
            .contains("guest g1 sees unchanged; dom0 did not read the pattern"),
        "{a}"
    );
    // Something else in the page is not "unchanged".
    o.console = base.clone() + &line("other");
    assert_eq!(judge(&o).status, Status::Fail);
    // The guest sees the pattern that dom0 did not read: the witnesses disagree.
    o.console = base.clone() + &line("pattern");
    let a = judge(&o);
    assert_eq!(a.status, Status::Fail, "{a}");
    assert!(a.to_string().contains("the two disagree"), "{a}");
    // Another guest's line for the same op name is not this guest's word.
    o.console = base + &line("unchanged").replace("PVHDMA-GUEST g1 ", "PVHDMA-GUEST g2 ");
    assert_eq!(judge(&o).status, Status::Fail);
}

#[test]
fn guest_sees_needs_a_guests_from_device_op() {
    let e = parse_str(
        "description: t\nworkload: [{name: hs, kind: single, size: 4K}]\n\
         expect:\n  ops:\n    hs: {guest_sees: pattern}\n",
        Path::new("t.yaml"),
    )
    .unwrap_err();
    assert_eq!(e.path, "expect.ops.hs.guest_sees", "{e}");
    assert!(e.to_string().starts_with("t.yaml:5:"), "{e}");
}

#[test]
fn devices_bound() {
    let mut o = good_run();
    o.summary.as_mut().unwrap().devices.clear();
    let msg = fails("  devices_bound: 1\n", &o, "devices_bound");
    assert!(msg.contains("saw 0"), "{msg}");
    let dev: pvhdma_contract::wire::DeviceInfo = serde_json::from_value(serde_json::json!({
        "name": "pvhdma0", "bdf": "0000:00:01.0", "addr_bits": 32, "caps": 3, "irq_mode": "msi", "irq_count": 0
    }))
    .unwrap();
    o.summary.as_mut().unwrap().devices.push(dev);
    passes("  devices_bound: 1\n", &o, "devices_bound");
    o.summary = None;
    let msg = fails("  devices_bound: 1\n", &o, "devices_bound");
    assert!(msg.contains("no PVHDMA-SUMMARY"), "{msg}");
}

#[test]
fn log_contains_and_lacks() {
    passes(
        "  log: {contains: ['Xen 4\\.\\d+', 'PVHDMA-DONE']}\n",
        &good_run(),
        "log.contains",
    );
    let msg = fails(
        "  log: {contains: [Xen, 'overflow mask']}\n",
        &good_run(),
        "log.contains",
    );
    assert!(msg.contains("not found: /overflow mask/"), "{msg}");
    passes("  log: {lacks: ['BUG:']}\n", &good_run(), "log.lacks");
    let msg = fails("  log: {lacks: ['Linux version \\S+']}\n", &good_run(), "log.lacks");
    assert!(msg.contains("matched: Linux version 6.12"), "{msg}");
}

#[test]
fn per_op_expectations() {
    let o = good_run();
    passes(
        "  ops: {hs: {map_error: false, intact: true, device_error: 0, irq: true, error: false}}\n",
        &o,
        "ops.hs.map_error",
    );
    passes(
        "  ops: {hs: {device_addrs_below: 4G}}\n",
        &o,
        "ops.hs.device_addrs_below",
    );
    passes("  ops: {hs: {bounced: false}}\n", &o, "ops.hs.bounced");
    let msg = fails("  ops: {hs: {map_error: true}}\n", &o, "ops.hs.map_error");
    assert!(
        msg.starts_with(
            "ops.hs.map_error: expected map_error: true, result #1 (tag 2, op \"hs\") had map_error: false"
        ),
        "{msg}"
    );
    fails("  ops: {hs: {device_error: 1}}\n", &o, "ops.hs.device_error");
    // An op that never produced a result fails every expectation on it.
    let msg = fails("  ops: {raw: {device_error: 1}}\n", &o, "ops.raw.device_error");
    assert!(msg.contains("no result for op \"raw\""), "{msg}");
    // Faults and pool membership per op.
    let mut o = good_run();
    o.results.push(result(2, "raw", OpKind::Raw, 3, 0x7000_0000));
    let mut r = record(3, 3, 0x7000_0000);
    r.outcome = AccessOutcome::IommuFault;
    o.device_records[0].push(r);
    passes(
        "  ops: {raw: {iommu_faults: 1}, hs: {iommu_faults: 0}}\n",
        &o,
        "ops.raw.iommu_faults",
    );
    passes(
        "  ops: {raw: {iommu_faults: 1}, hs: {iommu_faults: 0}}\n",
        &o,
        "ops.hs.iommu_faults",
    );
    o.summary.as_mut().unwrap().swiotlb = Some(Range {
        start: 0x20_0000,
        end: 0x40_0000,
    });
    passes(
        "  ops: {hs: {in_swiotlb: true}, coh: {in_swiotlb: false}}\n",
        &o,
        "ops.hs.in_swiotlb",
    );
    passes(
        "  ops: {hs: {in_swiotlb: true}, coh: {in_swiotlb: false}}\n",
        &o,
        "ops.coh.in_swiotlb",
    );
}

#[test]
fn records_join_results_by_tag_then_address() {
    // Two results share tag 5: the bus address decides.
    let mut a = result(0, "coh", OpKind::Coherent, 5, 0x10_0000);
    a.len = 0x1000;
    let b = result(1, "hs", OpKind::Single, 5, 0x90_0000);
    let results = vec![a, b];
    let r = record(1, 5, 0x90_0800);
    assert_eq!(join::op_for_record(&results, 0, &r).unwrap().name, "hs");
    let r = record(2, 5, 0x10_0010);
    assert_eq!(join::op_for_record(&results, 0, &r).unwrap().name, "coh");
    assert!(join::op_for_record(&results, 0, &record(3, 9, 0)).is_none());
}

// ---- expect_failure ----

#[test]
fn plain_scenario_pass_and_fail() {
    let s = scenario("  data_intact: true\n  bounces: 0\n");
    let v = evaluate(&s, &good_run());
    assert_eq!(v.outcome, Judgement::Pass);
    assert!(v.passed());
    assert_eq!(v.failure_kind, None);
    let mut o = good_run();
    o.results[0].intact = false;
    let v = evaluate(&s, &o);
    assert_eq!(v.outcome, Judgement::Fail);
    assert_eq!(v.failure_kind.map(|k| k.name()), Some("assertion"));
    assert_eq!(v.failed_assertions().count(), 1);
}

#[test]
fn twin_passes_when_the_named_assertion_fails() {
    let s = twin("  data_intact: true\n  mapping_errors: 0\n", "data_intact");
    let mut o = good_run();
    o.results[1].intact = false;
    let v = evaluate(&s, &o);
    assert_eq!(v.outcome, Judgement::ExpectedFailure, "{v}");
    assert!(v.passed());
    assert!(v.to_string().contains("expected failure of `data_intact`"), "{v}");
}

#[test]
fn twin_accepts_a_prefix_id() {
    let s = twin(
        "  device_addrs: {below: 4G, at_least_one_access: true}\n",
        "device_addrs",
    );
    let mut o = good_run();
    // The driver programmed a high address, and the device recorded it.
    o.results[1].dma_addrs = vec![0x1_2345_6000];
    o.results[1].phys_addrs = vec![0x1_2345_6000];
    o.device_records[0][1].bus_addr = 0x1_2345_6000;
    assert_eq!(evaluate(&s, &o).outcome, Judgement::ExpectedFailure);
}

#[test]
fn twin_fails_loudly_on_unexpected_pass() {
    let s = twin("  iommu_faults: 0\n", "iommu_faults");
    let v = evaluate(&s, &good_run());
    assert_eq!(v.outcome, Judgement::UnexpectedPass);
    assert!(!v.passed());
    assert_eq!(v.failure_kind.map(|k| k.name()), Some("unexpected_pass"));
    assert!(
        v.to_string()
            .contains("unexpected pass: `iommu_faults` must fail (because)"),
        "{v}"
    );
}

#[test]
fn twin_fails_when_another_assertion_fails() {
    let s = twin("  data_intact: true\n  bounces: 0\n", "bounces");
    let mut o = good_run();
    o.summary.as_mut().unwrap().bounces = 2; // the named one fails, as it should
    o.results[0].intact = false; // but this one must not
    let v = evaluate(&s, &o);
    assert_eq!(v.outcome, Judgement::WrongFailure, "{v}");
    assert!(!v.passed());
    let text = v.to_string();
    assert!(text.contains("\n  data_intact: expected"), "{text}");
    assert!(text.contains("\n  (expected) bounces: expected"), "{text}");
}

#[test]
fn twin_with_a_broken_boot_names_the_end_first() {
    let s = twin("  bounces: 0\n", "bounces");
    let mut o = good_run();
    o.end = RunEnd::new(EndKind::RunTimeout, "");
    let v = evaluate(&s, &o);
    assert_eq!(v.outcome, Judgement::WrongFailure);
    assert_eq!(v.failure_kind.map(|k| k.name()), Some("run_timeout"));
}

#[test]
fn verdict_serializes() {
    let v = evaluate(&scenario("  data_intact: true\n"), &good_run());
    let j: serde_json::Value = serde_json::to_value(&v).unwrap();
    assert_eq!(j["outcome"], "pass");
    assert_eq!(j["run_end"], "finished");
    assert_eq!(j["assertions"][1]["id"], "data_intact");
    assert_eq!(j["assertions"][1]["status"], "pass");
}

#[test]
fn trace_of_one_pci_device() {
    let mut o = good_run();
    // The recorder at 00:03.00 (good_run's trace) plus an e1000 at 00:10.0,
    // spelled as VT-d prints it, and a fault that counts for nobody.
    let nic = |iova, target| TraceEntry {
        device: "00:10.00".into(),
        ..miss(iova, target)
    };
    o.iommu_trace
        .extend([nic(0x3f00_0000, 0x2_6f00_0000), nic(0x3f20_0000, 0x3f20_0000)]);
    o.iommu_trace.push(TraceEntry {
        fault: true,
        ..nic(0x7000_0000, 0)
    });
    let t = |body: &str| format!("  trace: {{device: \"00:10.0\", {body}}}\n");
    passes(&t("translations: 2"), &o, "trace.translations");
    passes(&t("translations: {min: 1}"), &o, "trace.translations");
    passes(&t("iova_below: 4G"), &o, "trace.iova_below");
    passes(&t("some_target_at_or_above: 4G"), &o, "trace.some_target_at_or_above");
    let msg = fails(&t("translations: 0"), &o, "trace.translations");
    assert!(msg.contains("saw 2"), "{msg}");
    let msg = fails(&t("iova_below: 0x3f10_0000"), &o, "trace.iova_below");
    assert!(msg.contains("0x3f20_0000"), "{msg}");
    // Another device's translations are not this one's.
    let other = "  trace: {device: \"00:1f.0\", translations: {min: 1}}\n";
    assert!(fails(other, &o, "trace.translations").contains("saw 0"));
    let msg = fails(
        "  trace: {device: \"00:1f.0\", some_target_at_or_above: 4G}\n",
        &o,
        "trace.some_target_at_or_above",
    );
    assert!(msg.contains("highest target none"), "{msg}");
}

#[test]
fn trace_device_must_be_a_pci_address() {
    let text = "description: t\nexpect:\n  trace: {device: e1000, translations: 1}\n";
    let e = parse_str(text, Path::new("t.yaml")).unwrap_err().to_string();
    assert!(e.contains("expect.trace.device") && e.contains("bus:dev.fn"), "{e}");
}

#[test]
fn an_op_dom0_refused_is_named_with_doms_words_not_as_not_intact() {
    let mut o = good_run();
    o.results[1].refused = Some("segments 300 outside 1..=256".into());
    o.results[1].intact = false;
    let v = evaluate(&scenario("  data_intact: true\n"), &o);
    let text = v.to_string();
    assert!(
        text.contains(
            "ops.hs.accepted: expected dom0 to run the op, dom0 refused the op: segments 300 outside 1..=256"
        ),
        "{text}"
    );
    assert!(!text.contains("not intact"), "{text}");
    assert_eq!(v.failure_kind, Some(FailureKind::Assertion));
}

#[test]
fn boot_message_is_matched_in_the_ends_own_text_not_the_console() {
    let mut o = good_run();
    o.end = RunEnd::new(EndKind::XenPanic, "Couldn't enable IOMMU and iommu=required/force");
    // Xen echoes its command line, so "iommu" is in any console.
    o.console = "(XEN) Command line: dom0=pvh iommu=no-intremap\n".into();
    passes("  boot: {outcome: xen_panic, message: \"enable IOMMU\"}\n", &o, "boot");
    o.end = RunEnd::new(EndKind::XenPanic, "Timer is not yet enabled");
    let why = fails("  boot: {outcome: xen_panic, message: \"(?i)iommu\"}\n", &o, "boot");
    assert!(why.contains("the end's own text does not match"), "{why}");
}

#[test]
fn zero_bounces_need_a_tracer_that_ran() {
    passes("  bounces: 0\n", &good_run(), "bounces");
    let mut o = good_run();
    o.summary.as_mut().unwrap().tracepoints = vec!["dma".into()];
    let why = fails("  bounces: 0\n", &o, "bounces");
    assert!(why.contains("not measured"), "{why}");
    o.summary.as_mut().unwrap().tracepoints.clear();
    fails("  bounces: 0\n", &o, "bounces");
}

#[test]
fn no_vacuous_truths_over_empty_evidence() {
    let mut o = good_run();
    o.iommu_trace.clear();
    o.ram_layout = None;
    let why = fails(
        "  translated_addrs: {all_below: 4G}\n",
        &o,
        "translated_addrs.all_below",
    );
    assert!(why.contains("nothing to judge"), "{why}");
    let mut o = good_run();
    o.device_records = vec![vec![]];
    let why = fails("  device_addrs: {below: 4G}\n", &o, "device_addrs.below");
    assert!(why.contains("no device record"), "{why}");
    let why = fails(
        "  ops: {hs: {device_addrs_below: 4G}}\n",
        &o,
        "ops.hs.device_addrs_below",
    );
    assert!(why.contains("no device record"), "{why}");
}

#[test]
fn a_record_no_result_explains_fails_on_its_own() {
    let mut o = good_run();
    passes("  data_intact: true\n", &o, "data_intact");
    assert!(evaluate(&scenario("  data_intact: true\n"), &o).passed());
    o.device_records[0].push(record(3, 99, 0x30_0000));
    let v = evaluate(&scenario("  data_intact: true\n"), &o);
    let a = v
        .assertions
        .iter()
        .find(|a| a.id == "records_explained")
        .expect("judged");
    assert_eq!(a.status, Status::Fail);
    assert!(a.detail.contains("tag 99"), "{a}");
}

#[test]
fn kernel_warnings_fail_unless_allowed() {
    passes("  data_intact: true\n", &good_run(), "kernel_warnings");
    let mut o = good_run();
    o.summary.as_mut().unwrap().kernel_warnings = vec!["WARNING: CPU: 0 PID: 85 at kernel/dma/direct.h:105".into()];
    let why = fails("  data_intact: true\n", &o, "kernel_warnings");
    assert!(why.contains("1 unallowed in dom0's log"), "{why}");
    passes("  kernel_warnings: {allow: ['dma/direct']}\n", &o, "kernel_warnings");
    // The console is the second witness: a warning there that the agent
    // did not report (printed after its read, say) fails "none", timestamp
    // or not; Xen's lines and a guest's relayed ones are not dom0's.
    let mut c = good_run();
    c.console += "(XEN) WARNING: not dom0's\nPVHDMA-GUEST g1 BUG: the guest's\n";
    passes("  data_intact: true\n", &c, "kernel_warnings");
    c.console += "[   51.026207] WARNING: CPU: 0 PID: 163 at kernel/dma/direct.h:103 dma_map_page_attrs\n";
    let why = fails("  data_intact: true\n", &c, "kernel_warnings");
    assert!(
        why.contains("1 unallowed on dom0's console that the agent did not report, first: WARNING: CPU: 0"),
        "{why}"
    );
    passes("  kernel_warnings: {allow: ['dma/direct']}\n", &c, "kernel_warnings");
    // An agent that did not read the log from its start saw only part of it.
    let mut partial = good_run();
    partial.summary.as_mut().unwrap().kmsg_from_start = false;
    let why = fails("  data_intact: true\n", &partial, "kernel_warnings");
    assert!(why.contains("did not start at its first record"), "{why}");
    // A run that is meant to end otherwise has no dom0 warnings to read.
    o.end = RunEnd::new(EndKind::XenPanic, "x");
    let v = evaluate(&scenario("  boot: xen_panic\n"), &o);
    assert!(v.assertions.iter().all(|a| a.id != "kernel_warnings"));
}

#[test]
fn records_are_held_to_the_drivers_segments() {
    let v = evaluate(&scenario("  data_intact: true\n"), &good_run());
    let a = v
        .assertions
        .iter()
        .find(|a| a.id == "records_match_driver")
        .expect("judged");
    assert_eq!(a.status, Status::Pass, "{a}");
    // A device that records the address one page off.
    let mut o = good_run();
    o.device_records[0][1].bus_addr += 0x1000;
    let v = evaluate(&scenario("  data_intact: true\n"), &o);
    let a = v.assertions.iter().find(|a| a.id == "records_match_driver").unwrap();
    assert_eq!(a.status, Status::Fail);
    assert!(a.detail.contains("outside every segment the driver mapped"), "{a}");
    // A device that records the wrong length.
    let mut o = good_run();
    o.device_records[0][0].len = 2048;
    let v = evaluate(&scenario("  data_intact: true\n"), &o);
    let a = v.assertions.iter().find(|a| a.id == "records_match_driver").unwrap();
    assert_eq!(a.status, Status::Fail, "{a}");
    assert!(
        a.detail
            .contains("the driver mapped [0x10_0000+0x1000], the device recorded [0x10_0000+0x800]"),
        "{a}"
    );
}

#[test]
fn more_interrupts_than_programmed_ops_fail() {
    let mut o = good_run();
    let dev = |irqs| pvhdma_contract::wire::DeviceInfo {
        name: "pvhdma0".into(),
        irq_count: irqs,
        ..Default::default()
    };
    for seen in [2, 3] {
        o.summary.as_mut().unwrap().devices = vec![dev(seen)];
        let v = evaluate(&scenario("  data_intact: true\n"), &o);
        let a = v.assertions.iter().find(|a| a.id == "irqs_match_completions").unwrap();
        assert_eq!(a.status, Status::Pass, "{a}");
    }
    o.summary.as_mut().unwrap().devices = vec![dev(4)];
    let v = evaluate(&scenario("  data_intact: true\n"), &o);
    let a = v.assertions.iter().find(|a| a.id == "irqs_match_completions").unwrap();
    assert_eq!(a.status, Status::Fail, "{a}");
    assert!(a.detail.contains("4 completion interrupts for 2 programmed ops"), "{a}");
}

#[test]
fn every_per_op_check_can_fail() {
    let o = good_run();
    let mut bad = good_run();
    bad.results[1].intact = false;
    bad.results[1].bounced = true;
    bad.results[1].error = Some("device never completed (timeout)".into());
    bad.results[1].irq = false;
    bad.summary.as_mut().unwrap().swiotlb = Some(Range {
        start: 0x3000_0000,
        end: 0x3400_0000,
    });
    // Each holds on the healthy run and fails on the broken one.
    for (expect, id) in [
        ("intact: true", "ops.hs.intact"),
        ("bounced: false", "ops.hs.bounced"),
        ("error: false", "ops.hs.error"),
        ("irq: true", "ops.hs.irq"),
    ] {
        let yaml = format!("  ops: {{hs: {{{expect}}}}}\n");
        passes(&yaml, &o, id);
        fails(&yaml, &bad, id);
    }
    // The pool is elsewhere, and the healthy run has no fault to count.
    fails("  ops: {hs: {in_swiotlb: true}}\n", &bad, "ops.hs.in_swiotlb");
    fails("  ops: {hs: {iommu_faults: {min: 1}}}\n", &o, "ops.hs.iommu_faults");
}

fn always(s: &Scenario, o: &RunOutcome, id: &str) -> Option<AssertionResult> {
    evaluate(s, o).assertions.into_iter().find(|a| a.id == id)
}

#[test]
fn swiotlb_pool_needs_doms_own_word() {
    let absent = "  swiotlb_pool: absent\n";
    let present = "  swiotlb_pool: present\n";
    let mut o = good_run();
    // A log read from its start without the pool line, and debugfs's empty directory.
    o.summary.as_mut().unwrap().kmsg_from_start = true;
    o.summary.as_mut().unwrap().swiotlb_nslabs = Some(0);
    passes(absent, &o, "swiotlb_pool");
    let why = fails(present, &o, "swiotlb_pool");
    assert!(
        why.contains("no `software IO TLB: mapped` line") && why.contains("no slab count"),
        "{why}"
    );
    // debugfs missing (a kernel without it): the log alone speaks, and says so.
    o.summary.as_mut().unwrap().swiotlb_nslabs = None;
    let a = one(&scenario(absent), &o, "swiotlb_pool");
    assert_eq!(a.status, Status::Pass, "{a}");
    assert!(a.detail.contains("debugfs: not available"), "{a}");
    // A log that may have lost its first records says nothing of absence.
    o.summary.as_mut().unwrap().kmsg_from_start = false;
    let why = fails(absent, &o, "swiotlb_pool");
    assert!(why.contains("not read from its first record"), "{why}");
    // The pool exists: both views say so, and "absent" fails naming both.
    let mut pool = good_run();
    pool.summary.as_mut().unwrap().swiotlb = Some(Range {
        start: 0x3400_0000,
        end: 0x3800_0000,
    });
    pool.summary.as_mut().unwrap().kmsg_from_start = true;
    pool.summary.as_mut().unwrap().swiotlb_nslabs = Some(32768);
    passes(present, &pool, "swiotlb_pool");
    let why = fails(absent, &pool, "swiotlb_pool");
    assert!(
        why.contains("pool mapped at [0x3400_0000, 0x3800_0000)") && why.contains("debugfs: 32768 slabs"),
        "{why}"
    );
    // The views disagree: neither claim holds.
    pool.summary.as_mut().unwrap().swiotlb_nslabs = Some(0);
    let why = fails(absent, &pool, "swiotlb_pool");
    assert!(why.contains("the two views disagree"), "{why}");
    fails(present, &pool, "swiotlb_pool");
    pool.summary = None;
    fails(present, &pool, "swiotlb_pool");
}

#[test]
fn xen_iommu_mappings_needs_doms_report() {
    let set = "  xen_cpuid: {iommu_mappings: true}\n";
    let clear = "  xen_cpuid: {iommu_mappings: false}\n";
    let id = "xen_cpuid.iommu_mappings";
    let mut o = good_run();
    o.summary.as_mut().unwrap().xen_iommu_mappings = Some(true);
    // The flag alone, with no access to a granted page to hold it to.
    assert!(fails(set, &o, id).contains("cannot bear it out"));
    // "hs" on a guest's page, unbounced, its page translated in the trace.
    o.results[1].foreign = serde_json::from_value(serde_json::json!({
        "guest": "g1", "domid": 1, "readonly": false, "grant_status": [0]
    }))
    .unwrap();
    assert!(passes_with(set, &o, id).contains("1 unbounced accesses to granted pages, every page translated"));
    assert!(fails(clear, &o, id).contains("saw true"));
    // The same access with no line in the trace: Xen's word against the IOMMU's.
    let mut untraced = o.clone();
    untraced.iommu_trace.retain(|e| e.iova != 0x20_0000);
    let msg = fails(set, &untraced, id);
    assert!(
        msg.contains("op \"hs\") to a granted page has page 0x20_0000 without"),
        "{msg}"
    );
    // Bounced, the device never touched the granted page itself.
    let mut bounced = o.clone();
    bounced.results[1].bounced = true;
    assert!(fails(set, &bounced, id).contains("cannot bear it out"));
    o.summary.as_mut().unwrap().xen_iommu_mappings = Some(false);
    passes(clear, &o, id);
    assert!(fails(set, &o, id).contains("saw false"));
    // An agent that did not look (or found no Xen) says nothing either way.
    o.summary.as_mut().unwrap().xen_iommu_mappings = None;
    assert!(fails(set, &o, id).contains("no Xen CPUID leaves"));
    assert!(fails(clear, &o, id).contains("no Xen CPUID leaves"));
    o.summary = None;
    fails(set, &o, id);
}

#[test]
fn bounces_are_held_to_the_drivers_addresses() {
    let s = scenario("  data_intact: true\n");
    let a = always(&s, &good_run(), "bounces_match_driver").expect("judged on a PVH dom0");
    assert_eq!(a.status, Status::Pass, "{a}");
    // The tracepoint saw no bounce, yet the driver was handed another address.
    let mut o = good_run();
    o.results[1].dma_addrs = vec![0x3400_0000];
    o.results[1].bounced = true;
    let a = always(&s, &o, "bounces_match_driver").unwrap();
    assert_eq!(a.status, Status::Fail, "{a}");
    assert!(
        a.detail
            .contains("op \"hs\"): the driver's addresses show 1 of 1 segments bounced")
            && a.detail.contains("bus 0x3400_0000 for phys 0x20_0000")
            && a.detail.contains("tracepoint counted 0"),
        "{a}"
    );
    o.results[1].bounces = 1;
    assert_eq!(always(&s, &o, "bounces_match_driver").unwrap().status, Status::Pass);
    // The tracepoint counted a bounce the driver's addresses do not show.
    let mut o = good_run();
    o.results[0].bounces = 2;
    let a = always(&s, &o, "bounces_match_driver").unwrap();
    assert!(a.status == Status::Fail && a.detail.contains("0 of 1 segments"), "{a}");
    // A PV dom0 gets machine addresses, bounced or not: not judged there.
    let mut pv = s.clone();
    pv.xen = crate::scenario::Xen::Boot(crate::scenario::XenCfg {
        dom0: crate::scenario::Dom0ModeCfg::Pv,
        ..Default::default()
    });
    assert!(always(&pv, &o, "bounces_match_driver").is_none());
    // Neither without the tracepoint.
    o.summary.as_mut().unwrap().tracepoints = vec!["dma".into()];
    assert!(always(&s, &o, "bounces_match_driver").is_none());
}

#[test]
fn dma_path_by_dom0_kind() {
    use super::corroborate::DmaPath;
    let load = |y: &str| parse_str(&format!("description: d\n{y}"), Path::new("t.yaml")).unwrap();
    assert_eq!(DmaPath::of(&load("")), DmaPath::Direct);
    assert_eq!(DmaPath::of(&load("xen: {dom0: pv}\n")), DmaPath::Translated);
    assert_eq!(DmaPath::of(&load("xen: none\n")), DmaPath::Translated);
    assert_eq!(
        DmaPath::of(&load("xen: none\nmachine: {iommu: none}\n")),
        DmaPath::Direct
    );
    assert_eq!(
        DmaPath::of(&load("xen: none\ndom0: {cmdline: [iommu=pt]}\n")),
        DmaPath::Direct
    );
}

#[test]
fn a_completion_before_the_data_fails_on_its_own() {
    let s = scenario("  data_intact: true\n");
    let a = always(&s, &good_run(), "data_before_done").expect("judged");
    assert_eq!(a.status, Status::Pass, "{a}");
    assert!(a.detail.contains("2 from-device results"), "{a}");
    // The data arrived, but after DONE: every other check holds.
    let mut o = good_run();
    o.results[1].mismatch_at_done = true;
    let v = evaluate(&s, &o);
    let failed: Vec<&str> = v.failed_assertions().map(|a| a.id.as_str()).collect();
    assert_eq!(failed, ["data_before_done"], "{v}");
    let a = always(&s, &o, "data_before_done").unwrap();
    assert!(a.detail.contains("op \"hs\") was intact in the end"), "{a}");
    // A to-device op is not looked at; data that never came is data_intact's.
    let mut o = good_run();
    o.results[1].mismatch_at_done = true;
    o.results[1].intact = false;
    assert_eq!(always(&s, &o, "data_before_done").unwrap().status, Status::Pass);
}

#[test]
fn twin_message_pins_the_cause() {
    let mut s = twin("  data_intact: true\n", "data_intact");
    s.expect_failure.as_mut().unwrap().message =
        Some(crate::scenario::Pattern::new("differs from the pattern at byte 0").unwrap());
    let mut o = good_run();
    o.results[1].intact = false;
    o.results[1].mismatch_offset = Some(0);
    let v = evaluate(&s, &o);
    assert_eq!(v.outcome, Judgement::ExpectedFailure, "{v}");
    // The same assertion failing for another cause is a wrong failure.
    o.results[1].mismatch_offset = None;
    o.results[1].device_error = 1;
    let v = evaluate(&s, &o);
    assert_eq!(v.outcome, Judgement::WrongFailure, "{v}");
    let text = v.to_string();
    assert!(text.contains("must fail for the stated cause"), "{text}");
    assert!(text.contains("device error 1"), "{text}");
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["expect_failure_message"], "differs from the pattern at byte 0");
}

#[test]
fn twin_message_is_a_checked_regex() {
    let text = "description: t\nexpect:\n  data_intact: true\nexpect_failure: {assertion: data_intact, reason: r, message: '('}\n";
    let e = parse_str(text, Path::new("t.yaml")).unwrap_err().to_string();
    assert!(e.contains("expect_failure.message"), "{e}");
}

#[test]
fn data_intact_says_why() {
    let mut o = good_run();
    o.results[1].intact = false;
    o.results[1].mismatch_offset = Some(0);
    o.results[1].checksum = 7;
    o.results[1].expected_checksum = 7;
    let why = fails("  data_intact: true\n", &o, "data_intact");
    assert!(
        why.contains("was not intact: data differs from the pattern at byte 0; the device's checksum matches"),
        "{why}"
    );
    o.results[1].mismatch_offset = None;
    o.results[1].checksum = 0x1234;
    let why = fails("  data_intact: true\n", &o, "data_intact");
    assert!(
        why.contains("the device's checksum 0x1234 where the pattern gives 0x7"),
        "{why}"
    );
    o.results[1].error = Some("device never completed (timeout)".into());
    o.results[1].device_status = 1;
    let why = fails("  data_intact: true\n", &o, "data_intact");
    assert!(why.contains("timeout") && why.contains("no DONE (status 0x1)"), "{why}");
}

#[test]
fn translations_agree_tells_differ_from_missing() {
    let fd = |iova, off| vec![translation(iova, off, "fd_offset")];
    let mut o = good_run();
    o.device_records[0][0].translated = fd(0x10_0000, 0x1_0000_0000);
    // One access differs, the other has no DMA_MAP view.
    let why = fails("  translations_agree: true\n", &o, "translations_agree");
    assert!(
        why.contains("2 successful accesses: 1 where the views differ, 1 where a view is missing"),
        "{why}"
    );
    assert!(
        why.contains("first difference: record seq 1") && why.contains("first missing: record seq 2"),
        "{why}"
    );
    o.device_records[0][1].translated = fd(0x20_0000, 0x1_0000_1000);
    let why = fails("  translations_agree: true\n", &o, "translations_agree");
    assert!(
        why.contains("2 where the views differ, 0 where a view is missing"),
        "{why}"
    );
}

/// Where each assertion's negative twin lives.
enum Twin {
    /// A catalog scenario whose `expect_failure` names the assertion.
    Scenario(&'static str),
    /// A unit test in this file that makes the assertion fail.
    Unit(&'static str),
}

/// Every assertion id the scenario language and the verdict produce
/// (`ops.*` stands for any op name), with its twin. An id without an entry
/// fails `every_assertion_has_a_twin`.
const TWINS: &[(&str, Twin)] = &[
    ("boot", Twin::Unit("boot_expecting_a_panic")),
    ("device_addrs.below", Twin::Unit("device_addrs_below")),
    (
        "device_addrs.at_least_one_access",
        Twin::Unit("device_addrs_at_least_one"),
    ),
    (
        "translated_addrs.some_at_or_above",
        Twin::Unit("translated_addrs_from_the_trace"),
    ),
    (
        "translated_addrs.all_below",
        Twin::Unit("no_vacuous_truths_over_empty_evidence"),
    ),
    (
        "translated_addrs.every_page",
        Twin::Unit("every_page_needs_its_own_translation"),
    ),
    (
        "translated_addrs.buffers_scattered",
        Twin::Unit("buffers_scattered_both_ways"),
    ),
    ("translations_agree", Twin::Scenario("neg-translation-wrong-layout")),
    ("data_intact", Twin::Scenario("neg-truncating-device")),
    ("iommu_faults", Twin::Scenario("neg-claim-no-faults")),
    ("bounces", Twin::Scenario("neg-swiotlb-zero-bounces")),
    ("device_addrs_in_swiotlb", Twin::Unit("device_addrs_in_swiotlb")),
    ("swiotlb_pool", Twin::Scenario("neg-swiotlb-pool-absent")),
    ("mapping_errors", Twin::Unit("mapping_errors")),
    ("devices_bound", Twin::Unit("devices_bound")),
    ("guest_net.payload_intact", Twin::Unit("guest_net_payload_intact")),
    ("guest_disk.payload_intact", Twin::Unit("guest_disk_payload_intact")),
    (
        "xen_cpuid.iommu_mappings",
        Twin::Unit("xen_iommu_mappings_needs_doms_report"),
    ),
    ("kernel_warnings", Twin::Unit("kernel_warnings_fail_unless_allowed")),
    ("trace.translations", Twin::Scenario("neg-real-e1000-untranslated")),
    ("trace.iova_below", Twin::Unit("trace_of_one_pci_device")),
    ("trace.some_target_at_or_above", Twin::Unit("trace_of_one_pci_device")),
    ("log.contains", Twin::Unit("log_contains_and_lacks")),
    ("log.lacks", Twin::Unit("log_contains_and_lacks")),
    ("ops.*.map_error", Twin::Unit("per_op_expectations")),
    ("ops.*.device_error", Twin::Unit("per_op_expectations")),
    ("ops.*.intact", Twin::Unit("every_per_op_check_can_fail")),
    ("ops.*.bounced", Twin::Unit("every_per_op_check_can_fail")),
    ("ops.*.error", Twin::Unit("every_per_op_check_can_fail")),
    ("ops.*.irq", Twin::Unit("every_per_op_check_can_fail")),
    (
        "ops.*.device_addrs_below",
        Twin::Unit("no_vacuous_truths_over_empty_evidence"),
    ),
    ("ops.*.in_swiotlb", Twin::Unit("every_per_op_check_can_fail")),
    ("ops.*.iommu_faults", Twin::Unit("every_per_op_check_can_fail")),
    ("ops.*.guest_sees", Twin::Unit("guest_sees_is_held_to_doms_read")),
    (
        "ops.*.accepted",
        Twin::Unit("an_op_dom0_refused_is_named_with_doms_words_not_as_not_intact"),
    ),
    (
        "records_explained",
        Twin::Unit("a_record_no_result_explains_fails_on_its_own"),
    ),
    (
        "records_match_driver",
        Twin::Unit("records_are_held_to_the_drivers_segments"),
    ),
    (
        "irqs_match_completions",
        Twin::Unit("more_interrupts_than_programmed_ops_fail"),
    ),
    (
        "bounces_match_driver",
        Twin::Unit("bounces_are_held_to_the_drivers_addresses"),
    ),
    (
        "data_before_done",
        Twin::Unit("a_completion_before_the_data_fails_on_its_own"),
    ),
];

#[test]
fn every_assertion_has_a_twin() {
    // Every field the language has, so `assertion_ids` lists every id.
    let s = parse_str(
        "description: d\nguests: [{name: g1, type: pvh, memory: 256M, vcpus: 1}]\n\
         workload: [{name: hs, kind: single, size: 4K}, {name: gw, kind: single, size: 4K, dir: from_device, buffer: {guest: g1}}]\n\
         expect:\n\
         \x20 device_addrs: {below: 4G, at_least_one_access: true}\n\
         \x20 translated_addrs: {some_at_or_above: 4G, all_below: 8G, every_page: true, buffers_scattered: true}\n\
         \x20 translations_agree: true\n\
         \x20 data_intact: true\n  iommu_faults: 0\n  bounces: 0\n  device_addrs_in_swiotlb: true\n  swiotlb_pool: absent\n\
         \x20 mapping_errors: 0\n  devices_bound: 1\n  log: {contains: [a], lacks: [b]}\n\
         \x20 guest_net: {payload_intact: true}\n\
         \x20 guest_disk: {payload_intact: true}\n\
         \x20 xen_cpuid: {iommu_mappings: true}\n\
         \x20 trace: {device: '00:10.0', translations: 1, iova_below: 4G, some_target_at_or_above: 4G}\n\
         \x20 ops: {hs: {map_error: false, intact: true, device_error: 0, bounced: false, error: false, irq: true,\n\
         \x20        device_addrs_below: 4G, in_swiotlb: false, iommu_faults: 0}, gw: {guest_sees: pattern}}\n",
        Path::new("all.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut ids: Vec<String> = s
        .expect
        .assertion_ids()
        .into_iter()
        .map(|id| id.replace("ops.hs.", "ops.*.").replace("ops.gw.", "ops.*."))
        .collect();
    // The verdict's own assertions, judged in every run.
    ids.extend(
        [
            "ops.*.accepted",
            "records_explained",
            "records_match_driver",
            "irqs_match_completions",
            "bounces_match_driver",
            "data_before_done",
        ]
        .map(String::from),
    );
    let source = include_str!("tests.rs");
    let scenarios = crate::scenario::scenarios_dir();
    let mut problems = vec![];
    for id in &ids {
        match TWINS.iter().find(|(t, _)| t == id) {
            None => problems.push(format!("{id}: no twin")),
            Some((_, Twin::Unit(test))) => {
                if !source.contains(&format!("fn {test}()")) {
                    problems.push(format!("{id}: no unit test {test}"));
                }
            }
            Some((_, Twin::Scenario(stem))) => {
                let path = scenarios.join(format!("{stem}.yaml"));
                match crate::scenario::load(&path) {
                    Ok(t)
                        if t.expect_failure
                            .as_ref()
                            .is_some_and(|f| id_matches(&f.assertion.value, id)) => {}
                    Ok(_) => problems.push(format!("{id}: {stem} does not expect it to fail")),
                    Err(e) => problems.push(format!("{id}: {e}")),
                }
            }
        }
    }
    for (t, _) in TWINS {
        if !ids.iter().any(|id| id == t) {
            problems.push(format!("{t}: listed as a twin but not an assertion id"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
