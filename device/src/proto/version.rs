//! VFIO_USER_VERSION: the first message, and the only one with JSON in it.

use super::ProtoError;
use serde_json::{json, Value};

pub const MAJOR: u16 = 0;
pub const MINOR: u16 = 0;

#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    /// The capabilities object the peer sent (Null when it sent none).
    pub capabilities: Value,
}

impl Version {
    pub fn parse(p: &[u8]) -> Result<Self, ProtoError> {
        if p.len() < 4 {
            return Err(ProtoError::Short(super::Command::Version, p.len()));
        }
        let major = u16::from_le_bytes([p[0], p[1]]);
        let minor = u16::from_le_bytes([p[2], p[3]]);
        let data = &p[4..];
        let capabilities = if data.is_empty() {
            Value::Null
        } else {
            // QEMU sends the JSON with its terminating NUL and checks ours.
            let text = match data.split_last() {
                Some((0, body)) => body,
                _ => return Err(ProtoError::BadVersionData),
            };
            let text = std::str::from_utf8(text).map_err(|_| ProtoError::BadVersionData)?;
            let v: Value = serde_json::from_str(text).map_err(|_| ProtoError::BadVersionData)?;
            v.get("capabilities").cloned().unwrap_or(Value::Null)
        };
        Ok(Version {
            major,
            minor,
            capabilities,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.major.to_le_bytes());
        out.extend_from_slice(&self.minor.to_le_bytes());
        let mut text = json!({ "capabilities": self.capabilities }).to_string().into_bytes();
        text.push(0);
        out.extend_from_slice(&text);
        out
    }

    /// The peer's `max_data_xfer_size`, or the protocol default.
    pub fn max_data_xfer(&self) -> usize {
        self.capabilities
            .get("max_data_xfer_size")
            .and_then(Value::as_u64)
            .map_or(super::MAX_DATA, |v| (v as usize).min(super::MAX_DATA))
    }
}

/// Our answer to a client's proposal. We only ever ask for a subset of what
/// the protocol grants by default, and never twin-socket or WRITE_MULTI, so
/// QEMU keeps one ordered channel (which the register model relies on).
pub fn negotiate(client: &Version) -> Result<Version, ProtoError> {
    if client.major != MAJOR {
        return Err(ProtoError::BadVersion(client.major, client.minor));
    }
    Ok(Version {
        major: MAJOR,
        // Ours is the lowest minor there is, so it is always acceptable.
        minor: MINOR,
        capabilities: json!({
            "max_msg_fds": 8,
            "max_data_xfer_size": super::MAX_DATA,
            "pgsizes": 4096,
            "max_dma_maps": 65535,
        }),
    })
}
