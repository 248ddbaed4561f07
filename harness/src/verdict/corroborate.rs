//! The device's records checked against the driver's own account of each op.
//!
//! The device writes down what it was given and what it did; a device that
//! misreports (or a record that was lost) would otherwise be believed. The
//! dom0 driver independently reports, per op, the bus address of every
//! segment, the transfer's length, the descriptor list's address, and how
//! many completion interrupts it handled: each record must agree with that.

use super::join::Access;
use super::{hex, AssertionResult, Status};
use pvhdma_contract::limits::DESCRIPTOR_SIZE;
use pvhdma_contract::record::{AccessKind, AccessOutcome};
use pvhdma_contract::wire::{OpKind, OpResult, Summary};
use std::collections::BTreeMap;

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
