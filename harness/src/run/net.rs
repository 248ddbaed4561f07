//! The files QEMU's user-network TFTP server hands out for `net_tftp` ops.
//!
//! Each op gets `tftp/<op name>`: `size` bytes of its pattern, the same bytes
//! the agent checks the download against (`pvhdma_agent::net::judge`).

use crate::outcome::GuestPayload;
use pvhdma_contract::pattern::fnv1a;
use pvhdma_contract::wire::{OpKind, Workload};
use std::path::Path;

/// What each guest with `net` got through to the host: its payload file in
/// run directory `dir` against the pattern it was told to send. A missing
/// file counts as empty (QEMU never ran, or never created it).
pub fn guest_payloads(workload: Option<&Workload>, dir: &Path) -> Vec<GuestPayload> {
    workload
        .iter()
        .flat_map(|w| &w.guests)
        .filter_map(|g| {
            let n = g.net.as_ref()?;
            let want = n.pattern.bytes(n.seed, n.size as usize);
            let got = std::fs::read(crate::qemu::guest_net_file(dir, &g.name)).unwrap_or_default();
            Some(GuestPayload::judge(&g.name, &want, &got))
        })
        .collect()
}

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

    #[test]
    fn a_guest_payload_is_judged_against_its_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let mut g: pvhdma_contract::wire::GuestSpec =
            serde_json::from_str(r#"{"name":"g1","memory_mib":256,"vcpus":1}"#).unwrap();
        let w = |g: &pvhdma_contract::wire::GuestSpec| Workload {
            guests: vec![g.clone()],
            ..Workload::default()
        };
        assert!(guest_payloads(Some(&w(&g)), dir.path()).is_empty());
        g.net = Some(pvhdma_contract::wire::GuestNet {
            addr: "10.0.2.16/24".into(),
            port: 5000,
            size: 8192,
            pattern: DataPattern::Xorshift,
            seed: 4,
        });
        let want = DataPattern::Xorshift.bytes(4, 8192);
        // No file: nothing arrived.
        let p = &guest_payloads(Some(&w(&g)), dir.path())[0];
        assert_eq!((p.received, p.mismatch_offset, p.intact()), (0, Some(0), false));
        let file = crate::qemu::guest_net_file(dir.path(), "g1");
        std::fs::write(&file, &want).unwrap();
        assert!(guest_payloads(Some(&w(&g)), dir.path())[0].intact());
        let mut bad = want.clone();
        bad[5000] ^= 1;
        std::fs::write(&file, &bad).unwrap();
        assert_eq!(guest_payloads(Some(&w(&g)), dir.path())[0].mismatch_offset, Some(5000));
        std::fs::write(&file, &want[..4096]).unwrap();
        let p = &guest_payloads(Some(&w(&g)), dir.path())[0];
        assert_eq!((p.received, p.mismatch_offset), (4096, Some(4096)));
    }
}
