//! One JSON line per DMA access (docs/records.md, section 1).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    Data,
    Descriptor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    ToDevice,
    FromDevice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    IommuFault,
    BeyondAddrBits,
    BadRequest,
    BusMasterOff,
}

/// Where a bus address went, as far as the device knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    pub iova: u64,
    pub len: u64,
    pub target: u64,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmaRecord {
    pub seq: u64,
    pub t_us: u64,
    pub tag: u32,
    pub op_seq: u64,
    pub kind: AccessKind,
    pub dir: Dir,
    pub bus_addr: u64,
    pub decoded_addr: u64,
    pub len: u64,
    pub outcome: Outcome,
    pub checksum: u32,
    #[serde(default)]
    pub translated: Vec<Translation>,
}
