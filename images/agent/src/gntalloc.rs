//! A guest's side of a grant: pages from /dev/xen/gntalloc, granted to
//! dom0 and mapped into this process to fill and check them.
//!
//! One of the agent's `unsafe` modules (with ioctl.rs and xen_cpuid.rs): the gntalloc
//! ioctl has no safe wrapper for the same reason as the driver's, and the
//! granted pages are reachable only through `mmap` of the device.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::ioctl::{ioctl, opcode, Direction, Opcode, Updater};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

use pvhdma_contract::limits::{GRANT_PAGE_SIZE as PAGE_SIZE, MAX_GRANT_PAGES as MAX_PAGES};

/// Linux's `struct ioctl_gntalloc_alloc_gref` (its Xen gntalloc uapi) with
/// room for [`MAX_PAGES`] refs: the kernel writes `count` refs from
/// `gref_ids` on, past the one-element array the C struct declares.
#[repr(C)]
struct AllocGref {
    domid: u16,
    flags: u16,
    count: u32,
    index: u64,
    gref_ids: [u32; MAX_PAGES as usize],
}

/// `IOCTL_GNTALLOC_ALLOC_GREF = _IOC(_IOC_NONE, 'G', 5, sizeof(struct
/// ioctl_gntalloc_alloc_gref))`: the C struct, padded, is 24 bytes.
const ALLOC_GREF: Opcode = opcode::from_components(Direction::None, b'G', 5, 24);
const GNTALLOC_FLAG_WRITABLE: u16 = 1;

/// Granted pages, kept granted until dropped (or the guest dies).
pub struct Grant {
    _file: File,
    ptr: *mut u8,
    len: usize,
    pub refs: Vec<u32>,
}

impl Grant {
    /// Grant `pages` fresh pages to `domid`, writable unless `readonly`.
    pub fn alloc(dev: &Path, domid: u16, pages: u32, readonly: bool) -> Result<Self, String> {
        if pages == 0 || pages > MAX_PAGES {
            return Err(format!("{pages} pages: expected 1..={MAX_PAGES}"));
        }
        let file = File::options()
            .read(true)
            .write(true)
            .open(dev)
            .map_err(|e| format!("cannot open {}: {e}", dev.display()))?;
        let mut arg = AllocGref {
            domid,
            flags: if readonly { 0 } else { GNTALLOC_FLAG_WRITABLE },
            count: pages,
            index: 0,
            gref_ids: [0; MAX_PAGES as usize],
        };
        // SAFETY: ALLOC_GREF takes a `struct ioctl_gntalloc_alloc_gref`,
        // whose fields `AllocGref` repeats with the same `repr(C)` layout;
        // the kernel writes `count` (<= MAX_PAGES) refs into `gref_ids`,
        // which has room for them, and `arg` outlives the call.
        unsafe { ioctl(file.as_fd(), Updater::<ALLOC_GREF, AllocGref>::new(&mut arg)) }
            .map_err(|e| format!("gntalloc ioctl ({pages} pages to domain {domid}): {e}"))?;
        let len = (pages * PAGE_SIZE) as usize;
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint), of
        // exactly the pages the ioctl allocated at `index`; nothing else in
        // this process refers to that range.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file.as_fd(),
                arg.index,
            )
        }
        .map_err(|e| format!("mmap of the granted pages: {e}"))?;
        Ok(Self {
            _file: file,
            ptr: ptr.cast(),
            len,
            refs: arg.gref_ids[..pages as usize].to_vec(),
        })
    }

    /// Write `data` at the start of page `page`.
    pub fn write_page(&self, page: usize, data: &[u8]) {
        let base = page * PAGE_SIZE as usize;
        assert!(base + data.len() <= self.len, "write past the granted pages");
        for (i, b) in data.iter().enumerate() {
            // SAFETY: in bounds (asserted above) of the live mapping; volatile,
            // because dom0 and the device share these pages.
            unsafe { self.ptr.add(base + i).write_volatile(*b) };
        }
    }

    /// The first `len` bytes of page `page`, as they are now.
    pub fn read_page(&self, page: usize, len: usize) -> Vec<u8> {
        let base = page * PAGE_SIZE as usize;
        assert!(base + len <= self.len, "read past the granted pages");
        // SAFETY: as in write_page; volatile, because the device writes them.
        (0..len)
            .map(|i| unsafe { self.ptr.add(base + i).read_volatile() })
            .collect()
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is the mapping made in `alloc`, unmapped once.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn opcode_matches_the_c_macro() {
        // _IOC(_IOC_NONE, 'G', 5, 24): dir 0, size 24, type 'G', nr 5.
        assert_eq!(u64::from(super::ALLOC_GREF), (24 << 16) | (u64::from(b'G') << 8) | 5);
        assert_eq!(std::mem::size_of::<super::AllocGref>(), 16 + 4 * 16);
    }
}
