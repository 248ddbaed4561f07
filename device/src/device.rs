//! The device's state as one unit: config space, registers, interrupts, the
//! DMA_MAP table and the record file, behind one lock shared by the message
//! loop and the engine thread.

use crate::engine::{Completion, EngineConfig, ErrorCode, OpRequest};
use crate::irq::{Delivered, Irqs};
use crate::log::Log;
use crate::maps::DmaMaps;
use crate::pci::{ConfigSpace, CONFIG_SIZE};
use crate::record::{AccessKind, AccessOutcome, DmaMessage, DmaRecord};
use crate::recorder::Recorder;
use crate::regs::{Regs, WriteEffect, BAR0_SIZE};
use pvhdma_contract::device_cli::Mutant;
use std::sync::Arc;

pub const BAR0_REGION: u32 = 0;
pub const CONFIG_REGION: u32 = 7;
/// vfio's PCI region indexes: BAR0-5, ROM, config, VGA.
pub const NUM_REGIONS: u32 = 9;
pub const REGION_READ: u32 = 1;
pub const REGION_WRITE: u32 = 2;

/// (size, flags) for GET_REGION_INFO. Nothing is mmap-able: every access
/// comes to us as a message, in order.
pub fn region_info(index: u32) -> Option<(u64, u32)> {
    match index {
        BAR0_REGION => Some((BAR0_SIZE, REGION_READ | REGION_WRITE)),
        CONFIG_REGION => Some((CONFIG_SIZE as u64, REGION_READ | REGION_WRITE)),
        i if i < NUM_REGIONS => Some((0, 0)),
        _ => None,
    }
}

/// An operation the engine thread is to run.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub req: OpRequest,
    pub tag: u32,
    pub op_seq: u64,
}

pub enum Doorbell {
    /// Refused or failed at once; registers already latched.
    Ended,
    Start(Job),
}

pub struct Device {
    pub cfg: EngineConfig,
    pub pci: ConfigSpace,
    pub regs: Regs,
    pub irqs: Irqs,
    pub maps: DmaMaps,
    recorder: Recorder,
    op_seq: u64,
    /// The last operation whose first data record was withheld (`Mutant::DropRecord`).
    dropped_for: u64,
    log: Arc<Log>,
}

fn in_bar0(offset: u64, len: usize) -> bool {
    offset.checked_add(len as u64).is_some_and(|end| end <= BAR0_SIZE)
}

impl Device {
    pub fn new(cfg: EngineConfig, recorder: Recorder, log: Arc<Log>) -> Self {
        Device {
            cfg,
            pci: ConfigSpace::new(),
            regs: Regs::new(cfg.addr_bits),
            irqs: Irqs::default(),
            maps: DmaMaps::default(),
            recorder,
            op_seq: 0,
            dropped_for: 0,
            log,
        }
    }

    pub fn region_read(&self, region: u32, offset: u64, len: usize) -> Option<Vec<u8>> {
        match region {
            BAR0_REGION if in_bar0(offset, len) => Some(self.regs.read(offset, len)),
            CONFIG_REGION => self.pci.read(offset, len),
            _ => None,
        }
    }

    pub fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> Option<WriteEffect> {
        match region {
            BAR0_REGION if in_bar0(offset, data.len()) => Some(self.regs.write(offset, data)),
            CONFIG_REGION => self.pci.write(offset, data).map(|()| WriteEffect::default()),
            _ => None,
        }
    }

    /// Writes one record; the table lookup happens now, so `translated` is
    /// what was mapped at the moment of the access. `messages` are the DMA
    /// messages the access took.
    pub fn record(&mut self, access: DmaRecord, tag: u32, op_seq: u64, messages: Vec<DmaMessage>) {
        let Some(rec) = as_recorded(self.cfg.mutant, access, op_seq, &mut self.dropped_for) else {
            return;
        };
        let rec = DmaRecord {
            tag,
            op_seq,
            translated: self.maps.translate(rec.decoded_addr, rec.len),
            messages,
            ..rec
        };
        if let Err(e) = self.recorder.write(rec) {
            self.log.line(format_args!("record write failed: {e}"));
        }
    }

    /// Handles DOORBELL = 1.
    pub fn doorbell(&mut self) -> Doorbell {
        self.op_seq += 1;
        let job = Job {
            req: self.regs.op_request(),
            tag: self.regs.tag(),
            op_seq: self.op_seq,
        };
        let (cfg, req) = (self.cfg, job.req);
        let immediate = |outcome| cfg.record(AccessKind::Data, req.dir(), req.addr, req.length.into(), outcome, 0);
        if self.regs.busy() {
            self.log
                .line(format_args!("op {}: doorbell while busy, refused", job.op_seq));
            self.record(immediate(AccessOutcome::DeviceBusy), job.tag, job.op_seq, vec![]);
            self.regs.refuse_busy();
            return Doorbell::Ended;
        }
        self.regs.start();
        if !self.pci.bus_master() {
            self.log.line(format_args!("op {}: bus mastering disabled", job.op_seq));
            self.record(immediate(AccessOutcome::BusMasterOff), job.tag, job.op_seq, vec![]);
            self.finish(&Completion::failed(ErrorCode::BusMasterOff));
            return Doorbell::Ended;
        }
        Doorbell::Start(job)
    }

    /// Latches an operation's end and raises the interrupt if asked to.
    pub fn finish(&mut self, c: &Completion) {
        if self.regs.complete(c, self.recorder.last_seq()) {
            let n = signals_per_completion(self.cfg.mutant);
            if n == 0 {
                self.log.line("interrupt withheld (mutant no_irq)");
            }
            for i in 0..n {
                if i > 0 {
                    // Apart enough that QEMU reads the eventfd in between:
                    // two quick writes would merge into one interrupt.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                self.signal();
            }
        }
    }

    pub fn signal(&mut self) {
        match self.irqs.raise() {
            Ok(Delivered::None) => self.log.line("interrupt pending (masked or no eventfd)"),
            Ok(d) => self.log.line(format_args!("interrupt raised ({d:?})")),
            Err(e) => self.log.line(format_args!("interrupt eventfd write failed: {e}")),
        }
    }

    pub fn reset(&mut self) {
        self.regs.reset();
        self.pci.reset();
    }
}

/// The record written for access `a`: `a` itself, or under a record mutant
/// a misstated copy or nothing. `dropped_for` remembers the last
/// operation that already lost its record.
pub fn as_recorded(mutant: Option<Mutant>, mut a: DmaRecord, op_seq: u64, dropped_for: &mut u64) -> Option<DmaRecord> {
    if a.kind != AccessKind::Data {
        return Some(a);
    }
    match mutant {
        // Mutant: the record names a page the device was not given.
        Some(Mutant::RecordAddrOffByPage) => {
            a.bus_addr += crate::engine::PAGE;
            a.decoded_addr += crate::engine::PAGE;
        }
        // Mutant: the record misstates how much moved.
        Some(Mutant::RecordLenWrong) => a.len *= 2,
        // Mutant: the first data access of each operation leaves no record.
        Some(Mutant::DropRecord) if *dropped_for != op_seq => {
            *dropped_for = op_seq;
            return None;
        }
        _ => {}
    }
    Some(a)
}

/// How many interrupts one completion raises: one, or under an interrupt
/// mutant none or two.
pub fn signals_per_completion(mutant: Option<Mutant>) -> u32 {
    match mutant {
        Some(Mutant::NoIrq) => 0,
        Some(Mutant::DoubleIrq) => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Direction;

    fn data_access() -> DmaRecord {
        let cfg = EngineConfig {
            addr_bits: 32,
            decode_bits: 32,
            mutant: None,
        };
        cfg.record(
            AccessKind::Data,
            Direction::FromDevice,
            0x5000,
            4096,
            AccessOutcome::Ok,
            7,
        )
    }

    #[test]
    fn honest_records_are_the_access() {
        let mut dropped = 0;
        for op in 1..3 {
            assert_eq!(as_recorded(None, data_access(), op, &mut dropped), Some(data_access()));
        }
        assert_eq!(signals_per_completion(None), 1);
        assert_eq!(signals_per_completion(Some(Mutant::FlipWrittenByte)), 1);
    }

    #[test]
    fn record_mutants_misstate_data_records_only() {
        let mut dropped = 0;
        let a = as_recorded(Some(Mutant::RecordAddrOffByPage), data_access(), 1, &mut dropped).unwrap();
        assert_eq!((a.bus_addr, a.decoded_addr, a.len), (0x6000, 0x6000, 4096));
        let a = as_recorded(Some(Mutant::RecordLenWrong), data_access(), 1, &mut dropped).unwrap();
        assert_eq!((a.bus_addr, a.len), (0x5000, 8192));
        let desc = DmaRecord {
            kind: AccessKind::Descriptor,
            ..data_access()
        };
        assert_eq!(
            as_recorded(Some(Mutant::RecordLenWrong), desc.clone(), 1, &mut dropped),
            Some(desc)
        );
    }

    #[test]
    fn drop_record_loses_the_first_data_record_of_each_op() {
        let m = Some(Mutant::DropRecord);
        let mut dropped = 0;
        assert_eq!(as_recorded(m, data_access(), 1, &mut dropped), None);
        assert!(as_recorded(m, data_access(), 1, &mut dropped).is_some());
        assert_eq!(as_recorded(m, data_access(), 2, &mut dropped), None);
        assert!(as_recorded(m, data_access(), 2, &mut dropped).is_some());
    }

    #[test]
    fn interrupt_mutants_change_the_count() {
        assert_eq!(signals_per_completion(Some(Mutant::NoIrq)), 0);
        assert_eq!(signals_per_completion(Some(Mutant::DoubleIrq)), 2);
    }
}
