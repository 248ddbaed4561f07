//! The report pages in a real browser (Debian's headless Chromium).
//!
//! The pages are made by the current code from recorded real runs
//! (tests/fixtures/report/: a scenario file and the `outcome.json` its run
//! wrote, or `outcome.link` naming the fixture whose run it shares), judged again here, so no VM boots: the suite page, one scenario's
//! report and a matrix page of two cells must load without a console error,
//! draw every plot at a real size, resolve every link and show the verdicts
//! their verdict.json files hold. Screenshots go to target/pvhdma/browser/.
//! The twin test breaks a page in each of those ways and the check must
//! say so.

use pvhdma_harness::browser::Browser;
use pvhdma_harness::images::workspace_root;
use pvhdma_harness::outcome::RunOutcome;
use pvhdma_harness::report::{self, matrix_page};
use pvhdma_harness::results::{
    self, assemble_rows, CatalogItem, CellInfo, ScenarioResult, SuiteResults, SuiteStatus, FORMAT,
};
use pvhdma_harness::{scenario, verdict};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
}

fn shots() -> PathBuf {
    workspace_root().join("target/pvhdma/browser")
}

/// A suite directory made from the recorded runs, as `cargo xtask test`
/// makes one: per-scenario copies, results.json, index.html.
fn suite_dir(root: &Path, cell: &str) -> PathBuf {
    let dir = root.join(cell);
    let mut catalog = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    for fx in names {
        let name = fx.file_name().unwrap().to_string_lossy().to_string();
        let s = scenario::load(&fx.join(format!("{name}.yaml"))).unwrap();
        // `outcome.link` names another fixture whose recorded run this one shares.
        let run_of = match std::fs::read_to_string(fx.join("outcome.link")) {
            Ok(other) => fixtures().join(other.trim()),
            Err(_) => fx.clone(),
        };
        let o: RunOutcome =
            serde_json::from_str(&std::fs::read_to_string(run_of.join("outcome.json")).unwrap()).unwrap();
        let v = verdict::evaluate(&s, &o);
        let run = root.join("runs").join(cell).join(&name);
        report::write_run_report(&run, &s, &o, &v).unwrap();
        let wall = o.timings.to_end.unwrap_or(Duration::from_secs(1));
        results::record_judged_in(&dir, &run, &v, Some(wall), None).unwrap();
        catalog.push(CatalogItem {
            scenario: name,
            skip: None,
        });
    }
    catalog.push(CatalogItem {
        scenario: "amd-only".into(),
        skip: Some("pins machine.iommu: amd (no cells.iommu), not this cell's intel".into()),
    });
    catalog.push(CatalogItem {
        scenario: "filtered-out".into(),
        skip: None,
    });
    let mut entries = results::read_entries(&dir);
    entries.insert(
        "harness-error".into(),
        ScenarioResult::error("harness-error", None, "Run harness-error failed: QEMU did not start"),
    );
    let r = SuiteResults {
        format: FORMAT,
        cell: CellInfo {
            id: cell.into(),
            xen: Some("4.20".into()),
            kernel: Some("6.12.57+deb13-amd64".into()),
            iommu: "intel".into(),
            accel: "accel tcg: recorded runs".into(),
        },
        host: results::host_name(),
        date: results::now_utc(),
        git: results::git_revision(&workspace_root()),
        command: "harness/tests/browser.rs (recorded runs)".into(),
        status: SuiteStatus::Ran,
        error: None,
        wall_s: Some(60.0),
        scenarios: assemble_rows(&catalog, entries),
    };
    results::write_suite(&dir, &r).unwrap();
    dir
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn first_report(dir: &Path) -> PathBuf {
    let r = SuiteResults::load(dir).unwrap();
    let row = r.scenarios.iter().find(|s| s.report.is_some()).expect("a recorded run");
    dir.join(row.report.as_ref().unwrap())
}

#[test]
fn suite_page_scenario_report_and_matrix_page_pass_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = suite_dir(tmp.path(), "xen4.20-linux6.12-intel");
    // A second cell whose images did not build, for the matrix page.
    let sources = vec![
        matrix_page::Source {
            prefix: "xen4.20-linux6.12-intel/".into(),
            results: SuiteResults::load(&dir).unwrap(),
        },
        matrix_page::Source {
            prefix: "xen4.17-linux6.12-amd/".into(),
            results: SuiteResults {
                cell: CellInfo {
                    id: "xen4.17-linux6.12-amd".into(),
                    xen: Some("4.17".into()),
                    kernel: Some("6.12".into()),
                    iommu: "amd".into(),
                    accel: "accel tcg: recorded".into(),
                },
                status: SuiteStatus::BuildFailed,
                error: Some("mmdebstrap exited 1".into()),
                scenarios: SuiteResults::load(&dir)
                    .unwrap()
                    .scenarios
                    .iter()
                    .map(|s| ScenarioResult::not_run(&s.scenario, "the image build failed"))
                    .collect(),
                ..SuiteResults::load(&dir).unwrap()
            },
        },
    ];
    let matrix = tmp.path().join("matrix.html");
    std::fs::write(&matrix, matrix_page::render(&matrix_page::merge(&sources))).unwrap();

    rt().block_on(async {
        let mut b = Browser::start().await.unwrap();
        for (page, svg, shot) in [
            (dir.join("index.html"), true, "suite-index.png"),
            (first_report(&dir), true, "scenario-report.png"),
            (matrix, false, "matrix.png"),
        ] {
            let rep = b.check_page(&page, svg, Some(&shots().join(shot))).await.unwrap();
            assert!(rep.problems.is_empty(), "{}: {:#?}", page.display(), rep.problems);
            assert!(rep.verdicts >= 1, "{}: no verdict shown", page.display());
            eprintln!(
                "{}: {} plots, {} links, {} verdicts; screenshot {}",
                page.display(),
                rep.svgs,
                rep.links.len(),
                rep.verdicts,
                shots().join(shot).display()
            );
        }
    });
}

/// Break a page one way and expect the check to name it.
fn broken(rt: &tokio::runtime::Runtime, b: &mut Browser, page: &Path, from: &str, to: &str, want: &str) {
    let good = std::fs::read_to_string(page).unwrap();
    assert!(good.contains(from), "{} has no `{from}` to break", page.display());
    std::fs::write(page, good.replacen(from, to, 1)).unwrap();
    let rep = rt.block_on(b.check_page(page, true, None)).unwrap();
    std::fs::write(page, &good).unwrap();
    assert!(
        rep.problems.iter().any(|p| p.contains(want)),
        "breaking `{from}` -> `{to}` in {}: expected a problem with `{want}`, got {:#?}",
        page.display(),
        rep.problems
    );
}

#[test]
fn broken_pages_fail_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = suite_dir(tmp.path(), "cell");
    let index = dir.join("index.html");
    let report = first_report(&dir);
    let shown = SuiteResults::load(&dir).unwrap();
    let ran = shown.scenarios.iter().find(|s| s.report.is_some()).unwrap();
    let word = ran.verdict.clone().unwrap();
    let rt = rt();
    let mut b = rt.block_on(Browser::start()).unwrap();
    // The unbroken pages pass: each failure below is the break's doing.
    for p in [&index, &report] {
        let rep = rt.block_on(b.check_page(p, true, None)).unwrap();
        assert!(rep.problems.is_empty(), "{:#?}", rep.problems);
    }
    // A plot drawn at zero size.
    broken(&rt, &mut b, &report, "width=\"860\"", "width=\"0\"", "renders at 0x");
    broken(
        &rt,
        &mut b,
        &index,
        ".thumb svg{width:300px",
        ".thumb svg{width:0",
        "renders at 0x",
    );
    // A link to a report that is not there.
    let link = format!("href=\"{}\"", ran.report.as_ref().unwrap());
    broken(
        &rt,
        &mut b,
        &index,
        &link,
        "href=\"nowhere/report.html\"",
        "does not resolve",
    );
    broken(&rt, &mut b, &index, &link, "href=\"#no-such-id\"", "names no element");
    // A verdict that is not the one in verdict.json.
    let tag = format!("data-verdict-json=\"{}\">{word}<", ran.verdict_json.as_ref().unwrap());
    let wrong = if word == "fail" { "pass" } else { "fail" };
    let to = format!("data-verdict-json=\"{}\">{wrong}<", ran.verdict_json.as_ref().unwrap());
    broken(&rt, &mut b, &index, &tag, &to, &format!("shows `{wrong}`"));
    broken(
        &rt,
        &mut b,
        &report,
        &format!("data-verdict-json=\"verdict.json\">{word}<"),
        &format!("data-verdict-json=\"verdict.json\">{wrong}<"),
        &format!("shows `{wrong}`"),
    );
    // Script errors, logged or thrown, and a fetch from outside the report.
    broken(
        &rt,
        &mut b,
        &index,
        "</body>",
        "<script>console.error('plot data missing')</script></body>",
        "console error: plot data missing",
    );
    broken(
        &rt,
        &mut b,
        &report,
        "</body>",
        "<script>drawPlot()</script></body>",
        "uncaught exception: ReferenceError: drawPlot is not defined",
    );
    broken(
        &rt,
        &mut b,
        &index,
        "</body>",
        "<img src=\"http://127.0.0.1:9/logo.png\"></body>",
        "fetches http://127.0.0.1:9/logo.png",
    );
}

/// Pages named in `PVHDMA_PAGES` (`:`-separated), e.g. the suite page of the
/// last `cargo xtask test` or a matrix page from `cargo xtask report`: the
/// same check on a real run's pages. Without the variable there is nothing
/// to check (a fresh tree has no such pages), and the test says so.
#[test]
fn pages_named_in_pvhdma_pages_pass_in_chromium() {
    let Some(pages) = std::env::var_os("PVHDMA_PAGES") else {
        eprintln!("PVHDMA_PAGES not set: no extra pages to check");
        return;
    };
    rt().block_on(async {
        let mut b = Browser::start().await.unwrap();
        for (i, page) in std::env::split_paths(&pages).enumerate() {
            let shot = shots().join(format!("page-{i}.png"));
            let rep = b.check_page(&page, false, Some(&shot)).await.unwrap();
            assert!(rep.problems.is_empty(), "{}: {:#?}", page.display(), rep.problems);
            eprintln!(
                "{}: {} plots, {} links, {} verdicts, no problems; screenshot {}",
                page.display(),
                rep.svgs,
                rep.links.len(),
                rep.verdicts,
                shot.display()
            );
        }
    });
}

#[test]
fn a_browser_that_does_not_start_is_a_clear_error() {
    // nextest runs each test in its own process: the variable stays here.
    std::env::set_var(pvhdma_harness::browser::ENV, "/nonexistent/chromium");
    let err = match rt().block_on(Browser::start()) {
        Ok(_) => panic!("a missing browser started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("/nonexistent/chromium") && err.contains("did not answer"),
        "{err}"
    );
}
