//! The DMA recorder device.

pub mod record;
