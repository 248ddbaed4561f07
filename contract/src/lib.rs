//! The contract between pvhdma's parts, and nothing else: messages, names
//! and numbers that cross a process, language or machine boundary.
//!
//! | boundary | module |
//! | --- | --- |
//! | harness -> dom0 agent (workload), agent -> harness (console lines) | [`wire`], [`markers`] |
//! | agent -> dom0 driver (the RUN ioctl, C) | [`uapi`] |
//! | driver -> device (BAR0 registers, descriptors), both directions | [`regs`], [`limits`], [`pattern`] |
//! | device -> harness (DMA records, command line) | [`record`], [`device_cli`] |
//! | harness -> people and tools (how a run ended) | [`run_end`] |
//!
//! The C side (the driver's header and register defines, the initramfs's
//! init script) is held to these values by `tests/c_side.rs`.
#![forbid(unsafe_code)]

pub mod device_cli;
pub mod limits;
pub mod markers;
pub mod pattern;
pub mod record;
pub mod regs;
pub mod run_end;
pub mod uapi;
pub mod wire;
