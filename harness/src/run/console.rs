//! The serial console: Xen's and dom0's output on one line stream, read live.
//!
//! `Scanner` is pure: it turns lines into events, so every failure kind the
//! harness names is unit-tested on real log excerpts without booting.

use crate::outcome::{EndKind, RunEnd};
use pvhdma_contract::markers::{AGENT_FAILED_PREFIX, BOOT_MARKER, DONE_MARKER, RESULT_PREFIX, SUMMARY_PREFIX};
use pvhdma_contract::wire::{OpResult, Summary, Workload};

/// What one wait on the console gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Line(String),
    /// The timer fired first; any partial line is kept for the next call.
    Tick,
    /// The console closed; a last unterminated line, if any.
    Eof(Option<String>),
}

/// Console lines, read while a timer keeps the watchdogs running.
///
/// `read_until` is cancel-safe only if its buffer survives the cancellation:
/// a partial line read before the timer wins stays in `buf` and the next call
/// continues it. Clearing it per call lost bytes from the middle of lines.
pub struct Lines<R> {
    reader: tokio::io::BufReader<R>,
    buf: Vec<u8>,
}

impl<R: tokio::io::AsyncRead + Unpin> Lines<R> {
    pub fn new(inner: R) -> Self {
        Self {
            reader: tokio::io::BufReader::new(inner),
            buf: Vec::new(),
        }
    }

    pub async fn next(&mut self, tick: &mut tokio::time::Interval) -> std::io::Result<Read> {
        use tokio::io::AsyncBufReadExt;
        let n = tokio::select! {
            r = self.reader.read_until(b'\n', &mut self.buf) => r?,
            _ = tick.tick() => return Ok(Read::Tick),
        };
        let text = String::from_utf8_lossy(&self.buf).trim_end_matches('\n').to_string();
        let had = !self.buf.is_empty();
        self.buf.clear();
        Ok(if n == 0 {
            Read::Eof(had.then_some(text))
        } else {
            Read::Line(text)
        })
    }
}

/// What a console line means to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    XenBanner,
    /// Xen built dom0 as PVH ("*** Building a PVH Dom0 ***").
    PvhDom0,
    /// Xen enabled DMA remapping ("I/O virtualisation enabled").
    IommuEnabled,
    /// Linux runs as a PVH guest ("Booting kernel on Xen PVH").
    LinuxPvh,
    /// dom0's init is up.
    Booted,
    Result(Box<OpResult>),
    Summary(Summary),
    Done,
    /// The agent gave up; the text says why.
    AgentFailed(String),
    /// A line announcing a fatal end; the run ends on it.
    Fatal(RunEnd),
    /// A line that could not be decoded although it carried our prefix.
    Garbled(String),
    /// dom0 about a guest, or a guest's own line that dom0 relayed.
    Guest(crate::guests::GuestEvent),
}

/// Line-by-line classifier, with the little state a Xen panic message and
/// the emulation's dom0 exception-entry faults need.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Inside Xen's panic box: the reason is on the lines between the stars.
    in_panic: Option<Vec<String>>,
    /// Xen dumped a dom0 vCPU's state (it does so on a triple fault).
    dom0_vcpu_dumped: bool,
    /// dom0's kernel overran its entry-trampoline stack.
    entry_stack_overrun: bool,
}

/// What a Linux panic's end says when dom0 first overran its
/// entry-trampoline stack: a fault taken while entering the kernel kept
/// faulting, the same emulation trouble as the triple fault (seen under
/// TCG while a guest was being built, with user code running in dom0).
pub const ENTRY_STACK_OVERRUN: &str = "after dom0 overran its entry-trampoline stack";

/// What the end says when Xen reset dom0 right after dumping its vCPU state
/// without its own "Triple fault" line: a triple fault whose line Xen's
/// rate limit for guest messages dropped (a guest's creation just printed
/// a few dozen of them).
pub const DUMPED_THEN_RESET: &str =
    "after Xen dumped dom0's vCPU state: a triple fault whose own line was rate-limited";

const XEN_PANIC: &str = "Panic on CPU";
const STARS: &str = "****************";

impl Scanner {
    /// Classify one line (without its newline). Some lines carry two meanings
    /// only in theory; the first match wins.
    pub fn line(&mut self, raw: &str) -> Option<Event> {
        let line = raw.trim_end_matches('\r');
        if let Some(reason) = self.in_panic.as_mut() {
            let body = line.trim_start_matches("(XEN)").trim();
            if body.starts_with(STARS) {
                if !reason.is_empty() {
                    let msg = reason.join(" ");
                    self.in_panic = None;
                    return Some(Event::Fatal(RunEnd::new(EndKind::XenPanic, msg)));
                }
            } else if !body.is_empty() {
                reason.push(body.to_string());
            }
            return None;
        }
        // First: a guest's own "Kernel panic" or agent line is not dom0's.
        if let Some(ev) = crate::guests::classify(line) {
            return Some(Event::Guest(ev));
        }
        if line.contains(RESULT_PREFIX) || line.contains(SUMMARY_PREFIX) {
            return Some(Self::agent_line(line).unwrap_or_else(|e| Event::Garbled(format!("{e}: {line}"))));
        }
        if let Some(i) = line.find(AGENT_FAILED_PREFIX.trim_end()) {
            return Some(Event::AgentFailed(
                line[i + AGENT_FAILED_PREFIX.trim_end().len()..].trim().to_string(),
            ));
        }
        if line.contains(DONE_MARKER) {
            return Some(Event::Done);
        }
        if line.contains(BOOT_MARKER) {
            return Some(Event::Booted);
        }
        if line.contains(XEN_PANIC) && line.contains("(XEN)") {
            self.in_panic = Some(Vec::new());
            return None;
        }
        if let Some(i) = line.find("Hardware Dom0 crashed") {
            return Some(Event::Fatal(RunEnd::new(EndKind::Dom0Crash, line[i..].to_string())));
        }
        // A dom0 vCPU that triple-faults is reset by Xen ("HVM shutdown
        // action"), which for dom0 reboots the machine: end on the first word.
        if line.contains("(XEN)") && line.contains("Triple fault") {
            return Some(Event::Fatal(RunEnd::new(
                EndKind::Dom0Crash,
                line.trim_start_matches("(XEN) ").to_string(),
            )));
        }
        if line.contains("(XEN)") && line.contains("*** Dumping Dom0 vcpu#") {
            self.dom0_vcpu_dumped = true;
        }
        if let Some(i) = line.find("Hardware Dom0 shutdown") {
            let mut detail = line[i..].to_string();
            if self.dom0_vcpu_dumped {
                detail = format!("{detail} ({DUMPED_THEN_RESET})");
            }
            return Some(Event::Fatal(RunEnd::new(EndKind::Dom0Crash, detail)));
        }
        if let Some(i) = line.find("Hardware Dom0 halted") {
            return Some(Event::Fatal(RunEnd::new(EndKind::Dom0Halted, line[i..].to_string())));
        }
        if line.contains("BUG: ENTRY_TRAMPOLINE stack guard page was hit") {
            self.entry_stack_overrun = true;
        }
        if let Some(i) = line.find("Kernel panic - not syncing") {
            let mut detail = line[i..].to_string();
            if self.entry_stack_overrun {
                detail = format!("{detail} ({ENTRY_STACK_OVERRUN})");
            }
            return Some(Event::Fatal(RunEnd::new(EndKind::LinuxPanic, detail)));
        }
        if line.starts_with("(XEN) Xen version") {
            return Some(Event::XenBanner);
        }
        if line.contains("*** Building a PVH Dom0 ***") {
            return Some(Event::PvhDom0);
        }
        if line.contains("(XEN) I/O virtualisation enabled") {
            return Some(Event::IommuEnabled);
        }
        if line.contains("Booting kernel on Xen PVH") {
            return Some(Event::LinuxPvh);
        }
        None
    }

    /// One of the agent's JSON lines (a result or the summary).
    fn agent_line(line: &str) -> Result<Event, String> {
        let json = |prefix: &str| line.find(prefix).map(|i| &line[i + prefix.len()..]);
        if let Some(j) = json(RESULT_PREFIX) {
            serde_json::from_str(j)
                .map(|r| Event::Result(Box::new(r)))
                .map_err(|e| e.to_string())
        } else if let Some(j) = json(SUMMARY_PREFIX) {
            serde_json::from_str(j).map(Event::Summary).map_err(|e| e.to_string())
        } else {
            Err("no agent line".into())
        }
    }

    /// A panic box still open when the stream ended: report what it had.
    pub fn flush(&mut self) -> Option<Event> {
        self.in_panic
            .take()
            .map(|r| Event::Fatal(RunEnd::new(EndKind::XenPanic, r.join(" "))))
    }
}

/// How many result lines a workload must produce: one per run of each op.
pub fn expected_results(w: &Workload) -> usize {
    w.ops.iter().map(|op| op.count as usize).sum()
}

/// Why a finished run's console cannot be trusted in full, if it cannot:
/// a garbled line of ours, fewer results than the workload asks for, or a
/// summary that counts other than what arrived. Judging what survived would
/// be judging a different run.
pub fn shortfall(expected: Option<usize>, summary: Option<&Summary>, got: usize, garbled: &[String]) -> Option<String> {
    if let Some(first) = garbled.first() {
        return Some(format!("{} garbled agent line(s), first: {first}", garbled.len()));
    }
    if let Some(want) = expected {
        if got != want {
            return Some(format!(
                "the workload asks for {want} results, the console carried {got}"
            ));
        }
        if summary.is_none() && want > 0 {
            return Some("the agent's summary line never arrived".into());
        }
    }
    match summary {
        Some(s) if s.ops as usize != got => Some(format!(
            "the agent reported {} results, the console carried {got}",
            s.ops
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line that arrives in pieces slower than the timer must come out
    /// whole: the regression behind lost agent lines.
    #[tokio::test]
    async fn lines_split_across_ticks_arrive_whole() {
        use tokio::io::AsyncWriteExt;
        let (mut w, r) = tokio::io::duplex(64);
        tokio::spawn(async move {
            for piece in ["PVHDMA-", "BOO", "TED\nsecond line\n", "tail"] {
                w.write_all(piece.as_bytes()).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(60)).await;
            }
        });
        let mut lines = Lines::new(r);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
        let (mut got, mut ticks) = (vec![], 0);
        loop {
            match lines.next(&mut tick).await.unwrap() {
                Read::Line(l) => got.push(l),
                Read::Tick => ticks += 1,
                Read::Eof(last) => {
                    got.extend(last);
                    break;
                }
            }
        }
        assert_eq!(got, ["PVHDMA-BOOTED", "second line", "tail"]);
        assert!(ticks > 3, "the timer never won a race ({ticks} ticks)");
    }

    /// The console's text through the same stages as a live run's lines.
    fn scan(text: &str) -> Vec<Event> {
        let (mut sp, mut s) = (crate::splice::Splices::default(), Scanner::default());
        let mut out: Vec<Event> = Vec::new();
        for raw in text.lines() {
            out.extend(sp.line(raw).iter().filter_map(|l| s.line(l)));
        }
        out.extend(sp.finish().and_then(|l| s.line(&l)));
        out.extend(s.flush());
        out
    }

    #[test]
    fn xen_panic_reason_is_the_boxed_text() {
        let log = "(XEN) ****************************************\n\
                   (XEN) Panic on CPU 0:\n\
                   (XEN) Couldn't enable IOMMU and iommu=required/force\n\
                   (XEN) ****************************************\n\
                   (XEN)\n(XEN) Manual reset required ('noreboot' specified)\n";
        assert_eq!(
            scan(log),
            vec![Event::Fatal(RunEnd::new(
                EndKind::XenPanic,
                "Couldn't enable IOMMU and iommu=required/force"
            ))]
        );
    }

    #[test]
    fn dom0_halt_and_crash_and_linux_panic_are_fatal() {
        let ev = scan(
            "(XEN) Hardware Dom0 halted: halting machine\n\
             (XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.\n\
             [    3.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n",
        );
        assert!(matches!(&ev[0], Event::Fatal(e) if e.kind == EndKind::Dom0Halted && e.detail.contains("halting")));
        assert!(matches!(&ev[1], Event::Fatal(e) if e.kind == EndKind::Dom0Crash));
        assert!(matches!(&ev[2], Event::Fatal(e) if e.kind == EndKind::LinuxPanic && e.detail.contains("VFS")));
    }

    #[test]
    fn a_dom0_triple_fault_is_a_named_crash() {
        let ev = scan(
            "(XEN) d0v1 Triple fault - invoking HVM shutdown action 1\n\
             (XEN) Hardware Dom0 shutdown: rebooting machine\n",
        );
        assert!(
            matches!(&ev[0], Event::Fatal(e) if e.kind == EndKind::Dom0Crash && e.detail.starts_with("d0v1 Triple fault")),
            "{ev:?}"
        );
        assert!(matches!(&ev[1], Event::Fatal(e) if e.kind == EndKind::Dom0Crash && e.detail.contains("rebooting")));
    }

    #[test]
    fn a_reset_right_after_a_vcpu_dump_says_so() {
        let ev = scan(
            "(XEN) HVM d1v0 save: CPU
             (XEN) *** Dumping Dom0 vcpu#0 state: ***
             (XEN) RIP:    0010:[<ffffffff818d3390>]
             (XEN) Hardware Dom0 shutdown: rebooting machine
",
        );
        let Some(Event::Fatal(e)) = ev.last() else {
            panic!("{ev:?}")
        };
        assert_eq!(e.kind, EndKind::Dom0Crash);
        assert!(e.detail.ends_with(&format!("({DUMPED_THEN_RESET})")), "{e}");
        let ev = scan(
            "[   47.180579] BUG: ENTRY_TRAMPOLINE stack guard page was hit at 00000000d80a418a\n\
             [   47.282304] Kernel panic - not syncing: Fatal exception in interrupt\n",
        );
        let Some(Event::Fatal(e)) = ev.last() else {
            panic!("{ev:?}")
        };
        assert_eq!(e.kind, EndKind::LinuxPanic);
        assert!(e.detail.ends_with(&format!("({ENTRY_STACK_OVERRUN})")), "{e}");
        // Without the dump, a reset is only a reset.
        let ev = scan(
            "(XEN) Hardware Dom0 shutdown: rebooting machine
",
        );
        assert!(matches!(&ev[0], Event::Fatal(e) if e.detail == "Hardware Dom0 shutdown: rebooting machine"));
    }

    #[test]
    fn boot_milestones_from_a_real_boot() {
        let ev = scan(
            "(XEN) Xen version 4.20.5-pre (Debian 4.20.4)\n\
             (XEN) I/O virtualisation enabled\n\
             (XEN) *** Building a PVH Dom0 ***\n\
             [    3.310327] Booting kernel on Xen PVH\n\
             PVHDMA-BOOTED\n",
        );
        assert_eq!(
            ev,
            vec![
                Event::XenBanner,
                Event::IommuEnabled,
                Event::PvhDom0,
                Event::LinuxPvh,
                Event::Booted
            ]
        );
    }

    #[test]
    fn agent_lines_decode_or_are_named_garbled() {
        let ev = scan(
            "PVHDMA-SUMMARY {\"ops\":1,\"failed\":0,\"bounces\":3,\"overflow_warnings\":0,\"swiotlb\":null,\"kernel_warnings\":[]}\n\
             (XEN) noise PVHDMA-RESULT {\"index\":0,\"trunc\n\
             PVHDMA-DONE\n",
        );
        assert!(matches!(&ev[0], Event::Summary(s) if s.bounces == 3));
        assert!(matches!(&ev[1], Event::Garbled(_)));
        assert_eq!(ev[2], Event::Done);
    }

    #[test]
    fn an_agent_line_with_xens_output_inside_is_put_back_together() {
        // A real line, and the Xen line that once landed in it.
        let result = r#"PVHDMA-RESULT {"index":1,"name":"coherent","kind":"coherent","tag":2,"map_error":false,"error":null,"refused":null,"dma_addrs":[41852928],"phys_addrs":[41852928],"bounced":false,"device_status":2,"device_error":0,"device_seq":2,"intact":true,"irq":true,"len":4096,"op":0,"run":1,"device":0,"checksum":3119223486,"expected_checksum":3119223486,"bytes_done":4096,"fault_addr":0,"desc_addr":null,"mismatch_offset":null,"bounces":0,"mismatch_at_done":false}"#;
        let uart = "(XEN) uart interrupt taking more than 4ms, switched to polling";
        // Xen's line after our last character, before our newline.
        let ev = scan(&format!("{result}{uart}\n\nPVHDMA-DONE\n"));
        assert!(
            matches!(&ev[..], [Event::Result(r), Event::Done] if r.index == 1),
            "{ev:?}"
        );
        // Xen's line (and another of its own) in the middle of ours.
        let (a, b) = result.split_at(60);
        let ev = scan(&format!("{a}{uart}\n(XEN) more\n{b}\nPVHDMA-DONE\n"));
        assert!(
            matches!(&ev[..], [Event::Result(r), Event::Done] if r.index == 1),
            "{ev:?}"
        );
        // What stays broken is still named garbled, at once or at the end.
        let ev = scan(&format!("{a}{uart}\nnot the rest\n"));
        assert!(matches!(&ev[..], [Event::Garbled(_)]), "{ev:?}");
        let ev = scan(&format!("{a}{uart}\n"));
        assert!(matches!(&ev[..], [Event::Garbled(g)] if g.contains("EOF")), "{ev:?}");
    }

    #[test]
    fn a_guests_panic_is_not_dom0s() {
        let ev = scan("PVHDMA-GUEST g1 [    2.0] Kernel panic - not syncing: Attempted to kill init!\n");
        assert!(
            matches!(&ev[..], [Event::Guest(crate::guests::GuestEvent::Line { name, .. })] if name == "g1"),
            "{ev:?}"
        );
    }

    #[test]
    fn carriage_returns_are_ignored() {
        assert_eq!(scan("PVHDMA-BOOTED\r\n"), vec![Event::Booted]);
    }

    #[test]
    fn shortfall_catches_every_way_lines_go_missing() {
        let sum = |ops| Summary {
            ops,
            ..Summary::default()
        };
        assert_eq!(shortfall(Some(3), Some(&sum(3)), 3, &[]), None);
        assert_eq!(shortfall(None, None, 0, &[]), None, "no workload: nothing to count");
        // A garbled result line alone, even when the counts happen to agree.
        assert!(shortfall(Some(3), Some(&sum(3)), 3, &["bad json".into()])
            .unwrap()
            .contains("garbled"));
        // The summary line lost too: the workload still says how many.
        assert!(shortfall(Some(3), None, 2, &[]).unwrap().contains("asks for 3"));
        assert!(shortfall(Some(3), None, 3, &[]).unwrap().contains("summary"));
        assert!(shortfall(None, Some(&sum(2)), 1, &[]).unwrap().contains("reported 2"));
    }
}
