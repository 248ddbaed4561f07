//! Every YAML file under scenarios/ is one test (`scenarios::<file stem>`).
//!
//! A custom libtest-mimic harness, so nextest lists, filters, partitions and
//! times each scenario on its own. A failing scenario keeps its artifacts and
//! prints the verdict, one line per failed assertion, and where they are.

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use pvhdma_harness::images::Manifest;
use pvhdma_harness::report::SummaryRow;
use pvhdma_harness::{matrix, results, scenario, suite};
use std::path::PathBuf;

fn run_one(path: PathBuf) -> Result<(), Failed> {
    let name = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = std::time::Instant::now();
    results::progress(&format!("start {name}"));
    let result = rt.block_on(async {
        let m = Manifest::load_default()?;
        let opts = suite::Options {
            keep: suite::keep_from_env(),
            ..Default::default()
        };
        suite::run_file(&m, &path, opts).await
    });
    let word = match &result {
        Ok(f) => f.verdict.outcome.word(),
        Err(_) => "error",
    };
    results::progress(&format!("end {name} {word} {:.1}", started.elapsed().as_secs_f64()));
    match result {
        Ok(f) if f.verdict.passed() => Ok(()),
        Ok(f) => {
            let where_ = f.artifacts.map(|p| p.display().to_string()).unwrap_or_default();
            Err(format!("{}\nartifacts: {where_}", f.verdict).into())
        }
        Err(e) => {
            let _ = suite::record_row(&SummaryRow::error(&name, None, &format!("{e:#}")));
            let _ = results::record_error(&name, &format!("{e:#}"));
            Err(format!("{e:#}").into())
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let files = scenario::scenario_files(&scenario::scenarios_dir()).expect("scenarios/ is readable");
    // The matrix cell (PVHDMA_IOMMU, the image set's versions): scenarios
    // that are not the cell's are listed as ignored and say why when run
    // anyway (scenarios/README.md, "Matrix cells"). Without an image set
    // nothing is filtered by version; the tests then fail on the missing set.
    let cell = matrix::Cell::current(Manifest::load_default().ok().as_ref()).unwrap_or_else(|e| panic!("{e:#}"));
    let trials = files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
            // A file that does not parse still runs, and fails with the parse error.
            match scenario::load(&path).map(|s| cell.decide(&s)) {
                Ok(matrix::Decision::Skip(why)) => {
                    let why = format!("not in this matrix cell ({}): {why}", cell.describe());
                    Trial::ignorable_test(name, move || Ok(Completion::ignored_with(why))).with_ignored_flag(true)
                }
                _ => Trial::test(name, move || run_one(path)),
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
