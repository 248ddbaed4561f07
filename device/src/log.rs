//! The human-readable device log (`--log`, stderr without it).

use std::fmt::Display;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

pub struct Log {
    out: Mutex<Box<dyn Write + Send>>,
    start: Instant,
}

impl Log {
    pub fn to_file(path: &Path, start: Instant) -> std::io::Result<Self> {
        Ok(Log {
            out: Mutex::new(Box::new(File::create(path)?)),
            start,
        })
    }

    pub fn to_stderr(start: Instant) -> Self {
        Log {
            out: Mutex::new(Box::new(std::io::stderr())),
            start,
        }
    }

    /// One line, flushed at once: the log is read after crashes too.
    pub fn line(&self, msg: impl Display) {
        let t = self.start.elapsed();
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A full disk must not take the device down with it.
        let _ = writeln!(out, "[{:>5}.{:06}] {msg}", t.as_secs(), t.subsec_micros());
        let _ = out.flush();
    }
}
