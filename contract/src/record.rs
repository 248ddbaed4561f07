//! The device's DMA records: one JSON line per access (docs/records.md,
//! section 1), written by the device and judged by the harness.

use serde::{Deserialize, Serialize};

pub use crate::wire::Direction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    Data,
    Descriptor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// What became of one access.
pub enum AccessOutcome {
    Ok,
    IommuFault,
    BeyondAddrBits,
    BadRequest,
    BusMasterOff,
    /// A doorbell while an operation was running (ERROR = 4).
    DeviceBusy,
}

/// Where a bus address went, as far as the device knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    pub iova: u64,
    pub len: u64,
    /// Meaningful only when `target_kind` says so (see device/README.md).
    pub target: u64,
    pub source: String,
    /// `fd_offset`: `target` is an offset in the fd QEMU sent with DMA_MAP;
    /// `unknown`: QEMU sent no fd (default guest RAM), so the device learns
    /// only that the IOVA range is mapped, not where it lands.
    #[serde(default)]
    pub target_kind: String,
    /// The DMA_MAP window this access fell into.
    #[serde(default)]
    pub map_iova: u64,
    #[serde(default)]
    pub map_size: u64,
    /// DMA_MAP flags: bit 0 readable, bit 1 writeable.
    #[serde(default)]
    pub map_flags: u32,
}

/// One DMA_READ or DMA_WRITE message the device sent for an access. QEMU
/// translates each message page by page, so the messages say which IOMMU
/// translations in QEMU's trace belong to which access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmaMessage {
    /// The address sent, after the engine's address decoding.
    pub addr: u64,
    pub len: u64,
    /// QEMU answered it without an error.
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmaRecord {
    pub seq: u64,
    pub t_us: u64,
    pub tag: u32,
    pub op_seq: u64,
    pub kind: AccessKind,
    pub dir: Direction,
    pub bus_addr: u64,
    pub decoded_addr: u64,
    pub len: u64,
    pub outcome: AccessOutcome,
    pub checksum: u32,
    #[serde(default)]
    pub translated: Vec<Translation>,
    /// The messages the access took, in the order sent; empty when none was
    /// sent (the access was refused before any DMA) or the record predates
    /// this field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<DmaMessage>,
}
