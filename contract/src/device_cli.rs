//! The recorder's command line, built by the harness and parsed by the
//! device from this one type, so the two cannot disagree on a flag.

use std::path::PathBuf;

/// `pvhdma-device --socket PATH --records PATH [--log PATH] [--addr-bits N] [--decode-bits N]`
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
}

pub const USAGE: &str =
    "usage: pvhdma-device --socket PATH --records PATH [--log PATH] [--addr-bits 32] [--decode-bits N]";

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
        v
    }

    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, CliError> {
        let bad = |s: String| CliError::Invalid(s);
        let (mut socket, mut records, mut log, mut addr_bits, mut decode_bits) = (None, None, None, 32u32, None);
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
        assert_eq!(DeviceArgs::parse(a.to_args()), Ok(a));
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
