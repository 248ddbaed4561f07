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
    /// A NIC on QEMU's user network, with a TFTP root in the run directory.
    pub net: NetDevice,
    /// A disk on a block controller, backed by an image in the run directory.
    pub disk: Option<DiskSpec>,
}

/// dom0's disk: the controller and the size of its raw image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSpec {
    pub controller: DiskController,
    pub size: u64,
}

/// A block controller whose Linux driver sets a 32-bit DMA mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskController {
    /// Intel PIIX4 IDE, driven by ata_piix (libata BMDMA, 32-bit mask).
    /// Always at [`DISK_BDF`].
    Piix4Ide,
}

/// Where the harness puts the disk controller (`addr=0x11`), as QEMU's
/// IOMMU trace names it.
pub const DISK_BDF: &str = "00:11.0";

/// A real NIC beside the recorder (for the `net_tftp` op).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetDevice {
    #[default]
    None,
    /// Intel 82540EM: PCI, sets a 32-bit DMA mask. Always at [`E1000_BDF`].
    E1000,
}

/// Where the harness puts the e1000 (`addr=0x10`), as QEMU's IOMMU trace
/// names it: a fixed slot, so scenarios can name it in `expect.trace`.
pub const E1000_BDF: &str = "00:10.0";

impl Default for MachineSpec {
    fn default() -> Self {
        Self {
            memory_mib: 8192,
            cpus: 2,
            iommu: IommuKind::Intel,
            accel: Accel::Tcg,
            extra_devices: vec![],
            net: NetDevice::None,
            disk: None,
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
    /// Add the harness's fast-boot cuts (`fastboot`); on by default.
    pub fast_boot: bool,
}

impl Default for BootSpec {
    fn default() -> Self {
        Self {
            dom0_mode: Dom0Mode::Pvh,
            dom0_mem_mib: 1024,
            xen_extra: vec![],
            dom0_extra: vec![],
            no_xen: false,
            fast_boot: true,
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
    /// A deliberate misbehaviour (negative twins and the mutation run).
    pub inject: Option<pvhdma_contract::device_cli::Mutant>,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        Self {
            addr_bits: 32,
            decode_bits: 32,
            inject: None,
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
    pub workload: Option<pvhdma_contract::wire::Workload>,
    pub boot_timeout: Duration,
    pub run_timeout: Duration,
    /// From dom0's boot marker to each guest's own (`workload.guests`).
    pub guest_timeout: Duration,
    /// Stream the console to stderr as it arrives.
    pub live_console: bool,
    /// Give an interactive dom0 shell instead of running the agent.
    pub shell: bool,
}

/// Where q35 puts guest RAM, as an offset in its one RAM block (the memfd
/// QEMU's vfio-user client names in every DMA_MAP) against guest-physical
/// addresses, which under Xen are the machine addresses its IOMMU tables use.
///
/// The harness owns this, not the device: the harness chose the machine and
/// its memory size, while the device only sees `(iova, fd, offset)`. So the
/// device records the raw `fd_offset` it was told, and the verdict's join
/// converts it with the layout of the run (`RunOutcome::ram_layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RamLayout {
    /// RAM at guest-physical `[0, below_4g)`: offsets `[0, below_4g)`.
    pub below_4g: u64,
    /// RAM at guest-physical `[4 GiB, 4 GiB + above_4g)`: offsets `below_4g..`.
    pub above_4g: u64,
}

impl RamLayout {
    pub const FOUR_GIB: u64 = 1 << 32;

    /// QEMU's rule for q35 (`pc_q35_init` in hw/i386/pc_q35.c, unchanged in
    /// 11.1 and checked here with `info mtree -f` at 1G, 2560M, 2815M, 2816M,
    /// 3G, 8G): `lowmem` is 2 GiB when the RAM is at least 2.75 GiB
    /// (0xb0000000), else 2.75 GiB; RAM up to `lowmem` sits below 4 GiB, the
    /// rest from 4 GiB. Not modelled, because the harness never asks for
    /// them: `max-ram-below-4g`, and the AMD relocation of above-4G RAM to
    /// 1 TiB, which QEMU does only when RAM plus the 64-bit PCI hole would
    /// reach the HyperTransport range just below 1 TiB.
    pub fn q35(ram_bytes: u64) -> Self {
        let lowmem = if ram_bytes >= 0xb000_0000 {
            0x8000_0000
        } else {
            0xb000_0000
        };
        Self::with_below_4g(ram_bytes, lowmem)
    }

    /// `ram_bytes` split with at most `below_4g` of it below 4 GiB.
    pub fn with_below_4g(ram_bytes: u64, below_4g: u64) -> Self {
        let below = ram_bytes.min(below_4g);
        Self {
            below_4g: below,
            above_4g: ram_bytes - below,
        }
    }

    /// The guest-physical address of RAM-block offset `off`; `None` past the
    /// end of RAM.
    pub fn gpa_of_offset(&self, off: u64) -> Option<u64> {
        if off < self.below_4g {
            Some(off)
        } else if off - self.below_4g < self.above_4g {
            Some(Self::FOUR_GIB + (off - self.below_4g))
        } else {
            None
        }
    }
}

impl RunSpec {
    /// Boot with the defaults, no device and no workload: the agent powers
    /// dom0 off as soon as it is up.
    pub fn boot_only(name: &str, iommu: IommuKind) -> Self {
        Self {
            name: name.into(),
            machine: MachineSpec {
                iommu,
                ..MachineSpec::default()
            },
            boot: BootSpec::default(),
            devices: vec![],
            workload: None,
            boot_timeout: Duration::from_secs(180),
            run_timeout: Duration::from_secs(60),
            guest_timeout: Duration::from_secs(120),
            live_console: false,
            shell: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RamLayout;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    #[test]
    fn q35_split_matches_qemu() {
        // What QEMU 11.1's `info mtree -f` showed for these sizes.
        assert_eq!(
            RamLayout::q35(8 * GIB),
            RamLayout {
                below_4g: 2 * GIB,
                above_4g: 6 * GIB
            }
        );
        assert_eq!(RamLayout::q35(3 * GIB).below_4g, 2 * GIB);
        assert_eq!(RamLayout::q35(2816 * MIB).above_4g, 768 * MIB, "0xb0000000 exactly");
        assert_eq!(
            RamLayout::q35(2815 * MIB),
            RamLayout::with_below_4g(2815 * MIB, u64::MAX)
        );
        assert_eq!(RamLayout::q35(2560 * MIB).above_4g, 0);
        assert_eq!(RamLayout::q35(GIB).below_4g, GIB);
    }

    #[test]
    fn offsets_to_guest_physical() {
        let l = RamLayout::q35(8 * GIB);
        assert_eq!(l.gpa_of_offset(0), Some(0));
        assert_eq!(l.gpa_of_offset(0x7fff_ffff), Some(0x7fff_ffff));
        assert_eq!(l.gpa_of_offset(0x8000_0000), Some(0x1_0000_0000));
        // A pvh-vtd-noforce run: DMA_MAP offset 0x1edcd6000, trace gpa 0x26dcd6000.
        assert_eq!(l.gpa_of_offset(0x1_edcd_6000), Some(0x2_6dcd_6000));
        assert_eq!(l.gpa_of_offset(8 * GIB - 1), Some(0x2_7fff_ffff));
        assert_eq!(l.gpa_of_offset(8 * GIB), None);
        let small = RamLayout::q35(GIB);
        assert_eq!(small.gpa_of_offset(GIB - 1), Some(GIB - 1));
        assert_eq!(small.gpa_of_offset(GIB), None);
    }
}
