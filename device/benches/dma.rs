//! DMA through the vfio-user message path against real QEMU under qtest, and
//! QEMU's built-in `edu` device beside it. `cargo bench -p pvhdma-device`
//! (needs PVHDMA_QEMU or target/pvhdma/images.json). Prints a table; ~20 s.

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{ensure, Context, Result};
use common::{reg, run_dma, Dma, Qtest, Rig, BAR0};
use std::time::{Duration, Instant};

struct Row {
    what: String,
    ops: usize,
    per_op: Duration,
    mib_s: f64,
}

fn row(what: String, ops: usize, bytes: u64, t: Duration) -> Row {
    Row {
        what,
        ops,
        per_op: t / ops as u32,
        mib_s: (bytes * ops as u64) as f64 / t.as_secs_f64() / (1 << 20) as f64,
    }
}

/// Rings the doorbell on an already programmed operation and polls to the end.
fn ring(qt: &mut Qtest) -> Result<()> {
    qt.writel(BAR0 + reg::DOORBELL, 1)?;
    loop {
        let st = qt.readl(BAR0 + reg::STATUS)?;
        if st & 1 == 0 {
            ensure!(st == 2, "STATUS {st:#x}");
            return Ok(());
        }
    }
}

fn ours(rows: &mut Vec<Row>) -> Result<f64> {
    let mut rig = Rig::with_device(&[])?;
    let slot = rig.qt.find(0x5056, 0xd3a0)?.context("device")?;
    rig.qt.enable(slot, BAR0, true)?;
    for (len, ops) in [(16u32, 300usize), (4096, 300), (65536, 100), (1 << 20, 20)] {
        for (control, dir) in [(1u32, "from_device"), (0, "to_device")] {
            let d = Dma {
                addr: 0x100_0000,
                len,
                control,
                pattern: 2,
                seed: 1,
                tag: 0,
            };
            run_dma(&mut rig.qt, BAR0, &d)?;
            let t0 = Instant::now();
            for _ in 0..ops {
                ring(&mut rig.qt)?;
            }
            rows.push(row(format!("pvhdma {dir} {len} B"), ops, len.into(), t0.elapsed()));
        }
    }
    // Records per second: 256-descriptor SG operations, 257 records each.
    let list: Vec<u8> = (0..256u64)
        .flat_map(|i| {
            let mut d = (0x200_0000 + i * 4096).to_le_bytes().to_vec();
            d.extend_from_slice(&64u32.to_le_bytes());
            d.extend_from_slice(&0u32.to_le_bytes());
            d
        })
        .collect();
    rig.qt.mem_write(0x1f0_0000, &list)?;
    let d = Dma {
        addr: 0x1f0_0000,
        len: 256,
        control: 1 | 2,
        pattern: 1,
        seed: 0,
        tag: 0,
    };
    run_dma(&mut rig.qt, BAR0, &d)?;
    let before = std::fs::read_to_string(rig.records())?.lines().count();
    let t0 = Instant::now();
    for _ in 0..20 {
        ring(&mut rig.qt)?;
    }
    let t = t0.elapsed();
    let after = std::fs::read_to_string(rig.records())?.lines().count();
    rows.push(row("pvhdma SG 256 x 64 B from_device".into(), 20, 256 * 64, t));
    Ok((after - before) as f64 / t.as_secs_f64())
}

fn edu(rows: &mut Vec<Row>) -> Result<()> {
    let mut rig = Rig::start(None, &[], &["edu"])?;
    let slot = rig.qt.find(0x1234, 0x11e8)?.context("edu not found")?;
    rig.qt.enable(slot, BAR0, true)?;
    let qt = &mut rig.qt;
    for (cmd, dir, ops) in [
        (1u32 | 2, "from_device (edu->RAM)", 300usize),
        (1, "to_device (RAM->edu)", 300),
    ] {
        let t0 = Instant::now();
        for _ in 0..ops {
            // edu: src 0x80, dst 0x88, count 0x90, command 0x98; its buffer is at 0x40000.
            let (src, dst) = if cmd & 2 != 0 {
                (0x40000, 0x100_0000)
            } else {
                (0x100_0000, 0x40000)
            };
            qt.writel(BAR0 + 0x80, src)?;
            qt.writel(BAR0 + 0x88, dst)?;
            qt.writel(BAR0 + 0x90, 4096)?;
            qt.writel(BAR0 + 0x98, cmd)?;
            // edu moves the data from a 100 ms virtual-clock timer: step to it.
            while qt.readl(BAR0 + 0x98)? & 1 != 0 {
                qt.clock_step(100_000_000)?;
            }
        }
        rows.push(row(format!("edu {dir} 4096 B"), ops, 4096, t0.elapsed()));
    }
    Ok(())
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; nothing to configure.
    let mut rows = Vec::new();
    let t0 = Instant::now();
    let recs_per_s = ours(&mut rows)?;
    if let Err(e) = edu(&mut rows) {
        println!("edu comparison skipped: {e:#}");
    }
    println!(
        "{:<40} {:>6} {:>12} {:>10}",
        "operation (qtest, doorbell to DONE)", "ops", "per op", "MiB/s"
    );
    for r in &rows {
        println!(
            "{:<40} {:>6} {:>10.1}us {:>10.1}",
            r.what,
            r.ops,
            r.per_op.as_secs_f64() * 1e6,
            r.mib_s
        );
    }
    println!("records written per second (SG, 257 per op): {recs_per_s:.0}");
    println!("total {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
