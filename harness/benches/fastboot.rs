//! The fast boot against the old way, side by side:
//! `cargo bench -p pvhdma-harness --bench fastboot`.
//!
//! One run alternates old and new boots (old, new, old, new, ...) of the same
//! scenarios, so both see the same machine and the same contention, and
//! reports the ratio new/old of boot-to-verdict wall time (from the harness
//! starting the run to the verdict). A ratio, not an absolute time: machines
//! of this kind differ 2-3x, and a shared one drifts within minutes.
//!
//! - `PVHDMA_BENCH_SCENARIOS`: scenario files, comma-separated (default
//!   `scenarios/pvh-vtd-noforce.yaml`), or `default`: every scenario the
//!   current matrix cell runs, the set `cargo xtask test` runs;
//! - `PVHDMA_BENCH_PAIRS`: old/new pairs per scenario (default 3).
//!
//! Which way boots first alternates from one pair to the next, so neither
//! way always gets the warmer page cache. Every boot must give a passing
//! verdict: a fast boot that broke the scenario would be no speed-up. A
//! known TCG fault is retried once, as the tests do, and the retry's time
//! counts; a pair with a failed boot is reported and left out of the sums,
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
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!("| scenario | pair | old: to verdict (s) | new: to verdict (s) | new/old | old: to dom0 marker (s) | new: to dom0 marker (s) |");
    println!("|---|---|---|---|---|---|---|");
    let (mut olds, mut news, mut ratios) = (vec![], vec![], vec![]);
    let mut failed = vec![];
    let mut retries = 0;
    let bench_started = Instant::now();
    for (i, f) in files.iter().enumerate() {
        let name = f.file_stem().unwrap_or_default().to_string_lossy().to_string();
        for p in 1..=pairs {
            let new_first = (i + p) % 2 == 0;
            let pair = if new_first {
                let new = rt.block_on(boot(&m, f, true));
                (rt.block_on(boot(&m, f, false)), new)
            } else {
                let old = rt.block_on(boot(&m, f, false));
                (old, rt.block_on(boot(&m, f, true)))
            };
            let (old, new) = match pair {
                (Ok(old), Ok(new)) => (old, new),
                (old, new) => {
                    for e in [old.err(), new.err()].into_iter().flatten() {
                        eprintln!("{e:#}");
                    }
                    println!("| {name} | {p} | failed (left out) | | | | |");
                    failed.push(format!("{name} pair {p}"));
                    continue;
                }
            };
            retries += usize::from(old.retried) + usize::from(new.retried);
            let r = new.wall / old.wall;
            let mark = |b: &Boot| if b.retried { " (retried)" } else { "" };
            println!(
                "| {name} | {p} | {:.1}{} | {:.1}{} | {r:.2} | {:.1} | {:.1} |",
                old.wall,
                mark(&old),
                new.wall,
                mark(&new),
                old.marker,
                new.marker
            );
            olds.push(old.wall);
            news.push(new.wall);
            ratios.push(r);
        }
    }
    anyhow::ensure!(!olds.is_empty(), "no pair passed both ways: {}", failed.join(", "));
    let (mo, mn) = (median(olds.clone()), median(news.clone()));
    let (so, sn): (f64, f64) = (olds.iter().sum(), news.iter().sum());
    println!();
    println!(
        "{} boots each way, {} scenarios, {:.0} min in all: sum old {so:.0} s, sum new {sn:.0} s; sum new/sum old = {:.2}; median old {mo:.1} s, new {mn:.1} s; median pair ratio {:.2} (range {:.2}-{:.2}); {retries} boots retried after a known TCG fault",
        olds.len(),
        files.len(),
        bench_started.elapsed().as_secs_f64() / 60.0,
        sn / so,
        median(ratios.clone()),
        ratios.iter().cloned().fold(f64::INFINITY, f64::min),
        ratios.iter().cloned().fold(0.0, f64::max),
    );
    anyhow::ensure!(
        failed.is_empty(),
        "pairs left out after a failed boot: {}",
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
