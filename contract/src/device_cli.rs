//! The recorder's command line, built by the harness and parsed by the
//! device from this one type, so the two cannot disagree on a flag.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A deliberate misbehaviour of the recorder, for the mutation run and for
/// negative twins: each one is a lie a broken device could tell, and some
/// verdict must catch it. Names are stable (they appear in scenario files,
/// command lines and the kill matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mutant {
    /// Data corrupted out of sight: the first byte of every from-device
    /// write is flipped in memory, while CHECKSUM covers the true pattern.
    FlipWrittenByte,
    /// Data corrupted out of sight: every from-device write stops one byte
    /// short, while CHECKSUM and BYTES_DONE count the whole length.
    WriteOneShort,
    /// Partial transfer reported complete: a scatter-gather operation skips
    /// its last segment, yet counts it in BYTES_DONE and CHECKSUM and
    /// records it as moved.
    SkipLastSegment,
    /// Partial transfer reported complete: every data segment moves only
    /// its first half, and reports the whole.
    HalfTransfer,
    /// A record misstates what the device was given: bus (and decoded)
    /// address one page higher than the real access.
    RecordAddrOffByPage,
    /// A record misstates what the device did: twice the real length.
    RecordLenWrong,
    /// A record is missing: the first data access of every operation is
    /// not written.
    DropRecord,
    /// DMA to the wrong place: every data access goes one page above the
    /// address the device was given, and is recorded at the given address.
    WriteAddrPlusPage,
    /// A completion that lies: STATUS says DONE (and the interrupt fires)
    /// before any from-device data is written; the writes follow after.
    DoneBeforeData,
    /// An interrupt that never comes: the completion is latched, no MSI or
    /// INTx is raised.
    NoIrq,
    /// An interrupt that comes twice for one completion.
    DoubleIrq,
    /// A swallowed fault: a refused access counts as moved, ERROR stays 0
    /// and the record says ok.
    FaultAsOk,
    /// A fault hidden from the record only: the registers report the IOMMU
    /// fault, the record says the access was ok.
    FaultRecordedOk,
}

impl Mutant {
    pub const ALL: [Mutant; 13] = [
        Mutant::FlipWrittenByte,
        Mutant::WriteOneShort,
        Mutant::SkipLastSegment,
        Mutant::HalfTransfer,
        Mutant::RecordAddrOffByPage,
        Mutant::RecordLenWrong,
        Mutant::DropRecord,
        Mutant::WriteAddrPlusPage,
        Mutant::DoneBeforeData,
        Mutant::NoIrq,
        Mutant::DoubleIrq,
        Mutant::FaultAsOk,
        Mutant::FaultRecordedOk,
    ];

    /// The stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::FlipWrittenByte => "flip_written_byte",
            Mutant::WriteOneShort => "write_one_short",
            Mutant::SkipLastSegment => "skip_last_segment",
            Mutant::HalfTransfer => "half_transfer",
            Mutant::RecordAddrOffByPage => "record_addr_off_by_page",
            Mutant::RecordLenWrong => "record_len_wrong",
            Mutant::DropRecord => "drop_record",
            Mutant::WriteAddrPlusPage => "write_addr_plus_page",
            Mutant::DoneBeforeData => "done_before_data",
            Mutant::NoIrq => "no_irq",
            Mutant::DoubleIrq => "double_irq",
            Mutant::FaultAsOk => "fault_as_ok",
            Mutant::FaultRecordedOk => "fault_recorded_ok",
        }
    }

    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for Mutant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `pvhdma-device --socket PATH --records PATH [--log PATH] [--addr-bits N] [--decode-bits N] [--inject MUTANT]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceArgs {
    /// The vfio-user socket QEMU connects to.
    pub socket: PathBuf,
    /// JSONL DMA records, one line per access.
    pub records: PathBuf,
    /// Human-readable log; stderr when absent.
    pub log: Option<PathBuf>,
    /// Advertised in ADDR_BITS: the device refuses addresses at or above `1 << addr_bits`.
    pub addr_bits: u32,
    /// Really decoded; below `addr_bits` the device silently truncates addresses
    /// (a deliberately broken device for negative scenarios).
    pub decode_bits: u32,
    /// A deliberate misbehaviour; `None` for the honest device.
    pub inject: Option<Mutant>,
}

pub const USAGE: &str = "usage: pvhdma-device --socket PATH --records PATH [--log PATH] [--addr-bits 32] [--decode-bits N] [--inject MUTANT]";

/// What `parse` found instead of a valid command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    Help,
    Invalid(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Help => f.write_str(USAGE),
            CliError::Invalid(why) => write!(f, "{why}\n{USAGE}"),
        }
    }
}

impl std::error::Error for CliError {}

impl DeviceArgs {
    pub fn new(socket: PathBuf, records: PathBuf) -> Self {
        DeviceArgs {
            socket,
            records,
            log: None,
            addr_bits: 32,
            decode_bits: 32,
            inject: None,
        }
    }

    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--socket".into(),
            self.socket.to_string_lossy().into_owned(),
            "--records".into(),
            self.records.to_string_lossy().into_owned(),
        ];
        if let Some(log) = &self.log {
            v.extend(["--log".into(), log.to_string_lossy().into_owned()]);
        }
        v.extend([
            "--addr-bits".into(),
            self.addr_bits.to_string(),
            "--decode-bits".into(),
            self.decode_bits.to_string(),
        ]);
        if let Some(m) = self.inject {
            v.extend(["--inject".into(), m.name().into()]);
        }
        v
    }

    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, CliError> {
        let bad = |s: String| CliError::Invalid(s);
        let (mut socket, mut records, mut log, mut addr_bits, mut decode_bits) = (None, None, None, 32u32, None);
        let mut inject = None;
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| bad(format!("{flag} needs a value")));
            let bits = |v: String, name: &str| {
                v.parse::<u32>()
                    .ok()
                    .filter(|b| (12..=64).contains(b))
                    .ok_or_else(|| bad(format!("{name} must be 12..=64, not {v:?}")))
            };
            match flag.as_str() {
                "--socket" => socket = Some(PathBuf::from(value()?)),
                "--records" => records = Some(PathBuf::from(value()?)),
                "--log" => log = Some(PathBuf::from(value()?)),
                "--addr-bits" => addr_bits = bits(value()?, "--addr-bits")?,
                "--decode-bits" => decode_bits = Some(bits(value()?, "--decode-bits")?),
                "--inject" => {
                    let v = value()?;
                    inject = Some(Mutant::from_name(&v).ok_or_else(|| {
                        let names: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
                        bad(format!("--inject: unknown mutant {v:?} (one of: {})", names.join(", ")))
                    })?);
                }
                "-h" | "--help" => return Err(CliError::Help),
                other => return Err(bad(format!("unknown argument {other:?}"))),
            }
        }
        Ok(DeviceArgs {
            socket: socket.ok_or_else(|| bad("--socket is required".into()))?,
            records: records.ok_or_else(|| bad("--records is required".into()))?,
            log,
            addr_bits,
            decode_bits: decode_bits.unwrap_or(addr_bits),
            inject,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn round_trip() {
        let mut a = DeviceArgs::new("/r/dev.sock".into(), "/r/dma.jsonl".into());
        a.log = Some("/r/device.log".into());
        a.addr_bits = 36;
        a.decode_bits = 32;
        assert_eq!(DeviceArgs::parse(a.to_args()), Ok(a.clone()));
        for m in Mutant::ALL {
            a.inject = Some(m);
            assert_eq!(DeviceArgs::parse(a.to_args()), Ok(a.clone()), "{m}");
        }
    }

    #[test]
    fn mutant_names_are_stable_snake_case_and_match_serde() {
        let names: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        for m in Mutant::ALL {
            assert!(m.name().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{m}");
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{}\"", m.name()));
            assert_eq!(Mutant::from_name(m.name()), Some(m));
        }
        assert_eq!(Mutant::from_name("flip_written_byte"), Some(Mutant::FlipWrittenByte));
        assert_eq!(Mutant::from_name("FlipWrittenByte"), None);
    }

    #[test]
    fn inject_is_absent_by_default_and_checked() {
        let a = DeviceArgs::parse(args("--socket s --records r")).unwrap();
        assert_eq!(a.inject, None);
        assert!(!a.to_args().contains(&"--inject".to_string()));
        let a = DeviceArgs::parse(args("--socket s --records r --inject no_irq")).unwrap();
        assert_eq!(a.inject, Some(Mutant::NoIrq));
        assert!(
            matches!(DeviceArgs::parse(args("--socket s --records r --inject nope")), Err(CliError::Invalid(m)) if m.contains("unknown mutant"))
        );
    }

    #[test]
    fn defaults_and_errors() {
        let a = DeviceArgs::parse(args("--socket s --records r --addr-bits 36")).unwrap();
        assert_eq!((a.addr_bits, a.decode_bits, a.log), (36, 36, None));
        assert!(matches!(DeviceArgs::parse(args("--records r")), Err(CliError::Invalid(m)) if m.contains("--socket")));
        assert!(
            matches!(DeviceArgs::parse(args("--socket s --records r --addr-bits 8")), Err(CliError::Invalid(m)) if m.contains("12..=64"))
        );
        assert!(
            matches!(DeviceArgs::parse(args("--socket")), Err(CliError::Invalid(m)) if m.contains("needs a value"))
        );
        assert!(matches!(DeviceArgs::parse(args("--bogus")), Err(CliError::Invalid(_))));
        assert_eq!(DeviceArgs::parse(args("-h")), Err(CliError::Help));
    }
}
