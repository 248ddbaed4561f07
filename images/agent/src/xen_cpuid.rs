//! Xen's CPUID leaves as dom0 sees them: whether Xen promises that memory
//! mapped from other domains (grants, foreign pages) has valid IOMMU entries
//! for dom0's devices. That promise is what lets a backend hand a granted
//! page's guest-physical address to a device.

// Older toolchains declare `__cpuid` unsafe; newer ones do not.
#![allow(unsafe_code)]

/// Xen may move its leaves up (by 0x100 steps) to leave room for another
/// hypervisor's interface below them.
const FIRST_BASE: u32 = 0x4000_0000;
const LAST_BASE: u32 = 0x4001_0000;
const STEP: u32 = 0x100;
/// The leaf of HVM features, counted from the base leaf.
const HVM_LEAF: u32 = 4;
/// EAX bit of the HVM leaf: memory mapped from other domains has valid
/// IOMMU entries.
pub const IOMMU_MAPPINGS: u32 = 1 << 2;

/// Registers of one CPUID leaf: (eax, ebx, ecx, edx).
pub type Regs = (u32, u32, u32, u32);

/// The flag, read through `cpuid`; None when no leaf carries Xen's
/// signature or the HVM leaf lies beyond the highest leaf Xen offers.
pub fn iommu_mappings_with(cpuid: impl Fn(u32) -> Regs) -> Option<bool> {
    let base = (FIRST_BASE..=LAST_BASE).step_by(STEP as usize).find(|&b| {
        let (_, ebx, ecx, edx) = cpuid(b);
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&edx.to_le_bytes());
        &sig == b"XenVMMXenVMM"
    })?;
    let (max_leaf, ..) = cpuid(base);
    if max_leaf < base + HVM_LEAF {
        return None;
    }
    Some(cpuid(base + HVM_LEAF).0 & IOMMU_MAPPINGS != 0)
}

/// The flag as this CPU reports it.
#[cfg(target_arch = "x86_64")]
pub fn iommu_mappings() -> Option<bool> {
    iommu_mappings_with(|leaf| {
        // CPUID exists on every x86_64 CPU and has no memory effects: nothing
        // to uphold.
        #[allow(unused_unsafe)]
        let r = unsafe { core::arch::x86_64::__cpuid(leaf) };
        (r.eax, r.ebx, r.ecx, r.edx)
    })
}

#[cfg(not(target_arch = "x86_64"))]
pub fn iommu_mappings() -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> (u32, u32, u32) {
        let b = b"XenVMMXenVMM";
        let w = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        (w(0), w(4), w(8))
    }

    /// A CPU whose Xen leaves start at `base`, offering up to `max`.
    fn xen_at(base: u32, max: u32, hvm_eax: u32) -> impl Fn(u32) -> Regs {
        move |leaf| {
            let (b, c, d) = sig();
            match leaf {
                l if l == base => (max, b, c, d),
                l if l == base + HVM_LEAF => (hvm_eax, 0, 0, 0),
                _ => (0, 0, 0, 0),
            }
        }
    }

    #[test]
    fn reads_the_flag_at_the_first_base_and_a_moved_one() {
        assert_eq!(iommu_mappings_with(xen_at(0x4000_0000, 0x4000_0005, 0b111)), Some(true));
        assert_eq!(
            iommu_mappings_with(xen_at(0x4000_0000, 0x4000_0005, 0b011)),
            Some(false)
        );
        assert_eq!(iommu_mappings_with(xen_at(0x4000_0100, 0x4000_0105, 0b100)), Some(true));
    }

    #[test]
    fn no_xen_or_no_hvm_leaf_says_nothing() {
        assert_eq!(iommu_mappings_with(|_| (0, 0, 0, 0)), None);
        assert_eq!(iommu_mappings_with(xen_at(0x4000_0000, 0x4000_0003, 0b100)), None);
    }

    #[test]
    fn this_host_answers_without_crashing() {
        let _ = iommu_mappings();
    }
}
