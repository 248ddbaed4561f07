//! dom0's view of the backends that serve its guests: for each vbd,
//! whether blkback maps the guest's grants once and keeps them (persistent
//! grants) or per request, and how much it moved; for each vif, how much
//! netback took from the guest and gave to it. Read at the end of the run,
//! beside the guest's own word and the host-side file, so neither stands
//! alone.

use std::path::Path;

use crate::wire::{VbdFacts, VifFacts, Workload};
use crate::xenstore;

/// The vbd's device id: `xvda` is Xen's disk 0 on major 202 (202 << 8).
pub const XVDA_DEVID: u32 = 51712;
/// Where blkback's per-vbd counters are.
const BACKEND_DEVICES: &str = "/sys/bus/xen-backend/devices";

/// Where the kernel counts each network device's traffic.
const NET_DEVICES: &str = "/sys/class/net";

/// One entry per guest with a vif: the counters of dom0's `vif<domid>.0`,
/// the netback device the guest's frames arrive on (rx) and leave by (tx),
/// each absent if unreadable.
pub fn vifs(workload: &Workload) -> Vec<VifFacts> {
    workload
        .guests
        .iter()
        .filter(|g| g.net.is_some())
        .map(|g| {
            let count = |what: &str| {
                domid(&g.name)
                    .and_then(|domid| counter(&Path::new(NET_DEVICES).join(format!("vif{domid}.0/statistics/{what}"))))
            };
            VifFacts {
                guest: g.name.clone(),
                rx_bytes: count("rx_bytes"),
                tx_bytes: count("tx_bytes"),
            }
        })
        .collect()
}

/// One entry per guest with a disk; a field dom0 could not read stays absent.
pub fn vbds(workload: &Workload) -> Vec<VbdFacts> {
    let mut xs = xenstore::open().ok();
    workload
        .guests
        .iter()
        .filter(|g| g.disk.is_some())
        .map(|g| {
            let mut f = VbdFacts {
                guest: g.name.clone(),
                persistent: None,
                rd_sect: None,
                wr_sect: None,
            };
            let Some(domid) = domid(&g.name) else {
                return f;
            };
            if let Some(io) = xs.as_mut() {
                let mut offered = |path: String| xenstore::read(io, &path).ok().flatten().map(|v| offers(&v));
                let front = offered(format!(
                    "/local/domain/{domid}/device/vbd/{XVDA_DEVID}/feature-persistent"
                ));
                let back = offered(format!(
                    "/local/domain/0/backend/vbd/{domid}/{XVDA_DEVID}/feature-persistent"
                ));
                f.persistent = front.zip(back).map(|(a, b)| a && b);
            }
            let stats = Path::new(BACKEND_DEVICES).join(format!("vbd-{domid}-{XVDA_DEVID}/statistics"));
            f.rd_sect = counter(&stats.join("rd_sect"));
            f.wr_sect = counter(&stats.join("wr_sect"));
            f
        })
        .collect()
}

/// The guest's domain id without waiting: these facts are read at the end
/// of the run, when a guest that never got one has long been reported, and
/// the summary must not wait for it.
fn domid(guest: &str) -> Option<u32> {
    crate::foreign::domid_now(guest).ok().flatten()
}

/// A `feature-*` key offers the feature when it reads as a non-zero number,
/// as `xenbus_read_unsigned` takes it.
fn offers(value: &[u8]) -> bool {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim_end_matches('\0').trim().parse::<u64>().ok())
        .is_some_and(|n| n != 0)
}

fn counter(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_key_offers_when_non_zero() {
        assert!(offers(b"1"));
        assert!(offers(b"1\0"));
        assert!(!offers(b"0"));
        assert!(!offers(b""));
        assert!(!offers(b"yes"));
    }

    #[test]
    fn counters_read_as_numbers_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wr_sect"), "2048\n").unwrap();
        std::fs::write(dir.path().join("rd_sect"), "junk\n").unwrap();
        assert_eq!(counter(&dir.path().join("wr_sect")), Some(2048));
        assert_eq!(counter(&dir.path().join("rd_sect")), None);
        assert_eq!(counter(&dir.path().join("missing")), None);
    }
}
