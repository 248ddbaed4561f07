//! What to boot: the machine, Xen, dom0 and the recorder devices of one run.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The emulated IOMMU that Xen programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IommuKind {
    Intel,
    Amd,
    None,
}

/// How QEMU runs the guest's CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Tcg,
    Kvm,
}

/// How Xen builds dom0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dom0Mode {
    Pvh,
    Pv,
}

/// The virtual machine QEMU emulates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    pub memory_mib: u64,
    pub cpus: u32,
    pub iommu: IommuKind,
    pub accel: Accel,
    /// Extra `-device` arguments, passed as given (e.g. `e1000,netdev=n0`).
    pub extra_devices: Vec<String>,
}

impl Default for MachineSpec {
    fn default() -> Self {
        Self {
            memory_mib: 8192,
            cpus: 2,
            iommu: IommuKind::Intel,
            accel: Accel::Tcg,
            extra_devices: vec![],
        }
    }
}

/// Xen and dom0 command lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSpec {
    pub dom0_mode: Dom0Mode,
    pub dom0_mem_mib: u64,
    /// Appended to the harness's Xen defaults.
    pub xen_extra: Vec<String>,
    /// Appended to the harness's dom0 defaults (e.g. `swiotlb=noforce`).
    pub dom0_extra: Vec<String>,
    /// Boot Linux directly, without Xen (the control runs).
    pub no_xen: bool,
}

impl Default for BootSpec {
    fn default() -> Self {
        Self {
            dom0_mode: Dom0Mode::Pvh,
            dom0_mem_mib: 1024,
            xen_extra: vec![],
            dom0_extra: vec![],
            no_xen: false,
        }
    }
}

/// One DMA recorder instance (a vfio-user server process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSpec {
    /// What the device advertises in `ADDR_BITS`.
    pub addr_bits: u32,
    /// What its engine really decodes.
    pub decode_bits: u32,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        Self {
            addr_bits: 32,
            decode_bits: 32,
        }
    }
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Used for the artifact directory name.
    pub name: String,
    pub machine: MachineSpec,
    pub boot: BootSpec,
    pub devices: Vec<DeviceSpec>,
    /// The agent's workload; `None` boots to the dom0 marker and powers off.
    pub workload: Option<pvhdma_agent::wire::Workload>,
    pub boot_timeout: Duration,
    pub run_timeout: Duration,
    /// Stream the console to stderr as it arrives.
    pub live_console: bool,
    /// Give an interactive dom0 shell instead of running the agent.
    pub shell: bool,
}
