//! Console markers between dom0 (init script and agent) and the harness,
//! and where the harness puts the workload in dom0's initramfs.

/// Printed by init when dom0 userspace is up (the boot marker).
pub const BOOT_MARKER: &str = "PVHDMA-BOOTED";
/// Console prefix of one operation's result (a JSON [`crate::wire::OpResult`]).
pub const RESULT_PREFIX: &str = "PVHDMA-RESULT ";
/// Console prefix of the run's summary (a JSON [`crate::wire::Summary`]).
pub const SUMMARY_PREFIX: &str = "PVHDMA-SUMMARY ";
/// Printed last, before the agent powers dom0 off.
pub const DONE_MARKER: &str = "PVHDMA-DONE";
/// Printed by init (or the agent) when the agent could not run; the rest of
/// the line says why.
pub const AGENT_FAILED_PREFIX: &str = "PVHDMA-AGENT-FAILED ";
/// Where the harness puts the workload inside the initramfs (no leading `/`).
pub const WORKLOAD_PATH: &str = "pvhdma/workload.json";
/// Where init expects the agent binary.
pub const AGENT_PATH: &str = "/bin/pvhdma-agent";
/// Where init expects the driver module.
pub const DRIVER_PATH: &str = "/lib/modules/pvhdma.ko";
/// The tracepoint the agent counts swiotlb bounces with, as it lists it in
/// `Summary::tracepoints`: a bounce count is evidence only if it is there.
pub const BOUNCE_TRACEPOINT: &str = "swiotlb/swiotlb_bounced";
