//! The dom0 agent's logic, kept in a library so it is unit-tested on the
//! host. What it exchanges with the harness and the driver is defined in
//! `pvhdma-contract`.

pub mod backends;
pub mod foreign;
pub mod gntalloc;
pub mod guest;
pub mod guest_disk;
pub mod guest_net;
pub mod guest_role;
pub mod ioctl;
pub mod kmsg;
pub mod net;
pub mod pool;
pub mod report;
pub mod trace;
pub mod uapi;
pub mod xen_cpuid;
pub mod xenstore;

pub use pvhdma_contract::{markers, pattern, wire};
