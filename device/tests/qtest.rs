//! The device against real QEMU 11.1 under qtest (no guest, no IOMMU).

mod common;

use anyhow::{ensure, Context, Result};
use common::{fnv1a, reg, run_dma, Dma, Rig, BAR0};
use pvhdma_device::record::{AccessKind, AccessOutcome, Direction, DmaRecord};
use std::time::{Duration, Instant};

fn records(rig: &Rig) -> Result<Vec<DmaRecord>> {
    let text = std::fs::read_to_string(rig.records()).context("reading dma.jsonl")?;
    text.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("record {l}")))
        .collect()
}

fn attach(rig: &mut Rig, bus_master: bool) -> Result<()> {
    let slot = rig.qt.find(0x5056, 0xd3a0)?.context("device not found on bus 0")?;
    rig.qt.enable(slot, BAR0, bus_master)?;
    ensure!(rig.qt.readl(BAR0 + reg::ID)? == 0x5056_4844, "ID register");
    Ok(())
}

#[test]
fn dma_both_directions_lands_and_is_recorded() -> Result<()> {
    let mut rig = Rig::with_device(&[])?;
    let slot = rig.qt.find(0x5056, 0xd3a0)?.context("device not found")?;
    ensure!(rig.qt.cfg_read(slot, 0x08)? == 0x0880_0001, "class/revision");
    ensure!(rig.qt.cfg_read(slot, 0x2c)? == 0x0001_5056, "subsystem");
    ensure!((rig.qt.cfg_read(slot, 0x3c)? >> 8) & 0xff == 1, "interrupt pin A");
    rig.qt.cfg_write(slot, 0x10, u32::MAX)?;
    ensure!(
        rig.qt.cfg_read(slot, 0x10)? == 0xffff_f000,
        "BAR0 sizing: 4 KiB 32-bit memory"
    );
    attach(&mut rig, true)?;
    ensure!(rig.qt.readl(BAR0 + reg::ADDR_BITS)? == 32);

    // From device: incrementing pattern into guest RAM.
    let d = Dma {
        addr: 0x10_0000,
        len: 4096,
        control: 1,
        pattern: 1,
        seed: 0x10,
        tag: 7,
    };
    let (status, error) = run_dma(&mut rig.qt, BAR0, &d)?;
    ensure!(status == 2 && error == 0, "status {status:#x} error {error}");
    let want: Vec<u8> = (0..4096u32).map(|i| (0x10 + i) as u8).collect();
    ensure!(
        rig.qt.mem_read(0x10_0000, 4096)? == want,
        "guest RAM does not hold the pattern"
    );
    ensure!(rig.qt.readl(BAR0 + reg::CHECKSUM)? == fnv1a(&want));
    ensure!(rig.qt.readl(BAR0 + reg::BYTES_DONE)? == 4096);

    // To device: bytes we wrote, checked through CHECKSUM.
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    rig.qt.mem_write(0x20_0000, &data)?;
    let d = Dma {
        addr: 0x20_0000,
        len: 3000,
        control: 0,
        pattern: 0,
        seed: 0,
        tag: 8,
    };
    let (status, error) = run_dma(&mut rig.qt, BAR0, &d)?;
    ensure!(status == 2 && error == 0, "status {status:#x} error {error}");
    ensure!(rig.qt.readl(BAR0 + reg::CHECKSUM)? == fnv1a(&data));
    ensure!(rig.qt.readl(BAR0 + reg::SEQ)? == 2);

    let recs = records(&rig)?;
    ensure!(recs.len() == 2, "records: {recs:?}");
    let r = &recs[0];
    ensure!(r.seq == 1 && r.op_seq == 1 && r.tag == 7);
    ensure!(r.kind == AccessKind::Data && r.dir == Direction::FromDevice && r.outcome == AccessOutcome::Ok);
    ensure!(r.bus_addr == 0x10_0000 && r.decoded_addr == 0x10_0000 && r.len == 4096);
    ensure!(r.checksum == fnv1a(&want));
    // QEMU maps guest RAM without an fd here: the table knows the window only.
    let t = r.translated.first().context("no translation from the DMA_MAP table")?;
    ensure!(
        t.source == "dma_map" && t.target_kind == "unknown" && t.iova == 0x10_0000 && t.len == 4096,
        "{t:?}"
    );
    ensure!(t.map_iova <= 0x10_0000 && t.map_iova + t.map_size >= 0x10_1000);
    let r = &recs[1];
    ensure!(r.dir == Direction::ToDevice && r.tag == 8 && r.checksum == fnv1a(&data) && r.op_seq == 2);
    Ok(())
}

#[test]
fn advertised_36_decoded_32_truncates_and_refuses_beyond() -> Result<()> {
    let mut rig = Rig::with_device(&["--addr-bits", "36", "--decode-bits", "32"])?;
    attach(&mut rig, true)?;
    ensure!(rig.qt.readl(BAR0 + reg::ADDR_BITS)? == 36);
    let d = Dma {
        addr: 0x1_0030_0000,
        len: 64,
        control: 1,
        pattern: 0,
        seed: 0x5a,
        tag: 1,
    };
    let (status, error) = run_dma(&mut rig.qt, BAR0, &d)?;
    ensure!(status == 2 && error == 0, "status {status:#x} error {error}");
    ensure!(
        rig.qt.mem_read(0x30_0000, 64)? == vec![0x5a; 64],
        "truncated write did not land at 3 MiB"
    );

    let before = rig.qt.mem_read(0x40_0000, 16)?;
    let d = Dma {
        addr: 0x10_0040_0000,
        len: 16,
        control: 1,
        pattern: 0,
        seed: 0xee,
        tag: 2,
    };
    let (status, error) = run_dma(&mut rig.qt, BAR0, &d)?;
    ensure!(status == 2 | 4 && error == 2, "status {status:#x} error {error}");
    ensure!(rig.qt.mem_read(0x40_0000, 16)? == before, "refused DMA touched memory");

    let recs = records(&rig)?;
    ensure!(recs.len() == 2);
    ensure!(recs[0].bus_addr == 0x1_0030_0000 && recs[0].decoded_addr == 0x30_0000);
    ensure!(recs[1].outcome == AccessOutcome::BeyondAddrBits && recs[1].checksum == 0);
    Ok(())
}

#[test]
fn bus_master_off_then_unbacked_address_faults() -> Result<()> {
    let mut rig = Rig::with_device(&[])?;
    attach(&mut rig, false)?;
    let d = Dma {
        addr: 0x10_0000,
        len: 16,
        control: 1,
        pattern: 0,
        seed: 1,
        tag: 1,
    };
    ensure!(
        run_dma(&mut rig.qt, BAR0, &d)?.1 == 5,
        "bus master off must give ERROR 5"
    );

    let slot = rig.qt.find(0x5056, 0xd3a0)?.context("device")?;
    rig.qt.enable(slot, BAR0, true)?;
    // Nothing answers at 2 GiB in a 256 MiB q35 machine: QEMU refuses the DMA.
    let d = Dma {
        addr: 0x8000_1000,
        len: 8192,
        control: 0,
        pattern: 0,
        seed: 0,
        tag: 2,
    };
    let (status, error) = run_dma(&mut rig.qt, BAR0, &d)?;
    ensure!(status == 2 | 4 && error == 1, "status {status:#x} error {error}");
    ensure!(rig.qt.readl(BAR0 + reg::FAULT_ADDR_LO)? == 0x8000_1000);
    let recs = records(&rig)?;
    ensure!(
        recs.iter().map(|r| r.outcome).collect::<Vec<_>>() == [AccessOutcome::BusMasterOff, AccessOutcome::IommuFault]
    );
    Ok(())
}

#[test]
fn device_exits_and_removes_socket_when_qemu_goes() -> Result<()> {
    let mut rig = Rig::with_device(&[])?;
    attach(&mut rig, true)?;
    rig.qemu.0.kill()?;
    rig.qemu.0.wait()?;
    let dev = rig.device.as_mut().context("device")?;
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = dev.0.try_wait()? {
            break st;
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(10),
            "device still running after the client left"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    ensure!(status.success(), "device exit {status}: {}", rig.log());
    ensure!(!rig.dir.path().join("dev.sock").exists(), "socket left behind");
    ensure!(rig.log().contains("client disconnected"));
    Ok(())
}

/// 1 MiB each way: the engine splits it into messages QEMU handles (a single
/// large DMA_READ reply was seen to wedge the connection).
#[test]
fn one_mib_both_ways() -> Result<()> {
    let mut rig = Rig::with_device(&[])?;
    attach(&mut rig, true)?;
    let d = Dma {
        addr: 0x100_0000,
        len: 1 << 20,
        control: 1,
        pattern: 2,
        seed: 3,
        tag: 1,
    };
    ensure!(run_dma(&mut rig.qt, BAR0, &d)? == (2, 0));
    let written = rig.qt.readl(BAR0 + reg::CHECKSUM)?;
    let d = Dma {
        control: 0,
        tag: 2,
        ..d
    };
    ensure!(run_dma(&mut rig.qt, BAR0, &d)? == (2, 0));
    ensure!(
        rig.qt.readl(BAR0 + reg::CHECKSUM)? == written,
        "read back differs from what was written"
    );
    ensure!(fnv1a(&rig.qt.mem_read(0x100_0000, 1 << 20)?) == written);
    Ok(())
}
