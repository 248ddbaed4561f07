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

/// The first line of a Linux WARN, BUG or oops report, as the message text
/// (no timestamp): the agent counts them in `/dev/kmsg` and the harness on
/// dom0's console, by the same rule.
pub fn is_kernel_warning(text: &str) -> bool {
    let t = text.trim_start();
    [
        "WARNING:",
        "BUG:",
        "kernel BUG at",
        "Oops:",
        "general protection fault",
        "Kernel panic",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

/// Guests: what dom0's init (images/initramfs/guests.sh), a guest's init
/// (images/initramfs/guest-init) and the agent in both roles print, and the
/// places where dom0 keeps a guest's files. Every line dom0 prints about a
/// guest starts with [`guest::MARK`], so the harness tells a guest's
/// "Kernel panic" or agent line apart from dom0's own.
pub mod guest {
    /// The common start of every guest line on dom0's console.
    pub const MARK: &str = "PVHDMA-GUEST";
    /// `PVHDMA-GUEST <name> <line>`: one line of a guest's own console, relayed by dom0.
    pub const RELAY: &str = "PVHDMA-GUEST ";
    /// `PVHDMA-GUEST-STARTED <name> <domid>`: `xl create` succeeded.
    pub const STARTED: &str = "PVHDMA-GUEST-STARTED ";
    /// `PVHDMA-GUEST-FAILED <name> <why>`: the guest never ran.
    pub const FAILED: &str = "PVHDMA-GUEST-FAILED ";
    /// `PVHDMA-GUEST-CRASHED <name> <why>`: it ran and died, or vanished.
    pub const CRASHED: &str = "PVHDMA-GUEST-CRASHED ";
    /// A guest's init prints this first: the guest's boot marker.
    pub const READY: &str = "PVHDMA-GUEST-READY";
    /// Printed inside a guest when its agent cannot grant; the rest says why.
    pub const AGENT_FAILED: &str = "PVHDMA-GUEST-AGENT-FAILED";
    /// A guest's grants for one op (a JSON [`crate::wire::GrantLine`]).
    pub const GRANT_PREFIX: &str = "PVHDMA-GRANT ";
    /// What a guest found in a from-device op's pages (a JSON [`crate::wire::CheckLine`]).
    pub const CHECK_PREFIX: &str = "PVHDMA-GUEST-CHECK ";
    /// The xenstore directory, relative to a guest's home
    /// (`/local/domain/<domid>/`), where dom0's agent writes `<op>` once it
    /// unmapped that op's grants: the guest looks at its pages only then.
    pub const UNMAPPED_KEY: &str = "data/pvhdma-unmapped";
    /// A guest's account of its network send (a JSON [`crate::wire::NetLine`]).
    pub const NET_PREFIX: &str = "PVHDMA-GUEST-NET ";
    /// A guest's account of its disk write and read-back (a JSON [`crate::wire::DiskLine`]).
    pub const DISK_PREFIX: &str = "PVHDMA-GUEST-DISK ";
    /// Where the harness puts a guest's work in the guest's initramfs (no leading `/`).
    pub const WORK_PATH: &str = "pvhdma/guest.json";
    /// Where the harness puts the guests' kernel, configurations and
    /// initramfs in dom0's (no leading `/`); dom0's init starts the
    /// toolstack only when this directory exists.
    pub const DIR: &str = "pvhdma/guests";
    /// Where the toolstack archive puts its tools and `guests.sh` in dom0's
    /// initramfs.
    pub const TOOLSTACK_DIR: &str = "/pvhdma/toolstack";
    /// Where dom0's init leaves a started guest's domain id (`<name>.domid`).
    pub const DOMID_DIR: &str = "/run/pvhdma/guests";
    /// Where dom0's xenconsoled logs each guest's console (`guest-<name>.log`).
    pub const CONSOLE_LOG_DIR: &str = "/var/log/xen/console";
    /// Where dom0's console relay copies each report line of a guest
    /// (`PVHDMA-GUEST-...`) once it has passed it on (`guest-<name>.log`):
    /// what the harness can have seen of a guest's reports.
    pub const RELAYED_LOG_DIR: &str = "/run/pvhdma/relayed";
}
