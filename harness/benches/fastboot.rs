//! The fast boot against the old way, side by side:
//! `cargo bench -p pvhdma-harness --bench fastboot`.
//!
//! One run alternates the ways of booting (old, new, and with
//! `PVHDMA_BENCH_KERNEL_IMAGES` a third, below) over the same scenarios, so
//! all see the same machine and the same contention, and reports each
//! way's boot-to-verdict wall time (from the harness starting the run to
//! the verdict) as a ratio to the old way's. A ratio, not an absolute time: machines
//! of this kind differ 2-3x, and a shared one drifts within minutes.
//!
//! - `PVHDMA_BENCH_SCENARIOS`: scenario files, comma-separated (default
//!   `scenarios/pvh-vtd-noforce.yaml`), or `default`: every scenario the
//!   current matrix cell runs, the set `cargo xtask test` runs;
//! - `PVHDMA_BENCH_PAIRS`: rounds per scenario, one boot of each way in a
//!   round (default 3);
//! - `PVHDMA_BENCH_KERNEL_IMAGES`: a second image set's manifest (e.g.
//!   `cargo xtask images --recipe images/recipes/xen4.20-linux6.12-src.toml
//!   --manifest target/pvhdma/src.json`), booted with the cuts as a third
//!   way, "kernel": the project's own kernel with its boot series. A
//!   scenario that either cell does not run is left out of every way.
//!
//! Which way boots first turns from one round to the next, so no way
//! always gets the warmer page cache. Every boot must give a passing
//! verdict: a fast boot that broke the scenario would be no speed-up. A
//! known TCG fault is retried once, as the tests do, and the retry's time
//! counts; a round with a failed boot is reported and left out of the sums,
//! and the bench then exits non-zero after the figures. Figures go to
//! stdout as Markdown (kept in docs/bench.md).

use pvhdma_harness::images::{workspace_root, Manifest};
use pvhdma_harness::{fastboot, matrix, scenario, verdict, vm};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Boot {
    wall: f64,
    marker: f64,
    retried: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn boot(m: &Manifest, path: &Path, fast: bool) -> anyhow::Result<Boot> {
    let started = Instant::now();
    let s = scenario::load(path)?;
    let mut spec = s.to_run_spec();
    matrix::apply(m, &s, &mut spec)?;
    spec.boot.fast_boot = fast;
    // A bench measures how long a boot takes, so neither way is cut short by
    // the scenario's timeouts (on a loaded host the old way can exceed them).
    spec.boot_timeout = spec.boot_timeout.max(Duration::from_secs(900));
    spec.run_timeout = spec.run_timeout.max(Duration::from_secs(600));
    let (mut run, retried) = vm::run_retrying_triple_fault(m, &spec).await?;
    let v = verdict::evaluate(&s, &run.outcome);
    let wall = started.elapsed().as_secs_f64();
    if !v.passed() {
        let kept = run.keep();
        anyhow::bail!(
            "{} ({}) did not pass, artifacts in {}:\n{v}",
            path.display(),
            if fast { "fast" } else { "old way" },
            kept.display()
        );
    }
    let marker = run.outcome.timings.to_dom0_marker.unwrap_or_default().as_secs_f64();
    Ok(Boot {
        wall,
        marker,
        retried: retried.is_some(),
    })
}

/// One way of booting: an image set and whether the harness's cuts are on.
struct Way {
    name: &'static str,
    m: Manifest,
    cell: matrix::Cell,
    fast: bool,
}

fn main() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os(fastboot::ENV).is_none(),
        "unset {}: this bench sets the old and the new way itself",
        fastboot::ENV
    );
    let pairs: usize = match std::env::var("PVHDMA_BENCH_PAIRS") {
        Ok(s) => s
            .parse()
            .map_err(|e| anyhow::anyhow!("PVHDMA_BENCH_PAIRS={s:?}: {e}"))?,
        Err(_) => 3,
    };
    anyhow::ensure!(pairs > 0, "PVHDMA_BENCH_PAIRS must be at least 1");
    let m = Manifest::load_default()?;
    let files = bench_files(&m)?;
    let way = |name, m: Manifest, fast| -> anyhow::Result<Way> {
        let cell = matrix::Cell::current(Some(&m))?;
        Ok(Way { name, m, cell, fast })
    };
    let mut ways = vec![way("old", m.clone(), false)?, way("new", m, true)?];
    if let Some(p) = std::env::var_os("PVHDMA_BENCH_KERNEL_IMAGES") {
        // Relative to the workspace, as the scenario files are: cargo runs
        // a bench from its crate's directory.
        ways.push(way("kernel", Manifest::load(&workspace_root().join(p))?, true)?);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut head = "| scenario | round |".to_string();
    let mut rule = "|---|---|".to_string();
    for w in &ways {
        head += &format!(" {}: to verdict (s) | {}: to dom0 marker (s) |", w.name, w.name);
        rule += "---|---|";
        if w.name != "old" {
            head += &format!(" {}/old |", w.name);
            rule += "---|";
        }
    }
    println!("{head}\n{rule}");
    // Per way: the wall times of the rounds every way finished.
    let mut walls: Vec<Vec<f64>> = vec![vec![]; ways.len()];
    let mut failed = vec![];
    let (mut retries, mut rounds) = (0, 0);
    let bench_started = Instant::now();
    for (i, f) in files.iter().enumerate() {
        let name = f.file_stem().unwrap_or_default().to_string_lossy().to_string();
        let s = scenario::load(f)?;
        let runs: Vec<bool> = ways
            .iter()
            .map(|w| matches!(w.cell.decide(&s), matrix::Decision::Run(_)))
            .collect();
        if !runs.iter().all(|r| *r) {
            let out: Vec<&str> = ways
                .iter()
                .zip(&runs)
                .filter(|(_, r)| !**r)
                .map(|(w, _)| w.name)
                .collect();
            println!("| {name} | - | not in the {} cell (left out) |", out.join(", "));
            continue;
        }
        for p in 1..=pairs {
            // Which way boots first turns from one round to the next, so no
            // way always gets the warmer page cache.
            let first = (i + p) % ways.len();
            let mut got: Vec<Option<Boot>> = (0..ways.len()).map(|_| None).collect();
            let mut broke = false;
            for k in 0..ways.len() {
                let w = &ways[(first + k) % ways.len()];
                match rt.block_on(boot(&w.m, f, w.fast)) {
                    Ok(b) => got[(first + k) % ways.len()] = Some(b),
                    Err(e) => {
                        // The round is left out whatever the other ways do.
                        eprintln!("{} ({}): {e:#}", name, w.name);
                        broke = true;
                        break;
                    }
                }
            }
            if broke {
                println!("| {name} | {p} | failed (left out) |");
                failed.push(format!("{name} round {p}"));
                continue;
            }
            let got: Vec<Boot> = got.into_iter().flatten().collect();
            let mut row = format!("| {name} | {p} |");
            for (k, b) in got.iter().enumerate() {
                let mark = if b.retried { " (retried)" } else { "" };
                row += &format!(" {:.1}{mark} | {:.1} |", b.wall, b.marker);
                if k > 0 {
                    row += &format!(" {:.2} |", b.wall / got[0].wall);
                }
                retries += usize::from(b.retried);
                walls[k].push(b.wall);
            }
            rounds += 1;
            println!("{row}");
        }
    }
    anyhow::ensure!(rounds > 0, "no round passed every way: {}", failed.join(", "));
    let sums: Vec<f64> = walls.iter().map(|w| w.iter().sum()).collect();
    println!();
    println!(
        "{rounds} rounds of {} ways, {} scenario files, {:.0} min in all; {retries} boots retried after a known TCG fault",
        ways.len(),
        files.len(),
        bench_started.elapsed().as_secs_f64() / 60.0
    );
    for (k, w) in ways.iter().enumerate() {
        let ratios: Vec<f64> = walls[k].iter().zip(&walls[0]).map(|(n, o)| n / o).collect();
        println!(
            "- {}: sum {:.0} s, median {:.1} s; sum {}/sum old = {:.2}, median round ratio {:.2} (range {:.2}-{:.2})",
            w.name,
            sums[k],
            median(walls[k].clone()),
            w.name,
            sums[k] / sums[0],
            median(ratios.clone()),
            ratios.iter().cloned().fold(f64::INFINITY, f64::min),
            ratios.iter().cloned().fold(0.0, f64::max),
        );
    }
    anyhow::ensure!(
        failed.is_empty(),
        "rounds left out after a failed boot: {}",
        failed.join(", ")
    );
    Ok(())
}

/// The scenario files to bench: `PVHDMA_BENCH_SCENARIOS`, where `default`
/// is every scenario the current matrix cell runs.
fn bench_files(m: &Manifest) -> anyhow::Result<Vec<PathBuf>> {
    let wanted = std::env::var("PVHDMA_BENCH_SCENARIOS").unwrap_or_else(|_| "scenarios/pvh-vtd-noforce.yaml".into());
    if wanted.trim() != "default" {
        return Ok(wanted.split(',').map(|f| workspace_root().join(f.trim())).collect());
    }
    let cell = matrix::Cell::current(Some(m))?;
    let mut files = vec![];
    for f in scenario::scenario_files(&scenario::scenarios_dir())? {
        if matches!(cell.decide(&scenario::load(&f)?), matrix::Decision::Run(_)) {
            files.push(f);
        }
    }
    Ok(files)
}
