//! The scenario file format: what to boot and what to run. The assertions
//! live in `expect.rs`. Every struct is strict (`deny_unknown_fields`): a typo
//! must fail loudly, not silently fall back to a default.

use super::expect::{Expect, ExpectFailure};
use super::size::{ByteSize, HumanDuration, MemSize};
use super::util::{deserialize_str_or_map, StrOrMap};
use pvhdma_contract::device_cli::Mutant;
use pvhdma_contract::pattern::DataPattern;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;
use std::borrow::Cow;
use std::time::Duration;

/// One scenario file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pvhdma scenario")]
pub struct Scenario {
    /// Test name; defaults to the file stem.
    #[serde(default)]
    pub name: String,
    /// What the scenario shows and why it matters.
    pub description: String,
    #[serde(default)]
    pub machine: MachineCfg,
    /// Xen's configuration, or `none` for the control runs: Linux boots
    /// directly and uses the guest IOMMU itself.
    #[serde(default)]
    pub xen: Xen,
    /// The Linux kernel that runs the workload (dom0, or the only kernel with `xen: none`).
    #[serde(default)]
    pub dom0: Dom0Cfg,
    /// DMA recorder instances. Default: one device with 32/32 bits.
    #[serde(default = "default_devices")]
    pub devices: Vec<DeviceCfg>,
    /// Guests dom0 creates with Xen's toolstack before the workload runs
    /// (PVH, no devices, the dom0 kernel). Ops name their granted pages
    /// with `buffer`. Default none: no toolstack is started.
    #[serde(default)]
    pub guests: Vec<GuestCfg>,
    /// Operations the dom0 agent runs, in order. Empty: boot and power off.
    #[serde(default)]
    pub workload: Vec<OpCfg>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What must hold. `boot: finished` is implied.
    #[serde(default)]
    pub expect: Expect,
    /// A negative twin: the named assertion must fail, and nothing else may.
    #[serde(default)]
    pub expect_failure: Option<ExpectFailure>,
    /// Restricts the scenario to some cells of the test matrix.
    #[serde(default)]
    pub cells: Option<Cells>,
    /// Fault injection for negative twins: a wrong RAM layout on the judging
    /// side (the VM runs as without it), or a deliberately misbehaving device.
    #[serde(default)]
    pub inject: Option<Inject>,
}

/// What a negative twin gets wrong on purpose, to show a check can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inject {
    /// Judge the device's DMA_MAP view as if QEMU had put at most this much
    /// RAM below 4 GiB (q35 really puts 2G there for 2.75G of RAM or more).
    /// Every fd offset past the wrong boundary converts to a wrong
    /// guest-physical address, so `translations_agree` must fail.
    pub ram_below_4g: Option<MemSize>,
    /// Run every DMA recorder of the scenario as this mutant (a lying
    /// device: corrupt data, partial transfers, false records, DMA to the
    /// wrong place, lying completions or interrupts, swallowed faults). The
    /// names are those of `cargo xtask mutants`.
    pub device: Option<Mutant>,
}

fn default_devices() -> Vec<DeviceCfg> {
    vec![DeviceCfg::default()]
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineCfg {
    /// VM memory. Default 8G (q35 then has 2G below 4 GiB and 6G above).
    #[serde(default = "default_memory")]
    pub memory: MemSize,
    /// Default 2.
    #[serde(default = "default_cpus", deserialize_with = "positive_u32")]
    #[schemars(range(min = 1))]
    pub cpus: u32,
    /// The emulated IOMMU. Default intel.
    #[serde(default)]
    pub iommu: IommuCfg,
    /// Default auto (TCG today: the host KVM cannot run Xen).
    #[serde(default)]
    pub accel: AccelCfg,
    /// A real NIC on QEMU's user network: `e1000` (at 00:10.0, 32-bit DMA
    /// mask), for `net_tftp` ops. Default none.
    #[serde(default)]
    pub net: NetCfg,
    /// A disk on a real block controller whose Linux driver has a 32-bit
    /// DMA mask, backed by a raw image in the run's directory; a guest's
    /// `disk` is served from it by blkback. Default none.
    pub disk: Option<DiskCfg>,
}

/// dom0's disk: which controller, and how big its image is.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskCfg {
    pub controller: DiskControllerCfg,
    /// 1M to 1G; the image starts zeroed.
    #[serde(deserialize_with = "disk_size")]
    #[schemars(with = "ByteSize")]
    pub size: u64,
}

/// The emulated block controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DiskControllerCfg {
    /// Intel PIIX4 IDE (at 00:11.0, the disk on its primary channel):
    /// Linux's ata_piix does bus-master DMA through libata's 32-bit mask.
    #[serde(rename = "piix4-ide")]
    Piix4Ide,
}

/// Room for a guest's writes, small enough to read back after every run.
pub const MAX_DISK: u64 = 1 << 30;

fn disk_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = ByteSize::deserialize(d)?.bytes();
    if !(1 << 20..=MAX_DISK).contains(&v) || v % 512 != 0 {
        return Err(serde::de::Error::custom(format!(
            "size {v} bytes: expected 1M to 1G, whole 512-byte sectors"
        )));
    }
    Ok(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetCfg {
    #[default]
    None,
    E1000,
}

fn default_memory() -> MemSize {
    MemSize::gib(8)
}
fn default_cpus() -> u32 {
    2
}

impl Default for MachineCfg {
    fn default() -> Self {
        Self {
            memory: default_memory(),
            cpus: default_cpus(),
            iommu: IommuCfg::default(),
            accel: AccelCfg::default(),
            net: NetCfg::default(),
            disk: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IommuCfg {
    #[default]
    Intel,
    Amd,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccelCfg {
    Tcg,
    Kvm,
    #[default]
    Auto,
}

/// `xen: none` or Xen's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Xen {
    None,
    Boot(XenCfg),
}

impl Default for Xen {
    fn default() -> Self {
        Xen::Boot(XenCfg::default())
    }
}

impl StrOrMap for Xen {
    const EXPECTING: &'static str = "`none` or a mapping with dom0, dom0_mem, options";
    type Map = XenCfg;
    fn from_str(s: &str) -> Option<Self> {
        (s == "none").then_some(Xen::None)
    }
    fn from_map(m: XenCfg) -> Self {
        Xen::Boot(m)
    }
}

impl<'de> Deserialize<'de> for Xen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_or_map(d)
    }
}

impl JsonSchema for Xen {
    fn schema_name() -> Cow<'static, str> {
        "Xen".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let cfg = generator.subschema_for::<XenCfg>();
        json_schema!({
            "description": "Xen's settings, or `none`: boot Linux directly (the control runs)",
            "oneOf": [ { "const": "none" }, cfg ]
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XenCfg {
    /// How Xen builds dom0. Default pvh.
    #[serde(default)]
    pub dom0: Dom0ModeCfg,
    /// dom0's memory (Xen's `dom0_mem`). Default 1G.
    #[serde(default = "default_dom0_mem")]
    pub dom0_mem: MemSize,
    /// Appended to the harness's Xen command line.
    #[serde(default)]
    pub options: Vec<String>,
}

fn default_dom0_mem() -> MemSize {
    MemSize::gib(1)
}

impl Default for XenCfg {
    fn default() -> Self {
        Self {
            dom0: Dom0ModeCfg::default(),
            dom0_mem: default_dom0_mem(),
            options: vec![],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dom0ModeCfg {
    #[default]
    Pvh,
    Pv,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dom0Cfg {
    /// Appended to the kernel's command line, e.g. `swiotlb=noforce`.
    #[serde(default)]
    pub cmdline: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCfg {
    /// DMA address bits the device advertises (`ADDR_BITS`). Default 32.
    #[serde(default = "default_bits", deserialize_with = "addr_bits")]
    #[schemars(range(min = 12, max = 64))]
    pub addr_bits: u32,
    /// Bits its engine really decodes. Default: `addr_bits`.
    #[serde(default, deserialize_with = "opt_addr_bits")]
    #[schemars(range(min = 12, max = 64))]
    pub decode_bits: Option<u32>,
}

fn default_bits() -> u32 {
    32
}

impl Default for DeviceCfg {
    fn default() -> Self {
        Self {
            addr_bits: 32,
            decode_bits: None,
        }
    }
}

impl DeviceCfg {
    pub fn decode_bits(&self) -> u32 {
        self.decode_bits.unwrap_or(self.addr_bits)
    }
}

fn addr_bits<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if !(12..=64).contains(&v) {
        return Err(serde::de::Error::custom(format!("{v} address bits: expected 12..=64")));
    }
    Ok(v)
}

fn opt_addr_bits<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    addr_bits(d).map(Some)
}

fn positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(v)
}

use pvhdma_contract::limits::{MAX_SEGMENTS, MAX_XFER};

/// One guest domain.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestCfg {
    /// Letters, digits and `-`; names its console artifact
    /// (`guest-NAME.console.log`) and ops' `buffer.guest`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// How Xen builds it. Only pvh (no device model). Default pvh.
    #[serde(rename = "type", default)]
    pub kind: GuestTypeCfg,
    /// Its memory. Default 256M.
    #[serde(default = "default_guest_memory")]
    pub memory: MemSize,
    /// Default 1.
    #[serde(default = "one", deserialize_with = "positive_u32")]
    #[schemars(range(min = 1))]
    pub vcpus: u32,
    /// A vif bridged to dom0's e1000 (needs `machine.net: e1000`), through
    /// which the guest sends a payload out of the machine, fetches one, or
    /// both.
    pub net: Option<GuestNetCfg>,
    /// A vbd served by blkback from dom0's disk (needs `machine.disk`; one
    /// guest at most), which the guest writes and reads back.
    pub disk: Option<GuestDiskCfg>,
}

/// What a guest writes to its vbd: `write` bytes of the pattern from `seed`
/// at offset 0, with O_DIRECT, then read back the same way. The host side
/// reads the disk's image file after the run (`expect.guest_disk`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestDiskCfg {
    /// 4K to 16M, whole pages (O_DIRECT).
    #[serde(deserialize_with = "disk_write_size")]
    #[schemars(with = "ByteSize")]
    pub write: u32,
    /// Default xorshift.
    #[serde(default)]
    pub pattern: DataPattern,
    /// Default 0.
    #[serde(default)]
    pub seed: u32,
    /// blkfront offers persistent grants (default true, as Linux does).
    /// false: it grants each request's own pages (with O_DIRECT, the user
    /// buffer's) and blkback maps and unmaps them per request.
    #[serde(default = "yes")]
    pub persistent: bool,
}

fn yes() -> bool {
    true
}

fn disk_write_size<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = ByteSize::deserialize(d)?.bytes();
    if !(4096..=MAX_GUEST_SEND).contains(&v) || v % 4096 != 0 {
        return Err(serde::de::Error::custom(format!(
            "write {v} bytes: expected 4K to 16M, whole pages"
        )));
    }
    Ok(v as u32)
}

/// What a guest moves through its vif, at least one of:
/// - `send` bytes of the pattern from `seed`, over TCP to QEMU's user
///   network, which writes them into `guest-NAME.net.bin` in the run's
///   directory (`expect.guest_net.payload_intact` judges that file). dom0's
///   netback maps the guest's pages of each segment and hands them to the
///   e1000 driver.
/// - `receive` bytes of the same pattern, fetched by TFTP from QEMU's user
///   network (`expect.guest_net.received_intact`). The e1000 writes them
///   into dom0's own buffers and netback copies them into the guest's pages.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestNetCfg {
    /// 1 byte to 16M.
    #[serde(default, deserialize_with = "net_size")]
    #[schemars(with = "Option<ByteSize>")]
    pub send: Option<u32>,
    /// 1 byte to 16M.
    #[serde(default, deserialize_with = "net_size")]
    #[schemars(with = "Option<ByteSize>")]
    pub receive: Option<u32>,
    /// Default xorshift.
    #[serde(default)]
    pub pattern: DataPattern,
    /// Default 0.
    #[serde(default)]
    pub seed: u32,
}

/// More than a socket's buffers hold, small enough for a TCG run.
pub const MAX_GUEST_SEND: u64 = 16 << 20;

fn net_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = ByteSize::deserialize(d)?.bytes();
    if v == 0 || v > MAX_GUEST_SEND {
        return Err(serde::de::Error::custom(format!("{v} bytes: expected 1 byte to 16M")));
    }
    Ok(Some(v as u32))
}

fn default_guest_memory() -> MemSize {
    MemSize::mib(256)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestTypeCfg {
    #[default]
    Pvh,
}

/// An op's buffer in a guest: pages the guest grants to dom0 and fills
/// (the pattern for to_device, its complement for from_device); dom0 maps
/// them as a backend does and hands them to the DMA API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BufferCfg {
    /// The guest (from `guests`) that grants the pages.
    pub guest: String,
    /// rw: dom0 may write the pages (the device too); ro: read only.
    /// Default rw.
    #[serde(default)]
    pub grant: GrantCfg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantCfg {
    #[default]
    Rw,
    Ro,
}

fn op_size<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = ByteSize::deserialize(d)?.bytes();
    if v == 0 || v > u64::from(MAX_XFER) {
        return Err(serde::de::Error::custom(format!(
            "size {v} bytes: the device moves 1 byte to 1M per segment"
        )));
    }
    Ok(v as u32)
}

fn op_segments<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v == 0 || v > MAX_SEGMENTS {
        return Err(serde::de::Error::custom(format!(
            "{v} segments: expected 1..={MAX_SEGMENTS}"
        )));
    }
    Ok(v)
}

/// One operation of the dom0 workload (docs/records.md section 2).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpCfg {
    /// Unique within the scenario; used by `expect.ops` and in messages.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    pub kind: OpKindCfg,
    /// Where the buffer lives (single and sg only). Default any.
    #[serde(default)]
    pub placement: PlacementCfg,
    /// Bytes per segment: 1 to 1M (`4K` is fine).
    #[serde(deserialize_with = "op_size")]
    #[schemars(with = "ByteSize")]
    pub size: u32,
    /// How many times to run it (each run is one result). Default 1.
    #[serde(default = "one", deserialize_with = "positive_u32")]
    #[schemars(range(min = 1))]
    pub count: u32,
    /// Default from_device (the device writes memory; the agent checks the pattern).
    #[serde(default)]
    pub dir: DirCfg,
    /// Default xorshift.
    #[serde(default)]
    pub pattern: DataPattern,
    /// Default 0.
    #[serde(default)]
    pub seed: u32,
    /// sg only: number of segments of `size` bytes. Default 1.
    #[serde(default = "one", deserialize_with = "op_segments")]
    #[schemars(range(min = 1, max = 256))]
    pub segments: u32,
    /// raw only (and required there): the bus address to program.
    #[serde(default)]
    pub bus_addr: Option<ByteSize>,
    /// Which device instance runs it (index into `devices`). Default 0.
    #[serde(default)]
    pub device: u32,
    /// single and sg only: use a guest's granted pages instead of dom0's
    /// own memory, one 4K page per segment (so size <= 4K).
    #[serde(default)]
    pub buffer: Option<BufferCfg>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpKindCfg {
    /// dma_alloc_coherent
    Coherent,
    /// dma_map_page
    Single,
    /// dma_map_sg
    Sg,
    /// no DMA API: program `bus_addr` directly
    Raw,
    /// not the recorder: fetch `size` bytes of the pattern over TFTP through
    /// the e1000 (`machine.net: e1000`); its DMA moves them
    NetTftp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlacementCfg {
    Low,
    High,
    #[default]
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirCfg {
    ToDevice,
    #[default]
    FromDevice,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// From QEMU start to the dom0 boot marker. Default 120s.
    #[serde(default = "default_timeout")]
    pub boot: HumanDuration,
    /// From the boot marker to the agent's done marker. Default 120s.
    #[serde(default = "default_timeout")]
    pub run: HumanDuration,
    /// From dom0's boot marker to each guest's own (only with `guests`).
    /// Default 120s.
    #[serde(default = "default_timeout")]
    pub guest: HumanDuration,
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(120))
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            boot: default_timeout(),
            run: default_timeout(),
            guest: default_timeout(),
        }
    }
}

/// Which cells of the test matrix the scenario applies to. An empty list
/// means every value.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cells {
    /// Xen versions, e.g. "4.20".
    #[serde(default)]
    pub xen: Vec<String>,
    /// Kernel versions, e.g. "6.12".
    #[serde(default)]
    pub kernels: Vec<String>,
    #[serde(default)]
    pub iommu: Vec<IommuCfg>,
    /// Which QEMU the image set must have: `stock` (the QEMU root's own
    /// binary) or the file name of a patch the set's QEMU was built with
    /// (images/qemu/patches/). The scenario runs when one entry matches.
    #[serde(default)]
    pub qemu: Vec<String>,
}
