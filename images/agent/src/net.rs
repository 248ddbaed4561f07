//! `net_tftp`: a real 32-bit DMA device (QEMU's e1000) moves a known file.
//!
//! The harness writes `size` bytes of the op's pattern into the TFTP root of
//! QEMU's user network under the op's name; the agent loads e1000.ko, brings
//! eth0 up as 10.0.2.15/24 and fetches the file from 10.0.2.2 with busybox
//! `tftp`. Every received byte arrived by the NIC's bus-master DMA, so the
//! checksum says whether that DMA (and the IOMMU path under it) was right.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::pattern::fnv1a;
use crate::report::{failed, Slot};
use crate::wire::{Op, OpResult};

/// Where init's initramfs keeps the NIC driver (decompressed at image build).
pub const E1000_KO: &str = "/lib/modules/e1000.ko";
pub const IFACE: &str = "eth0";
pub const GUEST_ADDR: &str = "10.0.2.15/24";
/// QEMU slirp's host address, where its TFTP server answers.
pub const SERVER: &str = "10.0.2.2";

/// Judge the fetched bytes against the pattern the harness wrote.
pub fn judge(slot: Slot, op: &Op, got: &[u8]) -> OpResult {
    let want = op.pattern.bytes(op.seed, op.size as usize);
    let mut r = failed(slot, op, String::new());
    r.error = None;
    r.len = got.len() as u64;
    r.bytes_done = got.len() as u32;
    r.checksum = fnv1a(got);
    r.expected_checksum = fnv1a(&want);
    r.mismatch_offset = got
        .iter()
        .zip(&want)
        .position(|(a, b)| a != b)
        .map(|i| i as u64)
        .or_else(|| (got.len() != want.len()).then(|| got.len().min(want.len()) as u64));
    r.intact = r.mismatch_offset.is_none() && r.checksum == r.expected_checksum;
    r
}

pub(crate) fn sh(prog: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let why = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{prog} {} failed ({}): {}",
            args.join(" "),
            out.status,
            why.trim()
        ))
    }
}

/// Load the module at `ko` with `params`, unless the image set shipped no
/// such file: it ships every module the kernel does not have built in, so a
/// missing one is already there. A built-in driver has taken its parameters
/// at boot, so asking for any is an error.
pub(crate) fn insmod_shipped(ko: &str, params: &[&str]) -> Result<(), String> {
    if Path::new(ko).exists() {
        let mut args = vec![ko];
        args.extend_from_slice(params);
        return sh("insmod", &args);
    }
    if params.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{ko} is built into this kernel, so it cannot be loaded with {}",
        params.join(" ")
    ))
}

pub(crate) fn wait_for(what: &str, timeout: Duration, ok: impl Fn() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > timeout {
            return Err(format!("{what} not within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Load the driver and configure the interface, once per run.
fn bring_up() -> Result<(), String> {
    let iface = format!("/sys/class/net/{IFACE}");
    if !Path::new(&iface).exists() {
        sh("insmod", &[E1000_KO])?;
        wait_for(&format!("{IFACE} after insmod e1000"), Duration::from_secs(5), || {
            Path::new(&iface).exists()
        })?;
        sh("ip", &["link", "set", IFACE, "up"])?;
        sh("ip", &["addr", "add", GUEST_ADDR, "dev", IFACE])?;
    }
    let carrier = format!("{iface}/carrier");
    wait_for(&format!("{IFACE} carrier"), Duration::from_secs(10), || {
        std::fs::read_to_string(&carrier).is_ok_and(|c| c.trim() == "1")
    })
}

/// `remote` from the user network's TFTP server, through `local` (a file
/// that exists only during the call).
pub(crate) fn tftp_get(remote: &str, local: &str) -> Result<Vec<u8>, String> {
    let _ = std::fs::remove_file(local);
    // 1428-byte blocks fit a 1500-byte frame; slirp's server honours
    // RFC 2348's blksize. Fall back to 512 if it does not.
    let got = sh("tftp", &["-g", "-b", "1428", "-r", remote, "-l", local, SERVER])
        .or_else(|_| sh("tftp", &["-g", "-r", remote, "-l", local, SERVER]))
        .and_then(|()| std::fs::read(local).map_err(|e| format!("cannot read {local}: {e}")));
    let _ = std::fs::remove_file(local);
    got
}

/// Run one `net_tftp` op.
pub fn run(slot: Slot, op: &Op) -> OpResult {
    let fetched = bring_up().and_then(|()| tftp_get(&op.name, &format!("/tmp/{}", op.name)));
    match fetched {
        Ok(bytes) => judge(slot, op, &bytes),
        Err(e) => failed(slot, op, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DataPattern, Direction, OpKind, Placement};

    #[test]
    fn a_module_not_shipped_counts_as_built_in_unless_it_needs_parameters() {
        let ko = "/nonexistent/pvhdma-test.ko";
        assert_eq!(insmod_shipped(ko, &[]), Ok(()));
        let err = insmod_shipped(ko, &["feature_persistent=0"]).unwrap_err();
        assert!(err.contains("built into this kernel"), "{err}");
    }

    fn op() -> Op {
        Op {
            name: "fetch".into(),
            kind: OpKind::NetTftp,
            placement: Placement::Any,
            size: 10_000,
            count: 1,
            dir: Direction::FromDevice,
            pattern: DataPattern::Xorshift,
            seed: 9,
            segments: 1,
            bus_addr: None,
            device: 0,
            buffer: None,
        }
    }

    const SLOT: Slot = Slot {
        index: 2,
        op: 1,
        run: 0,
        tag: 3,
    };

    #[test]
    fn the_right_bytes_are_intact() {
        let good = DataPattern::Xorshift.bytes(9, 10_000);
        let r = judge(SLOT, &op(), &good);
        assert!(r.intact && r.error.is_none(), "{r:?}");
        assert_eq!((r.len, r.checksum), (10_000, fnv1a(&good)));
        assert_eq!(r.kind, OpKind::NetTftp);
    }

    #[test]
    fn a_flipped_byte_or_a_short_file_is_not() {
        let mut bad = DataPattern::Xorshift.bytes(9, 10_000);
        bad[4321] ^= 1;
        let r = judge(SLOT, &op(), &bad);
        assert!(!r.intact);
        assert_eq!(r.mismatch_offset, Some(4321));
        let short = &DataPattern::Xorshift.bytes(9, 10_000)[..9_000];
        let r = judge(SLOT, &op(), short);
        assert!(!r.intact);
        assert_eq!(r.mismatch_offset, Some(9_000));
    }
}
