//! The assertions of a scenario (`expect:`) and its negative-twin marker
//! (`expect_failure:`). Each assertion has a stable id (`device_addrs.below`,
//! `ops.high-single.map_error`, ...) used in verdict messages and by
//! `expect_failure.assertion`; [`Expect::checks`] is the one place that
//! enumerates them, so ids cannot drift between parser and verdict.

use super::size::ByteSize;
use super::util::{deserialize_str_or_map, Pattern, StrOrMap};
use pvhdma_contract::run_end::EndKind;
use pvhdma_contract::wire::GuestSees;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// How the run must end. Default `finished` (the agent finished).
    #[serde(default)]
    pub boot: BootExpect,
    /// Bus addresses the device was programmed with (every record).
    pub device_addrs: Option<DeviceAddrs>,
    /// Where the IOMMU sent the device's successful accesses.
    pub translated_addrs: Option<TranslatedAddrs>,
    /// The device's DMA_MAP view and QEMU's IOMMU trace agree wherever both know.
    pub translations_agree: Option<bool>,
    /// true: every op that moved data has intact data (at least one must).
    /// false: at least one op's data is not intact.
    pub data_intact: Option<bool>,
    /// Device accesses QEMU refused (records with outcome `iommu_fault`).
    pub iommu_faults: Option<Count>,
    /// swiotlb bounces in the run (the agent's `swiotlb_bounced` trace count).
    pub bounces: Option<Count>,
    /// Every data access of a streaming op (single, sg) hits dom0's swiotlb pool.
    pub device_addrs_in_swiotlb: Option<bool>,
    /// Whether dom0 has a swiotlb pool at all, in dom0's own words: the
    /// kernel log's `software IO TLB: mapped` line and swiotlb's slab count
    /// in debugfs.
    pub swiotlb_pool: Option<PoolState>,
    /// Results whose mapping the DMA API refused.
    pub mapping_errors: Option<Count>,
    /// Xen's CPUID leaves as dom0 reads them.
    pub xen_cpuid: Option<XenCpuidExpect>,
    /// dom0's kernel warnings (WARNING:, BUG:, DMA-API complaints). Judged in
    /// every run that finishes: none may appear unless an `allow` pattern
    /// matches it.
    #[serde(default)]
    pub kernel_warnings: WarningsExpect,
    /// Recorder devices the dom0 driver bound. It matches only vendor 0x5056,
    /// device 0xd3a0, so this is "dom0 saw the device with its IDs".
    pub devices_bound: Option<Count>,
    /// QEMU's IOMMU trace for one PCI device, by its address (e.g. the e1000).
    pub trace: Option<TraceExpect>,
    /// What guests sent through their vifs (`guests[].net`), as it arrived
    /// on the host side.
    pub guest_net: Option<GuestNetExpect>,
    /// What guests wrote to their vbds (`guests[].disk`), as the disk's
    /// image file holds it and as the guest read it back.
    pub guest_disk: Option<GuestDiskExpect>,
    /// Regular expressions on the whole console log.
    pub log: Option<LogExpect>,
    /// Per-operation expectations, by op name; they hold for every run of the op.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, OpExpect>")]
    pub ops: BTreeMap<String, Spanned<OpExpect>>,
}

/// `boot: finished`, `boot: xen_panic`, or `boot: {outcome: xen_panic, message: "regex"}`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootExpectMap {
    pub outcome: EndKind,
    /// For a failed end, searched in that end's own text (Xen's panic box, the
    /// crash line, ...), never the whole console, which echoes command lines;
    /// for `finished`, searched in the console.
    pub message: Option<Pattern>,
}

impl Default for BootExpectMap {
    fn default() -> Self {
        BootExpectMap {
            outcome: EndKind::Finished,
            message: None,
        }
    }
}

pub type BootExpect = BootExpectWrapper;

/// See [`BootExpectMap`]; a newtype so the word form can be parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BootExpectWrapper(pub BootExpectMap);

impl BootExpectWrapper {
    pub fn outcome(&self) -> EndKind {
        self.0.outcome
    }
    pub fn message(&self) -> Option<&Pattern> {
        self.0.message.as_ref()
    }
}

impl StrOrMap for BootExpectWrapper {
    const EXPECTING: &'static str = "a run-end kind (finished, xen_panic, dom0_crash, dom0_halted, linux_panic, qemu_exited, device_exited, agent_failed, console_lost, boot_timeout, run_timeout, guest_failed_to_start, guest_crashed, guest_timeout) or {outcome, message}";
    type Map = BootExpectMap;
    fn from_str(s: &str) -> Option<Self> {
        EndKind::from_name(s).map(|outcome| Self(BootExpectMap { outcome, message: None }))
    }
    fn from_map(m: BootExpectMap) -> Self {
        Self(m)
    }
}

impl<'de> Deserialize<'de> for BootExpectWrapper {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_or_map(d)
    }
}

impl JsonSchema for BootExpectWrapper {
    fn schema_name() -> Cow<'static, str> {
        "BootExpect".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let word = generator.subschema_for::<EndKind>();
        let map = generator.subschema_for::<BootExpectMap>();
        json_schema!({ "oneOf": [word, map] })
    }
}

/// A count constraint: `0`, `3` (exactly), `true` (at least one), `false`
/// (none), or `{min: 1}`, `{max: 2}`, `{min: 1, max: 4}`, `{count: 3}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Count {
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl Count {
    pub const fn exactly(n: u64) -> Self {
        Self {
            min: Some(n),
            max: Some(n),
        }
    }
    pub const fn at_least(n: u64) -> Self {
        Self {
            min: Some(n),
            max: None,
        }
    }
    pub fn holds(&self, n: u64) -> bool {
        self.min.is_none_or(|m| n >= m) && self.max.is_none_or(|m| n <= m)
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "exactly {a}"),
            (Some(a), Some(b)) => write!(f, "between {a} and {b}"),
            (Some(a), None) => write!(f, "at least {a}"),
            (None, Some(b)) => write!(f, "at most {b}"),
            (None, None) => write!(f, "any number"),
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CountMap {
    count: Option<u64>,
    min: Option<u64>,
    max: Option<u64>,
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count (3), true (at least one), false (none), or {count | min, max}")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Count, E> {
                Ok(if v { Count::at_least(1) } else { Count::exactly(0) })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count::exactly(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(Count::exactly)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
                let m = CountMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (m.count, m.min, m.max) {
                    (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                        Err(de::Error::custom("give either count or min/max, not both"))
                    }
                    (Some(n), None, None) => Ok(Count::exactly(n)),
                    (None, None, None) => Err(de::Error::custom("give count, min or max")),
                    (None, min, max) => {
                        if let (Some(a), Some(b)) = (min, max) {
                            if a > b {
                                return Err(de::Error::custom(format!("min {a} is above max {b}")));
                            }
                        }
                        Ok(Count { min, max })
                    }
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Count {
    fn schema_name() -> Cow<'static, str> {
        "Count".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let map = generator.subschema_for::<CountMap>();
        json_schema!({
            "description": "3 (exactly), true (at least one), false (none), or {count} / {min, max}",
            "oneOf": [ { "type": "integer", "minimum": 0 }, { "type": "boolean" }, map ]
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceAddrs {
    /// Every programmed bus address (start and end of each access) is below this.
    pub below: Option<ByteSize>,
    /// The device saw at least one access (guards against vacuous passes).
    #[serde(default)]
    pub at_least_one_access: bool,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TranslatedAddrs {
    /// At least one successful access was translated to this address or above.
    pub some_at_or_above: Option<ByteSize>,
    /// Every known translation is below this.
    pub all_below: Option<ByteSize>,
    /// Every page of every successful access has a translation of its own in
    /// QEMU's IOMMU trace, from the recorder's own requester id (there must
    /// be such an access).
    #[serde(default)]
    pub every_page: bool,
    /// true: some successful access over more than one page landed on
    /// machine pages that are not contiguous (the IOMMU stitched them into
    /// one bus range). false: every such access landed on contiguous machine
    /// memory (and there is one).
    pub buffers_scattered: Option<bool>,
}

/// What QEMU's IOMMU trace shows for one PCI device (any device, not only
/// the recorder: e.g. `00:10.0`, where `machine.net: e1000` puts the NIC).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceExpect {
    /// `bus:dev.fn` in hex, as QEMU prints it (`00:10.0`; `00:10.00` too).
    #[serde(deserialize_with = "bdf_string")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}\.[0-9a-fA-F]{1,2}$"))]
    pub device: String,
    /// Translations (every translation call, not faults) the trace shows for it.
    pub translations: Option<Count>,
    /// Every bus address (iova) it was translated at is below this.
    pub iova_below: Option<ByteSize>,
    /// Some translation of it lands at or above this address.
    pub some_target_at_or_above: Option<ByteSize>,
}

/// What arrived of the guests' sends and fetches.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestNetExpect {
    /// true: every guest with `net.send` got its whole payload through, byte
    /// for byte. false: at least one guest's payload is missing, short or
    /// wrong.
    pub payload_intact: Option<bool>,
    /// true: every guest with `net.receive` holds the whole file it fetched,
    /// byte for byte (its length and checksum against the file served), and
    /// netback's count of bytes it gave the guest covers it. false: at least
    /// one guest's fetch is missing, short or wrong.
    pub received_intact: Option<bool>,
}

/// What became of the guests' disk writes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestDiskExpect {
    /// true: the disk's image file holds every guest's pattern byte for byte
    /// and each guest read the same back. false: at least one guest's data
    /// is missing or wrong, in the file and in the guest's own read-back.
    /// The two witnesses must agree, or neither claim holds; true also needs
    /// blkback's counters in dom0 to show at least the write's sectors moved
    /// each way.
    pub payload_intact: Option<bool>,
    /// blkback used persistent grants for every guest's vbd (true) or
    /// mapped each request's grants and unmapped them after it (false):
    /// held to both blkfront's own word in the guest and the xenstore
    /// features dom0's blkback decided by; they must agree.
    pub persistent_grants: Option<bool>,
}

/// `bus:dev.fn` (hex) as numbers; QEMU's VT-d trace prints the function
/// with two digits (`00:10.00`), AMD-Vi's with one.
pub fn parse_bdf(s: &str) -> Option<(u8, u8, u8)> {
    let (bus, rest) = s.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let n = |t: &str| {
        (!t.is_empty() && t.len() <= 2)
            .then(|| u8::from_str_radix(t, 16).ok())
            .flatten()
    };
    let (b, d, f) = (n(bus)?, n(dev)?, n(func)?);
    (d < 32 && f < 8).then_some((b, d, f))
}

fn bdf_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    match parse_bdf(&s) {
        Some(_) => Ok(s),
        None => Err(de::Error::custom(format!(
            "`{s}`: expected a PCI address bus:dev.fn in hex, e.g. 00:10.0"
        ))),
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogExpect {
    /// Each must match somewhere in the console.
    #[serde(default)]
    pub contains: Vec<Pattern>,
    /// None may match anywhere in the console.
    #[serde(default)]
    pub lacks: Vec<Pattern>,
}

/// Which kernel warnings a scenario accepts, each by a regular expression.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarningsExpect {
    #[serde(default)]
    pub allow: Vec<Pattern>,
}

/// Expectations on every result of one op.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpExpect {
    /// The DMA API refused (true) or accepted (false) the mapping.
    pub map_error: Option<bool>,
    /// The data moved matches the pattern.
    pub intact: Option<bool>,
    /// The device's ERROR register after the op (0 none, 1 IOMMU fault, 2 beyond ADDR_BITS...).
    pub device_error: Option<u32>,
    /// swiotlb bounced the buffer (DMA address differs from the physical one).
    pub bounced: Option<bool>,
    /// The agent or driver reported an error other than a mapping error.
    pub error: Option<bool>,
    /// The completion interrupt arrived.
    pub irq: Option<bool>,
    /// Every bus address the device got for this op is below this.
    pub device_addrs_below: Option<ByteSize>,
    /// Every data access of this op hits dom0's swiotlb pool.
    pub in_swiotlb: Option<bool>,
    /// Device accesses of this op that QEMU refused.
    pub iommu_faults: Option<Count>,
    /// A from-device op on a guest's buffer: what the guest finds in every
    /// granted page after dom0 unmapped them (`pattern`, `unchanged` = what
    /// it wrote before granting, `other`). Held to dom0's `intact` too.
    pub guest_sees: Option<GuestSees>,
}

/// What Xen's CPUID leaves tell dom0.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XenCpuidExpect {
    /// XEN_HVM_CPUID_IOMMU_MAPPINGS (EAX bit 2 of the HVM leaf, base + 4):
    /// memory mapped from other domains has valid IOMMU entries.
    pub iommu_mappings: Option<bool>,
}

/// `swiotlb_pool: absent` / `present`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolState {
    /// dom0 set up no swiotlb pool (e.g. `swiotlb=noforce`).
    Absent,
    /// dom0 has a swiotlb pool.
    Present,
}

/// The assertion ids that the scenario does not state but always checks.
pub const BOOT_ID: &str = "boot";

/// A negative twin: `assertion` must fail and every other assertion must pass.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFailure {
    /// Why this scenario is expected to fail: what it demonstrates.
    pub reason: String,
    /// Assertion id (or a prefix ending at a dot boundary, e.g. `device_addrs`).
    #[schemars(with = "String")]
    pub assertion: Spanned<String>,
    /// A regular expression the named assertion's failure (what it saw) must
    /// match: it pins the cause, so the same assertion failing for another
    /// reason is a wrong failure.
    #[serde(default)]
    pub message: Option<Pattern>,
}

/// True when `id` is `name` or lies under it (`device_addrs` covers `device_addrs.below`).
pub fn id_matches(name: &str, id: &str) -> bool {
    id == name || (id.starts_with(name) && id.as_bytes().get(name.len()) == Some(&b'.'))
}

/// One assertion to evaluate, borrowed from the scenario.
#[derive(Debug, Clone)]
pub enum Check<'a> {
    Boot(&'a BootExpect),
    DeviceAddrsBelow(u64),
    DeviceAddrsAtLeastOne,
    TranslatedSomeAtOrAbove(u64),
    TranslatedAllBelow(u64),
    TranslatedEveryPage,
    BuffersScattered(bool),
    TranslationsAgree(bool),
    DataIntact(bool),
    IommuFaults(Count),
    Bounces(Count),
    InSwiotlb(bool),
    SwiotlbPool(PoolState),
    MappingErrors(Count),
    XenIommuMappings(bool),
    DevicesBound(Count),
    TraceTranslations(&'a str, Count),
    TraceIovaBelow(&'a str, u64),
    TraceSomeTargetAtOrAbove(&'a str, u64),
    GuestNetPayloadIntact(bool),
    GuestNetReceivedIntact(bool),
    GuestDiskPayloadIntact(bool),
    GuestDiskPersistent(bool),
    LogContains(&'a [Pattern]),
    /// dom0 printed no kernel warning that the allow-list does not name.
    KernelWarnings(&'a [Pattern]),
    LogLacks(&'a [Pattern]),
    Op(&'a str, OpCheck),
}

/// One per-op assertion.
#[derive(Debug, Clone, Copy)]
pub enum OpCheck {
    MapError(bool),
    Intact(bool),
    DeviceError(u32),
    Bounced(bool),
    Error(bool),
    Irq(bool),
    DeviceAddrsBelow(u64),
    InSwiotlb(bool),
    IommuFaults(Count),
    GuestSees(GuestSees),
}

impl OpCheck {
    pub fn field(&self) -> &'static str {
        match self {
            OpCheck::MapError(_) => "map_error",
            OpCheck::Intact(_) => "intact",
            OpCheck::DeviceError(_) => "device_error",
            OpCheck::Bounced(_) => "bounced",
            OpCheck::Error(_) => "error",
            OpCheck::Irq(_) => "irq",
            OpCheck::DeviceAddrsBelow(_) => "device_addrs_below",
            OpCheck::InSwiotlb(_) => "in_swiotlb",
            OpCheck::IommuFaults(_) => "iommu_faults",
            OpCheck::GuestSees(_) => "guest_sees",
        }
    }
}

impl Check<'_> {
    /// The stable id of this assertion.
    pub fn id(&self) -> String {
        match self {
            Check::Boot(_) => BOOT_ID.into(),
            Check::DeviceAddrsBelow(_) => "device_addrs.below".into(),
            Check::DeviceAddrsAtLeastOne => "device_addrs.at_least_one_access".into(),
            Check::TranslatedSomeAtOrAbove(_) => "translated_addrs.some_at_or_above".into(),
            Check::TranslatedAllBelow(_) => "translated_addrs.all_below".into(),
            Check::TranslatedEveryPage => "translated_addrs.every_page".into(),
            Check::BuffersScattered(_) => "translated_addrs.buffers_scattered".into(),
            Check::TranslationsAgree(_) => "translations_agree".into(),
            Check::DataIntact(_) => "data_intact".into(),
            Check::IommuFaults(_) => "iommu_faults".into(),
            Check::Bounces(_) => "bounces".into(),
            Check::InSwiotlb(_) => "device_addrs_in_swiotlb".into(),
            Check::SwiotlbPool(_) => "swiotlb_pool".into(),
            Check::MappingErrors(_) => "mapping_errors".into(),
            Check::XenIommuMappings(_) => "xen_cpuid.iommu_mappings".into(),
            Check::DevicesBound(_) => "devices_bound".into(),
            Check::TraceTranslations(..) => "trace.translations".into(),
            Check::TraceIovaBelow(..) => "trace.iova_below".into(),
            Check::TraceSomeTargetAtOrAbove(..) => "trace.some_target_at_or_above".into(),
            Check::GuestNetPayloadIntact(_) => "guest_net.payload_intact".into(),
            Check::GuestNetReceivedIntact(_) => "guest_net.received_intact".into(),
            Check::GuestDiskPayloadIntact(_) => "guest_disk.payload_intact".into(),
            Check::GuestDiskPersistent(_) => "guest_disk.persistent_grants".into(),
            Check::LogContains(_) => "log.contains".into(),
            Check::KernelWarnings(_) => "kernel_warnings".into(),
            Check::LogLacks(_) => "log.lacks".into(),
            Check::Op(name, c) => format!("ops.{name}.{}", c.field()),
        }
    }
}

impl Expect {
    /// Every assertion the scenario makes, boot first.
    pub fn checks(&self) -> Vec<Check<'_>> {
        let mut v = vec![Check::Boot(&self.boot)];
        if let Some(d) = &self.device_addrs {
            if let Some(b) = d.below {
                v.push(Check::DeviceAddrsBelow(b.bytes()));
            }
            if d.at_least_one_access {
                v.push(Check::DeviceAddrsAtLeastOne);
            }
        }
        if let Some(t) = &self.translated_addrs {
            if let Some(a) = t.some_at_or_above {
                v.push(Check::TranslatedSomeAtOrAbove(a.bytes()));
            }
            if let Some(b) = t.all_below {
                v.push(Check::TranslatedAllBelow(b.bytes()));
            }
            if t.every_page {
                v.push(Check::TranslatedEveryPage);
            }
            if let Some(s) = t.buffers_scattered {
                v.push(Check::BuffersScattered(s));
            }
        }
        if let Some(a) = self.translations_agree {
            v.push(Check::TranslationsAgree(a));
        }
        if let Some(i) = self.data_intact {
            v.push(Check::DataIntact(i));
        }
        if let Some(c) = self.iommu_faults {
            v.push(Check::IommuFaults(c));
        }
        if let Some(c) = self.bounces {
            v.push(Check::Bounces(c));
        }
        if let Some(s) = self.device_addrs_in_swiotlb {
            v.push(Check::InSwiotlb(s));
        }
        if let Some(p) = self.swiotlb_pool {
            v.push(Check::SwiotlbPool(p));
        }
        if let Some(c) = self.mapping_errors {
            v.push(Check::MappingErrors(c));
        }
        if let Some(f) = self.xen_cpuid.as_ref().and_then(|x| x.iommu_mappings) {
            v.push(Check::XenIommuMappings(f));
        }
        if let Some(c) = self.devices_bound {
            v.push(Check::DevicesBound(c));
        }
        // Only a run that reached dom0 userspace and finished has warnings to read.
        if self.boot.outcome() == EndKind::Finished {
            v.push(Check::KernelWarnings(&self.kernel_warnings.allow));
        }
        if let Some(t) = &self.trace {
            let dev = t.device.as_str();
            if let Some(c) = t.translations {
                v.push(Check::TraceTranslations(dev, c));
            }
            if let Some(b) = t.iova_below {
                v.push(Check::TraceIovaBelow(dev, b.bytes()));
            }
            if let Some(a) = t.some_target_at_or_above {
                v.push(Check::TraceSomeTargetAtOrAbove(dev, a.bytes()));
            }
        }
        if let Some(b) = self.guest_net.as_ref().and_then(|g| g.payload_intact) {
            v.push(Check::GuestNetPayloadIntact(b));
        }
        if let Some(b) = self.guest_net.as_ref().and_then(|g| g.received_intact) {
            v.push(Check::GuestNetReceivedIntact(b));
        }
        if let Some(b) = self.guest_disk.as_ref().and_then(|g| g.payload_intact) {
            v.push(Check::GuestDiskPayloadIntact(b));
        }
        if let Some(b) = self.guest_disk.as_ref().and_then(|g| g.persistent_grants) {
            v.push(Check::GuestDiskPersistent(b));
        }
        if let Some(l) = &self.log {
            if !l.contains.is_empty() {
                v.push(Check::LogContains(&l.contains));
            }
            if !l.lacks.is_empty() {
                v.push(Check::LogLacks(&l.lacks));
            }
        }
        for (name, e) in &self.ops {
            let e = &e.value;
            let op = |c| Check::Op(name.as_str(), c);
            if let Some(x) = e.map_error {
                v.push(op(OpCheck::MapError(x)));
            }
            if let Some(x) = e.intact {
                v.push(op(OpCheck::Intact(x)));
            }
            if let Some(x) = e.device_error {
                v.push(op(OpCheck::DeviceError(x)));
            }
            if let Some(x) = e.bounced {
                v.push(op(OpCheck::Bounced(x)));
            }
            if let Some(x) = e.error {
                v.push(op(OpCheck::Error(x)));
            }
            if let Some(x) = e.irq {
                v.push(op(OpCheck::Irq(x)));
            }
            if let Some(x) = e.device_addrs_below {
                v.push(op(OpCheck::DeviceAddrsBelow(x.bytes())));
            }
            if let Some(x) = e.in_swiotlb {
                v.push(op(OpCheck::InSwiotlb(x)));
            }
            if let Some(x) = e.iommu_faults {
                v.push(op(OpCheck::IommuFaults(x)));
            }
            if let Some(x) = e.guest_sees {
                v.push(op(OpCheck::GuestSees(x)));
            }
        }
        v
    }

    /// The ids of [`Self::checks`].
    pub fn assertion_ids(&self) -> Vec<String> {
        self.checks().iter().map(Check::id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_holds_and_reads() {
        assert!(Count::exactly(0).holds(0));
        assert!(!Count::exactly(0).holds(1));
        assert!(Count::at_least(1).holds(5));
        assert!(!Count::at_least(1).holds(0));
        let r = Count {
            min: Some(1),
            max: Some(3),
        };
        assert!(r.holds(3) && !r.holds(4));
        assert_eq!(r.to_string(), "between 1 and 3");
        assert_eq!(Count::exactly(0).to_string(), "exactly 0");
        assert_eq!(
            Count {
                min: None,
                max: Some(2)
            }
            .to_string(),
            "at most 2"
        );
    }

    #[test]
    fn id_prefix_only_at_dot_boundary() {
        assert!(id_matches("device_addrs", "device_addrs.below"));
        assert!(id_matches("device_addrs.below", "device_addrs.below"));
        assert!(!id_matches("device_addrs", "device_addrs_in_swiotlb"));
        assert!(id_matches("ops.high", "ops.high.map_error"));
        assert!(!id_matches("ops.high", "ops.high-single.map_error"));
    }

    #[test]
    fn bdf_in_both_trace_spellings() {
        assert_eq!(parse_bdf("00:10.0"), Some((0, 0x10, 0)));
        assert_eq!(parse_bdf("00:10.00"), Some((0, 0x10, 0)));
        assert_eq!(parse_bdf("0a:1f.7"), Some((0xa, 0x1f, 7)));
        for bad in [
            "",
            "00:10",
            "0010.0",
            "00:20.0",
            "00:10.8",
            "00:10.000",
            "x0:10.0",
            "sid 0x18",
        ] {
            assert_eq!(parse_bdf(bad), None, "{bad}");
        }
    }

    #[test]
    fn boot_words_are_the_run_end_kinds() {
        for k in EndKind::ALL {
            assert_eq!(BootExpectWrapper::from_str(k.name()).map(|b| b.outcome()), Some(k));
        }
        for old in ["ok", "dom0_crashed", "exploded"] {
            assert!(BootExpectWrapper::from_str(old).is_none(), "{old}");
        }
    }
}
