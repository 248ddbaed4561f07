//! The matrix page (`cargo xtask report DIR...`): several suite results
//! (cells, or partitions of a cell) merged into one grid, a row per scenario
//! and a column per cell. Each square is the verdict, linking to that run's
//! report; a square without a run says why: not in this cell, build failed,
//! or not run. A run that ended before dom0 finished booting reads "boot
//! failed" with its kind. It reads only `results.json` (docs/records.md).

use super::suite_page::{class_of, esc, result_word, verdict_span, CSS};
use crate::results::{human_secs, CellInfo, RunStatus, ScenarioResult, SuiteResults, SuiteStatus};
use pvhdma_contract::run_end::EndKind;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Run ends that mean the machine never got to run the workload.
pub const BOOT_KINDS: [EndKind; 6] = [
    EndKind::XenPanic,
    EndKind::Dom0Crash,
    EndKind::Dom0Halted,
    EndKind::LinuxPanic,
    EndKind::BootTimeout,
    EndKind::QemuExited,
];

/// One suite's results and where its directory was copied, relative to the
/// page (ends with `/`).
pub struct Source {
    pub prefix: String,
    pub results: SuiteResults,
}

/// What one square shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Square {
    /// A run (or an error), with the prefix of the directory holding its files.
    Result(Box<ScenarioResult>, String),
    BuildFailed(String),
    NotInCell(String),
    NotRun(String),
}

/// A cell's column: its runs merged.
pub struct Column {
    pub info: CellInfo,
    /// `host, date, git` of each source, for the header.
    pub runs: Vec<String>,
    pub squares: BTreeMap<String, Square>,
}

fn rank(r: &ScenarioResult) -> u8 {
    match r.status {
        RunStatus::Ran | RunStatus::Error => 2,
        RunStatus::Skipped => 1,
        RunStatus::NotRun => 0,
    }
}

/// Merge sources by cell id: per scenario, a run beats a skip beats "not
/// run"; of two runs the later one (by suite date) wins.
pub fn merge(sources: &[Source]) -> Vec<Column> {
    let mut by_cell: BTreeMap<String, Vec<&Source>> = BTreeMap::new();
    for s in sources {
        by_cell.entry(s.results.cell.id.clone()).or_default().push(s);
    }
    by_cell
        .into_values()
        .map(|mut srcs| {
            srcs.sort_by(|a, b| a.results.date.cmp(&b.results.date));
            let mut best: BTreeMap<String, (&ScenarioResult, &Source)> = BTreeMap::new();
            for s in &srcs {
                for r in &s.results.scenarios {
                    let better = best.get(&r.scenario).is_none_or(|(old, _)| rank(r) >= rank(old));
                    if better {
                        best.insert(r.scenario.clone(), (r, s));
                    }
                }
            }
            let build_error = srcs
                .iter()
                .find(|s| s.results.status == SuiteStatus::BuildFailed)
                .map(|s| s.results.error.clone().unwrap_or_default());
            let squares = best
                .into_iter()
                .map(|(name, (r, s))| {
                    let sq = match (r.status, &build_error) {
                        (RunStatus::Ran | RunStatus::Error, _) => Square::Result(Box::new(r.clone()), s.prefix.clone()),
                        (RunStatus::Skipped, _) => Square::NotInCell(r.why.clone().unwrap_or_default()),
                        (RunStatus::NotRun, Some(e)) => Square::BuildFailed(e.clone()),
                        (RunStatus::NotRun, None) => Square::NotRun(r.why.clone().unwrap_or_default()),
                    };
                    (name, sq)
                })
                .collect();
            Column {
                info: srcs[0].results.cell.clone(),
                runs: srcs
                    .iter()
                    .map(|s| format!("{}, {}, {}", s.results.host, s.results.date, s.results.git))
                    .collect(),
                squares,
            }
        })
        .collect()
}

/// A boot failure's kind, when a run ended before its workload.
pub fn boot_failure(r: &ScenarioResult) -> Option<&str> {
    let k = r.failure_kind.as_deref()?;
    BOOT_KINDS.iter().any(|b| b.name() == k).then_some(k)
}

fn square_html(sq: &Square) -> String {
    match sq {
        Square::Result(r, prefix) => {
            let mut word = verdict_span(r, prefix);
            if let Some(k) = boot_failure(r) {
                word = format!("{word}<br><span class=\"bad\">boot failed: {}</span>", esc(k));
            }
            let link = r
                .report
                .as_ref()
                .map(|rep| format!(" <a href=\"{}\">report</a>", esc(&format!("{prefix}{rep}"))))
                .unwrap_or_default();
            let why = r.first_failure.clone().or_else(|| r.why.clone()).unwrap_or_default();
            let wall = r.wall_s.map(|w| format!(" {}", human_secs(w))).unwrap_or_default();
            format!(
                "<td class=\"{}\" title=\"{}\">{word}{link}<span class=\"idle\">{wall}</span>{}</td>",
                class_of(r),
                esc(&why),
                if why.is_empty() {
                    String::new()
                } else {
                    format!("<div class=\"why mono\">{}</div>", esc(&truncate(&why, 140)))
                }
            )
        }
        Square::BuildFailed(e) => format!(
            "<td class=\"bad\" title=\"{}\">build failed</td>",
            esc(&truncate(e, 400))
        ),
        Square::NotInCell(why) => format!("<td class=\"idle\" title=\"{}\">not in this cell</td>", esc(why)),
        Square::NotRun(why) => format!("<td class=\"idle\" title=\"{}\">not run</td>", esc(why)),
    }
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// The whole page.
pub fn render(columns: &[Column]) -> String {
    let scenarios: BTreeSet<&String> = columns.iter().flat_map(|c| c.squares.keys()).collect();
    let mut failed_cells = 0;
    let mut counts = Vec::new();
    for c in columns {
        let (mut p, mut f) = (0, 0);
        for sq in c.squares.values() {
            match sq {
                Square::Result(r, _) if r.passed == Some(true) => p += 1,
                Square::Result(..) | Square::BuildFailed(_) => f += 1,
                _ => {}
            }
        }
        failed_cells += usize::from(f > 0);
        counts.push((p, f));
    }
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pvhdma matrix: {} cells, {failed_cells} with failures</title>\
         <style>{CSS} td{{min-width:9em}} .grid td .why{{font-size:75%;max-width:18em;overflow-wrap:anywhere}}</style></head>\
         <body><h1>pvhdma matrix: {} cells, <span class=\"{}\">{failed_cells} with failures</span></h1>\
         <p class=\"why\">Rows are scenarios, columns the cells (Xen x kernel x IOMMU). Each square is the verdict and links to \
         that run's report; hover a square for the whole first failing assertion or the reason it did not run.</p>\
         <table class=\"grid\"><tr><th>scenario</th>",
        columns.len(),
        columns.len(),
        if failed_cells > 0 { "bad" } else { "ok" }
    );
    for (c, (p, f)) in columns.iter().zip(&counts) {
        let i = &c.info;
        let _ = write!(
            h,
            "<th title=\"{}\"><span class=\"mono\">{}</span><div class=\"why\">Xen {}, kernel {}<br>IOMMU {}, {}<br>\
             <span class=\"ok\">{p} passed</span>, <span class=\"{}\">{f} failed</span></div></th>",
            esc(&c.runs.join("\n")),
            esc(&i.id),
            esc(i.xen.as_deref().unwrap_or("?")),
            esc(i.kernel.as_deref().unwrap_or("?")),
            esc(&i.iommu),
            esc(i.accel.split(':').next().unwrap_or("")),
            if *f > 0 { "bad" } else { "ok" }
        );
    }
    h.push_str("</tr>");
    for s in scenarios {
        let _ = write!(h, "<tr data-scenario=\"{}\"><td class=\"mono\">{}</td>", esc(s), esc(s));
        for c in columns {
            h.push_str(&match c.squares.get(s) {
                Some(sq) => square_html(sq),
                None => {
                    "<td class=\"idle\" title=\"this cell's results do not list the scenario\">not listed</td>".into()
                }
            });
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><h2>Runs</h2><ul>");
    for c in columns {
        for r in &c.runs {
            let _ = write!(h, "<li class=\"mono\">{}: {}</li>", esc(&c.info.id), esc(r));
        }
    }
    h.push_str("</ul></body></html>\n");
    h
}

/// For the text summary `cargo xtask report` prints.
pub fn square_word(sq: &Square) -> String {
    match sq {
        Square::Result(r, _) => match boot_failure(r) {
            Some(k) => format!("boot failed ({k})"),
            None => result_word(r),
        },
        Square::BuildFailed(_) => "build failed".into(),
        Square::NotInCell(_) => "not in this cell".into(),
        Square::NotRun(_) => "not run".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::FORMAT;

    fn ran(name: &str, verdict: &str, passed: bool, kind: Option<&str>) -> ScenarioResult {
        let mut r = ScenarioResult::skipped(name, "");
        r.status = RunStatus::Ran;
        r.why = None;
        r.verdict = Some(verdict.into());
        r.passed = Some(passed);
        r.failure_kind = kind.map(String::from);
        r.report = Some(format!("{name}/report.html"));
        r.verdict_json = Some(format!("{name}/verdict.json"));
        r
    }

    fn suite(cell: &str, date: &str, status: SuiteStatus, rows: Vec<ScenarioResult>) -> SuiteResults {
        SuiteResults {
            format: FORMAT,
            cell: CellInfo {
                id: cell.into(),
                iommu: "intel".into(),
                ..Default::default()
            },
            host: "h".into(),
            date: date.into(),
            git: "g".into(),
            command: "c".into(),
            status,
            error: (status == SuiteStatus::BuildFailed).then(|| "mmdebstrap failed".into()),
            wall_s: None,
            scenarios: rows,
        }
    }

    #[test]
    fn partitions_merge_and_empty_squares_say_why() {
        let nr = |n: &str| ScenarioResult::not_run(n, "other partition");
        let sources = vec![
            Source {
                prefix: "0/".into(),
                results: suite(
                    "x-intel",
                    "2026-01-01",
                    SuiteStatus::Ran,
                    vec![
                        ran("a", "pass", true, None),
                        nr("b"),
                        ScenarioResult::skipped("c", "amd only"),
                    ],
                ),
            },
            Source {
                prefix: "1/".into(),
                results: suite(
                    "x-intel",
                    "2026-01-01",
                    SuiteStatus::Ran,
                    vec![
                        nr("a"),
                        ran("b", "fail", false, Some("dom0_halted")),
                        ScenarioResult::skipped("c", "amd only"),
                    ],
                ),
            },
            Source {
                prefix: "2/".into(),
                results: suite(
                    "y-amd",
                    "2026-01-01",
                    SuiteStatus::BuildFailed,
                    vec![nr("a"), nr("b"), ScenarioResult::skipped("c", "x")],
                ),
            },
        ];
        let cols = merge(&sources);
        assert_eq!(cols.len(), 2);
        let words = |c: &Column| c.squares.values().map(square_word).collect::<Vec<_>>();
        assert_eq!(
            words(&cols[0]),
            ["pass", "boot failed (dom0_halted)", "not in this cell"]
        );
        assert_eq!(words(&cols[1]), ["build failed", "build failed", "not in this cell"]);
        let Square::Result(_, prefix) = &cols[0].squares["b"] else {
            panic!()
        };
        assert_eq!(prefix, "1/", "the square links into the partition that ran it");
        let html = render(&cols);
        assert!(html.contains("href=\"1/b/report.html\""), "{html}");
        assert!(html.contains("data-verdict-json=\"0/a/verdict.json\""));
        assert!(html.contains("2 cells, <span class=\"bad\">2 with failures"));
        assert!(html.contains("title=\"mmdebstrap failed\">build failed"));
    }

    #[test]
    fn a_later_run_wins_over_an_earlier_one() {
        let sources = vec![
            Source {
                prefix: "new/".into(),
                results: suite("x", "2026-02-01", SuiteStatus::Ran, vec![ran("a", "pass", true, None)]),
            },
            Source {
                prefix: "old/".into(),
                results: suite("x", "2026-01-01", SuiteStatus::Ran, vec![ran("a", "fail", false, None)]),
            },
        ];
        let cols = merge(&sources);
        assert_eq!(square_word(&cols[0].squares["a"]), "pass");
    }
}
