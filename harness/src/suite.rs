//! One scenario file, end to end: parse, boot, judge, report.
//!
//! Shared by the nextest runner (tests/scenarios.rs) and `cargo xtask run`,
//! so a scenario behaves the same from both.

use crate::images::{workspace_root, Manifest};
use crate::report::{self, SummaryRow};
use crate::scenario;
use crate::verdict::{self, Verdict};
use crate::vm;
use anyhow::Context;
pub use pvhdma_contract::device_cli::Mutant;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How to run a scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Echo the console while it runs.
    pub live_console: bool,
    /// An interactive dom0 shell instead of the workload.
    pub shell: bool,
    /// Keep the artifacts even when the verdict passes.
    pub keep: bool,
}

/// Set (to anything but `0`) by `cargo xtask test --keep`: keep every run's
/// artifacts, passing or not.
pub const KEEP_ENV: &str = "PVHDMA_KEEP";

/// Whether [`KEEP_ENV`] asks to keep passing runs' artifacts.
pub fn keep_from_env() -> bool {
    std::env::var(KEEP_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// What a scenario run produced.
pub struct Finished {
    pub row: SummaryRow,
    pub verdict: Verdict,
    /// The artifact directory, when kept.
    pub artifacts: Option<PathBuf>,
}

/// Where each scenario's summary row goes, for `cargo xtask test`'s table.
pub fn results_dir() -> PathBuf {
    workspace_root().join("target/pvhdma/results")
}

pub async fn run_file(m: &Manifest, path: &Path, opts: Options) -> anyhow::Result<Finished> {
    run_loaded(m, path, scenario::load(path)?, None, opts).await
}

/// Runs a scenario of the positive catalog with every one of its devices
/// replaced by `mutant`, and judges it by the scenario's own assertions
/// (`cargo xtask mutants`). A scenario that still passes has not killed the
/// mutant. The run gets its own name (`SCENARIO.MUTANT`) for its artifact
/// directory and records no summary row, so it never stands in for the
/// honest run of the catalog.
pub async fn run_mutated(m: &Manifest, path: &Path, mutant: Mutant, opts: Options) -> anyhow::Result<Finished> {
    let scenario = scenario::load(path)?;
    anyhow::ensure!(
        scenario.expect_failure.is_none() && scenario.inject.is_none(),
        "{}: a negative twin already fails on purpose; mutate only the positive catalog",
        path.display()
    );
    run_loaded(m, path, scenario, Some(mutant), opts).await
}

async fn run_loaded(
    m: &Manifest,
    path: &Path,
    scenario: scenario::Scenario,
    mutant: Option<Mutant>,
    opts: Options,
) -> anyhow::Result<Finished> {
    let mut spec = scenario.to_run_spec();
    if let Some(mutant) = mutant {
        spec.name = format!("{}.{mutant}", spec.name);
        for d in &mut spec.devices {
            d.inject = Some(mutant);
        }
    }
    // The matrix cell's IOMMU and the `accel: auto` decision (matrix.rs).
    let cell_notes = crate::matrix::apply(m, &scenario, &mut spec)?;
    spec.live_console = opts.live_console;
    spec.shell = opts.shell;
    let started = Instant::now();
    let (mut run, retried) = vm::run_retrying_triple_fault(m, &spec)
        .await
        .with_context(|| format!("Running {}", path.display()))?;
    crate::matrix::record(&run.outcome.artifacts, &cell_notes);
    let mut verdict = verdict::evaluate(&scenario, &run.outcome);
    verdict.retried_after = retried.map(|e| e.to_string());
    report::write_run_report(&run.outcome.artifacts, &scenario, &run.outcome, &verdict)?;
    let row = SummaryRow::from_verdict(&verdict, Some(started.elapsed()));
    let artifacts = (!verdict.passed() || opts.keep).then(|| run.keep());
    if !opts.shell && mutant.is_none() {
        record_row(&row)?;
        crate::results::record_judged(&run.outcome.artifacts, &verdict, row.wall, artifacts.as_deref())?;
    }
    Ok(Finished {
        row,
        verdict,
        artifacts,
    })
}

/// Record a row for the summary table (also for runs that produced no verdict).
pub fn record_row(row: &SummaryRow) -> anyhow::Result<()> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::json!({
        "name": row.name, "result": row.result, "passed": row.passed,
        "wall_s": row.wall.map(|w| w.as_secs_f64()), "failure_kind": row.failure_kind,
    });
    std::fs::write(dir.join(format!("{}.json", row.name)), json.to_string())?;
    Ok(())
}

/// Read back the rows recorded by a test run, sorted by name.
pub fn recorded_rows() -> Vec<SummaryRow> {
    let mut rows: Vec<SummaryRow> = std::fs::read_dir(results_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
            Some(SummaryRow {
                name: v["name"].as_str()?.to_string(),
                result: v["result"].as_str()?.to_string(),
                passed: v["passed"].as_bool()?,
                wall: v["wall_s"].as_f64().map(std::time::Duration::from_secs_f64),
                failure_kind: v["failure_kind"].as_str().map(String::from),
            })
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}
