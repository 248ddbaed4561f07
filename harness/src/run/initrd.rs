//! newc cpio archives: the base initramfs and the per-run workload archive.
//!
//! Linux unpacks concatenated archives in order, so a run's workload is a
//! small archive appended to the cached base image rather than a rebuild.

use std::io::{self, Write};

/// One entry of an archive.
pub enum Entry<'a> {
    Dir {
        path: &'a str,
    },
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    Symlink {
        path: &'a str,
        target: &'a str,
    },
    /// A character device node (the kernel needs /dev/console before init runs).
    CharDev {
        path: &'a str,
        major: u32,
        minor: u32,
    },
}

/// Writes a newc archive; call `finish` to add the trailer.
pub struct Writer<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            ino: 1,
            written: 0,
        }
    }

    pub fn add(&mut self, entry: &Entry) -> io::Result<()> {
        let (path, mode, data, rdev) = match entry {
            Entry::Dir { path } => (*path, 0o040755, &[][..], (0, 0)),
            Entry::File { path, mode, data } => (*path, 0o100000 | mode, *data, (0, 0)),
            Entry::Symlink { path, target } => (*path, 0o120777, target.as_bytes(), (0, 0)),
            Entry::CharDev { path, major, minor } => (*path, 0o020600, &[][..], (*major, *minor)),
        };
        self.header(path, mode, data.len(), rdev)?;
        self.bytes(data)?;
        self.pad()
    }

    fn header(&mut self, path: &str, mode: u32, size: usize, rdev: (u32, u32)) -> io::Result<()> {
        let name_len = path.len() + 1;
        let h = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino, mode, 0, 0, 1, 0, size, 0, 0, rdev.0, rdev.1, name_len, 0
        );
        self.ino += 1;
        self.bytes(h.as_bytes())?;
        self.bytes(path.as_bytes())?;
        self.bytes(&[0])?;
        self.pad()
    }

    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.bytes(&[0u8; 3][..n])
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A complete archive holding just the workload file (and its directory).
pub fn workload_archive(json: &[u8]) -> io::Result<Vec<u8>> {
    let (dir, _) = pvhdma_contract::markers::WORKLOAD_PATH
        .split_once('/')
        .expect("workload path has a directory");
    let mut w = Writer::new(Vec::new());
    w.add(&Entry::Dir { path: dir })?;
    w.add(&Entry::File {
        path: pvhdma_contract::markers::WORKLOAD_PATH,
        mode: 0o644,
        data: json,
    })?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_round_trips_through_cpio() {
        let bytes = workload_archive(b"{\"ops\":[]}").unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-id", "--quiet"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("cpio is installed by .ci/run");
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        assert!(child.wait().unwrap().success());
        let got = std::fs::read(dir.path().join(pvhdma_contract::markers::WORKLOAD_PATH)).unwrap();
        assert_eq!(got, b"{\"ops\":[]}");
    }
}
