//! swiotlb's default pool as swiotlb itself counts it in debugfs: the
//! second view of "is there a pool", beside the kernel log's line.

use std::path::Path;

/// Where init mounts debugfs.
pub const DEBUGFS: &str = "/sys/kernel/debug";

/// `swiotlb/io_tlb_nslabs` under `debugfs`: the pool's slab count. The
/// kernel makes the `swiotlb` directory in any case but puts the count in
/// it only when a pool exists, so a directory without it means 0; no
/// directory means debugfs is not there to ask (not mounted, or a kernel
/// without it), and says nothing.
pub fn nslabs(debugfs: &Path) -> Option<u64> {
    let dir = debugfs.join("swiotlb");
    if !dir.is_dir() {
        return None;
    }
    match std::fs::read_to_string(dir.join("io_tlb_nslabs")) {
        Ok(text) => text.trim().parse().ok(),
        Err(_) => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_answers() {
        let root = std::env::temp_dir().join(format!("pvhdma-pool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        assert_eq!(nslabs(&root), None, "no swiotlb directory");
        std::fs::create_dir(root.join("swiotlb")).unwrap();
        assert_eq!(nslabs(&root), Some(0), "directory without a count");
        std::fs::write(root.join("swiotlb/io_tlb_nslabs"), "32768\n").unwrap();
        assert_eq!(nslabs(&root), Some(32768));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
