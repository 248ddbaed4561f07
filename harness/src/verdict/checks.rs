//! One function per assertion. Each returns pass or fail with a message that
//! names the record (or result) that broke it.

use super::corroborate::Scope;
use super::join::{of_outcome, Access, TracedPiece, PAGE};
use super::{hex, AssertionResult, Status};
use crate::outcome::{GuestPayload, RunOutcome, TraceEntry};
use crate::scenario::{parse_bdf, BootExpect, Check, Count, Expect, OpCheck, Pattern, PoolState};
use pvhdma_contract::markers::BOUNCE_TRACEPOINT as BOUNCE_EVENT;
use pvhdma_contract::record::{AccessKind, AccessOutcome};
use pvhdma_contract::wire::{CheckLine, GuestSees, OpKind, OpResult, Range};

/// What `guest` said after `prefix` on its own console, as dom0 relayed it,
/// newest first.
fn guest_said<'c>(console: &'c str, guest: &str, prefix: &'c str) -> impl Iterator<Item = &'c str> + 'c {
    let relay = format!("{}{guest} ", pvhdma_contract::markers::guest::RELAY);
    console
        .lines()
        .rev()
        .filter(move |l| l.contains(&relay))
        .filter_map(move |l| l.find(prefix).map(|i| l[i + prefix.len()..].trim_end()))
}

/// dom0's kernel WARN/BUG/oops lines on the console, as message text:
/// Xen's own lines and those relayed from guests are left out, and the
/// printk timestamp is cut, so they read as the agent reports them.
fn console_warnings(console: &str) -> impl Iterator<Item = &str> {
    console
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("(XEN)") && !l.contains(pvhdma_contract::markers::guest::MARK))
        .map(|l| match l.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((stamp, text)) if stamp.trim().parse::<f64>().is_ok() => text.trim_start(),
            _ => l,
        })
        .filter(|t| pvhdma_contract::markers::is_kernel_warning(t))
}

/// `record seq 3 (...) at bus 0x30_0000 went to [first, last]`.
fn went_to(a: &Access<'_>, first: u64, last: u64) -> String {
    format!(
        "{} at bus {} went to [{}, {}]",
        a.describe(),
        hex(a.record.bus_addr),
        hex(first),
        hex(last)
    )
}

/// What a guest found in op `op`'s pages after dom0 unmapped them.
pub(crate) fn guest_check(console: &str, guest: &str, op: &str) -> Option<GuestSees> {
    guest_said(console, guest, pvhdma_contract::markers::guest::CHECK_PREFIX)
        .filter_map(|l| serde_json::from_str::<CheckLine>(l).ok())
        .find(|c| c.op == op)
        .map(|c| c.sees)
}

/// How a guest's data is judged: which host-side file, which report line
/// and which of its fields is the guest's own word, and the words used.
struct GuestData {
    prefix: &'static str,
    field: &'static str,

    file: &'static str,
    all_intact: &'static str,
    some_lost: &'static str,
    nothing: &'static str,
    no_line: &'static str,
    disagree: &'static str,
    /// The dom0 backend whose counters are the third witness.
    backend: &'static str,
}

/// A dom0 backend's counters as a witness of guest data: whether they
/// cover the payload (`counts`: enough, and what they say; `None` when dom0
/// reported none, which never holds), and the words the verdict gives them.
fn backend_witness(counts: Option<(bool, String)>, backend: &str) -> (bool, String) {
    match counts {
        Some((true, said)) => (true, format!("; {said}")),
        Some((false, said)) => (false, format!("; {said}, short of it")),
        None => (false, format!("; dom0 reported no {backend} counters")),
    }
}

impl GuestData {
    const NET: GuestData = GuestData {
        prefix: pvhdma_contract::markers::guest::NET_PREFIX,
        field: "acked",
        file: "",
        all_intact: "every guest's payload arrived intact",
        some_lost: "some guest's payload is missing, short or wrong",
        nothing: "no guest has `net`: nothing was sent",
        no_line: "no PVHDMA-GUEST-NET line",
        disagree: ", but the file and the guest's acknowledgement disagree",
        backend: "netback",
    };
    const DISK: GuestData = GuestData {
        prefix: pvhdma_contract::markers::guest::DISK_PREFIX,
        field: "intact",
        file: "image ",
        all_intact: "every guest's disk write is intact in the image and in the guest's read-back",
        some_lost: "some guest's disk write is missing or wrong, in the image and in the guest's read-back",
        nothing: "no guest has `disk`: nothing was written",
        no_line: "no PVHDMA-GUEST-DISK line",
        disagree: ", but the image and the guest's read-back disagree",
        backend: "blkback",
    };
}

struct Ctx<'a> {
    out: &'a RunOutcome,
    acc: Vec<Access<'a>>,
}

type Judged = (bool, String, String); // (held, expected, detail)

/// Evaluate every check of `expect`, boot first. When the run did not end as
/// the scenario expects, only `boot` and the log checks are judged: the rest
/// would fail merely as consequences and bury the real failure.
pub fn evaluate_all(expect: &Expect, out: &RunOutcome, scope: &Scope) -> Vec<AssertionResult> {
    let ctx = Ctx {
        out,
        acc: of_outcome(out),
    };
    let mut results = Vec::new();
    let mut boot_failed = None;
    for check in expect.checks() {
        let id = check.id();
        if let (Some(kind), false) = (
            &boot_failed,
            matches!(check, Check::LogContains(_) | Check::LogLacks(_)),
        ) {
            results.push(AssertionResult {
                id,
                status: Status::Skipped,
                expected: String::new(),
                detail: format!("not judged: the run ended with {kind}"),
            });
            continue;
        }
        let (held, expected, detail) = ctx.judge(&check);
        if let (Check::Boot(_), false) = (&check, held) {
            boot_failed = Some(out.end.kind);
        }
        results.push(AssertionResult {
            id,
            status: if held { Status::Pass } else { Status::Fail },
            expected,
            detail,
        });
    }
    results.extend(refused_ops(&out.results));
    // Only a run that finished has a full account from the agent and the
    // driver to hold the records to.
    if out.end.is_finished() {
        results.extend(stray_records(&ctx.acc));
        results.extend(super::corroborate::records_match_driver(&ctx.acc));
        results.extend(super::corroborate::irqs_match_completions(
            &out.results,
            out.summary.as_ref(),
        ));
        results.extend(super::corroborate::bounces_match_driver(
            &out.results,
            out.summary.as_ref(),
            scope,
        ));
        results.extend(super::corroborate::data_before_done(&out.results, scope));
    }
    results
}

/// Device records that no result of the agent explains (a tag no op had):
/// per-op checks would drop them silently, so they fail on their own.
fn stray_records(acc: &[Access<'_>]) -> Option<AssertionResult> {
    let stray: Vec<&Access<'_>> = acc.iter().filter(|a| a.op.is_none()).collect();
    let first = stray.first()?;
    Some(AssertionResult {
        id: "records_explained".into(),
        status: Status::Fail,
        expected: "every device record to belong to an op the agent ran".into(),
        detail: format!("{} records match no result, first: {}", stray.len(), first.describe()),
    })
}

/// One failed `ops.NAME.accepted` per op that dom0 would not run, in dom0's
/// words: an op outside the driver's limits is a mistake in the scenario or
/// a drift between the parts, never a finding about DMA.
fn refused_ops(results: &[OpResult]) -> Vec<AssertionResult> {
    let mut seen = std::collections::BTreeSet::new();
    results
        .iter()
        .filter_map(|r| {
            let why = r.refused.as_ref()?;
            seen.insert(r.name.as_str()).then(|| AssertionResult {
                id: format!("ops.{}.accepted", r.name),
                status: Status::Fail,
                expected: "dom0 to run the op".into(),
                detail: format!("dom0 refused the op: {why}"),
            })
        })
        .collect()
}

fn count_judged(c: Count, n: u64, what: &str, extra: String) -> Judged {
    let sep = if extra.is_empty() { "" } else { "; " };
    (c.holds(n), format!("{c} {what}"), format!("saw {n}{sep}{extra}"))
}

fn in_range(r: &Range, addr: u64, len: u64) -> bool {
    addr >= r.start && addr.saturating_add(len.max(1)) <= r.end
}

impl<'a> Ctx<'a> {
    fn judge(&self, check: &Check<'_>) -> Judged {
        match check {
            Check::Boot(b) => self.boot(b),
            Check::DeviceAddrsBelow(lim) => self.addrs_below(*lim, self.acc.iter().collect()),
            Check::DeviceAddrsAtLeastOne => {
                let n = self.acc.iter().filter(|a| a.ok()).count();
                let total = self.acc.len();
                (
                    n > 0,
                    "at least one successful device access".into(),
                    format!("saw {n} of {total} records ok"),
                )
            }
            Check::TranslatedSomeAtOrAbove(lim) => self.translated_some_at_or_above(*lim),
            Check::TranslatedAllBelow(lim) => self.translated_all_below(*lim),
            Check::TranslatedEveryPage => self.every_page(),
            Check::BuffersScattered(want) => self.buffers_scattered(*want),
            Check::TranslationsAgree(want) => self.translations_agree(*want),
            Check::DataIntact(want) => self.data_intact(*want, self.out.results.iter().collect()),
            Check::IommuFaults(c) => self.iommu_faults(*c, self.acc.iter().collect()),
            Check::Bounces(c) => self.bounces(*c),
            Check::InSwiotlb(want) => self.in_swiotlb(*want, |a| self.is_streaming(a)),
            Check::SwiotlbPool(want) => self.swiotlb_pool(*want),
            Check::MappingErrors(c) => {
                let errs: Vec<&OpResult> = self.out.results.iter().filter(|r| r.map_error).collect();
                let first = errs
                    .first()
                    .map(|r| format!("first: {}", describe_result(r)))
                    .unwrap_or_default();
                count_judged(*c, errs.len() as u64, "mapping errors", first)
            }
            Check::XenIommuMappings(want) => self.xen_iommu_mappings(*want),
            Check::DevicesBound(c) => match &self.out.summary {
                None => (
                    false,
                    format!("{c} recorder devices bound by the dom0 driver"),
                    "the agent printed no PVHDMA-SUMMARY".into(),
                ),
                Some(s) => {
                    let bdfs: Vec<&str> = s.devices.iter().map(|d| d.bdf.as_str()).collect();
                    count_judged(
                        *c,
                        bdfs.len() as u64,
                        "recorder devices bound by the dom0 driver",
                        format!("{bdfs:?}"),
                    )
                }
            },
            Check::TraceTranslations(dev, c) => {
                let n = self.trace_of(dev).count() as u64;
                let total = self.out.iommu_trace.iter().filter(|e| !e.fault).count();
                count_judged(
                    *c,
                    n,
                    &format!("IOMMU translations of {dev}"),
                    format!("{total} in the whole trace"),
                )
            }
            Check::TraceIovaBelow(dev, lim) => {
                let expected = format!("every iova of {dev} in the trace < {}", hex(*lim));
                let n = self.trace_of(dev).count();
                match self.trace_of(dev).find(|e| e.iova >= *lim) {
                    None => (true, expected, format!("{n} translations checked")),
                    Some(e) => (false, expected, format!("iova {} -> {}", hex(e.iova), hex(e.target))),
                }
            }
            Check::TraceSomeTargetAtOrAbove(dev, lim) => {
                let expected = format!("some translation of {dev} to >= {}", hex(*lim));
                match self.trace_of(dev).find(|e| e.target >= *lim) {
                    Some(e) => (true, expected, format!("iova {} -> {}", hex(e.iova), hex(e.target))),
                    None => {
                        let hi = self.trace_of(dev).map(|e| e.target).max();
                        let n = self.trace_of(dev).count();
                        let hi = hi.map(hex).unwrap_or_else(|| "none".into());
                        (false, expected, format!("{n} translations, highest target {hi}"))
                    }
                }
            }
            Check::GuestNetPayloadIntact(want) => self.guest_net_payload(*want),
            Check::GuestNetReceivedIntact(want) => self.guest_net_received(*want),
            Check::GuestDiskPayloadIntact(want) => self.guest_disk_payload(*want),
            Check::GuestDiskPersistent(want) => self.guest_disk_persistent(*want),
            Check::LogContains(ps) => self.log_contains(ps),
            Check::LogLacks(ps) => self.log_lacks(ps),
            Check::KernelWarnings(allow) => self.kernel_warnings(allow),
            Check::Op(name, c) => self.op(name, *c),
        }
    }

    /// The trace's successful translations for the PCI device `dev` (bus:dev.fn).
    fn trace_of<'b>(&'b self, dev: &str) -> impl Iterator<Item = &'b TraceEntry> + 'b {
        let want = parse_bdf(dev);
        self.out
            .iommu_trace
            .iter()
            .filter(move |e| !e.fault && want.is_some() && parse_bdf(&e.device) == want)
    }

    fn boot(&self, b: &BootExpect) -> Judged {
        let end = &self.out.end;
        let want = b.outcome();
        let mut expected = format!("the run to end with {want}");
        let shown = format!("it ended with {end}");
        if end.kind != want {
            return (false, expected, shown);
        }
        if let Some(p) = b.message() {
            expected.push_str(&format!(" matching {p}"));
            // A failed end is judged on its own text: the console also holds
            // Xen's and Linux's echoed command lines, which match almost anything.
            let (hay, where_) = if end.is_finished() {
                (self.out.console.as_str(), "the console")
            } else {
                (end.detail.as_str(), "the end's own text")
            };
            if !p.is_match(hay) {
                return (false, expected, format!("{shown}; {where_} does not match"));
            }
        }
        (true, expected, shown)
    }

    fn addrs_below(&self, lim: u64, acc: Vec<&Access<'_>>) -> Judged {
        let expected = format!("every bus address < {}", hex(lim));
        let bad: Vec<&&Access<'_>> = acc
            .iter()
            .filter(|a| a.record.bus_addr.saturating_add(a.record.len.max(1) - 1) >= lim)
            .collect();
        match bad.first() {
            None if acc.is_empty() => (false, expected, "no device record to judge".into()),
            None => (true, expected, format!("{} records checked", acc.len())),
            Some(a) => {
                let more = if bad.len() > 1 {
                    format!(" (and {} more records)", bad.len() - 1)
                } else {
                    String::new()
                };
                let detail = format!(
                    "{} had bus_addr {} len {:#x}{more}",
                    a.describe(),
                    hex(a.record.bus_addr),
                    a.record.len
                );
                (false, expected, detail)
            }
        }
    }

    /// Every translated span of every access: each byte the trace (or, for
    /// lack of it, the device) says went somewhere, page by page.
    fn spans(&self) -> Vec<(&Access<'_>, u64, u64)> {
        self.acc
            .iter()
            .flat_map(|a| a.translated_spans().into_iter().map(move |(t, last)| (a, t, last)))
            .collect()
    }

    fn translated_some_at_or_above(&self, lim: u64) -> Judged {
        let expected = format!("some access translated to >= {}", hex(lim));
        let spans = self.spans();
        if let Some((a, t, last)) = spans.iter().find(|(_, _, last)| *last >= lim) {
            return (true, expected, went_to(a, *t, *last));
        }
        let ok = self.acc.iter().filter(|a| a.ok()).count();
        let known = self.acc.iter().filter(|a| a.translated().is_some()).count();
        let highest = spans
            .iter()
            .map(|(_, _, last)| *last)
            .max()
            .map(hex)
            .unwrap_or_else(|| "none".into());
        let detail = format!(
            "{ok} successful accesses, {known} with a known translation, highest byte {highest}; {} trace entries",
            self.out.iommu_trace.len()
        );
        (false, expected, detail)
    }

    fn translated_all_below(&self, lim: u64) -> Judged {
        let expected = format!("every known translation < {}", hex(lim));
        let spans = self.spans();
        match spans.iter().find(|(_, _, last)| *last >= lim) {
            None if spans.is_empty() => (
                false,
                expected,
                "no access has a known translation (nothing to judge)".into(),
            ),
            None => (
                true,
                expected,
                format!("{} translated pieces checked, every byte", spans.len()),
            ),
            Some((a, t, last)) => (false, expected, went_to(a, *t, *last)),
        }
    }

    /// Every page of every successful access must have a line of its own in
    /// the trace (the join gives each page of each message the next unused
    /// line of the device's requester id that covers it).
    fn every_page(&self) -> Judged {
        let expected = "every page of every successful access translated by a trace line of its own".to_string();
        let ok: Vec<&Access<'_>> = self.acc.iter().filter(|a| a.ok()).collect();
        if ok.is_empty() {
            return (false, expected, "no successful access (nothing to judge)".into());
        }
        let pages: u64 = ok
            .iter()
            .map(|a| pages_spanned(a.record.decoded_addr, a.record.len))
            .sum();
        let multi = ok
            .iter()
            .filter(|a| pages_spanned(a.record.decoded_addr, a.record.len) > 1)
            .count();
        let gaps: Vec<(&&Access<'_>, u64)> = ok.iter().filter_map(|a| untranslated_at(a).map(|g| (a, g))).collect();
        match gaps.first() {
            None => (
                true,
                expected,
                format!(
                    "{} accesses ({multi} over more than one page), {pages} pages, each translated",
                    ok.len()
                ),
            ),
            Some((a, g)) => {
                let more = if gaps.len() > 1 {
                    format!(" (and {} more accesses)", gaps.len() - 1)
                } else {
                    String::new()
                };
                let why = if a.pieces.iter().any(|p| p.fault && p.iova <= *g && *g < p.end()) {
                    "the trace shows a fault there"
                } else {
                    "no line of the device's own requester id covers it"
                };
                (
                    false,
                    expected,
                    format!(
                        "{} (bus {} len {:#x}): page {} untranslated, {why}{more}",
                        a.describe(),
                        hex(a.record.decoded_addr),
                        a.record.len,
                        hex(g & !(PAGE - 1))
                    ),
                )
            }
        }
    }

    /// Multi-page successful accesses whose every page the trace translated,
    /// each with the first place its machine pages stop being contiguous.
    fn buffers_scattered(&self, want: bool) -> Judged {
        let judged: Vec<(&Access<'_>, Option<String>)> = self
            .acc
            .iter()
            .filter(|a| {
                a.ok() && pages_spanned(a.record.decoded_addr, a.record.len) > 1 && untranslated_at(a).is_none()
            })
            .map(|a| (a, machine_break(a)))
            .collect();
        let expected = if want {
            "some access over several pages to land on machine pages that are not contiguous"
        } else {
            "every access over several pages to land on contiguous machine memory"
        }
        .to_string();
        if judged.is_empty() {
            return (
                false,
                expected,
                "no successful access over more than one page with every page translated (nothing to judge)".into(),
            );
        }
        let scattered = judged.iter().find(|(_, b)| b.is_some());
        let n = judged.len();
        match (want, scattered) {
            (_, Some((a, b))) => {
                let detail = format!("{}: {}", a.describe(), b.as_deref().unwrap_or_default());
                (want, expected, detail)
            }
            (_, None) => (
                !want,
                expected,
                format!("{n} accesses over several pages, each on contiguous machine memory"),
            ),
        }
    }

    /// Two independent views of every successful access: QEMU's IOMMU trace
    /// (`target | (iova & mask)` of the covering IOTLB miss) and the device's
    /// DMA_MAP table (the map's fd offset + `iova - map_iova`, made
    /// guest-physical with the run's RAM layout). `true` needs both views for
    /// every such access, equal, and at least one access; `false` needs one
    /// access where both exist and differ.
    fn translations_agree(&self, want: bool) -> Judged {
        let ok: Vec<&Access<'_>> = self.acc.iter().filter(|a| a.ok()).collect();
        let differ = ok.iter().find_map(|a| match (a.device_target, a.trace_target) {
            (Some(d), Some(t)) if d != t => Some((a, d, t)),
            _ => None,
        });
        let missing = ok
            .iter()
            .find(|a| a.device_target.is_none() || a.trace_target.is_none());
        let expected = if want {
            "for every successful access, the device's DMA_MAP view and the IOMMU trace both give a translation, \
             the same one (and there is such an access)"
                .to_string()
        } else {
            "the device's DMA_MAP view and the IOMMU trace to disagree somewhere".to_string()
        };
        let n_differ = ok
            .iter()
            .filter(|a| matches!((a.device_target, a.trace_target), (Some(d), Some(t)) if d != t))
            .count();
        let n_missing = ok
            .iter()
            .filter(|a| a.device_target.is_none() || a.trace_target.is_none())
            .count();
        // Both counts always, so a twin can tell "the views differ" from "a
        // view is missing" (which a wrong layout alone never causes).
        let mut detail = if ok.is_empty() {
            "no successful access".to_string()
        } else {
            format!(
                "{} successful accesses: {n_differ} where the views differ, {n_missing} where a view is missing",
                ok.len()
            )
        };
        if let Some((a, d, t)) = differ {
            detail.push_str(&format!(
                "; first difference: {} at bus {}: DMA_MAP view says {}, trace says {}",
                a.describe(),
                hex(a.record.decoded_addr),
                hex(d),
                hex(t)
            ));
        }
        if let Some(a) = missing {
            detail.push_str(&format!(
                "; first missing: {} at bus {} has no translation from {}",
                a.describe(),
                hex(a.record.decoded_addr),
                match (a.device_target, a.trace_target) {
                    (None, None) => "either view",
                    (None, _) => "the DMA_MAP view (no fd-backed map covers it, or no RAM layout)",
                    _ => "the IOMMU trace (no IOTLB miss covers it)",
                }
            ));
        }
        let held = if want {
            !ok.is_empty() && differ.is_none() && missing.is_none()
        } else {
            differ.is_some()
        };
        (held, expected, detail)
    }

    fn data_intact(&self, want: bool, results: Vec<&OpResult>) -> Judged {
        // A refused mapping moved nothing (mapping_errors judges those), and
        // an op dom0 refused never ran (ops.NAME.accepted judges those).
        let moved: Vec<&&OpResult> = results.iter().filter(|r| !r.map_error && r.refused.is_none()).collect();
        let broken: Vec<&&&OpResult> = moved.iter().filter(|r| !r.intact).collect();
        if want {
            let expected = "every op that was mapped to move intact data".to_string();
            if moved.is_empty() {
                return (false, expected, "no op result moved data (nothing to judge)".into());
            }
            match broken.first() {
                None => (true, expected, format!("{} results intact", moved.len())),
                Some(r) => {
                    let more = if broken.len() > 1 {
                        format!(" (and {} more)", broken.len() - 1)
                    } else {
                        String::new()
                    };
                    (
                        false,
                        expected,
                        format!("{} was not intact: {}{more}", describe_result(r), why_not_intact(r)),
                    )
                }
            }
        } else {
            let expected = "some op's data not intact".to_string();
            match broken.first() {
                Some(r) => (
                    true,
                    expected,
                    format!("{} was not intact: {}", describe_result(r), why_not_intact(r)),
                ),
                None => (
                    false,
                    expected,
                    format!("all {} results that moved data were intact", moved.len()),
                ),
            }
        }
    }

    fn iommu_faults(&self, c: Count, acc: Vec<&Access<'_>>) -> Judged {
        let faults: Vec<&&Access<'_>> = acc
            .iter()
            .filter(|a| a.record.outcome == AccessOutcome::IommuFault)
            .collect();
        let traced = self.out.iommu_trace.iter().filter(|e| e.fault).count();
        let first = faults
            .first()
            .map(|a| format!("first: {} at bus {}; ", a.describe(), hex(a.record.decoded_addr)))
            .unwrap_or_default();
        count_judged(
            c,
            faults.len() as u64,
            "IOMMU-refused device accesses",
            format!("{first}{traced} faults in the IOMMU trace"),
        )
    }

    fn bounces(&self, c: Count) -> Judged {
        match &self.out.summary {
            None => (
                false,
                format!("{c} swiotlb bounces"),
                "the agent printed no PVHDMA-SUMMARY".into(),
            ),
            // A count of 0 from a tracer that never ran is no evidence.
            Some(s) if !s.tracepoints.iter().any(|t| t == BOUNCE_EVENT) => (
                false,
                format!("{c} swiotlb bounces"),
                format!(
                    "not measured: {BOUNCE_EVENT} was not enabled (enabled: {:?})",
                    s.tracepoints
                ),
            ),
            Some(s) => {
                let flagged = self.out.results.iter().filter(|r| r.bounced).count();
                count_judged(
                    c,
                    s.bounces,
                    "swiotlb bounces",
                    format!("{flagged} results flagged bounced"),
                )
            }
        }
    }

    /// Two views of dom0's pool, both dom0's own: the kernel log (swiotlb
    /// prints `software IO TLB: mapped [mem ...]` when it sets one up; its
    /// absence counts only in a log read from the first record) and
    /// swiotlb's slab count in debugfs. A view that cannot speak is named and
    /// left out; the claim needs one view for it and none against it.
    fn swiotlb_pool(&self, want: PoolState) -> Judged {
        let expected = match want {
            PoolState::Absent => "no swiotlb pool in dom0 (kernel log and debugfs)",
            PoolState::Present => "a swiotlb pool in dom0 (kernel log and debugfs)",
        }
        .to_string();
        let Some(s) = &self.out.summary else {
            return (false, expected, "the agent printed no PVHDMA-SUMMARY".into());
        };
        let (log, log_says) = match (s.swiotlb, s.kmsg_from_start) {
            (Some(r), _) => (
                Some(PoolState::Present),
                format!("kernel log: pool mapped at [{}, {})", hex(r.start), hex(r.end)),
            ),
            (None, true) => (
                Some(PoolState::Absent),
                "kernel log (read from its first record): no `software IO TLB: mapped` line".to_string(),
            ),
            (None, false) => (
                None,
                "kernel log: no pool line, but not read from its first record (says nothing)".to_string(),
            ),
        };
        let (fs, fs_says) = match s.swiotlb_nslabs {
            Some(0) => (Some(PoolState::Absent), "debugfs: no slab count (no pool)".to_string()),
            Some(n) => (Some(PoolState::Present), format!("debugfs: {n} slabs")),
            None => (None, "debugfs: not available (says nothing)".to_string()),
        };
        let views = [log, fs];
        let held = views.contains(&Some(want)) && views.iter().flatten().all(|v| *v == want);
        let mut detail = format!("{log_says}; {fs_says}");
        if log.is_some() && fs.is_some() && log != fs {
            detail.push_str(" (the two views disagree)");
        }
        (held, expected, detail)
    }

    fn kernel_warnings(&self, allow: &[Pattern]) -> Judged {
        let expected = if allow.is_empty() {
            "no kernel warnings in dom0".to_string()
        } else {
            format!("no kernel warnings in dom0 but those matching {}", join(allow))
        };
        let Some(s) = &self.out.summary else {
            return (false, expected, "the agent printed no PVHDMA-SUMMARY".into());
        };
        let allowed = |w: &str| allow.iter().any(|p| p.is_match(w));
        let agent: Vec<&str> = s
            .kernel_warnings
            .iter()
            .map(String::as_str)
            .filter(|w| !allowed(w))
            .collect();
        let console: Vec<&str> = console_warnings(&self.out.console).filter(|w| !allowed(w)).collect();
        if let Some(w) = agent.first() {
            return (
                false,
                expected,
                format!("{} unallowed in dom0's log, first: {w}", agent.len()),
            );
        }
        if let Some(w) = console.first() {
            return (
                false,
                expected,
                format!(
                    "{} unallowed on dom0's console that the agent did not report, first: {w}",
                    console.len()
                ),
            );
        }
        // The agent's "none" covers the whole run only if it read the log
        // from its first record; otherwise the console speaks alone.
        if !s.kmsg_from_start {
            return (
                false,
                expected,
                "none on the console, but the agent's read of dom0's log did not start at its first record".into(),
            );
        }
        (
            true,
            expected,
            format!(
                "{} in dom0's log and {} on the console, all allowed",
                s.kernel_warnings.len(),
                console_warnings(&self.out.console).count()
            ),
        )
    }

    fn is_streaming(&self, a: &Access<'_>) -> bool {
        a.record.kind == AccessKind::Data && a.op.is_some_and(|o| matches!(o.kind, OpKind::Single | OpKind::Sg))
    }

    fn in_swiotlb(&self, want: bool, select: impl Fn(&Access<'_>) -> bool) -> Judged {
        let which = if want { "within" } else { "outside" };
        let Some(pool) = self.out.summary.as_ref().and_then(|s| s.swiotlb) else {
            return (
                false,
                format!("data accesses {which} the swiotlb pool"),
                "dom0 reported no swiotlb pool".into(),
            );
        };
        let expected = format!(
            "data accesses {which} the swiotlb pool [{}, {})",
            hex(pool.start),
            hex(pool.end)
        );
        let chosen: Vec<&Access<'_>> = self.acc.iter().filter(|a| select(a)).collect();
        if chosen.is_empty() {
            return (false, expected, "no data access to judge".into());
        }
        match chosen
            .iter()
            .find(|a| in_range(&pool, a.record.bus_addr, a.record.len) != want)
        {
            None => (true, expected, format!("{} accesses checked", chosen.len())),
            Some(a) => (
                false,
                expected,
                format!(
                    "{} had bus_addr {} len {:#x}",
                    a.describe(),
                    hex(a.record.bus_addr),
                    a.record.len
                ),
            ),
        }
    }

    fn guest_net_payload(&self, want: bool) -> Judged {
        self.guest_data(&GuestData::NET, &self.out.guest_payloads, want, &|g| {
            let rx = self.vif(&g.guest)?.rx_bytes?;
            Some((
                rx >= g.expected,
                format!("netback took {rx} bytes from the guest ({} of payload)", g.expected),
            ))
        })
    }

    /// Each fetching guest's own report of what it holds (length and
    /// FNV-1a) against the file the run served it. true needs every guest
    /// whole and netback's count of bytes it gave the guest to cover the
    /// file (so the bytes came in through the vif); false needs some guest
    /// that reported a fetch that is not whole. A missing report counts for
    /// neither claim.
    fn guest_net_received(&self, want: bool) -> Judged {
        let expected = if want {
            "every guest holds the whole file it fetched, byte for byte"
        } else {
            "some guest's fetch is missing, short or wrong"
        }
        .to_string();
        if self.out.guest_served.is_empty() {
            return (false, expected, "no guest has `net.receive`: nothing was served".into());
        }
        let (mut all_whole, mut some_short) = (true, false);
        let detail = self
            .out
            .guest_served
            .iter()
            .map(|s| {
                let got = guest_said(&self.out.console, &s.guest, GuestData::NET.prefix)
                    .find_map(|l| serde_json::from_str::<pvhdma_contract::wire::NetLine>(l).ok())
                    .and_then(|l| l.received);
                let Some(got) = got else {
                    all_whole = false;
                    return format!("{}: no PVHDMA-GUEST-NET line with what it received", s.guest);
                };
                let whole = got.bytes == s.bytes && got.fnv1a == s.fnv1a;
                some_short |= !whole;
                all_whole &= whole;
                let mut text = format!(
                    "{}: got {} of {} bytes, FNV-1a {:#010x} against {:#010x}",
                    s.guest, got.bytes, s.bytes, got.fnv1a, s.fnv1a
                );
                if let Some(e) = &got.error {
                    text += &format!(" ({e})");
                }
                let tx = self.vif(&s.guest).and_then(|v| v.tx_bytes);
                let counts = tx.map(|tx| (tx >= s.bytes, format!("netback gave the guest {tx} bytes")));
                let (enough, said) = backend_witness(counts, GuestData::NET.backend);
                all_whole &= enough;
                text + &said
            })
            .collect::<Vec<_>>()
            .join("; ");
        (if want { all_whole } else { some_short }, expected, detail)
    }

    fn vif(&self, guest: &str) -> Option<&pvhdma_contract::wire::VifFacts> {
        self.out.summary.as_ref()?.vifs.iter().find(|v| v.guest == guest)
    }

    fn guest_disk_payload(&self, want: bool) -> Judged {
        self.guest_data(&GuestData::DISK, &self.out.guest_disks, want, &|g| {
            let v = self.vbd(&g.guest)?;
            let (w, r) = (v.wr_sect?, v.rd_sect?);
            let need = g.expected.div_ceil(512);
            Some((
                w >= need && r >= need,
                format!("blkback wrote {w} and read {r} sectors ({need} each way needed)"),
            ))
        })
    }

    fn vbd(&self, guest: &str) -> Option<&pvhdma_contract::wire::VbdFacts> {
        self.out.summary.as_ref()?.vbds.iter().find(|v| v.guest == guest)
    }

    /// blkfront's own line in the guest against the xenstore features that
    /// dom0's blkback decided by: both must be there and agree with `want`.
    fn guest_disk_persistent(&self, want: bool) -> Judged {
        let used = |b: bool| if b { "used" } else { "did not use" };
        let expected = format!("blkback {} persistent grants for every guest's vbd", used(want));
        if self.out.guest_disks.is_empty() {
            return (false, expected, GuestData::DISK.nothing.into());
        }
        let mut held = true;
        let detail = self
            .out
            .guest_disks
            .iter()
            .map(|g| {
                let guest_word = guest_said(&self.out.console, &g.guest, GuestData::DISK.prefix)
                    .next()
                    .and_then(|l| serde_json::from_str::<pvhdma_contract::wire::DiskLine>(l).ok())
                    .and_then(|d| d.persistent);
                let dom0_word = self.vbd(&g.guest).and_then(|v| v.persistent);
                let say = |w: Option<bool>| w.map_or("missing", used);
                held &= guest_word == Some(want) && dom0_word == Some(want);
                format!(
                    "{}: blkfront's own line: {}; dom0's xenstore: {}",
                    g.guest,
                    say(guest_word),
                    say(dom0_word)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        (held, expected, detail)
    }

    /// Two witnesses of one guest's data: the host-side file (what QEMU's
    /// network forward wrote, or the disk image after the run) and the
    /// guest's own word in its report line. A claim holds only when they
    /// agree, and a missing word fails it: a file alone is one witness.
    ///
    /// An intact claim has a third witness on dom0's side, `backend`: the
    /// backend's own counters must show at least the payload went through
    /// it (so the data took the path under test, not another), as
    /// `(enough, what they say)`; `None` when dom0 reported none.
    fn guest_data(
        &self,
        what: &GuestData,
        files: &[GuestPayload],
        want: bool,
        backend: &dyn Fn(&GuestPayload) -> Option<(bool, String)>,
    ) -> Judged {
        let expected = if want { what.all_intact } else { what.some_lost }.to_string();
        if files.is_empty() {
            return (false, expected, what.nothing.into());
        }
        let mut held = true;
        let detail = files
            .iter()
            .map(|g| {
                let how = match g.mismatch_offset {
                    None => "intact".to_string(),
                    Some(o) if o == g.received => format!("ends at {o}"),
                    Some(o) => format!("first wrong byte at {o}"),
                };
                let line = guest_said(&self.out.console, &g.guest, what.prefix).next();
                let guest_says = line
                    .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .and_then(|v| v[what.field].as_bool());
                let mut text = format!(
                    "{}: {}{} of {} bytes, {how} (the guest: {})",
                    g.guest,
                    what.file,
                    g.received,
                    g.expected,
                    line.unwrap_or(what.no_line)
                );
                match guest_says {
                    None => {
                        held = false;
                        text += ", so the guest's own word is missing";
                    }
                    Some(w) if w != g.intact() => {
                        held = false;
                        text += what.disagree;
                    }
                    _ => {}
                }
                if want {
                    let (enough, said) = backend_witness(backend(g), what.backend);
                    held &= enough;
                    text += &said;
                }
                text
            })
            .collect::<Vec<_>>()
            .join("; ");
        let all = files.iter().all(|g| g.intact());
        (held && all == want, expected, detail)
    }

    /// Xen's promise as dom0 read it, held to what the IOMMU did: when the
    /// flag says granted memory has IOMMU entries, the device's unbounced
    /// accesses to granted pages must show them, every page translated in
    /// the trace, and there must be such an access (a run whose granted
    /// pages all bounced or never mapped cannot bear the flag out).
    fn xen_iommu_mappings(&self, want: bool) -> Judged {
        let expected = format!("Xen's CPUID flag IOMMU_MAPPINGS = {want} in dom0");
        let flag = match &self.out.summary {
            None => return (false, expected, "the agent printed no PVHDMA-SUMMARY".into()),
            Some(s) => match s.xen_iommu_mappings {
                None => return (false, expected, "dom0 reported no Xen CPUID leaves".into()),
                Some(f) => f,
            },
        };
        if flag != want || !flag {
            return (flag == want, expected, format!("saw {flag}"));
        }
        let granted: Vec<&Access<'_>> = self
            .acc
            .iter()
            .filter(|a| a.ok() && a.op.is_some_and(|o| o.foreign.is_some() && !o.bounced))
            .collect();
        if granted.is_empty() {
            return (
                false,
                expected,
                "saw true, but no unbounced device access to a granted page reached memory: the trace cannot bear it out"
                    .into(),
            );
        }
        match granted.iter().find_map(|a| untranslated_at(a).map(|g| (a, g))) {
            Some((a, g)) => (
                false,
                expected,
                format!(
                    "saw true, but {} to a granted page has page {} without an IOMMU translation in the trace",
                    a.describe(),
                    hex(g & !(PAGE - 1))
                ),
            ),
            None => (
                true,
                expected,
                format!(
                    "saw true; {} unbounced accesses to granted pages, every page translated in the trace",
                    granted.len()
                ),
            ),
        }
    }

    /// Two witnesses of the same bytes: the guest's look at its pages after
    /// dom0 unmapped them, and dom0's own read of them through its mapping
    /// (`intact`). The guest sees the pattern exactly when dom0 read it.
    fn guest_sees(&self, name: &str, results: &[&OpResult], want: GuestSees) -> Judged {
        let expected = format!("guest_sees: {want}");
        let Some(r) = results.first() else {
            return (false, expected, format!("no result for op \"{name}\""));
        };
        let Some(guest) = r.foreign.as_ref().map(|f| f.guest.as_str()) else {
            return (false, expected, format!("op \"{name}\" ran on no guest's pages"));
        };
        let Some(sees) = guest_check(&self.out.console, guest, name) else {
            return (
                false,
                expected,
                format!("guest {guest} never reported on op \"{name}\" (no PVHDMA-GUEST-CHECK line)"),
            );
        };
        let dom0 = if r.intact {
            "read the pattern"
        } else {
            "did not read the pattern"
        };
        let detail = format!("guest {guest} sees {sees}; dom0 {dom0}");
        if (sees == GuestSees::Pattern) != r.intact {
            return (false, expected, format!("{detail}: the two disagree"));
        }
        (sees == want, expected, detail)
    }

    fn log_contains(&self, ps: &[Pattern]) -> Judged {
        let missing: Vec<String> = ps
            .iter()
            .filter(|p| !p.is_match(&self.out.console))
            .map(|p| p.to_string())
            .collect();
        let expected = format!("the console to match {}", join(ps));
        if missing.is_empty() {
            (true, expected, "all found".into())
        } else {
            (false, expected, format!("not found: {}", missing.join(", ")))
        }
    }

    fn log_lacks(&self, ps: &[Pattern]) -> Judged {
        let expected = format!("the console not to match {}", join(ps));
        for p in ps {
            if let Some(line) = self.out.console.lines().find(|l| p.is_match(l)) {
                return (false, expected, format!("{p} matched: {}", line.trim()));
            }
            if p.is_match(&self.out.console) {
                return (false, expected, format!("{p} matched across lines"));
            }
        }
        (true, expected, "none found".into())
    }

    fn op(&self, name: &str, c: OpCheck) -> Judged {
        let results: Vec<&OpResult> = self.out.results.iter().filter(|r| r.name == name).collect();
        let of_op = |a: &Access<'_>| a.op.is_some_and(|o| o.name == name);
        let per_result = |what: String, ok: &dyn Fn(&OpResult) -> bool, show: &dyn Fn(&OpResult) -> String| -> Judged {
            if results.is_empty() {
                return (false, what, format!("no result for op \"{name}\""));
            }
            match results.iter().find(|r| !ok(r)) {
                None => (true, what, format!("{} results checked", results.len())),
                Some(r) => (false, what, format!("{} had {}", describe_result(r), show(r))),
            }
        };
        match c {
            OpCheck::MapError(b) => per_result(format!("map_error: {b}"), &|r| r.map_error == b, &|r| {
                format!(
                    "map_error: {} (error: {:?}, dma_addrs {}, bounced: {})",
                    r.map_error,
                    r.error,
                    hexes(&r.dma_addrs),
                    r.bounced
                )
            }),
            OpCheck::Intact(b) => per_result(format!("intact: {b}"), &|r| r.intact == b, &|r| {
                format!("intact: {} (device_error {})", r.intact, r.device_error)
            }),
            OpCheck::DeviceError(n) => per_result(format!("device_error: {n}"), &|r| r.device_error == n, &|r| {
                format!("device_error: {}", r.device_error)
            }),
            OpCheck::Bounced(b) => per_result(format!("bounced: {b}"), &|r| r.bounced == b, &|r| {
                format!(
                    "bounced: {} (dma_addrs {}, phys_addrs {})",
                    r.bounced,
                    hexes(&r.dma_addrs),
                    hexes(&r.phys_addrs)
                )
            }),
            OpCheck::Error(b) => per_result(format!("error: {b}"), &|r| r.error.is_some() == b, &|r| {
                format!("error: {:?}", r.error)
            }),
            OpCheck::Irq(b) => per_result(format!("irq: {b}"), &|r| r.irq == b, &|r| format!("irq: {}", r.irq)),
            OpCheck::DeviceAddrsBelow(lim) => {
                if results.is_empty() {
                    return (
                        false,
                        format!("every bus address < {}", hex(lim)),
                        format!("no result for op \"{name}\""),
                    );
                }
                self.addrs_below(lim, self.acc.iter().filter(|a| of_op(a)).collect())
            }
            OpCheck::InSwiotlb(b) => self.in_swiotlb(b, |a| of_op(a) && a.record.kind == AccessKind::Data),
            OpCheck::IommuFaults(cnt) => {
                if results.is_empty() {
                    return (
                        false,
                        format!("{cnt} IOMMU-refused device accesses"),
                        format!("no result for op \"{name}\""),
                    );
                }
                self.iommu_faults(cnt, self.acc.iter().filter(|a| of_op(a)).collect())
            }
            OpCheck::GuestSees(want) => self.guest_sees(name, &results, want),
        }
    }
}

/// Every reason the driver's `intact` can be false, as the result shows it.
fn why_not_intact(r: &OpResult) -> String {
    let mut why = vec![];
    if let Some(e) = &r.error {
        why.push(format!("error {e:?}"));
    }
    if r.device_error != 0 {
        why.push(format!("device error {}", r.device_error));
    }
    // The NIC's fetch has no recorder registers to read.
    if r.kind != OpKind::NetTftp && r.device_status & pvhdma_contract::regs::status::DONE == 0 {
        why.push(format!("no DONE (status {:#x})", r.device_status));
    }
    if r.bytes_done as u64 != r.len {
        why.push(format!("{} of {} bytes done", r.bytes_done, r.len));
    }
    if let Some(off) = r.mismatch_offset {
        why.push(format!("data differs from the pattern at byte {off}"));
    }
    if r.checksum != r.expected_checksum {
        why.push(format!(
            "the device's checksum {} where the pattern gives {}",
            hex(r.checksum.into()),
            hex(r.expected_checksum.into())
        ));
    } else if !why.is_empty() {
        why.push("the device's checksum matches the pattern".into());
    }
    if why.is_empty() {
        why.push(match r.kind {
            OpKind::Raw => "a raw op has no buffer to compare".into(),
            _ => "the driver gave no reason".into(),
        });
    }
    why.join("; ")
}

/// 4 KiB pages that `[addr, addr + len)` touches.
fn pages_spanned(addr: u64, len: u64) -> u64 {
    let last = addr.saturating_add(len.max(1) - 1);
    last / PAGE - addr / PAGE + 1
}

/// The first address of `a`'s range that no translated piece covers.
fn untranslated_at(a: &Access<'_>) -> Option<u64> {
    let start = a.record.decoded_addr;
    let end = start.saturating_add(a.record.len.max(1));
    let mut done: Vec<(u64, u64)> = a
        .pieces
        .iter()
        .filter(|p| p.target.is_some())
        .map(|p| (p.iova, p.end()))
        .collect();
    done.sort_unstable();
    let mut cur = start;
    for (s, e) in done {
        if s > cur {
            break;
        }
        cur = cur.max(e);
    }
    (cur < end).then_some(cur)
}

/// Where `a`'s translated pieces, in bus order, stop following each other in
/// machine memory; `None` when they never do.
fn machine_break(a: &Access<'_>) -> Option<String> {
    let mut pieces: Vec<&TracedPiece> = a.pieces.iter().filter(|p| p.target.is_some()).collect();
    pieces.sort_by_key(|p| p.iova);
    pieces.windows(2).find_map(|w| {
        let (p, q) = (w[0], w[1]);
        let (tp, tq) = (p.target?, q.target?);
        (q.iova == p.end() && tq != tp + p.len).then(|| {
            format!(
                "bus {} went to {}, bus {} (the next byte) to {}, not {}",
                hex(p.iova),
                hex(tp),
                hex(q.iova),
                hex(tq),
                hex(tp + p.len)
            )
        })
    })
}

fn describe_result(r: &OpResult) -> String {
    format!("result #{} (tag {}, op \"{}\")", r.index, r.tag, r.name)
}

fn hexes(v: &[u64]) -> String {
    format!("[{}]", v.iter().map(|a| hex(*a)).collect::<Vec<_>>().join(", "))
}

fn join(ps: &[Pattern]) -> String {
    ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
}
