//! What one run produced: how it ended and every record it left.

use crate::machine::RamLayout;
use pvhdma_agent::wire::{OpResult, Summary};
use pvhdma_device::record::DmaRecord;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How a run ended. Every way but `Finished` is a named failure kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum RunEnd {
    /// The agent printed its done marker (or, with no workload, dom0 booted).
    Finished,
    XenPanic(String),
    Dom0Crashed(String),
    Dom0Halted(String),
    LinuxPanic(String),
    QemuExited(String),
    DeviceExited(String),
    /// The dom0 agent gave up (e.g. the driver found no device).
    AgentFailed(String),
    /// The agent's summary counts more results than the console delivered:
    /// lines were lost on the way (judging the rest would be dishonest).
    ConsoleLost(String),
    BootTimeout,
    RunTimeout,
}

/// One translation seen in QEMU's IOMMU trace (an IOTLB miss).
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

impl RunEnd {
    /// A short stable name for tables and failure messages.
    pub fn kind(&self) -> &'static str {
        match self {
            RunEnd::Finished => "finished",
            RunEnd::XenPanic(_) => "xen_panic",
            RunEnd::Dom0Crashed(_) => "dom0_crash",
            RunEnd::Dom0Halted(_) => "dom0_halted",
            RunEnd::LinuxPanic(_) => "linux_panic",
            RunEnd::QemuExited(_) => "qemu_exited",
            RunEnd::DeviceExited(_) => "device_exited",
            RunEnd::AgentFailed(_) => "agent_failed",
            RunEnd::ConsoleLost(_) => "console_lost",
            RunEnd::BootTimeout => "boot_timeout",
            RunEnd::RunTimeout => "run_timeout",
        }
    }
}

/// Everything a verdict is judged on (`outcome.json`; read back by the
/// report tests from a recorded run).
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
}
