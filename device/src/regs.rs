//! BAR0 register block (device/REGISTERS.md): pure state, no I/O.

use crate::engine::{Completion, ErrorCode, OpRequest};

use pvhdma_contract::regs::caps;
pub use pvhdma_contract::regs::{control, error, off, status, BAR0_SIZE, ID_VALUE, VERSION_VALUE};

/// What a write asked the rest of the device to do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteEffect {
    pub doorbell: bool,
    pub irq_cleared: bool,
}

#[derive(Debug, Clone)]
pub struct Regs {
    addr_bits: u32,
    dma_addr_lo: u32,
    dma_addr_hi: u32,
    length: u32,
    control: u32,
    pattern: u32,
    seed: u32,
    tag: u32,
    status: u32,
    error: u32,
    irq_status: u32,
    seq: u32,
    checksum: u32,
    fault_addr: u64,
    bytes_done: u32,
}

impl Regs {
    pub fn new(addr_bits: u32) -> Self {
        Regs {
            addr_bits,
            dma_addr_lo: 0,
            dma_addr_hi: 0,
            length: 0,
            control: 0,
            pattern: 0,
            seed: 0,
            tag: 0,
            status: 0,
            error: 0,
            irq_status: 0,
            seq: 0,
            checksum: 0,
            fault_addr: 0,
            bytes_done: 0,
        }
    }

    fn has_hi(&self) -> bool {
        self.addr_bits > 32
    }

    pub fn read32(&self, reg: u64) -> u32 {
        match reg {
            off::ID => ID_VALUE,
            off::VERSION => VERSION_VALUE,
            off::ADDR_BITS => self.addr_bits,
            off::CAPS => caps::SG | caps::MSI | if self.has_hi() { caps::ADDR_HI } else { 0 },
            off::DMA_ADDR_LO => self.dma_addr_lo,
            off::DMA_ADDR_HI => self.dma_addr_hi,
            off::LENGTH => self.length,
            off::CONTROL => self.control,
            off::PATTERN => self.pattern,
            off::SEED => self.seed,
            off::TAG => self.tag,
            off::STATUS => self.status,
            off::ERROR => self.error,
            off::IRQ_STATUS => self.irq_status,
            off::SEQ => self.seq,
            off::CHECKSUM => self.checksum,
            off::FAULT_ADDR_LO => self.fault_addr as u32,
            off::FAULT_ADDR_HI => (self.fault_addr >> 32) as u32,
            off::BYTES_DONE => self.bytes_done,
            _ => 0,
        }
    }

    /// `value` already has the unwritten bytes merged in; `mask` marks the
    /// bytes the access really wrote (W1C and the doorbell look only there).
    fn write32(&mut self, reg: u64, value: u32, mask: u32) -> WriteEffect {
        let mut fx = WriteEffect::default();
        match reg {
            off::DMA_ADDR_LO => self.dma_addr_lo = value,
            off::DMA_ADDR_HI if self.has_hi() => self.dma_addr_hi = value,
            off::LENGTH => self.length = value,
            off::CONTROL => self.control = value & control::MASK,
            off::PATTERN => self.pattern = value,
            off::SEED => self.seed = value,
            off::TAG => self.tag = value,
            off::DOORBELL => fx.doorbell = value & mask & 1 != 0,
            off::IRQ_STATUS => {
                let clear = value & mask & 1;
                if clear != 0 && self.irq_status & 1 != 0 {
                    fx.irq_cleared = true;
                }
                self.irq_status &= !clear;
            }
            _ => {}
        }
        fx
    }

    /// Any-size read: each byte comes from the register that covers it.
    pub fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| {
                let a = offset + i;
                (self.read32(a & !3) >> (8 * (a & 3))) as u8
            })
            .collect()
    }

    /// Any-size write: short writes merge into the register's current value.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> WriteEffect {
        let mut fx = WriteEffect::default();
        let mut i = 0usize;
        while i < data.len() {
            let reg = (offset + i as u64) & !3;
            let mut value = if reg == off::DOORBELL { 0 } else { self.read32(reg) };
            let mut mask = 0u32;
            while i < data.len() && (offset + i as u64) & !3 == reg {
                let shift = 8 * ((offset + i as u64) & 3);
                value = (value & !(0xff << shift)) | (u32::from(data[i]) << shift);
                mask |= 0xff << shift;
                i += 1;
            }
            let f = self.write32(reg, value, mask);
            fx.doorbell |= f.doorbell;
            fx.irq_cleared |= f.irq_cleared;
        }
        fx
    }

    pub fn busy(&self) -> bool {
        self.status & status::BUSY != 0
    }

    pub fn tag(&self) -> u32 {
        self.tag
    }

    pub fn irq_pending(&self) -> bool {
        self.irq_status & 1 != 0
    }

    /// The operation as programmed at the doorbell.
    pub fn op_request(&self) -> OpRequest {
        OpRequest {
            addr: u64::from(self.dma_addr_hi) << 32 | u64::from(self.dma_addr_lo),
            length: self.length,
            control: self.control,
            pattern: self.pattern,
            seed: self.seed,
        }
    }

    /// A doorbell was accepted: DONE and ERROR clear, BUSY sets.
    pub fn start(&mut self) {
        self.status = status::BUSY;
        self.error = 0;
    }

    /// A doorbell arrived while an operation ran: refuse it, leave that
    /// operation alone (its completion overwrites these bits).
    pub fn refuse_busy(&mut self) {
        self.status |= status::ERROR;
        self.error = ErrorCode::Busy as u32;
    }

    /// Latches an operation's end; returns whether to raise the interrupt.
    pub fn complete(&mut self, c: &Completion, last_seq: u64) -> bool {
        self.status = status::DONE | if c.error == ErrorCode::None { 0 } else { status::ERROR };
        self.error = c.error as u32;
        self.checksum = c.checksum;
        self.bytes_done = c.bytes_done as u32;
        self.fault_addr = c.fault_addr;
        self.seq = last_seq as u32;
        if self.control & control::IRQ_EN != 0 {
            self.irq_status |= 1;
            true
        } else {
            false
        }
    }

    pub fn reset(&mut self) {
        *self = Regs::new(self.addr_bits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w32(r: &mut Regs, o: u64, v: u32) -> WriteEffect {
        r.write(o, &v.to_le_bytes())
    }
    fn r32(r: &Regs, o: u64) -> u32 {
        u32::from_le_bytes(r.read(o, 4).try_into().unwrap())
    }

    #[test]
    fn identity_and_caps() {
        let r = Regs::new(32);
        assert_eq!(r32(&r, off::ID), 0x5056_4844);
        assert_eq!(r32(&r, off::VERSION), 0x0001_0000);
        assert_eq!(r32(&r, off::ADDR_BITS), 32);
        assert_eq!(r32(&r, off::CAPS), 0b011);
        assert_eq!(r32(&Regs::new(36), off::CAPS), 0b111);
        assert_eq!(r32(&r, 0x800), 0, "unknown offsets read 0");
    }

    #[test]
    fn addr_hi_absent_at_32_bits() {
        let mut r = Regs::new(32);
        w32(&mut r, off::DMA_ADDR_HI, 5);
        assert_eq!(r32(&r, off::DMA_ADDR_HI), 0);
        let mut r = Regs::new(36);
        w32(&mut r, off::DMA_ADDR_HI, 5);
        w32(&mut r, off::DMA_ADDR_LO, 0x1000);
        assert_eq!(r.op_request().addr, 0x5_0000_1000);
    }

    #[test]
    fn short_writes_merge_and_short_reads_cover() {
        let mut r = Regs::new(32);
        w32(&mut r, off::SEED, 0x1122_3344);
        r.write(off::SEED + 1, &[0xaa]);
        assert_eq!(r32(&r, off::SEED), 0x1122_aa44);
        assert_eq!(r.read(off::SEED + 2, 2), vec![0x22, 0x11]);
        // A read spanning two registers.
        assert_eq!(r.read(off::ID + 2, 4), vec![0x56, 0x50, 0x00, 0x00]);
    }

    #[test]
    fn doorbell_reads_zero_and_fires_on_bit0() {
        let mut r = Regs::new(32);
        assert!(w32(&mut r, off::DOORBELL, 1).doorbell);
        assert!(!w32(&mut r, off::DOORBELL, 2).doorbell);
        assert!(!r.write(off::DOORBELL + 1, &[1]).doorbell);
        assert_eq!(r32(&r, off::DOORBELL), 0);
    }

    #[test]
    fn completion_and_w1c() {
        let mut r = Regs::new(32);
        w32(&mut r, off::CONTROL, control::IRQ_EN);
        r.start();
        assert!(r.busy());
        let c = Completion {
            error: ErrorCode::IommuFault,
            checksum: 7,
            bytes_done: 4,
            fault_addr: 0x1_2345_6000,
        };
        assert!(r.complete(&c, 9));
        assert_eq!(r32(&r, off::STATUS), status::DONE | status::ERROR);
        assert_eq!(r32(&r, off::ERROR), 1);
        assert_eq!(r32(&r, off::SEQ), 9);
        assert_eq!(r32(&r, off::FAULT_ADDR_LO), 0x2345_6000);
        assert_eq!(r32(&r, off::FAULT_ADDR_HI), 1);
        assert_eq!(r32(&r, off::IRQ_STATUS), 1);
        assert!(!w32(&mut r, off::IRQ_STATUS, 0).irq_cleared);
        assert!(w32(&mut r, off::IRQ_STATUS, 1).irq_cleared);
        assert_eq!(r32(&r, off::IRQ_STATUS), 0);
        r.start();
        assert_eq!(r32(&r, off::STATUS), status::BUSY);
        r.refuse_busy();
        assert_eq!(r32(&r, off::ERROR), 4);
        assert!(r.busy());
    }

    #[test]
    fn read_only_registers_ignore_writes() {
        let mut r = Regs::new(32);
        for o in [
            off::ID,
            off::VERSION,
            off::ADDR_BITS,
            off::CAPS,
            off::STATUS,
            off::ERROR,
            off::SEQ,
        ] {
            let before = r32(&r, o);
            w32(&mut r, o, 0xdead_beef);
            assert_eq!(r32(&r, o), before, "offset {o:#x}");
        }
    }
}
