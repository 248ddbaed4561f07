//! Reply payloads the server sends, one encoder per command, so the layouts
//! live with the rest of the codec and are unit-tested there.

use super::messages::u32s;

/// `VFIO_USER_DEVICE_GET_INFO`: argsz, flags, num_regions, num_irqs.
pub fn device_info(flags: u32, num_regions: u32, num_irqs: u32) -> Vec<u8> {
    u32s(&[16, flags, num_regions, num_irqs])
}

/// `VFIO_USER_DEVICE_GET_REGION_INFO`: argsz, flags, index, cap_offset, size, offset.
pub fn region_info(index: u32, flags: u32, size: u64) -> Vec<u8> {
    let mut p = u32s(&[32, flags, index, 0]);
    p.extend_from_slice(&size.to_le_bytes());
    // Nothing is mmap-able, so the region's offset in an fd is 0.
    p.extend_from_slice(&0u64.to_le_bytes());
    p
}

/// `VFIO_USER_DEVICE_GET_IRQ_INFO`: argsz, flags, index, count.
pub fn irq_info(index: u32, flags: u32, count: u32) -> Vec<u8> {
    u32s(&[16, flags, index, count])
}

/// `VFIO_USER_REGION_READ` / `_WRITE`: offset, region, count, then the data
/// (read) or nothing (write).
pub fn region_access(offset: u64, region: u32, count: u32, data: &[u8]) -> Vec<u8> {
    let mut p = offset.to_le_bytes().to_vec();
    p.extend_from_slice(&u32s(&[region, count]));
    p.extend_from_slice(data);
    p
}

/// Length of the DMA_UNMAP request's fixed part (argsz, flags, address,
/// size), which the reply echoes.
pub const DMA_UNMAP_ECHO: usize = 24;

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(p: &[u8], i: usize) -> u32 {
        u32::from_le_bytes(p[i..i + 4].try_into().unwrap())
    }

    #[test]
    fn layouts() {
        let d = device_info(0b11, 9, 5);
        assert_eq!(
            (d.len(), u32_at(&d, 0), u32_at(&d, 4), u32_at(&d, 8), u32_at(&d, 12)),
            (16, 16, 3, 9, 5)
        );
        let r = region_info(7, 3, 4096);
        assert_eq!((r.len(), u32_at(&r, 0), u32_at(&r, 4), u32_at(&r, 8)), (32, 32, 3, 7));
        assert_eq!(u64::from_le_bytes(r[16..24].try_into().unwrap()), 4096);
        let i = irq_info(2, 9, 1);
        assert_eq!((u32_at(&i, 0), u32_at(&i, 8), u32_at(&i, 12)), (16, 2, 1));
        let a = region_access(0x30, 0, 4, &[1, 2, 3, 4]);
        assert_eq!(a.len(), 20);
        assert_eq!(u64::from_le_bytes(a[..8].try_into().unwrap()), 0x30);
        assert_eq!((u32_at(&a, 8), u32_at(&a, 12)), (0, 4));
        assert_eq!(&a[16..], &[1, 2, 3, 4]);
    }
}
