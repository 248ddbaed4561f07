//! Transfer limits: the device enforces them, the driver and agent refuse
//! ops beyond them, and the scenario loader rejects such ops with the
//! file, line and column of the op.

/// Bytes in one transfer, or in one scatter-gather segment.
pub const MAX_XFER: u32 = 1 << 20;
/// Segments (descriptors) in one scatter-gather transfer.
pub const MAX_SEGMENTS: u32 = 256;
/// Bytes in one scatter-gather transfer, all segments together.
pub const MAX_SG_TOTAL: u64 = 4 << 20;
/// Pages a guest grants for one op: one 4 KiB page per segment, so a
/// guest-buffer op has at most this many segments of at most
/// [`GRANT_PAGE_SIZE`] bytes each.
pub const MAX_GRANT_PAGES: u32 = 16;
/// The size of one granted page (Xen's grant granularity on x86).
pub const GRANT_PAGE_SIZE: u32 = 4096;
/// One descriptor: a little-endian u64 bus address, then a u64 length.
pub const DESCRIPTOR_SIZE: u64 = 16;

/// Why an op of this shape cannot run, in the words dom0 would use; `None`
/// when it can. `segments` is ignored unless `sg`.
pub fn refusal(size: u32, segments: u32, sg: bool) -> Option<String> {
    if size == 0 || size > MAX_XFER {
        return Some(format!("size {size} outside 1..={MAX_XFER}"));
    }
    if sg {
        if segments == 0 || segments > MAX_SEGMENTS {
            return Some(format!("segments {segments} outside 1..={MAX_SEGMENTS}"));
        }
        let total = u64::from(segments) * u64::from(size);
        if total > MAX_SG_TOTAL {
            return Some(format!("sg total {total} above {MAX_SG_TOTAL} bytes"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges() {
        assert_eq!(refusal(4096, 256, true), None);
        assert_eq!(refusal(MAX_XFER, 4, true), None);
        assert!(refusal(4096, 257, true)
            .unwrap()
            .contains("segments 257 outside 1..=256"));
        assert!(refusal(4096, 0, true).is_some());
        assert!(refusal(MAX_XFER, 5, true).unwrap().contains("sg total"));
        assert!(refusal(0, 1, false).is_some());
        assert!(refusal(MAX_XFER + 1, 1, false).is_some());
        assert_eq!(refusal(4096, 999, false), None, "segments only matter for sg");
    }
}
