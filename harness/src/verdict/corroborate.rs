//! The device's records checked against the driver's own account of each op.
//!
//! The device writes down what it was given and what it did; a device that
//! misreports (or a record that was lost) would otherwise be believed. The
//! dom0 driver independently reports, per op, the bus address of every
//! segment, the transfer's length, the descriptor list's address, and how
//! many completion interrupts it handled: each record must agree with that.
//! Likewise dom0's bounce tracepoint is held to the driver's addresses, and
//! the device's completion to the data the driver found when it came.

use super::join::Access;
use super::{hex, AssertionResult, Status};
use crate::scenario::{DirCfg, Dom0ModeCfg, IommuCfg, OpKindCfg, Scenario, Xen};
use pvhdma_contract::limits::DESCRIPTOR_SIZE;
use pvhdma_contract::markers::BOUNCE_TRACEPOINT;
use pvhdma_contract::record::{AccessKind, AccessOutcome};
use pvhdma_contract::wire::{OpKind, OpResult, Summary};
use std::collections::{BTreeMap, BTreeSet};

/// `records_match_driver`: for every op the driver programmed, the device's
/// records are exactly the driver's segments, in order, with their lengths
/// (and for sg, one descriptor read of the driver's list). An op with a
/// refused access is held only to "every record lies inside a segment".
pub fn records_match_driver(acc: &[Access<'_>]) -> Option<AssertionResult> {
    let mut by_op: BTreeMap<(usize, u32, u32), (&OpResult, Vec<&Access<'_>>)> = BTreeMap::new();
    for a in acc {
        if let Some(op) = a.op {
            by_op
                .entry((a.device, op.index, op.tag))
                .or_insert((op, vec![]))
                .1
                .push(a);
        }
    }
    if by_op.is_empty() {
        return None;
    }
    let mut checked = 0usize;
    for (op, recs) in by_op.values() {
        checked += recs.len();
        if let Some(why) = disagreement(op, recs) {
            return Some(result(Status::Fail, why));
        }
    }
    Some(result(
        Status::Pass,
        format!("{checked} records of {} ops agree with the driver", by_op.len()),
    ))
}

fn result(status: Status, detail: String) -> AssertionResult {
    AssertionResult {
        id: "records_match_driver".into(),
        status,
        expected: "each device record to be a segment the driver mapped, with its length".into(),
        detail,
    }
}

/// The driver's segments of one op: (bus address, length).
fn segments(op: &OpResult) -> Vec<(u64, u64)> {
    let n = op.dma_addrs.len() as u64;
    if n == 0 {
        return vec![];
    }
    let each = op.len / n;
    op.dma_addrs.iter().map(|&a| (a, each)).collect()
}

fn disagreement(op: &OpResult, recs: &[&Access<'_>]) -> Option<String> {
    let who = format!("result #{} (tag {}, op \"{}\")", op.index, op.tag, op.name);
    let segs = segments(op);
    let mut data: Vec<&Access<'_>> = recs
        .iter()
        .copied()
        .filter(|a| a.record.kind == AccessKind::Data)
        .collect();
    data.sort_by_key(|a| a.record.seq);
    let faulted = recs.iter().any(|a| a.record.outcome != AccessOutcome::Ok);
    for a in &data {
        let (b, l) = (a.record.bus_addr, a.record.len);
        let inside = segs
            .iter()
            .any(|&(s, n)| b >= s && b.saturating_add(l) <= s.saturating_add(n));
        if !inside && op.kind != OpKind::Raw {
            return Some(format!(
                "{who}: the device recorded bus {} len {l:#x}, outside every segment the driver mapped {}",
                hex(b),
                show(&segs)
            ));
        }
    }
    if !faulted {
        let seen: Vec<(u64, u64)> = data.iter().map(|a| (a.record.bus_addr, a.record.len)).collect();
        if seen != segs {
            return Some(format!(
                "{who}: the driver mapped {}, the device recorded {}",
                show(&segs),
                show(&seen)
            ));
        }
    }
    if op.kind == OpKind::Sg {
        let want = (op.desc_addr.unwrap_or(0), segs.len() as u64 * DESCRIPTOR_SIZE);
        let desc: Vec<(u64, u64)> = recs
            .iter()
            .filter(|a| a.record.kind == AccessKind::Descriptor)
            .map(|a| (a.record.bus_addr, a.record.len))
            .collect();
        if desc != [want] {
            return Some(format!(
                "{who}: the driver's descriptor list is {}, the device recorded {}",
                show(&[want]),
                show(&desc)
            ));
        }
    }
    None
}

fn show(v: &[(u64, u64)]) -> String {
    let items: Vec<String> = v.iter().take(4).map(|(a, l)| format!("{}+{l:#x}", hex(*a))).collect();
    let more = if v.len() > 4 {
        format!(" and {} more", v.len() - 4)
    } else {
        String::new()
    };
    format!("[{}{more}]", items.join(", "))
}

/// Interrupts the driver may see beyond one per op (see below).
const SPURIOUS_AT_SETUP: u32 = 1;

/// `irqs_match_completions`: each op the driver programmed raises at most one
/// completion interrupt, so the driver's interrupt count per device is at
/// most its programmed ops, plus one: in about one run in three the driver
/// handles one interrupt more than the device raised (the device's log shows
/// one `interrupt raised` per op), which fits an interrupt left pending when
/// MSI is set up. Late interrupts stay within that bound; a device that
/// signals twice per completion does not, from its second op on.
pub fn irqs_match_completions(results: &[OpResult], summary: Option<&Summary>) -> Option<AssertionResult> {
    let s = summary?;
    let mut worst = None;
    for (i, d) in s.devices.iter().enumerate() {
        let programmed = results
            .iter()
            .filter(|r| r.device as usize == i && r.device_seq != 0)
            .count() as u32;
        if d.irq_count > programmed + SPURIOUS_AT_SETUP {
            worst = Some(format!(
                "{} handled {} completion interrupts for {programmed} programmed ops",
                d.name, d.irq_count
            ));
            break;
        }
    }
    if s.devices.is_empty() {
        return None;
    }
    Some(AssertionResult {
        id: "irqs_match_completions".into(),
        status: if worst.is_some() { Status::Fail } else { Status::Pass },
        expected: "at most one completion interrupt per programmed op (and one at setup)".into(),
        detail: worst.unwrap_or_else(|| format!("{} devices checked", s.devices.len())),
    })
}

/// How dom0's DMA API turns a buffer's physical address into the bus
/// address it hands the device; it decides what "bus != phys" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaPath {
    /// dma-direct, bus = phys unless swiotlb bounced the buffer: a PVH dom0
    /// (Xen's IOMMU is invisible to it), or Linux without Xen and without
    /// an IOMMU of its own (none, passthrough or turned off).
    Direct,
    /// bus != phys by design, bounced or not: a PV dom0 (swiotlb-xen hands
    /// out machine addresses), or Linux owning the IOMMU (dma-iommu IOVAs).
    Translated,
}

impl DmaPath {
    pub fn of(s: &Scenario) -> Self {
        match &s.xen {
            Xen::Boot(x) if x.dom0 == Dom0ModeCfg::Pvh => DmaPath::Direct,
            Xen::Boot(_) => DmaPath::Translated,
            Xen::None => {
                let off = ["iommu=pt", "iommu=off", "intel_iommu=off", "amd_iommu=off"];
                let given = |w: &&str| s.dom0.cmdline.iter().any(|c| c == w);
                if s.machine.iommu == IommuCfg::None || off.iter().any(given) {
                    DmaPath::Direct
                } else {
                    DmaPath::Translated
                }
            }
        }
    }
}

/// What the always-judged checks need to know of the scenario.
#[derive(Debug, Clone)]
pub struct Scope {
    pub dma_path: DmaPath,
    /// Ops whose device writes memory (`dir: from_device`).
    pub from_device: BTreeSet<String>,
}

impl Scope {
    pub fn of(s: &Scenario) -> Self {
        Scope {
            dma_path: DmaPath::of(s),
            from_device: s
                .workload
                .iter()
                .filter(|o| o.dir == DirCfg::FromDevice && o.kind != OpKindCfg::NetTftp)
                .map(|o| o.name.value.clone())
                .collect(),
        }
    }
}

/// The ops the driver mapped and ran through the DMA API: each has a bus
/// and a physical address per segment.
fn mapped_ops(results: &[OpResult]) -> impl Iterator<Item = &OpResult> {
    results.iter().filter(|r| {
        matches!(r.kind, OpKind::Coherent | OpKind::Single | OpKind::Sg)
            && !r.map_error
            && r.refused.is_none()
            && !r.dma_addrs.is_empty()
            && r.dma_addrs.len() == r.phys_addrs.len()
    })
}

/// `bounces_match_driver`: two witnesses of bouncing, op by op. dom0's
/// `swiotlb_bounced` tracepoint counts the bounces during the op; the
/// driver's own addresses count the segments whose bus address differs from
/// the buffer's physical address. On the direct path only a bounce makes
/// them differ, and each bounced segment is one event, so the counts must be
/// equal. Judged only there (elsewhere bus != phys always) and only when the
/// tracepoint ran.
pub fn bounces_match_driver(results: &[OpResult], summary: Option<&Summary>, scope: &Scope) -> Option<AssertionResult> {
    if scope.dma_path != DmaPath::Direct {
        return None;
    }
    let s = summary?;
    if !s.tracepoints.iter().any(|t| t == BOUNCE_TRACEPOINT) {
        return None;
    }
    let ops: Vec<&OpResult> = mapped_ops(results).collect();
    if ops.is_empty() {
        return None;
    }
    let mut bounced = 0u64;
    for r in &ops {
        let moved: Vec<(u64, u64)> = r
            .dma_addrs
            .iter()
            .zip(&r.phys_addrs)
            .filter(|(d, p)| d != p)
            .map(|(d, p)| (*d, *p))
            .collect();
        bounced += moved.len() as u64;
        if moved.len() as u64 != r.bounces {
            let first = moved
                .first()
                .map(|(d, p)| format!(" (first: bus {} for phys {})", hex(*d), hex(*p)))
                .unwrap_or_default();
            return Some(bounce_result(
                Status::Fail,
                format!(
                    "result #{} (tag {}, op \"{}\"): the driver's addresses show {} of {} segments bounced{first}, \
                     the {BOUNCE_TRACEPOINT} tracepoint counted {}",
                    r.index,
                    r.tag,
                    r.name,
                    moved.len(),
                    r.dma_addrs.len(),
                    r.bounces
                ),
            ));
        }
    }
    Some(bounce_result(
        Status::Pass,
        format!(
            "{} ops: the driver's addresses and the tracepoint agree on each ({bounced} bounced segments)",
            ops.len()
        ),
    ))
}

fn bounce_result(status: Status, detail: String) -> AssertionResult {
    AssertionResult {
        id: "bounces_match_driver".into(),
        status,
        expected: "per op, as many segments with bus != phys (the driver) as swiotlb bounces (the tracepoint)".into(),
        detail,
    }
}

/// `data_before_done`: a completion means the data is in memory. The driver
/// looks at a from-device buffer as soon as it sees DONE, before its final
/// comparison; data missing then but intact later arrived after the device
/// said it was done, which the final comparison alone cannot see.
pub fn data_before_done(results: &[OpResult], scope: &Scope) -> Option<AssertionResult> {
    let looked: Vec<&OpResult> = mapped_ops(results)
        .filter(|r| scope.from_device.contains(&r.name) && r.device_error == 0 && r.intact)
        .collect();
    if looked.is_empty() {
        return None;
    }
    let late: Vec<&&OpResult> = looked.iter().filter(|r| r.mismatch_at_done).collect();
    let (status, detail) = match late.first() {
        None => (
            Status::Pass,
            format!("{} from-device results had their data in memory at DONE", looked.len()),
        ),
        Some(r) => (
            Status::Fail,
            format!(
                "result #{} (tag {}, op \"{}\") was intact in the end, but its buffer still differed from the \
                 pattern when the driver saw DONE ({} of {} such results)",
                r.index,
                r.tag,
                r.name,
                late.len(),
                looked.len()
            ),
        ),
    };
    Some(AssertionResult {
        id: "data_before_done".into(),
        status,
        expected: "a from-device op's data to be in memory when the device reports DONE".into(),
        detail,
    })
}
