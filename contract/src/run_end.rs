//! How a run ends: one vocabulary for the harness, verdict.json, the summary
//! table, JUnit, scenarios (`expect.boot`) and the docs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every way a run can end. All but `Finished` are named failure kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EndKind {
    /// The agent printed its done marker (with no workload: dom0 booted).
    Finished,
    /// Xen printed a panic; the detail is the text in Xen's panic box.
    XenPanic,
    /// Xen reported that dom0 crashed, triple-faulted or asked to reboot.
    Dom0Crash,
    /// Xen halted the machine because dom0 halted.
    Dom0Halted,
    /// Linux panicked (in dom0, or in the kernel booted without Xen).
    LinuxPanic,
    /// QEMU exited before the run ended.
    QemuExited,
    /// A recorder device process exited before the run ended.
    DeviceExited,
    /// The dom0 agent could not run the workload.
    AgentFailed,
    /// Console lines were lost or garbled: judging what survived would be dishonest.
    ConsoleLost,
    /// dom0 did not reach userspace in time.
    BootTimeout,
    /// dom0 booted but the workload did not finish in time.
    RunTimeout,
    /// A guest never ran: the toolstack or `xl create` failed.
    GuestFailedToStart,
    /// A guest ran and died: its kernel panicked, or Xen reports it crashed or gone.
    GuestCrashed,
    /// A guest did not print its ready marker in time after dom0 booted.
    GuestTimeout,
}

impl EndKind {
    pub const ALL: [EndKind; 14] = [
        EndKind::Finished,
        EndKind::XenPanic,
        EndKind::Dom0Crash,
        EndKind::Dom0Halted,
        EndKind::LinuxPanic,
        EndKind::QemuExited,
        EndKind::DeviceExited,
        EndKind::AgentFailed,
        EndKind::ConsoleLost,
        EndKind::BootTimeout,
        EndKind::RunTimeout,
        EndKind::GuestFailedToStart,
        EndKind::GuestCrashed,
        EndKind::GuestTimeout,
    ];

    /// The one spelling (what serde writes).
    pub fn name(self) -> &'static str {
        match self {
            EndKind::Finished => "finished",
            EndKind::XenPanic => "xen_panic",
            EndKind::Dom0Crash => "dom0_crash",
            EndKind::Dom0Halted => "dom0_halted",
            EndKind::LinuxPanic => "linux_panic",
            EndKind::QemuExited => "qemu_exited",
            EndKind::DeviceExited => "device_exited",
            EndKind::AgentFailed => "agent_failed",
            EndKind::ConsoleLost => "console_lost",
            EndKind::BootTimeout => "boot_timeout",
            EndKind::RunTimeout => "run_timeout",
            EndKind::GuestFailedToStart => "guest_failed_to_start",
            EndKind::GuestCrashed => "guest_crashed",
            EndKind::GuestTimeout => "guest_timeout",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn is_failure(self) -> bool {
        self != EndKind::Finished
    }
}

impl fmt::Display for EndKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one run ended, with the evidence in words (empty for `Finished` and
/// the timeouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    pub kind: EndKind,
    #[serde(default)]
    pub detail: String,
}

impl RunEnd {
    pub fn new(kind: EndKind, detail: impl Into<String>) -> Self {
        RunEnd {
            kind,
            detail: detail.into(),
        }
    }

    pub fn finished() -> Self {
        Self::new(EndKind::Finished, "")
    }

    pub fn is_finished(&self) -> bool {
        self.kind == EndKind::Finished
    }
}

impl fmt::Display for RunEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.kind, self.detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_name_are_one_spelling() {
        for k in EndKind::ALL {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{}\"", k.name()));
            assert_eq!(EndKind::from_name(k.name()), Some(k));
            assert_eq!(serde_json::from_str::<EndKind>(&format!("\"{k}\"")).unwrap(), k);
        }
        assert_eq!(EndKind::from_name("dom0_crashed"), None);
    }

    #[test]
    fn run_end_json_shape() {
        let e = RunEnd::new(EndKind::Dom0Crash, "d0v1 Triple fault");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"kind": "dom0_crash", "detail": "d0v1 Triple fault"})
        );
        assert_eq!(e.to_string(), "dom0_crash: d0v1 Triple fault");
        assert_eq!(RunEnd::finished().to_string(), "finished");
    }
}
