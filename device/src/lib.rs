//! The DMA recorder device: a PCI device with a DMA engine, served to QEMU
//! over vfio-user, that writes one JSON record per DMA access.

pub mod device;
pub mod engine;
pub mod irq;
pub mod log;
pub mod maps;
pub mod pci;
pub mod proto;
pub mod recorder;
pub mod regs;
pub mod server;

/// The records the device writes are part of the contract with the harness.
pub use pvhdma_contract::record;
