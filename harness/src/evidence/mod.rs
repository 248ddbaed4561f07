//! What a run produced, as the verdict reads it: how it ended, the agent's
//! results, the device's records (`outcome`) and QEMU's IOMMU trace (`trace`).

pub mod outcome;
pub mod trace;
