//! The DMA engine: address decoding, scatter-gather, patterns, checksums.
//!
//! It moves memory only through [`DmaPort`], which the server implements with
//! vfio-user DMA_READ/DMA_WRITE messages, so every access goes through QEMU's
//! bus-master address space (and so its vIOMMU) and can be refused there.

use crate::record::{AccessKind, AccessOutcome, Direction, DmaRecord};
use crate::regs::{control, error};
use pvhdma_contract::device_cli::Mutant;
use pvhdma_contract::limits;
use pvhdma_contract::pattern::{fnv1a_update, DataPattern, PatternStream, FNV_INIT};

pub const MAX_LEN: u64 = limits::MAX_XFER as u64;
pub const MAX_DESCRIPTORS: u32 = limits::MAX_SEGMENTS;
pub const MAX_SG_TOTAL: u64 = limits::MAX_SG_TOTAL;
pub const DESCRIPTOR_LEN: u64 = limits::DESCRIPTOR_SIZE;
/// Largest piece moved with one message; also the retry unit's multiple.
pub const CHUNK: u64 = 1 << 20;
/// On a refused chunk the engine retries page by page to find the first
/// failing address, as hardware walking pages would report it.
pub const PAGE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    None = error::NONE,
    IommuFault = error::IOMMU_FAULT,
    BeyondAddrBits = error::BEYOND_ADDR_BITS,
    BadRequest = error::BAD_REQUEST,
    Busy = error::BUSY,
    BusMasterOff = error::BUS_MASTER_OFF,
}

impl ErrorCode {
    pub fn outcome(self) -> AccessOutcome {
        match self {
            ErrorCode::None => AccessOutcome::Ok,
            ErrorCode::IommuFault => AccessOutcome::IommuFault,
            ErrorCode::BeyondAddrBits => AccessOutcome::BeyondAddrBits,
            ErrorCode::BadRequest => AccessOutcome::BadRequest,
            ErrorCode::Busy => AccessOutcome::DeviceBusy,
            ErrorCode::BusMasterOff => AccessOutcome::BusMasterOff,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Advertised in ADDR_BITS; addresses at or above `1 << addr_bits` are refused.
    pub addr_bits: u32,
    /// Really decoded: the engine drops address bits above these.
    pub decode_bits: u32,
    /// A deliberate misbehaviour (the mutation run); `None` is the honest engine.
    pub mutant: Option<Mutant>,
}

impl EngineConfig {
    pub fn decode_mask(&self) -> u64 {
        if self.decode_bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.decode_bits) - 1
        }
    }

    fn beyond(&self, addr: u64, len: u64) -> bool {
        self.addr_bits < 64 && u128::from(addr) + u128::from(len) > 1u128 << self.addr_bits
    }

    fn chunk(&self) -> u64 {
        CHUNK.min(1u64 << self.decode_bits.clamp(12, 63))
    }

    /// The record of one access with what the engine knows of it; which op
    /// it served, where it went and when are the server's and the
    /// recorder's to fill in.
    pub fn record(
        &self,
        kind: AccessKind,
        dir: Direction,
        bus_addr: u64,
        len: u64,
        outcome: AccessOutcome,
        checksum: u32,
    ) -> DmaRecord {
        DmaRecord {
            seq: 0,
            t_us: 0,
            tag: 0,
            op_seq: 0,
            kind,
            dir,
            bus_addr,
            decoded_addr: bus_addr & self.decode_mask(),
            len,
            outcome,
            checksum,
            translated: Vec::new(),
            messages: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpRequest {
    pub addr: u64,
    pub length: u32,
    pub control: u32,
    pub pattern: u32,
    pub seed: u32,
}

impl OpRequest {
    pub fn dir(&self) -> Direction {
        if self.control & control::FROM_DEVICE != 0 {
            Direction::FromDevice
        } else {
            Direction::ToDevice
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub error: ErrorCode,
    pub checksum: u32,
    pub bytes_done: u64,
    pub fault_addr: u64,
}

impl Completion {
    pub fn failed(error: ErrorCode) -> Self {
        Completion {
            error,
            checksum: 0,
            bytes_done: 0,
            fault_addr: 0,
        }
    }
}

/// QEMU refused the access (an IOMMU fault or no memory there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault;

pub trait DmaPort {
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Fault>;
    fn dma_write(&mut self, addr: u64, data: &[u8]) -> Result<(), Fault>;
    /// Called once per access as it ends, so records are written as they happen.
    fn access(&mut self, record: DmaRecord);
}

struct Run<'a> {
    cfg: EngineConfig,
    port: &'a mut dyn DmaPort,
    pattern: Option<PatternStream>,
    checksum: u32,
    bytes_done: u64,
    fault_addr: u64,
    /// The segment being moved is data, not a descriptor list.
    in_data: bool,
    /// The segment being moved is the last of a scatter-gather list.
    in_last_sg: bool,
}

impl Run<'_> {
    fn mutant(&self, m: Mutant) -> bool {
        self.cfg.mutant == Some(m)
    }

    /// How many bytes of a data segment of `len` really move; the engine
    /// counts and checksums all of `len` regardless.
    fn really_moved(&self, dir: Direction, len: u64) -> u64 {
        if !self.in_data {
            return len;
        }
        match self.cfg.mutant {
            // Mutant: partial transfers reported as complete.
            Some(Mutant::HalfTransfer) => len / 2,
            Some(Mutant::SkipLastSegment) if self.in_last_sg => 0,
            // Mutant: data one byte short, hidden from the checksum.
            Some(Mutant::WriteOneShort) if dir == Direction::FromDevice => len - 1,
            _ => len,
        }
    }

    fn record(&mut self, kind: AccessKind, dir: Direction, bus: u64, len: u64, outcome: AccessOutcome, checksum: u32) {
        self.port
            .access(self.cfg.record(kind, dir, bus, len, outcome, checksum));
    }

    /// Moves one contiguous range. Data segments feed the operation's checksum
    /// and byte count; a descriptor-list read returns its bytes instead.
    fn segment(&mut self, kind: AccessKind, dir: Direction, bus: u64, len: u64) -> Result<Vec<u8>, ErrorCode> {
        if self.cfg.beyond(bus, len) {
            self.fault_addr = bus;
            self.record(kind, dir, bus, len, AccessOutcome::BeyondAddrBits, 0);
            return Err(ErrorCode::BeyondAddrBits);
        }
        let data_seg = kind == AccessKind::Data;
        self.in_data = data_seg;
        let real_len = self.really_moved(dir, len);
        let mut kept = Vec::new();
        let mut seg_sum = FNV_INIT;
        let mut seg_moved = 0usize;
        let chunk = self.cfg.chunk();
        let mut pos = 0u64;
        let mut result = Ok(());
        while pos < len {
            let cur = bus.wrapping_add(pos);
            let n = (chunk - cur % chunk).min(len - pos);
            let mut buf = vec![0u8; n as usize];
            if dir == Direction::FromDevice {
                if let Some(p) = self.pattern.as_mut() {
                    p.fill(&mut buf);
                }
            }
            // Only `real_len` differs from `len` under a mutant: the bytes
            // past it are counted as moved without moving.
            let movable = real_len.saturating_sub(pos).min(n) as usize;
            let (moved, failed_at) = match self.move_chunk(dir, cur, &mut buf[..movable]) {
                (m, None) if m == movable => (n as usize, None),
                other => other,
            };
            seg_sum = fnv1a_update(seg_sum, &buf[..moved]);
            seg_moved += moved;
            if data_seg {
                self.checksum = fnv1a_update(self.checksum, &buf[..moved]);
                self.bytes_done += moved as u64;
            } else {
                kept.extend_from_slice(&buf[..moved]);
            }
            if let Some(addr) = failed_at {
                self.fault_addr = addr;
                result = Err(ErrorCode::IommuFault);
                break;
            }
            pos += n;
        }
        // Mutant: the record hides a fault the registers still report.
        let outcome = if result.is_ok() || self.mutant(Mutant::FaultRecordedOk) {
            AccessOutcome::Ok
        } else {
            AccessOutcome::IommuFault
        };
        self.record(kind, dir, bus, len, outcome, if seg_moved > 0 { seg_sum } else { 0 });
        result.map(|()| kept)
    }

    /// Returns the bytes moved and, on a refusal, the decoded address of the
    /// first page that failed.
    fn move_chunk(&mut self, dir: Direction, bus: u64, buf: &mut [u8]) -> (usize, Option<u64>) {
        let dec = bus & self.cfg.decode_mask();
        if buf.is_empty() || self.io(dir, dec, buf).is_ok() {
            return (buf.len(), None);
        }
        // Mutant: a refused chunk is counted as moved, the fault swallowed.
        if self.mutant(Mutant::FaultAsOk) {
            return (buf.len(), None);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let a = dec + done as u64;
            let n = ((PAGE - a % PAGE) as usize).min(buf.len() - done);
            if self.io(dir, a, &mut buf[done..done + n]).is_err() {
                return (done, Some(a));
            }
            done += n;
        }
        // The whole chunk failed but every page alone worked: call it a fault
        // at the start rather than pretend it moved.
        (0, Some(dec))
    }

    fn io(&mut self, dir: Direction, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        // Mutant: data goes one page above where it was asked to go.
        let addr = if self.in_data && self.mutant(Mutant::WriteAddrPlusPage) {
            addr + PAGE
        } else {
            addr
        };
        match dir {
            Direction::ToDevice => self.port.dma_read(addr, buf),
            // Mutant: memory gets a flipped first byte; `buf`, which the
            // checksum covers, keeps the true pattern.
            Direction::FromDevice if self.mutant(Mutant::FlipWrittenByte) => {
                let mut wrong = buf.to_vec();
                wrong[0] ^= 0xff;
                self.port.dma_write(addr, &wrong)
            }
            Direction::FromDevice => self.port.dma_write(addr, buf),
        }
    }

    fn bad(&mut self, bus: u64, len: u64, dir: Direction) -> ErrorCode {
        self.record(AccessKind::Data, dir, bus, len, AccessOutcome::BadRequest, 0);
        ErrorCode::BadRequest
    }

    fn execute(&mut self, req: &OpRequest) -> Result<(), ErrorCode> {
        let dir = req.dir();
        if dir == Direction::FromDevice && self.pattern.is_none() {
            return Err(self.bad(req.addr, u64::from(req.length), dir));
        }
        if req.control & control::SG == 0 {
            let len = u64::from(req.length);
            if len == 0 || len > MAX_LEN {
                return Err(self.bad(req.addr, len, dir));
            }
            return self.segment(AccessKind::Data, dir, req.addr, len).map(drop);
        }
        if req.length == 0 || req.length > MAX_DESCRIPTORS {
            return Err(self.bad(req.addr, u64::from(req.length), dir));
        }
        let list_len = u64::from(req.length) * DESCRIPTOR_LEN;
        let list = self.segment(AccessKind::Descriptor, Direction::ToDevice, req.addr, list_len)?;
        let descs: Vec<(u64, u64, u32)> = list
            .chunks_exact(DESCRIPTOR_LEN as usize)
            .map(|d| {
                let addr = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
                let len = u32::from_le_bytes(d[8..12].try_into().unwrap_or_default());
                let flags = u32::from_le_bytes(d[12..16].try_into().unwrap_or_default());
                (addr, u64::from(len), flags)
            })
            .collect();
        let mut total = 0u64;
        for &(addr, len, flags) in &descs {
            total += len;
            if len == 0 || len > MAX_LEN || flags != 0 || total > MAX_SG_TOTAL {
                return Err(self.bad(addr, len, dir));
            }
        }
        for (i, &(addr, len, _)) in descs.iter().enumerate() {
            self.in_last_sg = i + 1 == descs.len();
            self.segment(AccessKind::Data, dir, addr, len)?;
        }
        Ok(())
    }
}

/// Runs one programmed operation to its end.
pub fn run(cfg: EngineConfig, req: &OpRequest, port: &mut dyn DmaPort) -> Completion {
    let mut run = Run {
        cfg,
        port,
        pattern: DataPattern::from_register(req.pattern).map(|p| PatternStream::new(p, req.seed)),
        checksum: FNV_INIT,
        bytes_done: 0,
        fault_addr: 0,
        in_data: false,
        in_last_sg: false,
    };
    let error = match run.execute(req) {
        Ok(()) => ErrorCode::None,
        Err(e) => e,
    };
    Completion {
        error,
        checksum: if run.bytes_done == 0 { 0 } else { run.checksum },
        bytes_done: run.bytes_done,
        fault_addr: run.fault_addr,
    }
}

/// Holds back every write until [`Deferred::flush`], so a completion can be
/// latched before the data it claims is in memory (`Mutant::DoneBeforeData`).
/// Reads and records pass straight through.
pub struct Deferred<'a> {
    inner: &'a mut dyn DmaPort,
    writes: Vec<(u64, Vec<u8>)>,
}

impl<'a> Deferred<'a> {
    pub fn new(inner: &'a mut dyn DmaPort) -> Self {
        Deferred {
            inner,
            writes: Vec::new(),
        }
    }

    /// Performs the held-back writes, in order; a refused one is skipped
    /// (the completion already told its lie).
    pub fn flush(self) {
        for (addr, data) in self.writes {
            let _ = self.inner.dma_write(addr, &data);
        }
    }
}

impl DmaPort for Deferred<'_> {
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.inner.dma_read(addr, buf)
    }
    fn dma_write(&mut self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        self.writes.push((addr, data.to_vec()));
        Ok(())
    }
    fn access(&mut self, record: DmaRecord) {
        self.inner.access(record);
    }
}

#[cfg(test)]
mod tests;
