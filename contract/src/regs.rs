//! The recorder's PCI identity and BAR0 register block, as device/REGISTERS.md
//! describes them: the device implements them, the dom0 driver programs them.

pub const VENDOR_ID: u16 = 0x5056;
pub const DEVICE_ID: u16 = 0xd3a0;

pub const BAR0_SIZE: u64 = 4096;
/// The ID register's value ("PVHD" read as a little-endian u32 is not it:
/// it is 0x5056_4844, checked by the driver at probe).
pub const ID_VALUE: u32 = 0x5056_4844;
/// Major 1, minor 0.
pub const VERSION_VALUE: u32 = 0x0001_0000;

/// Register offsets in BAR0; every register is 32 bits wide.
pub mod off {
    pub const ID: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const ADDR_BITS: u64 = 0x008;
    pub const CAPS: u64 = 0x00c;
    pub const DMA_ADDR_LO: u64 = 0x010;
    pub const DMA_ADDR_HI: u64 = 0x014;
    pub const LENGTH: u64 = 0x018;
    pub const CONTROL: u64 = 0x01c;
    pub const PATTERN: u64 = 0x020;
    pub const SEED: u64 = 0x024;
    pub const TAG: u64 = 0x028;
    pub const DOORBELL: u64 = 0x02c;
    pub const STATUS: u64 = 0x030;
    pub const ERROR: u64 = 0x034;
    pub const IRQ_STATUS: u64 = 0x038;
    pub const SEQ: u64 = 0x03c;
    pub const CHECKSUM: u64 = 0x040;
    pub const FAULT_ADDR_LO: u64 = 0x044;
    pub const FAULT_ADDR_HI: u64 = 0x048;
    pub const BYTES_DONE: u64 = 0x04c;

    /// Every register by its REGISTERS.md name, for tables and drift tests.
    pub const ALL: [(&str, u64); 20] = [
        ("ID", ID),
        ("VERSION", VERSION),
        ("ADDR_BITS", ADDR_BITS),
        ("CAPS", CAPS),
        ("DMA_ADDR_LO", DMA_ADDR_LO),
        ("DMA_ADDR_HI", DMA_ADDR_HI),
        ("LENGTH", LENGTH),
        ("CONTROL", CONTROL),
        ("PATTERN", PATTERN),
        ("SEED", SEED),
        ("TAG", TAG),
        ("DOORBELL", DOORBELL),
        ("STATUS", STATUS),
        ("ERROR", ERROR),
        ("IRQ_STATUS", IRQ_STATUS),
        ("SEQ", SEQ),
        ("CHECKSUM", CHECKSUM),
        ("FAULT_ADDR_LO", FAULT_ADDR_LO),
        ("FAULT_ADDR_HI", FAULT_ADDR_HI),
        ("BYTES_DONE", BYTES_DONE),
    ];
}

/// CAPS bits.
pub mod caps {
    pub const SG: u32 = 1 << 0;
    pub const MSI: u32 = 1 << 1;
    /// DMA_ADDR_HI exists (the device decodes more than 32 bits).
    pub const ADDR_HI: u32 = 1 << 2;
}

/// CONTROL bits.
pub mod control {
    pub const FROM_DEVICE: u32 = 1 << 0;
    pub const SG: u32 = 1 << 1;
    pub const IRQ_EN: u32 = 1 << 2;
    pub const MASK: u32 = FROM_DEVICE | SG | IRQ_EN;
}

/// STATUS bits.
pub mod status {
    pub const BUSY: u32 = 1 << 0;
    pub const DONE: u32 = 1 << 1;
    pub const ERROR: u32 = 1 << 2;
}

/// ERROR register values.
pub mod error {
    pub const NONE: u32 = 0;
    pub const IOMMU_FAULT: u32 = 1;
    pub const BEYOND_ADDR_BITS: u32 = 2;
    pub const BAD_REQUEST: u32 = 3;
    pub const BUSY: u32 = 4;
    pub const BUS_MASTER_OFF: u32 = 5;
}
