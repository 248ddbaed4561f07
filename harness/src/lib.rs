//! pvhdma harness: boots Xen with a PVH dom0 under QEMU, with the DMA recorder
//! attached over vfio-user, runs a dom0 workload and judges what happened.
//!
//! One owner per concern: `images` (what was built), `machine` (what to boot),
//! `qemu` (its command line), `qmp`, `console`, `process` (no orphans),
//! `vm` (one run end to end), `trace` (QEMU's IOMMU trace), `initrd`
//! (the per-run workload archive), `scenario`, `verdict`, `report`.

pub mod images;
pub mod machine;
pub mod outcome;
pub mod process;
pub mod console;
pub mod trace;
pub mod initrd;
pub mod qmp;
pub mod scenario;
pub mod verdict;
pub mod report;
pub mod qemu;
pub mod vm;
