//! What QEMU's user network exchanges with the run: the files its TFTP
//! server hands out, and what guests sent through it.
//!
//! Each `net_tftp` op gets `tftp/<op name>`: `size` bytes of its pattern,
//! the same bytes the agent checks the download against
//! (`pvhdma_agent::net::judge`). Each guest with `net.receive` gets
//! `tftp/<guest_rx_file>`: that many bytes of its pattern.

use crate::outcome::{GuestPayload, Served};
use pvhdma_contract::pattern::fnv1a;
use pvhdma_contract::wire::{guest_rx_file, GuestNet, GuestSpec, OpKind, Workload};
use std::path::Path;

/// What each guest with `net` got through to the host: its payload file in
/// run directory `dir` against the pattern it was told to send. A missing
/// file counts as empty (QEMU never ran, or never created it).
pub fn guest_payloads(workload: Option<&Workload>, dir: &Path) -> Vec<GuestPayload> {
    workload
        .iter()
        .flat_map(|w| &w.guests)
        .filter_map(|g| {
            let n = g.net.as_ref().filter(|n| n.size > 0)?;
            let want = n.pattern.bytes(n.seed, n.size as usize);
            let got = std::fs::read(crate::qemu::guest_net_file(dir, &g.name)).unwrap_or_default();
            Some(GuestPayload::judge(&g.name, &want, &got))
        })
        .collect()
}

/// Each guest with `net.receive` and what it is served.
fn fetching(workload: Option<&Workload>) -> impl Iterator<Item = (&GuestSpec, &GuestNet)> {
    workload
        .into_iter()
        .flat_map(|w| &w.guests)
        .filter_map(|g| Some((g, g.net.as_ref().filter(|n| n.receive > 0)?)))
}

fn rx_bytes(n: &GuestNet) -> Vec<u8> {
    n.pattern.bytes(n.seed, n.receive as usize)
}

/// What each guest with `net.receive` is served, as [`write_tftp_root`]
/// writes it.
pub fn guest_served(workload: Option<&Workload>) -> Vec<Served> {
    fetching(workload)
        .map(|(g, n)| {
            let bytes = rx_bytes(n);
            Served {
                guest: g.name.clone(),
                bytes: bytes.len() as u64,
                fnv1a: fnv1a(&bytes),
            }
        })
        .collect()
}

/// Write one file per `net_tftp` op and per fetching guest into `dir`;
/// returns (name, checksum) of each.
pub fn write_tftp_root(workload: Option<&Workload>, dir: &Path) -> std::io::Result<Vec<(String, u32)>> {
    let mut files: Vec<(String, Vec<u8>)> = workload
        .iter()
        .flat_map(|w| &w.ops)
        .filter(|o| o.kind == OpKind::NetTftp)
        .map(|op| (op.name.clone(), op.pattern.bytes(op.seed, op.size as usize)))
        .collect();
    files.extend(fetching(workload).map(|(_, n)| (guest_rx_file(n.port), rx_bytes(n))));
    let mut written = Vec::new();
    for (name, bytes) in files {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(&name), &bytes)?;
        written.push((name, fnv1a(&bytes)));
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
            receive: 0,
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

    #[test]
    fn a_fetching_guest_is_served_its_file_and_judged_only_on_what_it_sends() {
        let dir = tempfile::tempdir().unwrap();
        let mut g: pvhdma_contract::wire::GuestSpec =
            serde_json::from_str(r#"{"name":"g1","memory_mib":256,"vcpus":1}"#).unwrap();
        g.net = Some(pvhdma_contract::wire::GuestNet {
            addr: "10.0.2.17/24".into(),
            port: 5001,
            size: 0,
            pattern: DataPattern::Xorshift,
            seed: 6,
            receive: 3000,
        });
        let w = Workload {
            guests: vec![g],
            ..Workload::default()
        };
        let written = write_tftp_root(Some(&w), dir.path()).unwrap();
        let want = DataPattern::Xorshift.bytes(6, 3000);
        assert_eq!(std::fs::read(dir.path().join("guest-rx-5001")).unwrap(), want);
        assert_eq!(written, vec![("guest-rx-5001".to_string(), fnv1a(&want))]);
        let served = guest_served(Some(&w));
        assert_eq!(
            served,
            vec![Served {
                guest: "g1".into(),
                bytes: 3000,
                fnv1a: fnv1a(&want)
            }]
        );
        // It sends nothing, so there is no payload of its to judge.
        assert!(guest_payloads(Some(&w), dir.path()).is_empty());
    }
}
