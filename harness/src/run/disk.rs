//! dom0's disk (`machine.disk`): its raw image in the run's own directory,
//! created zeroed before QEMU starts, and what the guests wrote to it, read
//! back from the file after QEMU exited.

use crate::outcome::GuestPayload;
use pvhdma_contract::wire::Workload;
use std::io::Read;
use std::path::Path;

/// A sparse, zeroed image of `size` bytes; a run never reuses another's.
pub fn create_image(path: &Path, size: u64) -> std::io::Result<()> {
    let f = std::fs::File::create_new(path)?;
    f.set_len(size)
}

/// Each guest with `disk` against its pattern: the image's first bytes, as
/// many as the guest was told to write. The guest's vbd is the whole disk,
/// so its offset 0 is the image's. A missing or short image counts as
/// what it holds.
pub fn guest_disks(workload: Option<&Workload>, image: &Path) -> Vec<GuestPayload> {
    workload
        .iter()
        .flat_map(|w| &w.guests)
        .filter_map(|g| {
            let d = g.disk.as_ref()?;
            let want = d.pattern.bytes(d.seed, d.size as usize);
            Some(GuestPayload::judge(&g.name, &want, &head(image, want.len())))
        })
        .collect()
}

fn head(image: &Path, len: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    if let Ok(f) = std::fs::File::open(image) {
        let _ = f.take(len as u64).read_to_end(&mut got);
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvhdma_contract::pattern::DataPattern;
    use pvhdma_contract::wire::{GuestDisk, GuestSpec};

    fn workload(disk: Option<GuestDisk>) -> Workload {
        let mut g: GuestSpec = serde_json::from_str(r#"{"name":"g1","memory_mib":256,"vcpus":1}"#).unwrap();
        g.disk = disk;
        Workload {
            guests: vec![g],
            ..Workload::default()
        }
    }

    #[test]
    fn the_image_is_judged_against_the_guests_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        assert!(guest_disks(Some(&workload(None)), &image).is_empty());
        let w = workload(Some(GuestDisk {
            size: 8192,
            pattern: DataPattern::Xorshift,
            seed: 5,
            persistent: true,
        }));
        // No image: nothing arrived.
        let p = &guest_disks(Some(&w), &image)[0];
        assert_eq!((p.received, p.mismatch_offset), (0, Some(0)));
        // A fresh image is zeroed: the write never reached it.
        create_image(&image, 1 << 20).unwrap();
        let p = &guest_disks(Some(&w), &image)[0];
        assert_eq!((p.received, p.mismatch_offset), (8192, Some(0)));
        let want = DataPattern::Xorshift.bytes(5, 8192);
        let mut bytes = want.clone();
        bytes.resize(1 << 20, 0);
        std::fs::write(&image, &bytes).unwrap();
        assert!(guest_disks(Some(&w), &image)[0].intact());
        bytes[4096] ^= 0x80;
        std::fs::write(&image, &bytes).unwrap();
        assert_eq!(guest_disks(Some(&w), &image)[0].mismatch_offset, Some(4096));
        // An image is never shared: a second create in the same place fails.
        assert!(create_image(&image, 1 << 20).is_err());
    }
}
