//! Workload in, results out: the formats of docs/records.md (sections 2 and 3).

use serde::{Deserialize, Serialize};

/// Console prefix of one operation's result.
pub const RESULT_PREFIX: &str = "PVHDMA-RESULT ";
/// Console prefix of the run's summary.
pub const SUMMARY_PREFIX: &str = "PVHDMA-SUMMARY ";
/// Printed last, before the agent powers dom0 off.
pub const DONE_MARKER: &str = "PVHDMA-DONE";
/// Printed by init when dom0 userspace is up (the boot marker).
pub const BOOT_MARKER: &str = "PVHDMA-BOOTED";
/// Where the harness puts the workload inside the initramfs.
pub const WORKLOAD_PATH: &str = "pvhdma/workload.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Coherent,
    Single,
    Sg,
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    Low,
    High,
    #[default]
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ToDevice,
    FromDevice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    Fill,
    Incrementing,
    #[default]
    Xorshift,
}

/// One operation of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub name: String,
    pub kind: OpKind,
    #[serde(default)]
    pub placement: Placement,
    pub size: u32,
    #[serde(default = "one")]
    pub count: u32,
    pub dir: Direction,
    #[serde(default)]
    pub pattern: Pattern,
    #[serde(default)]
    pub seed: u32,
    #[serde(default = "one")]
    pub segments: u32,
    /// Only for `raw`: the bus address to program.
    #[serde(default)]
    pub bus_addr: Option<u64>,
}

fn one() -> u32 {
    1
}

/// What the harness hands the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub ops: Vec<Op>,
    #[serde(default)]
    pub tracepoints: bool,
    #[serde(default)]
    pub shell: bool,
}

/// The result of one run of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    pub index: u32,
    pub name: String,
    pub kind: OpKind,
    pub tag: u32,
    pub map_error: bool,
    /// Anything else that went wrong (driver or agent), in words.
    pub error: Option<String>,
    pub dma_addrs: Vec<u64>,
    pub phys_addrs: Vec<u64>,
    pub bounced: bool,
    pub device_status: u32,
    pub device_error: u32,
    pub device_seq: u32,
    pub intact: bool,
    pub irq: bool,
    pub len: u64,
}

/// The swiotlb pool's bus range, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

/// Printed once after all operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub ops: u32,
    pub failed: u32,
    pub bounces: u64,
    pub overflow_warnings: u32,
    pub swiotlb: Option<Range>,
    pub kernel_warnings: Vec<String>,
}
