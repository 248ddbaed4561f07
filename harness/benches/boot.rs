//! Boot-to-verdict figures: run with `cargo bench -p pvhdma-harness --bench boot`.
//!
//! For each IOMMU kind: Xen + PVH dom0 boot to the agent's done marker through
//! the harness, and QEMU's peak memory. Then the harness's overhead: the very
//! command line it generated, run bare from a shell, timed to the same marker.
//! Figures go to stdout as a Markdown table (kept in docs/bench.md).

use pvhdma_harness::images::Manifest;
use pvhdma_harness::machine::{IommuKind, RunSpec};
use pvhdma_harness::vm;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

fn spec(iommu: IommuKind) -> RunSpec {
    RunSpec::boot_only(&format!("bench-{iommu:?}").to_lowercase(), iommu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Run the generated command line with no harness and time it to the marker.
fn bare(dir: &std::path::Path) -> f64 {
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg(dir.join("qemu-cmdline.sh"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh runs");
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut t = f64::NAN;
    for line in out.split(b'\n') {
        if String::from_utf8_lossy(&line.unwrap()).contains("PVHDMA-DONE") {
            t = start.elapsed().as_secs_f64();
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    t
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("PVHDMA_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let m = Manifest::load_default()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!("| IOMMU | runs | harness: start to dom0 marker (s) | harness: start to done (s) | bare QEMU: start to done (s) | overhead | QEMU peak RSS (MiB) |");
    println!("|---|---|---|---|---|---|---|");
    for iommu in [IommuKind::Intel, IommuKind::Amd] {
        let (mut marker, mut done, mut bare_t, mut rss) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            let mut run = rt.block_on(vm::run(&m, &spec(iommu)))?;
            anyhow::ensure!(run.outcome.end.is_finished(), "bench boot ended {:?}", run.outcome.end);
            let t = &run.outcome.timings;
            marker.push(t.to_dom0_marker.unwrap_or_default().as_secs_f64());
            done.push(t.to_agent_done.unwrap_or_default().as_secs_f64());
            rss.push(t.qemu_peak_rss_kib.unwrap_or_default() as f64 / 1024.0);
            let dir = run.keep();
            bare_t.push(bare(&dir));
            std::fs::remove_dir_all(&dir)?;
        }
        let (d, b) = (median(done), median(bare_t));
        println!(
            "| {iommu:?} | {runs} | {:.1} | {d:.1} | {b:.1} | {:+.1}% | {:.0} |",
            median(marker),
            (d - b) / b * 100.0,
            median(rss)
        );
    }
    Ok(())
}
