//! A device process plus QEMU under qtest, driven over the qtest text protocol.
//! Shared by the integration test and the bench.
#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BAR0: u64 = 0xe000_0000;

/// Kills and reaps its child when dropped, on panic too.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `PVHDMA_QEMU`, else `target/pvhdma/images.json`'s "qemu"; no silent skip.
pub fn qemu_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PVHDMA_QEMU") {
        return Ok(PathBuf::from(p));
    }
    let images = workspace_root().join("target/pvhdma/images.json");
    let text = std::fs::read_to_string(&images).with_context(|| {
        format!(
            "no QEMU 11.1 for the qtest tests: set PVHDMA_QEMU or run the image build so that {} exists",
            images.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", images.display()))?;
    let q = v
        .get("qemu")
        .and_then(|q| q.as_str())
        .with_context(|| format!("no \"qemu\" in {}", images.display()))?;
    Ok(PathBuf::from(q))
}

pub struct Qtest {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Qtest {
    pub fn cmd(&mut self, line: &str) -> Result<String> {
        writeln!(self.w, "{line}").context("qtest write")?;
        loop {
            let mut resp = String::new();
            if self.r.read_line(&mut resp).context("qtest read")? == 0 {
                bail!("QEMU closed the qtest socket after {line:?}");
            }
            let resp = resp.trim_end();
            // Asynchronous IRQ notices are not answers.
            if resp.starts_with("IRQ") {
                continue;
            }
            if !resp.starts_with("OK") {
                bail!("qtest {line:?}: {resp}");
            }
            return Ok(resp.trim_start_matches("OK").trim().to_string());
        }
    }

    fn num(&mut self, line: &str) -> Result<u64> {
        let v = self.cmd(line)?;
        u64::from_str_radix(v.trim_start_matches("0x"), 16).with_context(|| format!("qtest {line:?} gave {v:?}"))
    }

    pub fn readl(&mut self, addr: u64) -> Result<u32> {
        Ok(self.num(&format!("readl {addr:#x}"))? as u32)
    }
    pub fn writel(&mut self, addr: u64, v: u32) -> Result<()> {
        self.cmd(&format!("writel {addr:#x} {v:#x}")).map(drop)
    }
    pub fn cfg_read(&mut self, slot: u8, reg: u8) -> Result<u32> {
        self.cmd(&format!(
            "outl 0xcf8 {:#x}",
            0x8000_0000u32 | u32::from(slot) << 11 | u32::from(reg)
        ))?;
        Ok(self.num("inl 0xcfc")? as u32)
    }
    pub fn cfg_write(&mut self, slot: u8, reg: u8, v: u32) -> Result<()> {
        self.cmd(&format!(
            "outl 0xcf8 {:#x}",
            0x8000_0000u32 | u32::from(slot) << 11 | u32::from(reg)
        ))?;
        self.cmd(&format!("outl 0xcfc {v:#x}")).map(drop)
    }
    pub fn mem_read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let b64 = self.cmd(&format!("b64read {addr:#x} {len:#x}"))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("b64read reply")
    }
    pub fn mem_write(&mut self, addr: u64, data: &[u8]) -> Result<()> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        self.cmd(&format!("b64write {addr:#x} {:#x} {b64}", data.len()))
            .map(drop)
    }
    pub fn clock_step(&mut self, ns: u64) -> Result<()> {
        self.cmd(&format!("clock_step {ns}")).map(drop)
    }

    /// Scans bus 0 for a function with this vendor/device ID.
    pub fn find(&mut self, vendor: u16, device: u16) -> Result<Option<u8>> {
        let want = u32::from(device) << 16 | u32::from(vendor);
        for slot in 0..32 {
            if self.cfg_read(slot, 0)? == want {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    /// Places BAR0 at `addr` and enables memory decoding and bus mastering.
    pub fn enable(&mut self, slot: u8, addr: u64, bus_master: bool) -> Result<()> {
        self.cfg_write(slot, 0x10, addr as u32)?;
        self.cfg_write(slot, 0x04, if bus_master { 0x6 } else { 0x2 })
    }
}

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub qt: Qtest,
    // Drop order: QEMU first, then the device (which exits on hang-up anyway).
    pub qemu: Guard,
    pub device: Option<Guard>,
}

impl Rig {
    pub fn records(&self) -> PathBuf {
        self.dir.path().join("dma.jsonl")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("device.log")).unwrap_or_default()
    }

    /// Starts `pvhdma-device` (when `device_bin` is given) and QEMU with
    /// `devices` as its -device arguments (`{SOCK}` replaced by the device socket).
    pub fn start(device_bin: Option<&Path>, device_args: &[&str], devices: &[&str]) -> Result<Rig> {
        let dir = tempfile::tempdir().context("tempdir")?;
        let sock = dir.path().join("dev.sock");
        let device = match device_bin {
            Some(bin) => {
                let child = Command::new(bin)
                    .arg("--socket")
                    .arg(&sock)
                    .arg("--records")
                    .arg(dir.path().join("dma.jsonl"))
                    .arg("--log")
                    .arg(dir.path().join("device.log"))
                    .args(device_args)
                    .stdin(Stdio::null())
                    .spawn()
                    .with_context(|| format!("starting {}", bin.display()))?;
                let mut g = Guard(child);
                let t0 = Instant::now();
                while !sock.exists() {
                    if let Some(st) = g.0.try_wait()? {
                        bail!("device exited early: {st}");
                    }
                    if t0.elapsed() > Duration::from_secs(10) {
                        bail!("device socket never appeared");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Some(g)
            }
            None => None,
        };
        let qt_path = dir.path().join("qtest.sock");
        let listener = UnixListener::bind(&qt_path).context("qtest listener")?;
        listener.set_nonblocking(true)?;
        let mut cmd = Command::new(qemu_path()?);
        cmd.args([
            "-M",
            "q35",
            "-accel",
            "qtest",
            "-display",
            "none",
            "-nodefaults",
            "-m",
            "256M",
        ])
        .arg("-qtest")
        .arg(format!("unix:{}", qt_path.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("qemu.err"))?);
        for d in devices {
            cmd.arg("-device").arg(d.replace("{SOCK}", &sock.display().to_string()));
        }
        let mut qemu = Guard(cmd.spawn().context("starting QEMU")?);
        let t0 = Instant::now();
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Some(st) = qemu.0.try_wait()? {
                        let err = std::fs::read_to_string(dir.path().join("qemu.err")).unwrap_or_default();
                        bail!("QEMU exited early ({st}): {err}");
                    }
                    if t0.elapsed() > Duration::from_secs(30) {
                        bail!("QEMU never connected to the qtest socket");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).context("qtest accept"),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let qt = Qtest {
            r: BufReader::new(stream.try_clone()?),
            w: stream,
        };
        Ok(Rig { dir, qt, qemu, device })
    }

    /// Starts our device as the only extra PCI function.
    pub fn with_device(device_args: &[&str]) -> Result<Rig> {
        let bin = Path::new(env!("CARGO_BIN_EXE_pvhdma-device"));
        Rig::start(
            Some(bin),
            device_args,
            &[r#"{"driver":"vfio-user-pci","socket":{"type":"unix","path":"{SOCK}"}}"#],
        )
    }
}

pub mod reg {
    pub const ID: u64 = 0x00;
    pub const ADDR_BITS: u64 = 0x08;
    pub const DMA_ADDR_LO: u64 = 0x10;
    pub const DMA_ADDR_HI: u64 = 0x14;
    pub const LENGTH: u64 = 0x18;
    pub const CONTROL: u64 = 0x1c;
    pub const PATTERN: u64 = 0x20;
    pub const SEED: u64 = 0x24;
    pub const TAG: u64 = 0x28;
    pub const DOORBELL: u64 = 0x2c;
    pub const STATUS: u64 = 0x30;
    pub const ERROR: u64 = 0x34;
    pub const SEQ: u64 = 0x3c;
    pub const CHECKSUM: u64 = 0x40;
    pub const FAULT_ADDR_LO: u64 = 0x44;
    pub const BYTES_DONE: u64 = 0x4c;
}

pub struct Dma {
    pub addr: u64,
    pub len: u32,
    pub control: u32,
    pub pattern: u32,
    pub seed: u32,
    pub tag: u32,
}

/// Programs one operation, rings the doorbell and polls STATUS until BUSY
/// clears; returns (STATUS, ERROR).
pub fn run_dma(qt: &mut Qtest, bar: u64, d: &Dma) -> Result<(u32, u32)> {
    qt.writel(bar + reg::DMA_ADDR_LO, d.addr as u32)?;
    qt.writel(bar + reg::DMA_ADDR_HI, (d.addr >> 32) as u32)?;
    qt.writel(bar + reg::LENGTH, d.len)?;
    qt.writel(bar + reg::CONTROL, d.control)?;
    qt.writel(bar + reg::PATTERN, d.pattern)?;
    qt.writel(bar + reg::SEED, d.seed)?;
    qt.writel(bar + reg::TAG, d.tag)?;
    qt.writel(bar + reg::DOORBELL, 1)?;
    let t0 = Instant::now();
    loop {
        let st = qt.readl(bar + reg::STATUS)?;
        if st & 1 == 0 && st & 0b110 != 0 {
            return Ok((st, qt.readl(bar + reg::ERROR)?));
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("DMA never completed (STATUS {st:#x})");
        }
    }
}

pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}
