//! Launching one run and watching it: what was built (`images`), what to
//! boot (`machine`), QEMU's command line (`qemu`, with the boot-time cuts of
//! `fastboot`) and monitor (`qmp`), the
//! per-run workload archive (`initrd`, `net`), dom0's disk image (`disk`),
//! guests dom0 creates and their
//! consoles (`guests`), child processes that cannot outlive the run
//! (`process`), the console (`console`, with Xen's lines taken out of
//! dom0's by `splice`) and the run itself, start to end
//! (`vm`).

pub mod accel;
pub mod console;
pub mod disk;
pub mod fastboot;
pub mod guests;
pub mod images;
pub mod initrd;
pub mod machine;
pub mod net;
pub mod process;
pub mod qemu;
pub mod qmp;
pub mod splice;
pub mod vm;
