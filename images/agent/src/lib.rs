//! The dom0 agent: wire types shared with the harness, and the pure logic
//! of the binary (kept here so it is unit-tested on the host).

pub mod ioctl;
pub mod kmsg;
pub mod net;
pub mod pattern;
pub mod report;
pub mod trace;
pub mod uapi;
pub mod wire;
