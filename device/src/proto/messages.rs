//! Payloads of the client's requests, our replies, and the two requests we
//! send (DMA_READ / DMA_WRITE) with their replies.

use super::header::{FLAG_ERROR, TYPE_REPLY, TYPE_REQUEST};
use super::{Command, Header, ProtoError, Version, HEADER_LEN, MAX_DATA};

#[derive(Debug, Clone, PartialEq)]
pub struct DmaMap {
    pub argsz: u32,
    pub flags: u32,
    /// File offset when an fd came with the message; QEMU sends 0 otherwise.
    pub offset: u64,
    pub address: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DmaUnmap {
    pub argsz: u32,
    pub flags: u32,
    pub address: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IrqSet {
    pub argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub start: u32,
    pub count: u32,
    /// DATA_BOOL bytes, when present.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegionAccess {
    pub offset: u64,
    pub region: u32,
    pub count: u32,
    /// Write data (empty for reads).
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Version(Version),
    DmaMap(DmaMap),
    DmaUnmap(DmaUnmap),
    DeviceGetInfo { argsz: u32 },
    GetRegionInfo { argsz: u32, index: u32 },
    GetIrqInfo { argsz: u32, index: u32 },
    SetIrqs(IrqSet),
    RegionRead(RegionAccess),
    RegionWrite(RegionAccess),
    DeviceReset,
}

struct Cursor<'a> {
    cmd: Command,
    p: &'a [u8],
}

impl Cursor<'_> {
    fn need(&self, n: usize) -> Result<(), ProtoError> {
        if self.p.len() < n {
            Err(ProtoError::Short(self.cmd, self.p.len()))
        } else {
            Ok(())
        }
    }
    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.p[at..at + 4].try_into().unwrap_or_default())
    }
    fn u64_at(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.p[at..at + 8].try_into().unwrap_or_default())
    }
}

/// Decodes one client request from its header and payload.
pub fn decode_request(h: &Header, payload: &[u8]) -> Result<Request, ProtoError> {
    let cmd = Command::from_u16(h.command).ok_or(ProtoError::UnknownCommand(h.command))?;
    let c = Cursor { cmd, p: payload };
    Ok(match cmd {
        Command::Version => Request::Version(Version::parse(payload)?),
        Command::DmaMap => {
            c.need(32)?;
            Request::DmaMap(DmaMap {
                argsz: c.u32_at(0),
                flags: c.u32_at(4),
                offset: c.u64_at(8),
                address: c.u64_at(16),
                size: c.u64_at(24),
            })
        }
        Command::DmaUnmap => {
            c.need(24)?;
            Request::DmaUnmap(DmaUnmap {
                argsz: c.u32_at(0),
                flags: c.u32_at(4),
                address: c.u64_at(8),
                size: c.u64_at(16),
            })
        }
        Command::DeviceGetInfo => {
            c.need(4)?;
            Request::DeviceGetInfo { argsz: c.u32_at(0) }
        }
        Command::DeviceGetRegionInfo => {
            c.need(12)?;
            Request::GetRegionInfo {
                argsz: c.u32_at(0),
                index: c.u32_at(8),
            }
        }
        Command::DeviceGetIrqInfo => {
            c.need(12)?;
            Request::GetIrqInfo {
                argsz: c.u32_at(0),
                index: c.u32_at(8),
            }
        }
        Command::DeviceSetIrqs => {
            c.need(20)?;
            Request::SetIrqs(IrqSet {
                argsz: c.u32_at(0),
                flags: c.u32_at(4),
                index: c.u32_at(8),
                start: c.u32_at(12),
                count: c.u32_at(16),
                data: payload[20..].to_vec(),
            })
        }
        Command::RegionRead | Command::RegionWrite => {
            c.need(16)?;
            let count = c.u32_at(12);
            let data = &payload[16..];
            let write = cmd == Command::RegionWrite;
            if count as usize > MAX_DATA || (write && data.len() != count as usize) {
                return Err(ProtoError::CountMismatch(cmd, count.into()));
            }
            let acc = RegionAccess {
                offset: c.u64_at(0),
                region: c.u32_at(8),
                count,
                data: if write { data.to_vec() } else { Vec::new() },
            };
            if write {
                Request::RegionWrite(acc)
            } else {
                Request::RegionRead(acc)
            }
        }
        Command::DeviceReset => Request::DeviceReset,
        // Known to the protocol but not offered by this device.
        other => return Err(ProtoError::UnknownCommand(other as u16)),
    })
}

/// Decodes a whole message held in one buffer (the fuzz target's entry).
pub fn decode_message(buf: &[u8]) -> Result<(Header, Request), ProtoError> {
    let head: &[u8; HEADER_LEN] = buf
        .get(..HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(ProtoError::BadSize(buf.len() as u32))?;
    let h = Header::parse(head)?;
    if h.size as usize != buf.len() {
        return Err(ProtoError::BadSize(h.size));
    }
    if h.is_reply() {
        return Err(ProtoError::BadType(TYPE_REPLY));
    }
    let req = decode_request(&h, &buf[HEADER_LEN..])?;
    Ok((h, req))
}

fn frame(id: u16, command: u16, flags: u32, error: u32, payload: &[u8]) -> Vec<u8> {
    let size = (HEADER_LEN + payload.len()) as u32;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(
        &Header {
            id,
            command,
            size,
            flags,
            error,
        }
        .encode(),
    );
    out.extend_from_slice(payload);
    out
}

pub fn encode_reply(id: u16, command: u16, payload: &[u8]) -> Vec<u8> {
    frame(id, command, TYPE_REPLY, 0, payload)
}

/// Error replies carry the header only, as the spec requires.
pub fn encode_error(id: u16, command: u16, errno: u32) -> Vec<u8> {
    frame(id, command, TYPE_REPLY | FLAG_ERROR, errno, &[])
}

pub fn encode_dma_read(id: u16, address: u64, count: u64) -> Vec<u8> {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&address.to_le_bytes());
    p[8..].copy_from_slice(&count.to_le_bytes());
    frame(id, Command::DmaRead as u16, TYPE_REQUEST, 0, &p)
}

pub fn encode_dma_write(id: u16, address: u64, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + data.len());
    p.extend_from_slice(&address.to_le_bytes());
    p.extend_from_slice(&(data.len() as u64).to_le_bytes());
    p.extend_from_slice(data);
    frame(id, Command::DmaWrite as u16, TYPE_REQUEST, 0, &p)
}

/// A DMA reply that QEMU refused: its errno (EFAULT, ENODEV, EPERM...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaRefused(pub u32);

/// The data of a DMA_READ reply; `Err` when QEMU refused the access or the
/// reply does not carry exactly what was asked for.
pub fn parse_dma_read_reply(h: &Header, payload: &[u8], want: usize) -> Result<Vec<u8>, DmaRefused> {
    if h.is_error() {
        return Err(DmaRefused(h.error));
    }
    if payload.len() != 16 + want {
        return Err(DmaRefused(super::errno::EINVAL));
    }
    let count = u64::from_le_bytes(payload[8..16].try_into().unwrap_or_default());
    if count != want as u64 {
        return Err(DmaRefused(super::errno::EINVAL));
    }
    Ok(payload[16..].to_vec())
}

/// QEMU answers a DMA_WRITE with a bare header; the spec shows address and
/// count after it. Either is success unless the error flag is set.
pub fn parse_dma_write_reply(h: &Header) -> Result<(), DmaRefused> {
    if h.is_error() {
        Err(DmaRefused(h.error))
    } else {
        Ok(())
    }
}

pub fn u32s(vals: &[u32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}
