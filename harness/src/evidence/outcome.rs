//! What one run produced: how it ended and every record it left.

use crate::machine::RamLayout;
use pvhdma_contract::record::DmaRecord;
pub use pvhdma_contract::run_end::{EndKind, RunEnd};
use pvhdma_contract::wire::{OpResult, Summary};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// One translation seen in QEMU's IOMMU trace (one translation call: a hit or a miss).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// PCI bus:dev.fn as QEMU prints it.
    pub device: String,
    pub iova: u64,
    /// Translated address (guest-physical of the VM = machine address for Xen).
    pub target: u64,
    /// Page mask: the translation covers `iova & !mask .. (iova | mask) + 1`.
    pub mask: u64,
    pub fault: bool,
}

/// What of one guest's data reached the host side: what it sent through
/// its vif, as QEMU's user network wrote it into the run's directory, or
/// what it wrote to its disk, as the disk's image file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestPayload {
    pub guest: String,
    pub expected: u64,
    pub received: u64,
    /// The first offset where the file differs from the pattern, or where
    /// it ends early or runs on; `None` when every byte is right.
    pub mismatch_offset: Option<u64>,
}

impl GuestPayload {
    pub fn judge(guest: &str, want: &[u8], got: &[u8]) -> Self {
        let mismatch_offset = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .map(|i| i as u64)
            .or_else(|| (got.len() != want.len()).then(|| got.len().min(want.len()) as u64));
        Self {
            guest: guest.into(),
            expected: want.len() as u64,
            received: got.len() as u64,
            mismatch_offset,
        }
    }

    pub fn intact(&self) -> bool {
        self.mismatch_offset.is_none()
    }
}

/// Wall-clock milestones of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub to_qemu_started: Option<Duration>,
    pub to_xen_banner: Option<Duration>,
    pub to_dom0_marker: Option<Duration>,
    /// The agent's done marker: the boot-to-verdict path ends here.
    pub to_agent_done: Option<Duration>,
    pub to_end: Option<Duration>,
    /// QEMU's peak resident memory (VmHWM), in KiB, read just before quit.
    pub qemu_peak_rss_kib: Option<u64>,
}

/// Everything a verdict is judged on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    pub end: RunEnd,
    pub console: String,
    pub results: Vec<OpResult>,
    pub summary: Option<Summary>,
    /// One list per device instance, in `RunSpec::devices` order.
    pub device_records: Vec<Vec<DmaRecord>>,
    pub iommu_trace: Vec<TraceEntry>,
    /// Milestones the console showed: PVH dom0 built, IOMMU enabled, ...
    pub milestones: Vec<String>,
    pub artifacts: PathBuf,
    pub timings: Timings,
    /// How QEMU laid out guest RAM in the memfd it hands the device with each
    /// DMA_MAP: turns the device's `fd_offset` targets into guest-physical
    /// addresses (see `RamLayout`). `None`: the device's view is not judged.
    pub ram_layout: Option<RamLayout>,
    /// One per guest with `net`, read after QEMU exited.
    #[serde(default)]
    pub guest_payloads: Vec<GuestPayload>,
    /// One per guest with `disk`: the image file's first bytes against the
    /// guest's pattern, read after QEMU exited.
    #[serde(default)]
    pub guest_disks: Vec<GuestPayload>,
    /// One per guest with `net.receive`: the file the run's TFTP root served
    /// it, for its own report of what it got to be held against.
    #[serde(default)]
    pub guest_served: Vec<Served>,
}

/// A file the host side served one guest: its length and FNV-1a.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub guest: String,
    pub bytes: u64,
    pub fnv1a: u32,
}
