//! PCI configuration space (vfio region 7). QEMU reads it to learn the BAR
//! type, the capabilities and the interrupt pin, and forwards guest writes,
//! which is how the device sees the command register's Bus Master bit.

pub use pvhdma_contract::regs::{DEVICE_ID, VENDOR_ID};
pub const SUBSYS_VENDOR_ID: u16 = VENDOR_ID;
pub const SUBSYS_ID: u16 = 0x0001;
pub const CLASS_CODE: u32 = 0x08_8000;
pub const REVISION: u8 = 0x01;
pub const CONFIG_SIZE: usize = 256;
pub const MSI_CAP: usize = 0x40;

const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const BAR0: usize = 0x10;
const CMD_MEMORY: u16 = 1 << 1;
const CMD_BUS_MASTER: u16 = 1 << 2;
const MSI_CTRL_ENABLE: u16 = 1;
const MSI_CTRL_64BIT: u16 = 1 << 7;

#[derive(Debug, Clone)]
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SIZE],
    /// Per byte: which bits a write may change. BAR0's mask is what gives it
    /// the standard sizing behaviour (all-ones reads back as the size mask).
    writable: [u8; CONFIG_SIZE],
}

impl Default for ConfigSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigSpace {
    pub fn new() -> Self {
        let mut c = ConfigSpace {
            bytes: [0; CONFIG_SIZE],
            writable: [0; CONFIG_SIZE],
        };
        c.put16(0x00, VENDOR_ID);
        c.put16(0x02, DEVICE_ID);
        c.put16(STATUS, 1 << 4); // capability list present
        c.bytes[0x08] = REVISION;
        c.bytes[0x09..0x0c].copy_from_slice(&CLASS_CODE.to_le_bytes()[..3]);
        c.put16(0x2c, SUBSYS_VENDOR_ID);
        c.put16(0x2e, SUBSYS_ID);
        c.bytes[0x34] = MSI_CAP as u8;
        c.bytes[0x3d] = 1; // INTA#
        c.bytes[MSI_CAP] = 0x05;
        c.put16(MSI_CAP + 2, MSI_CTRL_64BIT);

        // I/O, memory, bus master, parity, SERR, INTx disable.
        c.writable[COMMAND] = 0x47;
        c.writable[COMMAND + 1] = 0x05;
        // BAR0: 4 KiB, 32-bit memory, non-prefetchable: bits 31:12 decode.
        c.writable[BAR0] = 0x00;
        c.writable[BAR0 + 1] = 0xf0;
        c.writable[BAR0 + 2] = 0xff;
        c.writable[BAR0 + 3] = 0xff;
        c.writable[0x3c] = 0xff; // interrupt line
        c.writable[MSI_CAP + 2] = 0x01; // MSI enable (one vector only)
        c.writable[MSI_CAP + 4] = 0xfc;
        for i in MSI_CAP + 5..MSI_CAP + 14 {
            c.writable[i] = 0xff;
        }
        c
    }

    fn put16(&mut self, at: usize, v: u16) {
        self.bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn get16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    /// `None` when the range leaves config space.
    pub fn read(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let (s, e) = range(offset, len)?;
        Some(self.bytes[s..e].to_vec())
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) -> Option<()> {
        let (s, _) = range(offset, data.len())?;
        for (i, &v) in data.iter().enumerate() {
            let at = s + i;
            if (STATUS..STATUS + 2).contains(&at) {
                // Status bits are RW1C; we never set the error bits, so
                // clearing them changes nothing.
                continue;
            }
            let m = self.writable[at];
            self.bytes[at] = (self.bytes[at] & !m) | (v & m);
        }
        Some(())
    }

    pub fn bus_master(&self) -> bool {
        self.get16(COMMAND) & CMD_BUS_MASTER != 0
    }

    pub fn memory_enabled(&self) -> bool {
        self.get16(COMMAND) & CMD_MEMORY != 0
    }

    pub fn msi_enabled(&self) -> bool {
        self.get16(MSI_CAP + 2) & MSI_CTRL_ENABLE != 0
    }

    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

fn range(offset: u64, len: usize) -> Option<(usize, usize)> {
    let s = usize::try_from(offset).ok()?;
    let e = s.checked_add(len)?;
    (e <= CONFIG_SIZE).then_some((s, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r32(c: &ConfigSpace, o: u64) -> u32 {
        u32::from_le_bytes(c.read(o, 4).unwrap().try_into().unwrap())
    }

    #[test]
    fn identity() {
        let c = ConfigSpace::new();
        assert_eq!(r32(&c, 0), 0xd3a0_5056);
        assert_eq!(r32(&c, 8), 0x0880_0001);
        assert_eq!(r32(&c, 0x2c), 0x0001_5056);
        assert_eq!(c.read(0x3d, 1).unwrap(), vec![1]);
        assert_eq!(c.read(0x34, 1).unwrap(), vec![0x40]);
        assert_eq!(c.read(0x40, 1).unwrap(), vec![0x05]);
        assert_eq!(r32(&c, 0x10), 0, "32-bit non-prefetchable memory BAR");
    }

    #[test]
    fn bar_sizing() {
        let mut c = ConfigSpace::new();
        c.write(0x10, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(r32(&c, 0x10), 0xffff_f000);
        c.write(0x10, &0xfebf_1234u32.to_le_bytes()).unwrap();
        assert_eq!(r32(&c, 0x10), 0xfebf_1000);
        c.write(0x14, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(r32(&c, 0x14), 0, "BAR1 not implemented");
    }

    #[test]
    fn command_register_and_bounds() {
        let mut c = ConfigSpace::new();
        assert!(!c.bus_master());
        c.write(4, &[0x06, 0x00]).unwrap();
        assert!(c.bus_master() && c.memory_enabled());
        c.write(0, &[0xff, 0xff]).unwrap();
        assert_eq!(r32(&c, 0) & 0xffff, 0x5056, "IDs are read-only");
        assert!(c.read(255, 2).is_none());
        assert!(c.write(u64::MAX, &[0]).is_none());
        c.write(0x42, &[0x01]).unwrap();
        assert!(c.msi_enabled());
    }
}
