//! The xtask commands that run tests: `check`, `test`, `run`, `schema`.

use crate::flags::CellFlags;
use crate::images;
use pvhdma_harness::images::{workspace_root, Manifest};
use pvhdma_harness::{accel, matrix, report, scenario, suite};
use std::path::Path;
use std::process::{Command, ExitCode};

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Everything a run needs: host packages, the image set, the device binary.
pub fn prepare(img: &images::Options) -> anyhow::Result<Manifest> {
    crate::hostdeps::ensure()?;
    let m = images::build(img)?;
    let status = cargo()
        .args(["build", "--quiet", "-p", "pvhdma-device", "--bin", "pvhdma-device"])
        .status()?;
    anyhow::ensure!(status.success(), "Building the device failed");
    Ok(m)
}

fn nextest(args: &[&str], extra: &[String], env: &[(&str, String)]) -> anyhow::Result<bool> {
    crate::hostdeps::ensure_nextest()?;
    let mut c = cargo();
    c.env("PATH", crate::hostdeps::path_with_tools());
    c.args(["nextest", "run"]).args(args).args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    let status = c
        .status()
        .map_err(|e| anyhow::anyhow!("Cannot run cargo nextest ({e})"))?;
    Ok(status.success())
}

/// `cargo xtask check`: every test of the workspace (unit, qtest, boot, scenarios).
pub fn check(img: &images::Options, cell: &CellFlags, extra: &[String]) -> anyhow::Result<ExitCode> {
    crate::hostdeps::ensure_browser()?;
    prepared_nextest(img, cell, &["--workspace"], extra)
}

/// `cargo xtask test`: the scenario catalog, then a summary table.
pub fn test(img: &images::Options, cell: &CellFlags, extra: &[String]) -> anyhow::Result<ExitCode> {
    prepared_nextest(img, cell, &["-p", "pvhdma-harness", "--test", "scenarios"], extra)
}

/// Prepare the cell, run nextest's ci profile on `which`, print the table.
fn prepared_nextest(
    img: &images::Options,
    cell: &CellFlags,
    which: &[&str],
    extra: &[String],
) -> anyhow::Result<ExitCode> {
    let mut run = crate::report::Suite::start(img, cell);
    let m = match prepare(img) {
        Ok(m) => m,
        Err(e) => {
            // The matrix page shows a cell whose images did not build.
            let c = matrix::Cell {
                iommu: cell.iommu.as_deref().map(matrix::parse_iommu).transpose()?,
                ..Default::default()
            };
            if let Ok(page) = crate::report::build_failed(&run, &c, &e) {
                eprintln!("{}", crate::report::page_line(&page));
            }
            return Err(e);
        }
    };
    let (mut env, c) = cell_env(img, cell, &m)?;
    run.versions_from(&c);
    if cell.keep {
        env.push((suite::KEEP_ENV, "1".into()));
    }
    let _ = std::fs::remove_dir_all(suite::results_dir());
    crate::report::reset()?;
    let total = crate::report::announce(extra, &env, &c);
    let args: Vec<&str> = which.iter().copied().chain(["--profile", "ci"]).collect();
    let progress = crate::report::Progress::follow(total);
    let ok = nextest(&args, extra, &env);
    progress.finish();
    let ok = ok?;
    print_summary();
    let page = crate::report::finish(&run, &c)?;
    println!("{}", crate::report::page_line(&page));
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The environment that makes nextest's tests run this cell: the cell's
/// manifest (`--manifest`) and IOMMU (`--iommu`). Prints the cell, the
/// acceleration decision and the scenarios the cell skips, once.
fn cell_env(
    img: &images::Options,
    cell: &CellFlags,
    m: &Manifest,
) -> anyhow::Result<(Vec<(&'static str, String)>, matrix::Cell)> {
    let mut env = Vec::new();
    if let Some(p) = &img.manifest_out {
        env.push(("PVHDMA_IMAGES", p.display().to_string()));
    }
    let iommu = cell.iommu.as_deref().map(matrix::parse_iommu).transpose()?;
    if let Some(k) = &cell.iommu {
        env.push((matrix::IOMMU_ENV, k.clone()));
    }
    let c = crate::report::cell_of(m, iommu)?;
    println!("[matrix] cell: {}", c.describe());
    println!("[matrix] accel: auto -> {}", accel::decide());
    for f in scenario::scenario_files(&scenario::scenarios_dir())? {
        if let Ok(s) = scenario::load(&f) {
            if let matrix::Decision::Skip(why) = c.decide(&s) {
                let name = f.file_stem().unwrap_or_default().to_string_lossy();
                println!("[matrix] skipped {name}: {why}");
            }
        }
    }
    Ok((env, c))
}

fn print_summary() {
    let rows = suite::recorded_rows();
    if !rows.is_empty() {
        println!("\n{}", report::summary_table(&rows));
    }
}

/// `cargo xtask run FILE`: one scenario, console live, artifacts kept.
pub fn run(img: &images::Options, file: &Path, shell: bool) -> anyhow::Result<ExitCode> {
    // Parse first: a typo should not wait for an image build.
    scenario::load(file)?;
    let m = prepare(img)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let opts = suite::Options {
        live_console: true,
        shell,
        keep: true,
    };
    let f = rt.block_on(suite::run_file(&m, file, opts))?;
    if shell {
        // A shell session runs no workload: there is nothing to judge.
        println!("\ndom0 shell session ended");
    } else {
        println!("\n{}", f.verdict);
    }
    if let Some(dir) = &f.artifacts {
        println!(
            "artifacts: {} (report.html, console.log, qemu-cmdline.sh, qmp.log, dev*/)",
            dir.display()
        );
    }
    Ok(if f.verdict.passed() || shell {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `cargo xtask schema`: regenerate scenarios/schema.json.
pub fn schema() -> anyhow::Result<ExitCode> {
    let path = workspace_root().join(scenario::SCHEMA_PATH);
    std::fs::write(&path, scenario::schema_json())?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}
