//! pvhdma harness: boots Xen with a PVH dom0 under QEMU, with the DMA recorder
//! attached over vfio-user, runs a dom0 workload and judges what happened.
//!
//! One owner per concern: `images` (what was built), `machine` (what to boot),
//! `qemu` (its command line), `qmp`, `console`, `process` (no orphans),
//! `vm` (one run end to end), `trace` (QEMU's IOMMU trace), `initrd`
//! (the per-run workload archive), `scenario`, `verdict`, `report`.

pub mod accel;
pub mod console;
pub mod fastboot;
pub mod images;
pub mod initrd;
pub mod machine;
pub mod matrix;
pub mod net;
pub mod outcome;
pub mod process;
pub mod qemu;
pub mod qmp;
pub mod report;
pub mod scenario;
pub mod suite;
pub mod trace;
pub mod verdict;
pub mod vm;
