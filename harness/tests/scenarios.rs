//! Every YAML file under scenarios/ is one test (`scenarios::<file stem>`).
//!
//! A custom libtest-mimic harness, so nextest lists, filters, partitions and
//! times each scenario on its own. A failing scenario keeps its artifacts and
//! prints the verdict, one line per failed assertion, and where they are.

use libtest_mimic::{Arguments, Failed, Trial};
use pvhdma_harness::images::Manifest;
use pvhdma_harness::report::SummaryRow;
use pvhdma_harness::{scenario, suite};
use std::path::PathBuf;

fn run_one(path: PathBuf) -> Result<(), Failed> {
    let name = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(async {
        let m = Manifest::load_default()?;
        suite::run_file(&m, &path, suite::Options::default()).await
    });
    match result {
        Ok(f) if f.verdict.passed() => Ok(()),
        Ok(f) => {
            let where_ = f.artifacts.map(|p| p.display().to_string()).unwrap_or_default();
            Err(format!("{}\nartifacts: {where_}", f.verdict).into())
        }
        Err(e) => {
            let _ = suite::record_row(&SummaryRow::error(&name, None, &format!("{e:#}")));
            Err(format!("{e:#}").into())
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let files = scenario::scenario_files(&scenario::scenarios_dir()).expect("scenarios/ is readable");
    let trials = files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
            Trial::test(name, move || run_one(path))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
