//! pvhdma harness: boots Xen with a PVH dom0 under QEMU, with the DMA recorder
//! attached over vfio-user, runs a dom0 workload and judges what happened.
//!
//! The crate follows a run's data flow; each stage is one module:
//!
//! | stage | module |
//! | --- | --- |
//! | the scenario language: YAML in, a run spec and assertions out | [`scenario`] |
//! | the matrix cell a run belongs to | [`matrix`] |
//! | launching and watching one run | `run` ([`vm`], [`machine`], [`images`], ...) |
//! | what the run produced | `evidence` ([`outcome`], `trace`) |
//! | judging it | [`verdict`] |
//! | reporting it | [`report`] |
//! | one scenario file through all of these | [`suite`] |
//!
//! Types that cross to the dom0 agent, the driver or the device live in
//! `pvhdma-contract`. The public API below is what xtask, the benches and
//! the end-to-end tests use; everything else is private to the crate.

mod evidence;
mod run;

pub mod browser;
pub mod matrix;
pub mod report;
pub mod results;
pub mod scenario;
pub mod suite;
pub mod verdict;

pub use evidence::outcome;
pub use run::{accel, fastboot, images, initrd, machine, process, qmp, vm};

// Crate-internal stages, reachable as `crate::NAME` like the public ones.
use evidence::trace;
use run::{console, disk, guests, net, qemu, splice};
