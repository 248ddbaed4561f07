//! `cargo xtask mutants`: the mutation gate. Each deliberate misbehaviour of
//! the DMA recorder (`Mutant`) runs against scenarios of the positive
//! catalog; a scenario whose verdict fails has killed it, and the assertions
//! that failed are what killed it. A mutant no scenario kills is a survivor:
//! a lie the rig would believe.
//!
//! By default each mutant runs against the scenarios in order until one
//! kills it (one VM at a time, so the gate fits a nightly job); `--full`
//! runs every pair. Before the mutants, each scenario runs once honest: a
//! scenario that fails honestly cannot tell a kill from its own failure, so
//! its column is skipped.

use crate::images;
use crate::tasks::prepare;
use pvhdma_harness::images::workspace_root;
use pvhdma_harness::suite::{self, Mutant};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The main PVH VT-d claims, cheapest first: the raw-unmapped run has a
/// mapped op (data, completion, interrupt, records) and a fault to swallow;
/// noforce adds streaming and a scatter-gather list; sg256 is the longest list.
pub const DEFAULT_SCENARIOS: [&str; 3] = ["pvh-vtd-raw-unmapped", "pvh-vtd-noforce", "pvh-vtd-sg256"];

#[derive(Debug, Clone)]
pub struct Options {
    pub images: images::Options,
    pub scenarios: Vec<String>,
    pub mutants: Vec<Mutant>,
    /// Every mutant against every scenario, not only until the first kill.
    pub full: bool,
    /// Skip the honest run of each scenario.
    pub no_baseline: bool,
}

/// One mutant against one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Cell {
    /// The verdict failed: these assertions (or the way the run ended) killed it.
    Killed {
        by: Vec<String>,
        run_end: String,
        wall_s: u64,
    },
    /// Every assertion held under the mutant.
    Survived { wall_s: u64 },
    /// The run did not end as the scenario expects (a boot timeout under
    /// load, the TCG triple fault, ...): not counted as a kill, since the
    /// honest device can end that way too.
    Inconclusive { run_end: String, wall_s: u64 },
    /// The harness could not run it; neither a kill nor a survival.
    Error { error: String },
    /// Not run: an earlier scenario killed the mutant, or the honest baseline failed.
    NotRun,
}

impl Cell {
    fn killed(&self) -> bool {
        matches!(self, Cell::Killed { .. })
    }

    /// What the matrix shows.
    fn short(&self) -> String {
        match self {
            Cell::Killed { by, .. } => by.join(", "),
            Cell::Survived { .. } => "SURVIVED".into(),
            Cell::Inconclusive { run_end, .. } => format!("inconclusive ({run_end})"),
            Cell::Error { .. } => "error".into(),
            Cell::NotRun => "-".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub mutant: Mutant,
    pub killed: bool,
    /// One per scenario, in the order of `Report::scenarios`.
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenarios: Vec<String>,
    /// The honest run of each scenario: `pass`, a failure, or `not_run`.
    pub baseline: Vec<String>,
    pub rows: Vec<Row>,
    pub killed: usize,
    pub total: usize,
    pub wall_s: u64,
    /// /proc/loadavg when the run started and when it ended: TCG boot times
    /// depend on it.
    pub load_start: String,
    pub load_end: String,
}

/// A verdict as a cell: passed (survived), failed assertions of a run that
/// ended as expected (killed, by those), or a run that ended otherwise.
pub fn classify(v: &pvhdma_harness::verdict::Verdict, wall_s: u64) -> Cell {
    use pvhdma_harness::verdict::FailureKind;
    if v.passed() {
        return Cell::Survived { wall_s };
    }
    let by: Vec<String> = v.failed_assertions().map(|a| a.id.clone()).collect();
    if matches!(v.failure_kind, Some(FailureKind::Ended(_))) || by.is_empty() {
        return Cell::Inconclusive {
            run_end: v.run_end.to_string(),
            wall_s,
        };
    }
    Cell::Killed {
        by,
        run_end: v.run_end.to_string(),
        wall_s,
    }
}

/// The kill matrix as a Markdown table (mutant x scenario, killing assertions).
pub fn matrix_table(r: &Report) -> String {
    let mut s = format!("| mutant | {} |\n|---|", r.scenarios.join(" | "));
    s.push_str(&"---|".repeat(r.scenarios.len()));
    s.push('\n');
    for row in &r.rows {
        let cells: Vec<String> = row.cells.iter().map(Cell::short).collect();
        s.push_str(&format!("| `{}` | {} |\n", row.mutant, cells.join(" | ")));
    }
    s.push_str(&format!(
        "\nkilled {}/{} ({}%), wall {} s\n",
        r.killed,
        r.total,
        (r.killed * 100).checked_div(r.total).unwrap_or(0),
        r.wall_s
    ));
    s
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn json_path() -> PathBuf {
    workspace_root().join("target/pvhdma/mutants.json")
}

fn write(r: &Report) -> anyhow::Result<()> {
    let p = json_path();
    std::fs::create_dir_all(p.parent().unwrap_or(&p))?;
    std::fs::write(&p, serde_json::to_string_pretty(r)?)?;
    Ok(())
}

pub fn run(o: &Options) -> anyhow::Result<ExitCode> {
    let files: Vec<PathBuf> = o
        .scenarios
        .iter()
        .map(|n| workspace_root().join("scenarios").join(format!("{n}.yaml")))
        .collect();
    // Parse first: a typo should not wait for an image build.
    for f in &files {
        pvhdma_harness::scenario::load(f)?;
    }
    let m = prepare(&o.images)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let opts = suite::Options::default();
    let started = Instant::now();
    let mut report = Report {
        scenarios: o.scenarios.clone(),
        baseline: vec!["not_run".into(); files.len()],
        rows: o
            .mutants
            .iter()
            .map(|&mutant| Row {
                mutant,
                killed: false,
                cells: vec![Cell::NotRun; files.len()],
            })
            .collect(),
        killed: 0,
        total: o.mutants.len(),
        wall_s: 0,
        load_start: loadavg(),
        load_end: String::new(),
    };
    let mut usable = vec![true; files.len()];
    if !o.no_baseline {
        for (i, f) in files.iter().enumerate() {
            eprintln!("mutants: honest baseline of {}", o.scenarios[i]);
            report.baseline[i] = match rt.block_on(suite::run_file(&m, f, opts)) {
                Ok(fin) if fin.verdict.passed() => "pass".into(),
                Ok(fin) => {
                    usable[i] = false;
                    format!("fail: {}", fin.verdict)
                }
                Err(e) => {
                    usable[i] = false;
                    format!("error: {e:#}")
                }
            };
            eprintln!("mutants: baseline {}: {}", o.scenarios[i], report.baseline[i]);
        }
    }
    for r in 0..report.rows.len() {
        for (i, f) in files.iter().enumerate() {
            let row = &report.rows[r];
            if !usable[i] || (row.killed && !o.full) {
                continue;
            }
            eprintln!("mutants: {} x {}", row.mutant, o.scenarios[i]);
            let t = Instant::now();
            let cell = match rt.block_on(suite::run_mutated(&m, f, row.mutant, opts)) {
                Ok(fin) => classify(&fin.verdict, t.elapsed().as_secs()),
                Err(e) => Cell::Error {
                    error: format!("{e:#}"),
                },
            };
            let row = &mut report.rows[r];
            eprintln!("mutants: {} x {}: {}", row.mutant, o.scenarios[i], cell.short());
            row.killed |= cell.killed();
            row.cells[i] = cell;
            report.wall_s = started.elapsed().as_secs();
            report.killed = report.rows.iter().filter(|r| r.killed).count();
            // Written after every run: an interrupted gate keeps what it learned.
            write(&report)?;
        }
    }
    report.load_end = loadavg();
    report.wall_s = started.elapsed().as_secs();
    report.killed = report.rows.iter().filter(|r| r.killed).count();
    write(&report)?;
    println!("{}", matrix_table(&report));
    println!("written to {}", json_path().display());
    let survivors: Vec<String> = report
        .rows
        .iter()
        .filter(|r| !r.killed)
        .map(|r| r.mutant.to_string())
        .collect();
    if survivors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("SURVIVORS (lies no scenario caught): {}", survivors.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rows: Vec<Row>) -> Report {
        Report {
            scenarios: vec!["a".into(), "b".into()],
            baseline: vec!["pass".into(), "pass".into()],
            killed: rows.iter().filter(|r| r.killed).count(),
            total: rows.len(),
            rows,
            wall_s: 42,
            load_start: String::new(),
            load_end: String::new(),
        }
    }

    #[test]
    fn matrix_names_killers_survivors_and_the_rate() {
        let r = report(vec![
            Row {
                mutant: Mutant::FlipWrittenByte,
                killed: true,
                cells: vec![
                    Cell::Killed {
                        by: vec!["data_intact".into(), "ops.x.intact".into()],
                        run_end: "finished".into(),
                        wall_s: 60,
                    },
                    Cell::NotRun,
                ],
            },
            Row {
                mutant: Mutant::DoubleIrq,
                killed: false,
                cells: vec![
                    Cell::Survived { wall_s: 60 },
                    Cell::Inconclusive {
                        run_end: "boot_timeout".into(),
                        wall_s: 120,
                    },
                ],
            },
        ]);
        let t = matrix_table(&r);
        assert!(t.contains("| mutant | a | b |"), "{t}");
        assert!(
            t.contains("| `flip_written_byte` | data_intact, ops.x.intact | - |"),
            "{t}"
        );
        assert!(
            t.contains("| `double_irq` | SURVIVED | inconclusive (boot_timeout) |"),
            "{t}"
        );
        assert!(t.contains("killed 1/2 (50%), wall 42 s"), "{t}");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["rows"][0]["mutant"], "flip_written_byte");
        assert_eq!(j["rows"][0]["cells"][0]["result"], "killed");
        assert_eq!(j["rows"][0]["cells"][0]["by"][0], "data_intact");
        assert_eq!(j["rows"][1]["cells"][0]["result"], "survived");
        assert_eq!(j["rows"][1]["cells"][1]["result"], "inconclusive");
    }
}
