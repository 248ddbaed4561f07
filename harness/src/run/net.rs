//! The files QEMU's user-network TFTP server hands out for `net_tftp` ops.
//!
//! Each op gets `tftp/<op name>`: `size` bytes of its pattern, the same bytes
//! the agent checks the download against (`pvhdma_agent::net::judge`).

use pvhdma_contract::pattern::fnv1a;
use pvhdma_contract::wire::{OpKind, Workload};
use std::path::Path;

/// Write one file per `net_tftp` op into `dir`; returns (name, checksum) of each.
pub fn write_tftp_root(workload: Option<&Workload>, dir: &Path) -> std::io::Result<Vec<(String, u32)>> {
    let mut written = Vec::new();
    for op in workload
        .iter()
        .flat_map(|w| &w.ops)
        .filter(|o| o.kind == OpKind::NetTftp)
    {
        std::fs::create_dir_all(dir)?;
        let bytes = op.pattern.bytes(op.seed, op.size as usize);
        std::fs::write(dir.join(&op.name), &bytes)?;
        written.push((op.name.clone(), fnv1a(&bytes)));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvhdma_contract::wire::{DataPattern, Direction, Op, Placement};

    #[test]
    fn one_pattern_file_per_tftp_op() {
        let op = |name: &str, kind| Op {
            name: name.into(),
            kind,
            placement: Placement::Any,
            size: 1 << 20,
            count: 1,
            dir: Direction::FromDevice,
            pattern: DataPattern::Xorshift,
            seed: 5,
            segments: 1,
            bus_addr: None,
            device: 0,
            buffer: None,
        };
        let w = Workload {
            ops: vec![op("dma", OpKind::Single), op("fetch", OpKind::NetTftp)],
            ..Workload::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let got = write_tftp_root(Some(&w), &dir.path().join("tftp")).unwrap();
        let bytes = std::fs::read(dir.path().join("tftp/fetch")).unwrap();
        assert_eq!(bytes.len(), 1 << 20);
        assert_eq!(bytes, DataPattern::Xorshift.bytes(5, 1 << 20));
        assert_eq!(got, vec![("fetch".to_string(), fnv1a(&bytes))]);
        assert!(!dir.path().join("tftp/dma").exists());
        assert!(write_tftp_root(None, dir.path()).unwrap().is_empty());
    }
}
