//! Workload in, results out: what the harness hands the dom0 agent and what
//! the agent prints back (docs/records.md, sections 2 and 3).

use serde::{Deserialize, Serialize};

pub use crate::pattern::DataPattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Coherent,
    Single,
    Sg,
    Raw,
    /// Not the recorder: load e1000.ko, configure eth0 (10.0.2.15/24 on
    /// QEMU's user network) and fetch `size` bytes of the op's pattern by
    /// TFTP from 10.0.2.2, file name = op name. The NIC's DMA does the work.
    NetTftp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    Low,
    High,
    #[default]
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ToDevice,
    FromDevice,
}

/// One operation of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub name: String,
    pub kind: OpKind,
    #[serde(default)]
    pub placement: Placement,
    pub size: u32,
    #[serde(default = "one")]
    pub count: u32,
    pub dir: Direction,
    #[serde(default)]
    pub pattern: DataPattern,
    #[serde(default)]
    pub seed: u32,
    #[serde(default = "one")]
    pub segments: u32,
    /// Only for `raw`: the bus address to program.
    #[serde(default)]
    pub bus_addr: Option<u64>,
    /// Which instance runs it: `/dev/pvhdma<device>` (probe order).
    #[serde(default)]
    pub device: u32,
    /// The buffer is a guest's granted pages, not dom0's own memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<GuestBuffer>,
}

fn one() -> u32 {
    1
}

/// What the harness hands the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub ops: Vec<Op>,
    #[serde(default)]
    pub tracepoints: bool,
    #[serde(default)]
    pub shell: bool,
    /// Guests dom0 creates before the ops run (their grants feed `buffer` ops).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<GuestSpec>,
}

/// The result of one run of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    pub index: u32,
    pub name: String,
    pub kind: OpKind,
    pub tag: u32,
    pub map_error: bool,
    /// Anything else that went wrong (driver or agent), in words.
    pub error: Option<String>,
    /// dom0 would not run the op at all (its shape is outside the driver's
    /// limits, or the driver rejected the request): dom0's own words.
    #[serde(default)]
    pub refused: Option<String>,
    pub dma_addrs: Vec<u64>,
    pub phys_addrs: Vec<u64>,
    pub bounced: bool,
    pub device_status: u32,
    pub device_error: u32,
    pub device_seq: u32,
    pub intact: bool,
    pub irq: bool,
    pub len: u64,
    /// Index of the op in the workload (`index` counts results).
    #[serde(default)]
    pub op: u32,
    /// Which of the op's `count` runs this is, from 0.
    #[serde(default)]
    pub run: u32,
    /// The instance, as in [`Op::device`].
    #[serde(default)]
    pub device: u32,
    /// The device's `CHECKSUM` register after the operation.
    #[serde(default)]
    pub checksum: u32,
    /// FNV-1a 32 of the pattern over `len` bytes: what `checksum` should be.
    #[serde(default)]
    pub expected_checksum: u32,
    /// The device's `BYTES_DONE` register.
    #[serde(default)]
    pub bytes_done: u32,
    /// The device's `FAULT_ADDR` (0 unless an access failed).
    #[serde(default)]
    pub fault_addr: u64,
    /// `sg` only: bus address of the descriptor list the device read.
    #[serde(default)]
    pub desc_addr: Option<u64>,
    /// First byte of from-device data that differs from the pattern.
    #[serde(default)]
    pub mismatch_offset: Option<u64>,
    /// `swiotlb:swiotlb_bounced` events during this operation.
    #[serde(default)]
    pub bounces: u64,
    /// From-device data still differed from the pattern when the driver
    /// looked right after it saw DONE (false when it did not look: to-device,
    /// raw, a device error or no DONE).
    #[serde(default)]
    pub mismatch_at_done: bool,
    /// Set when the buffer was a guest's granted pages; `phys_addrs` are
    /// then where dom0 mapped them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign: Option<Foreign>,
}

/// One guest of the run: a device-less PVH domain dom0 creates with `xl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSpec {
    pub name: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// A network interface bridged to dom0's NIC, and what the guest sends through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<GuestNet>,
    /// A virtual disk (blkfront) backed by dom0's disk, and what the guest writes to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<GuestDisk>,
}

/// A guest's vbd: the guest writes `size` bytes of the pattern from `seed`
/// to the start of its disk with O_DIRECT, reads them back the same way and
/// compares. blkback hands the guest's granted pages to the driver of
/// dom0's disk controller, so the controller's DMA reads and writes them
/// directly; the host side reads the disk's image file after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestDisk {
    pub size: u32,
    pub pattern: DataPattern,
    pub seed: u32,
    /// blkfront offers persistent grants (its default). Without them it
    /// grants the pages of each request (with O_DIRECT, the user buffer's
    /// own) and blkback maps and unmaps them per request, the way every
    /// backend meets a guest's data.
    #[serde(default = "persistent_default")]
    pub persistent: bool,
}

fn persistent_default() -> bool {
    true
}

/// What a guest printed about its disk, after
/// [`crate::markers::guest::DISK_PREFIX`]: bytes written and read back with
/// O_DIRECT, whether what it read equals the pattern, and the first error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskLine {
    pub wrote: u64,
    pub read: u64,
    pub intact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether blkfront runs with persistent grants, in its own words (its
    /// `persistent grants: enabled;` line when the vbd connects); absent
    /// when the guest's kernel printed no such line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
}

/// A guest's vif: the guest sends `size` bytes of the pattern from `seed`
/// over TCP to `port` on [`GUEST_NET_SINK`], which QEMU's user network
/// forwards into a file of the run. Through netback, the bytes leave dom0
/// by its NIC's DMA straight from the guest's granted pages.
///
/// It then fetches `receive` bytes of the same pattern by TFTP from QEMU's
/// user network ([`guest_rx_file`]): they come in by the NIC's DMA into
/// dom0's own buffers, and netback copies them into the guest's pages.
/// Either size may be 0 (that direction is not used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNet {
    /// The guest's address in QEMU's user network (CIDR, e.g. 10.0.2.16/24).
    pub addr: String,
    pub port: u16,
    pub size: u32,
    pub pattern: DataPattern,
    pub seed: u32,
    #[serde(default)]
    pub receive: u32,
}

/// The name, in the run's TFTP root, of the file the guest whose vif sends
/// to `port` fetches (each guest has its own port).
pub fn guest_rx_file(port: u16) -> String {
    format!("guest-rx-{port}")
}

/// The address in QEMU's user network whose TCP ports lead to the run's
/// payload files.
pub const GUEST_NET_SINK: &str = "10.0.2.100";

/// What a guest printed about its send, after
/// [`crate::markers::guest::NET_PREFIX`]: `acked` once the peer
/// acknowledged every byte; otherwise `unacked` bytes were still queued
/// when the guest gave up, and `error` says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetLine {
    pub sent: u64,
    pub acked: bool,
    #[serde(default)]
    pub unacked: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the guest fetched, when it was asked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<Received>,
}

/// What a guest got by its fetch: the length and FNV-1a of the bytes it
/// holds, for the harness to hold against the file it served (the guest
/// does not judge them itself), and why the fetch failed, if it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub bytes: u64,
    pub fnv1a: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An op's buffer that lives in a guest: pages it grants to dom0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestBuffer {
    pub guest: String,
    /// Granted read-only: the device may read the pages, never write them.
    #[serde(default)]
    pub readonly: bool,
}

/// What a result on granted pages adds: whose they were and how they mapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Foreign {
    pub guest: String,
    pub domid: u32,
    pub readonly: bool,
    /// Xen's GNTST_* of each page's map (0 = okay).
    pub grant_status: Vec<i32>,
}

/// What one guest does, in its own initramfs: grant and fill pages for these ops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestWork {
    pub grants: Vec<GuestGrant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<GuestNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<GuestDisk>,
}

/// The pages of one op: `pages` pages, each holding `size` bytes of the
/// op's pattern at offset 0 (the pattern runs on across pages, as the
/// driver's checksum over the segments expects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestGrant {
    pub op: String,
    pub pages: u32,
    pub size: u32,
    pub dir: Direction,
    pub pattern: DataPattern,
    pub seed: u32,
    pub readonly: bool,
}

/// A guest's grant refs for one op, printed after
/// [`crate::markers::guest::GRANT_PREFIX`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantLine {
    pub op: String,
    pub refs: Vec<u32>,
}

/// A guest's own look at the pages of one from-device op, printed after
/// [`crate::markers::guest::CHECK_PREFIX`] once dom0 said it unmapped them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckLine {
    pub op: String,
    pub sees: GuestSees,
}

/// What a guest finds in an op's pages after dom0 unmapped them, compared
/// byte for byte over every page it granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum GuestSees {
    /// The op's pattern: the device's data reached the guest.
    Pattern,
    /// Exactly what the guest wrote before granting: nothing reached it.
    Unchanged,
    /// Neither: something else was written into the guest's memory.
    Other,
}

impl GuestSees {
    /// Classify `pages` against the pattern and against what was written first.
    pub fn of(pages: &[Vec<u8>], pattern: &[Vec<u8>], initial: &[Vec<u8>]) -> GuestSees {
        if pages == pattern {
            GuestSees::Pattern
        } else if pages == initial {
            GuestSees::Unchanged
        } else {
            GuestSees::Other
        }
    }
}

impl std::fmt::Display for GuestSees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestSees::Pattern => "pattern",
            GuestSees::Unchanged => "unchanged",
            GuestSees::Other => "other",
        })
    }
}

/// One bound instance of the device, as the driver saw it at probe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `pvhdma0`, ...
    pub name: String,
    /// PCI address, e.g. `0000:00:03.0`.
    pub bdf: String,
    pub addr_bits: u32,
    pub caps: u32,
    /// `msi` or `intx`.
    pub irq_mode: String,
    /// Completion interrupts the driver handled since probe, read after the
    /// last op: more than the results with `irq` means some arrived late.
    #[serde(default)]
    pub irq_count: u32,
}

/// The swiotlb pool's bus range, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

/// Printed once after all operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub ops: u32,
    pub failed: u32,
    pub bounces: u64,
    pub overflow_warnings: u32,
    pub swiotlb: Option<Range>,
    pub kernel_warnings: Vec<String>,
    /// The device instances the driver bound (empty: no device found).
    #[serde(default)]
    pub devices: Vec<DeviceInfo>,
    /// Tracepoint groups that were enabled (empty: `bounces` means nothing).
    #[serde(default)]
    pub tracepoints: Vec<String>,
    /// The agent read dom0's kernel log from its first record, so a line
    /// missing from it (say, swiotlb's pool) was never printed.
    #[serde(default)]
    pub kmsg_from_start: bool,
    /// swiotlb's own count of its default pool's slabs, from debugfs
    /// (`swiotlb/io_tlb_nslabs`): 0 when the kernel made the directory but
    /// no count (it does so when there is no pool), absent when dom0 has no
    /// debugfs to ask.
    #[serde(default)]
    pub swiotlb_nslabs: Option<u64>,
    /// Xen's CPUID flag XEN_HVM_CPUID_IOMMU_MAPPINGS as dom0 reads it: memory
    /// mapped from other domains has valid IOMMU entries. Absent when the
    /// agent found no Xen leaves (no Xen, or an agent that did not look).
    #[serde(default)]
    pub xen_iommu_mappings: Option<bool>,
    /// Each guest vbd that blkback served, as dom0 sees it at the end.
    #[serde(default)]
    pub vbds: Vec<VbdFacts>,
    /// Each guest vif that netback served, as dom0 sees it at the end.
    #[serde(default)]
    pub vifs: Vec<VifFacts>,
}

/// One guest vif from dom0's side: the bytes netback took from the guest
/// (the vif's `rx_bytes`) and gave to it (`tx_bytes`), frames with their
/// headers; each absent when dom0 could not read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VifFacts {
    pub guest: String,
    #[serde(default)]
    pub rx_bytes: Option<u64>,
    #[serde(default)]
    pub tx_bytes: Option<u64>,
}

/// One guest vbd from dom0's side: what blkback negotiated, read from the
/// same xenstore keys it decides by, and what it moved, from its own
/// counters in sysfs. Each field is absent when dom0 could not read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VbdFacts {
    pub guest: String,
    /// Frontend and backend both offer `feature-persistent`: blkback then
    /// maps each grant once and keeps it.
    #[serde(default)]
    pub persistent: Option<bool>,
    /// 512-byte sectors blkback read from and wrote to dom0's disk for the guest.
    #[serde(default)]
    pub rd_sect: Option<u64>,
    #[serde(default)]
    pub wr_sect: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_example_from_docs_parses() {
        let w: Workload = serde_json::from_str(
            r#"{"ops":[{"name":"coherent-low","kind":"coherent","placement":"any","size":4096,
                "count":2,"dir":"from_device","pattern":"xorshift","seed":7,"segments":1,
                "bus_addr":null}],"tracepoints":true,"shell":false}"#,
        )
        .unwrap();
        assert_eq!(w.ops.len(), 1);
        assert_eq!(w.ops[0].kind, OpKind::Coherent);
        assert_eq!(w.ops[0].count, 2);
        assert!(w.tracepoints && !w.shell);
    }

    #[test]
    fn workload_defaults() {
        let w: Workload = serde_json::from_str(
            r#"{"ops":[{"name":"r","kind":"raw","size":64,"dir":"to_device","bus_addr":4294967296}]}"#,
        )
        .unwrap();
        let op = &w.ops[0];
        assert_eq!((op.count, op.segments, op.seed, op.device), (1, 1, 0, 0));
        assert_eq!((op.placement, op.pattern), (Placement::Any, DataPattern::Xorshift));
        assert_eq!(op.bus_addr, Some(1 << 32));
        assert!(!w.tracepoints && !w.shell);
    }

    #[test]
    fn guest_fields_are_left_out_when_unused() {
        // A dom0-only workload serializes as before: older agents read it.
        let w: Workload =
            serde_json::from_str(r#"{"ops":[{"name":"s","kind":"single","size":64,"dir":"to_device"}]}"#).unwrap();
        let text = serde_json::to_string(&w).unwrap();
        assert!(!text.contains("guests") && !text.contains("buffer"), "{text}");
        let w: Workload = serde_json::from_str(
            r#"{"ops":[{"name":"g","kind":"sg","size":4096,"segments":2,"dir":"to_device",
                "buffer":{"guest":"g1"}}],"guests":[{"name":"g1","memory_mib":256,"vcpus":1}]}"#,
        )
        .unwrap();
        assert_eq!(
            w.ops[0].buffer,
            Some(GuestBuffer {
                guest: "g1".into(),
                readonly: false
            })
        );
        assert_eq!(w.guests[0].memory_mib, 256);
    }

    #[test]
    fn unknown_kind_is_rejected() {
        assert!(
            serde_json::from_str::<Workload>(r#"{"ops":[{"name":"x","kind":"dma","size":1,"dir":"to_device"}]}"#)
                .is_err()
        );
    }

    #[test]
    fn summary_from_older_agent_still_parses() {
        let s: Summary = serde_json::from_str(
            r#"{"ops":2,"failed":0,"bounces":0,"overflow_warnings":0,"swiotlb":{"start":3758096384,"end":3825205248},"kernel_warnings":[]}"#,
        )
        .unwrap();
        assert_eq!(
            s.swiotlb,
            Some(Range {
                start: 0xe000_0000,
                end: 0xe400_0000
            })
        );
        assert!(s.devices.is_empty());
    }

    #[test]
    fn a_guest_tells_pattern_from_untouched_from_anything_else() {
        let pattern = vec![vec![1u8, 2], vec![3, 4]];
        let initial = vec![vec![!1u8, !2], vec![!3, !4]];
        assert_eq!(GuestSees::of(&pattern, &pattern, &initial), GuestSees::Pattern);
        assert_eq!(GuestSees::of(&initial, &pattern, &initial), GuestSees::Unchanged);
        // One byte off in the last page is neither.
        let mut last_off = pattern.clone();
        last_off[1][1] = 0;
        assert_eq!(GuestSees::of(&last_off, &pattern, &initial), GuestSees::Other);
        let line = CheckLine {
            op: "w".into(),
            sees: GuestSees::Unchanged,
        };
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"op":"w","sees":"unchanged"}"#
        );
    }
}
