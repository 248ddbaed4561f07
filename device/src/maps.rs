//! The DMA_MAP table: what QEMU told us is mappable, keyed by IOVA.
//!
//! With default (non-fd) guest RAM QEMU sends `offset = 0` and no fd, so an
//! entry says only that an IOVA range is mapped and with which permissions,
//! not where it lands. With an fd the offset locates the range in that file.

use crate::record::Translation;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub size: u64,
    pub flags: u32,
    pub offset: u64,
    pub has_fd: bool,
}

#[derive(Debug, Default)]
pub struct DmaMaps {
    by_iova: BTreeMap<u64, MapEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    Empty,
    Overlap,
}

impl DmaMaps {
    pub fn len(&self) -> usize {
        self.by_iova.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_iova.is_empty()
    }

    pub fn map(&mut self, iova: u64, e: MapEntry) -> Result<(), MapError> {
        if e.size == 0 || iova.checked_add(e.size - 1).is_none() {
            return Err(MapError::Empty);
        }
        if self.overlapping(iova, e.size).next().is_some() {
            return Err(MapError::Overlap);
        }
        self.by_iova.insert(iova, e);
        Ok(())
    }

    /// Removes the mappings inside `[iova, iova + size)`; returns how many.
    /// QEMU unmaps ranges it never mapped (vIOMMU invalidations), so zero is
    /// a normal answer, not an error.
    pub fn unmap(&mut self, iova: u64, size: u64) -> usize {
        let end = iova.saturating_add(size);
        let doomed: Vec<u64> = self
            .by_iova
            .range(iova..end)
            .filter(|(&s, e)| s.saturating_add(e.size) <= end)
            .map(|(&s, _)| s)
            .collect();
        for s in &doomed {
            self.by_iova.remove(s);
        }
        doomed.len()
    }

    pub fn clear(&mut self) -> usize {
        let n = self.by_iova.len();
        self.by_iova.clear();
        n
    }

    fn overlapping(&self, iova: u64, size: u64) -> impl Iterator<Item = (u64, &MapEntry)> {
        let end = iova.saturating_add(size);
        // The one entry starting below `iova` may still reach into the range.
        let before = self
            .by_iova
            .range(..iova)
            .next_back()
            .filter(|(&s, e)| s.saturating_add(e.size) > iova);
        before
            .into_iter()
            .chain(self.by_iova.range(iova..end))
            .map(|(&s, e)| (s, e))
    }

    /// What the table says about an access, one entry per mapping it touches.
    pub fn translate(&self, iova: u64, len: u64) -> Vec<Translation> {
        let end = iova.saturating_add(len);
        self.overlapping(iova, len)
            .map(|(s, e)| {
                let lo = s.max(iova);
                let hi = s.saturating_add(e.size).min(end);
                Translation {
                    iova: lo,
                    len: hi - lo,
                    target: if e.has_fd { e.offset + (lo - s) } else { 0 },
                    source: "dma_map".to_string(),
                    target_kind: if e.has_fd { "fd_offset" } else { "unknown" }.to_string(),
                    map_iova: s,
                    map_size: e.size,
                    map_flags: e.flags,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(size: u64) -> MapEntry {
        MapEntry {
            size,
            flags: 3,
            offset: 0,
            has_fd: false,
        }
    }

    #[test]
    fn map_unmap_translate() {
        let mut m = DmaMaps::default();
        m.map(0x1000, e(0x2000)).unwrap();
        m.map(
            0x4000,
            MapEntry {
                size: 0x1000,
                flags: 1,
                offset: 0x9000,
                has_fd: true,
            },
        )
        .unwrap();
        assert_eq!(m.map(0x2000, e(0x1000)), Err(MapError::Overlap));
        assert_eq!(m.map(0x8000, e(0)), Err(MapError::Empty));
        let t = m.translate(0x2800, 0x2000);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].iova, t[0].len, t[0].target, t[0].target_kind.as_str()),
            (0x2800, 0x800, 0, "unknown")
        );
        assert_eq!(
            (t[1].iova, t[1].len, t[1].target, t[1].target_kind.as_str()),
            (0x4000, 0x800, 0x9000, "fd_offset")
        );
        assert!(m.translate(0x6000, 0x10).is_empty());
        assert_eq!(m.unmap(0x100_0000, 0x1000), 0, "unknown ranges are fine");
        assert_eq!(m.unmap(0x0, 0x3000), 1);
        assert_eq!(m.len(), 1);
        assert_eq!(m.clear(), 1);
    }
}
