//! A guest's disk: load blkfront, write the pattern to the start of its vbd
//! with O_DIRECT, read it back the same way and compare. O_DIRECT keeps the
//! guest's page cache out of it: blkfront grants the very pages of the
//! user buffer (or its own, copied from them) to dom0, and blkback hands
//! those grants to the driver of dom0's disk controller, so each request's
//! data moves by the controller's DMA to and from pages the guest granted.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use rustix::fs::{Mode, OFlags};

use crate::net::{insmod_shipped, wait_for};
use crate::wire::{DiskLine, GuestDisk};

pub const BLKFRONT_KO: &str = "/lib/modules/xen-blkfront.ko";
pub const VBD: &str = "/dev/xvda";
/// blkfront needs the backend connected before the disk appears.
const VBD_WAIT: Duration = Duration::from_secs(90);
/// O_DIRECT wants buffers, offsets and lengths aligned to the logical block;
/// a page covers every block size a vbd may report.
const ALIGN: usize = 4096;

/// Write, read back and report; never fails, the line carries what went wrong.
pub fn run(disk: &GuestDisk) -> DiskLine {
    let mut line = DiskLine {
        wrote: 0,
        read: 0,
        intact: false,
        error: None,
        persistent: None,
    };
    if let Err(e) = write_and_read(disk, &mut line) {
        line.error = Some(e);
    }
    line.persistent = crate::kmsg::read_all("/dev/kmsg")
        .ok()
        .and_then(|f| f.blkfront_persistent);
    line
}

fn write_and_read(disk: &GuestDisk, line: &mut DiskLine) -> Result<(), String> {
    insmod_shipped(BLKFRONT_KO, &insmod_params(disk))?;
    wait_for(&format!("{VBD} after insmod xen-blkfront"), VBD_WAIT, || {
        Path::new(VBD).exists()
    })?;
    let file = open_direct()?;
    let want = disk.pattern.bytes(disk.seed, disk.size as usize);
    let mut out = Aligned::new(want.len());
    out.get().copy_from_slice(&want);
    line.wrote = transfer(&file, out.get(), Dir::Write)?;
    rustix::fs::fdatasync(&file).map_err(|e| format!("fdatasync {VBD}: {e}"))?;
    let mut back = Aligned::new(want.len());
    line.read = transfer(&file, back.get(), Dir::Read)?;
    line.intact = back.get()[..] == want[..];
    Ok(())
}

/// blkfront offers persistent grants unless told not to; blkback uses them
/// only when both ends offer them.
fn insmod_params(disk: &GuestDisk) -> Vec<&'static str> {
    if disk.persistent {
        Vec::new()
    } else {
        vec!["feature_persistent=0"]
    }
}

fn open_direct() -> Result<File, String> {
    let fd = rustix::fs::open(VBD, OFlags::RDWR | OFlags::DIRECT | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("open {VBD} O_DIRECT: {e}"))?;
    Ok(File::from(fd))
}

#[derive(Clone, Copy)]
enum Dir {
    Write,
    Read,
}

/// The whole buffer at offset 0, in as many calls as the kernel needs; an
/// error after some bytes says how many went through.
fn transfer(file: &File, buf: &mut [u8], dir: Dir) -> Result<u64, String> {
    let mut done = 0usize;
    while done < buf.len() {
        let r = match dir {
            Dir::Write => rustix::io::pwrite(file, &buf[done..], done as u64),
            Dir::Read => rustix::io::pread(file, &mut buf[done..], done as u64),
        };
        match r {
            Ok(0) => return Err(format!("{VBD} ended after {done} bytes")),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                let what = match dir {
                    Dir::Write => "write",
                    Dir::Read => "read",
                };
                return Err(format!("{what} {VBD} after {done} bytes: {e}"));
            }
        }
    }
    Ok(done as u64)
}

/// A page-aligned buffer without unsafe: a larger vector, used from its
/// first aligned byte.
struct Aligned {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        Self { raw, start, len }
    }

    fn get(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkfront_is_told_not_to_offer_persistent_grants_only_when_asked() {
        let mut d = GuestDisk {
            size: 4096,
            pattern: Default::default(),
            seed: 0,
            persistent: true,
        };
        assert!(insmod_params(&d).is_empty());
        d.persistent = false;
        assert_eq!(insmod_params(&d), ["feature_persistent=0"]);
    }

    #[test]
    fn aligned_buffers_start_on_a_page() {
        for len in [1, 4096, 65536 + 7] {
            let mut b = Aligned::new(len);
            let s = b.get();
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % ALIGN, 0);
        }
    }
}
