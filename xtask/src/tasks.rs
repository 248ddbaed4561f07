//! The xtask commands that run tests: `check`, `test`, `run`, `schema`.

use crate::images;
use pvhdma_harness::images::{workspace_root, Manifest};
use pvhdma_harness::{report, scenario, suite};
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

fn nextest(args: &[&str], extra: &[String]) -> anyhow::Result<bool> {
    let mut c = cargo();
    c.args(["nextest", "run"]).args(args).args(extra);
    let status = c
        .status()
        .map_err(|e| anyhow::anyhow!("Cannot run cargo nextest ({e}); install cargo-nextest"))?;
    Ok(status.success())
}

/// `cargo xtask check`: every test of the workspace (unit, qtest, boot, scenarios).
pub fn check(img: &images::Options, extra: &[String]) -> anyhow::Result<ExitCode> {
    prepare(img)?;
    let _ = std::fs::remove_dir_all(suite::results_dir());
    let ok = nextest(&["--workspace", "--profile", "ci"], extra)?;
    print_summary();
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `cargo xtask test`: the scenario catalog, then a summary table.
pub fn test(img: &images::Options, extra: &[String]) -> anyhow::Result<ExitCode> {
    prepare(img)?;
    let _ = std::fs::remove_dir_all(suite::results_dir());
    let ok = nextest(
        &["-p", "pvhdma-harness", "--test", "scenarios", "--profile", "ci"],
        extra,
    )?;
    print_summary();
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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
    println!("\n{}", f.verdict);
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
