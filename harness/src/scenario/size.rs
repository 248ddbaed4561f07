//! Human-friendly numbers of the scenario format: byte sizes and addresses
//! (`4K`, `8G`, `0x7000_0000`, `4096`), memory sizes in MiB and durations
//! (`90s`, `2m`, `500ms`).
//!
//! Each is a newtype that parses while deserializing, so a bad value is
//! reported by the YAML layer with its file, line, column and field path.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Why a size, address or duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("empty value")]
    Empty,
    #[error("`{0}` is not a number with an optional K/M/G/T suffix (binary: 4K = 4096) or a 0x hex address")]
    Syntax(String),
    #[error("`{0}` does not fit in 64 bits")]
    Overflow(String),
    #[error("`{0}` is not a whole number of MiB")]
    NotMiB(String),
    #[error("`{0}` is not a duration such as 90s, 2m, 500ms or a number of seconds")]
    Duration(String),
}

/// A byte count or a bus/physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Parse `4096`, `4K`, `4KiB`, `8G`, `0x7000_0000` (underscores allowed anywhere
/// in the digits). Suffixes are binary, because every size here is a page or
/// memory quantity and nobody means 4000 by `4K`.
pub fn parse_bytes(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(SizeError::Empty);
    }
    let syntax = || SizeError::Syntax(text.to_string());
    let overflow = || SizeError::Overflow(text.to_string());
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        let digits: String = hex.chars().filter(|c| *c != '_').collect();
        if digits.is_empty() {
            return Err(syntax());
        }
        return u64::from_str_radix(&digits, 16).map_err(|e| match e.kind() {
            std::num::IntErrorKind::PosOverflow => overflow(),
            _ => syntax(),
        });
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '_')).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let digits: String = num.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() {
        return Err(syntax());
    }
    let n: u64 = digits.parse().map_err(|_| overflow())?;
    let shift = match suffix.trim() {
        "" | "B" => 0,
        "K" | "k" | "KiB" | "KB" => 10,
        "M" | "MiB" | "MB" => 20,
        "G" | "GiB" | "GB" => 30,
        "T" | "TiB" | "TB" => 40,
        _ => return Err(syntax()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(overflow)
}

/// Accepts an integer or a string; shared by the newtypes below.
struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte size or address such as 4096, \"4K\", \"8G\" or \"0x7000_0000\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_bytes(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BytesVisitor).map(ByteSize)
    }
}

fn bytes_schema(description: &str) -> Schema {
    json_schema!({
        "description": description,
        "oneOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": "^\\s*(0[xX][0-9a-fA-F_]+|[0-9_]+\\s*(B|[kK]|KiB|KB|M|MiB|MB|G|GiB|GB|T|TiB|TB)?)\\s*$" }
        ]
    })
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        bytes_schema("Bytes or an address: 4096, \"4K\", \"8G\" (binary suffixes) or \"0x7000_0000\"")
    }
}

/// A memory size, kept in MiB because that is what QEMU's `-m` and Xen's
/// `dom0_mem` are given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MemSize {
    pub mib: u64,
}

impl MemSize {
    pub const fn mib(mib: u64) -> Self {
        Self { mib }
    }
    pub const fn gib(gib: u64) -> Self {
        Self { mib: gib * 1024 }
    }
}

impl<'de> Deserialize<'de> for MemSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A bare integer is MiB here (QEMU's convention), a suffixed string is exact.
        struct MemVisitor;
        impl Visitor<'_> for MemVisitor {
            type Value = MemSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a memory size such as \"8G\", \"1536M\" or an integer number of MiB")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MemSize, E> {
                Ok(MemSize::mib(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MemSize, E> {
                u64::try_from(v)
                    .map(MemSize::mib)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MemSize, E> {
                let bytes = parse_bytes(v).map_err(E::custom)?;
                if bytes % (1 << 20) != 0 {
                    return Err(E::custom(SizeError::NotMiB(v.to_string())));
                }
                Ok(MemSize::mib(bytes >> 20))
            }
        }
        d.deserialize_any(MemVisitor)
    }
}

impl JsonSchema for MemSize {
    fn schema_name() -> Cow<'static, str> {
        "MemSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        bytes_schema("Memory: \"8G\", \"1536M\" or an integer number of MiB")
    }
}

/// A timeout. Serialized as seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.as_secs_f64())
    }
}

/// Parse `90s`, `2m`, `500ms`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, SizeError> {
    let t = text.trim();
    let bad = || SizeError::Duration(text.to_string());
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(d)
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DurVisitor;
        impl Visitor<'_> for DurVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"90s\", \"2m\", \"500ms\" or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                u64::try_from(v)
                    .map(|s| HumanDuration(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
        }
        d.deserialize_any(DurVisitor)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: \"90s\", \"2m\", \"500ms\", \"1h\" or an integer number of seconds",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+\\s*(s|ms|m|min|h)?\\s*$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_suffixes_are_binary() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4K"), Ok(4096));
        assert_eq!(parse_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_bytes("1M"), Ok(1 << 20));
        assert_eq!(parse_bytes("8G"), Ok(8 << 30));
        assert_eq!(parse_bytes(" 4G "), Ok(0x1_0000_0000));
        assert_eq!(parse_bytes("1T"), Ok(1 << 40));
        assert_eq!(parse_bytes("1_000"), Ok(1000));
    }

    #[test]
    fn bytes_hex_with_underscores() {
        assert_eq!(parse_bytes("0x7000_0000"), Ok(0x7000_0000));
        assert_eq!(parse_bytes("0x1_0000_0000"), Ok(1 << 32));
        assert_eq!(parse_bytes("0XfF"), Ok(255));
    }

    #[test]
    fn bytes_errors() {
        assert_eq!(parse_bytes(""), Err(SizeError::Empty));
        assert!(matches!(parse_bytes("4X"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_bytes("G"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_bytes("0x"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_bytes("0xZZ"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_bytes("-4K"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_bytes("99999999999T"), Err(SizeError::Overflow(_))));
        assert!(matches!(
            parse_bytes("0x1_0000_0000_0000_0000"),
            Err(SizeError::Overflow(_))
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("").is_err());
    }
}
