//! The 16-byte message header and the command numbers.

use thiserror::Error;

pub const HEADER_LEN: usize = 16;
/// Largest data count in one REGION/DMA read or write: the protocol's default
/// `max_data_xfer_size`, which is also what we advertise.
pub const MAX_DATA: usize = 1 << 20;
/// Largest whole message we accept: the biggest data message plus its headers,
/// with slack. Anything larger is refused before a byte of it is buffered.
pub const MAX_MSG_SIZE: usize = MAX_DATA + 64;

pub const FLAG_TYPE_MASK: u32 = 0xf;
pub const TYPE_REQUEST: u32 = 0;
pub const TYPE_REPLY: u32 = 1;
pub const FLAG_NO_REPLY: u32 = 0x10;
pub const FLAG_ERROR: u32 = 0x20;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    #[error("message size {0} out of range")]
    BadSize(u32),
    #[error("unknown message type {0}")]
    BadType(u32),
    #[error("unknown command {0}")]
    UnknownCommand(u16),
    #[error("{0:?} payload too short ({1} bytes)")]
    Short(Command, usize),
    #[error("{0:?} count {1} does not match its data")]
    CountMismatch(Command, u64),
    #[error("version data is not NUL-terminated UTF-8 JSON")]
    BadVersionData,
    #[error("unsupported version {0}.{1}")]
    BadVersion(u16, u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Command {
    Version = 1,
    DmaMap = 2,
    DmaUnmap = 3,
    DeviceGetInfo = 4,
    DeviceGetRegionInfo = 5,
    DeviceGetRegionIoFds = 6,
    DeviceGetIrqInfo = 7,
    DeviceSetIrqs = 8,
    RegionRead = 9,
    RegionWrite = 10,
    DmaRead = 11,
    DmaWrite = 12,
    DeviceReset = 13,
    RegionWriteMulti = 15,
    DeviceFeature = 16,
    MigDataRead = 17,
    MigDataWrite = 18,
}

impl Command {
    pub fn from_u16(v: u16) -> Option<Self> {
        use Command::*;
        Some(match v {
            1 => Version,
            2 => DmaMap,
            3 => DmaUnmap,
            4 => DeviceGetInfo,
            5 => DeviceGetRegionInfo,
            6 => DeviceGetRegionIoFds,
            7 => DeviceGetIrqInfo,
            8 => DeviceSetIrqs,
            9 => RegionRead,
            10 => RegionWrite,
            11 => DmaRead,
            12 => DmaWrite,
            13 => DeviceReset,
            15 => RegionWriteMulti,
            16 => DeviceFeature,
            17 => MigDataRead,
            18 => MigDataWrite,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// Kept raw: an unknown command still needs an error reply echoing it.
    pub command: u16,
    pub size: u32,
    pub flags: u32,
    pub error: u32,
}

impl Header {
    /// Parses and bounds-checks a header; the size check here is what keeps a
    /// hostile peer from making us allocate.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Self, ProtoError> {
        let h = Header {
            id: u16::from_le_bytes([b[0], b[1]]),
            command: u16::from_le_bytes([b[2], b[3]]),
            size: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            flags: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            error: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        };
        if (h.size as usize) < HEADER_LEN || h.size as usize > MAX_MSG_SIZE {
            return Err(ProtoError::BadSize(h.size));
        }
        match h.flags & FLAG_TYPE_MASK {
            TYPE_REQUEST | TYPE_REPLY => Ok(h),
            t => Err(ProtoError::BadType(t)),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.command.to_le_bytes());
        b[4..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.error.to_le_bytes());
        b
    }

    pub fn is_reply(&self) -> bool {
        self.flags & FLAG_TYPE_MASK == TYPE_REPLY
    }

    pub fn no_reply(&self) -> bool {
        self.flags & FLAG_NO_REPLY != 0
    }

    pub fn is_error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }

    pub fn payload_len(&self) -> usize {
        self.size as usize - HEADER_LEN
    }
}
