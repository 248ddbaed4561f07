//! Kernel tracepoints through tracefs: swiotlb bounces and the DMA API's own events.

use std::fs;
use std::path::{Path, PathBuf};

use pvhdma_contract::markers::BOUNCE_TRACEPOINT;

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Event groups worth having: the first decides `bounces`; dma/* (Linux 6.12+)
/// shows every map/unmap in the trace buffer for whoever reads it later.
const EVENTS: &[&str] = &[BOUNCE_TRACEPOINT, "dma"];

pub struct Tracer {
    root: PathBuf,
}

impl Tracer {
    /// Enable the events that exist; `Err` says why tracing is unavailable.
    pub fn enable(root: &Path) -> Result<(Tracer, Vec<String>), String> {
        let mut enabled = Vec::new();
        for ev in EVENTS {
            let p = root.join("events").join(ev).join("enable");
            if p.exists() && fs::write(&p, "1").is_ok() {
                enabled.push((*ev).to_string());
            }
        }
        if enabled.is_empty() {
            return Err(format!("no tracepoints under {}", root.display()));
        }
        let t = Tracer {
            root: root.to_path_buf(),
        };
        t.clear();
        Ok((t, enabled))
    }

    /// Empty the ring buffer, so the next count covers one operation only.
    pub fn clear(&self) {
        // Truncating `trace` is tracefs's way to reset the buffer.
        let _ = fs::write(self.root.join("trace"), "");
    }

    /// Bounces since the last clear; the buffer is cleared again afterwards.
    pub fn take_bounces(&self) -> u64 {
        let n = fs::read_to_string(self.root.join("trace"))
            .map(|t| count_bounces(&t))
            .unwrap_or(0);
        self.clear();
        n
    }
}

/// Count `swiotlb_bounced` events in the text of tracefs's `trace` file.
pub fn count_bounces(trace: &str) -> u64 {
    trace
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| event_name(l) == Some("swiotlb_bounced"))
        .count() as u64
}

/// The event name of a trace line: "task-pid [cpu] flags ts: name: fields".
fn event_name(line: &str) -> Option<&str> {
    // The task name may itself contain ": ", but the timestamp field is
    // the first that ends in ':' and parses as a number.
    let mut parts = line.split(": ");
    for p in parts.by_ref() {
        if p.rsplit(' ').next().is_some_and(|ts| ts.parse::<f64>().is_ok()) {
            break;
        }
    }
    parts.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# tracer: nop
#
# entries-in-buffer/entries-written: 3/3   #P:2
#
#                                _-----=> irqs-off/BH-disabled
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
    pvhdma-agent-85      [001] .....    12.345678: swiotlb_bounced: dev_name: 0000:00:03.0 dma_mask=ffffffff dev_addr=0x37c00000 size=4096 NORMAL
    pvhdma-agent-85      [001] .....    12.345690: dma_map_phys: 0000:00:03.0 dir=FROM_DEVICE dma_addr=37c00000 size=4096 phys_addr=123456000 attrs=
 weird: name-9      [000] .....    13.000001: swiotlb_bounced: dev_name: 0000:00:04.0 dma_mask=ffffffff dev_addr=0x37c01000 size=64 NORMAL
";

    #[test]
    fn counts_only_bounce_events() {
        assert_eq!(count_bounces(SAMPLE), 2);
        assert_eq!(count_bounces("# tracer: nop\n"), 0);
    }

    #[test]
    fn mentions_in_fields_do_not_count() {
        let l = "    sh-1      [000] .....     1.000000: dma_map_sg: swiotlb_bounced: in a field";
        assert_eq!(count_bounces(l), 0);
    }
}
