//! The kernel log as the agent sees it in `/dev/kmsg`: swiotlb's pool,
//! dma-direct's overflow complaints, and WARN/BUG lines.

use std::io::{ErrorKind, Read};

use crate::wire::Range;

/// Longest warning text kept, so the summary stays one sane console line.
const MAX_WARNING_LEN: usize = 160;
const MAX_WARNINGS: usize = 16;

/// The message text of one `/dev/kmsg` record: "prio,seq,usec,flags;text\n KEY=v...".
pub fn record_text(record: &str) -> Option<&str> {
    let (_, rest) = record.split_once(';')?;
    Some(rest.split('\n').next().unwrap_or(rest))
}

/// `software IO TLB: mapped [mem 0x...-0x...] (64MB)`: swiotlb prints the
/// end exclusive, which is what [`Range`] holds.
pub fn swiotlb_range(text: &str) -> Option<Range> {
    let rest = text.split("software IO TLB: mapped [mem ").nth(1)?;
    let (span, _) = rest.split_once(']')?;
    let (a, b) = span.split_once('-')?;
    let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok();
    Some(Range {
        start: hex(a)?,
        end: hex(b)?,
    })
}

/// dma-direct's "DMA addr 0x... overflow (mask ffffffff, bus limit 0)":
/// a streaming mapping the device cannot reach and nothing could bounce.
pub fn is_overflow(text: &str) -> bool {
    text.contains("overflow") && text.contains("mask")
}

/// blkfront's line when a vbd connects ("blkfront: xvda: flush diskcache:
/// enabled; persistent grants: enabled; indirect descriptors: ..."): what
/// it negotiated, not what it was asked for.
pub fn blkfront_persistent(text: &str) -> Option<bool> {
    let rest = text.strip_prefix("blkfront: ")?.split("persistent grants: ").nth(1)?;
    if rest.starts_with("enabled") {
        Some(true)
    } else if rest.starts_with("disabled") {
        Some(false)
    } else {
        None
    }
}

pub use pvhdma_contract::markers::is_kernel_warning;

/// The sequence number of one `/dev/kmsg` record ("prio,seq,usec,flags;...").
pub fn record_seq(record: &str) -> Option<u64> {
    let (head, _) = record.split_once(';')?;
    head.split(',').nth(1)?.parse().ok()
}

/// What the log says, from all records read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogFacts {
    /// The first record read was the boot's first (seq 0): nothing was
    /// lost to a wrapped buffer, so an absent line was never printed.
    pub from_start: bool,
    pub swiotlb: Option<Range>,
    pub overflow_warnings: u32,
    pub kernel_warnings: Vec<String>,
    /// blkfront's last word on persistent grants (a guest's log).
    pub blkfront_persistent: Option<bool>,
}

impl LogFacts {
    pub fn add(&mut self, text: &str) {
        if let Some(r) = swiotlb_range(text) {
            self.swiotlb = Some(r);
        }
        if is_overflow(text) {
            self.overflow_warnings += 1;
        }
        if let Some(p) = blkfront_persistent(text) {
            self.blkfront_persistent = Some(p);
        }
        if is_kernel_warning(text) && self.kernel_warnings.len() < MAX_WARNINGS {
            let mut t: String = text.trim().chars().take(MAX_WARNING_LEN).collect();
            t.retain(|c| !c.is_control());
            self.kernel_warnings.push(t);
        }
    }
}

/// Read every record currently in the kernel's log buffer.
pub fn read_all(path: &str) -> std::io::Result<LogFacts> {
    use rustix::fs::{Mode, OFlags};
    // Non-blocking: at the end of the buffer a read says EAGAIN instead of waiting.
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())?;
    let mut f = std::fs::File::from(fd);
    let mut facts = LogFacts::default();
    let mut buf = vec![0u8; 8192];
    let mut first = true;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                if first {
                    facts.from_start = record_seq(&rec) == Some(0);
                    first = false;
                }
                if let Some(text) = record_text(&rec) {
                    facts.add(text);
                }
            }
            // The reader fell behind a wrapped buffer; it resumes at the
            // oldest record, so something was lost.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => {
                facts.from_start = false;
                first = false;
                continue;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_text_strips_header_and_dictionary() {
        let rec = "6,321,5887373,-;software IO TLB: mapped [mem 0x0000000033d00000-0x0000000037d00000] (64MB)\n SUBSYSTEM=x\n";
        assert_eq!(
            record_text(rec),
            Some("software IO TLB: mapped [mem 0x0000000033d00000-0x0000000037d00000] (64MB)")
        );
        assert_eq!(record_text("garbage"), None);
        assert_eq!(record_seq(rec), Some(321));
        assert_eq!(record_seq("6,0,0,-;Linux version 6.12"), Some(0));
        assert_eq!(record_seq("garbage"), None);
    }

    #[test]
    fn swiotlb_range_from_real_line() {
        let r = swiotlb_range("software IO TLB: mapped [mem 0x0000000033d00000-0x0000000037d00000] (64MB)").unwrap();
        assert_eq!(
            r,
            Range {
                start: 0x33d0_0000,
                end: 0x37d0_0000
            }
        );
        assert_eq!(swiotlb_range("software IO TLB: area num 2."), None);
        assert_eq!(
            swiotlb_range("PCI-DMA: Using software bounce buffering for IO (SWIOTLB)"),
            None
        );
    }

    #[test]
    fn overflow_line_from_dma_direct() {
        assert!(is_overflow(
            "pvhdma 0000:00:03.0: DMA addr 0x0000000123456000+4096 overflow (mask ffffffff, bus limit 0)."
        ));
        assert!(!is_overflow("buffer overflow detected"));
    }

    #[test]
    fn blkfront_says_whether_it_uses_persistent_grants() {
        let on = "blkfront: xvda: flush diskcache: enabled; persistent grants: enabled; \
                  indirect descriptors: enabled; bounce buffer: enabled";
        let off = "blkfront: xvda: flush diskcache: enabled; persistent grants: disabled; \
                   indirect descriptors: enabled; bounce buffer: disabled;";
        assert_eq!(blkfront_persistent(on), Some(true));
        assert_eq!(blkfront_persistent(off), Some(false));
        assert_eq!(blkfront_persistent("blkfront: xvda: barrier or flush: disabled;"), None);
        assert_eq!(blkfront_persistent("xen-blkback: persistent grants: enabled"), None);
        let mut f = LogFacts::default();
        f.add(on);
        f.add("unrelated");
        assert_eq!(f.blkfront_persistent, Some(true));
    }

    #[test]
    fn warnings_and_bugs() {
        assert!(is_kernel_warning(
            "WARNING: CPU: 0 PID: 85 at kernel/dma/direct.h:105 dma_map_page_attrs+0x1/0x2"
        ));
        assert!(is_kernel_warning("BUG: unable to handle page fault for address: 0"));
        assert!(is_kernel_warning("kernel BUG at mm/slub.c:1!"));
        assert!(!is_kernel_warning("pvhdma 0000:00:03.0: WARNING is not at the start"));
    }

    #[test]
    fn facts_accumulate_and_bound() {
        let mut f = LogFacts::default();
        f.add("software IO TLB: mapped [mem 0x00000000e0000000-0x00000000e4000000] (64MB)");
        f.add("x: DMA addr 0x1+1 overflow (mask ffffffff, bus limit 0).");
        f.add(&format!("WARNING: {}", "y".repeat(500)));
        for _ in 0..40 {
            f.add("BUG: again");
        }
        assert_eq!(
            f.swiotlb,
            Some(Range {
                start: 0xe000_0000,
                end: 0xe400_0000
            })
        );
        assert_eq!(f.overflow_warnings, 1);
        assert_eq!(f.kernel_warnings.len(), MAX_WARNINGS);
        assert_eq!(f.kernel_warnings[0].len(), MAX_WARNING_LEN);
    }
}
