//! The suite page, `index.html` beside `results.json`: one row per catalog
//! scenario (result, wall time, first failing assertion, the address plot
//! inline, linking to the scenario's own report) under a header naming the
//! cell, host, date and revision. Self-contained: inline CSS and SVG, no
//! script, relative links only, so it works from `file://` and as a CI
//! artifact.
//!
//! Elements showing a verdict carry `data-verdict-of` (the scenario) and
//! `data-verdict-json` (its verdict.json, relative to the page): the browser
//! check compares what is shown with that file.

use crate::results::{human_secs, RunStatus, ScenarioResult, SuiteResults, SuiteStatus};
use std::fmt::Write;
use std::path::Path;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Styles shared by the suite and matrix pages.
pub const CSS: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f0f0f0}.mono{font-family:monospace}.ok{color:#1a7f37;font-weight:bold}\
.bad{color:#c00;font-weight:bold}.idle{color:#777}.why{color:#555;font-size:90%;max-width:44em}\
dl.head{display:grid;grid-template-columns:max-content auto;gap:2px 1em}dl.head dt{font-weight:bold}dl.head dd{margin:0}\
.thumb svg{width:300px;height:auto;display:block}a{color:#0645ad}";

/// The CSS class for a verdict word, an error, or a scenario that did not run.
pub fn class_of(r: &ScenarioResult) -> &'static str {
    match (r.status, r.passed) {
        (RunStatus::Ran, Some(true)) => "ok",
        (RunStatus::Ran | RunStatus::Error, _) => "bad",
        _ => "idle",
    }
}

/// The word a row shows for its result.
pub fn result_word(r: &ScenarioResult) -> String {
    match r.status {
        RunStatus::Ran => r.verdict.clone().unwrap_or_else(|| "?".into()),
        RunStatus::Error => "error".into(),
        RunStatus::Skipped => "not in this cell".into(),
        RunStatus::NotRun => "not run".into(),
    }
}

/// The result cell: the verdict word, tagged for the browser check when a
/// verdict.json backs it.
pub fn verdict_span(r: &ScenarioResult, prefix: &str) -> String {
    let word = esc(&result_word(r));
    let class = class_of(r);
    // A pass that needed a retry says so beside the verdict.
    let flaky = if r.earlier_tries.is_empty() || r.passed != Some(true) {
        ""
    } else {
        " <span class=\"bad\" title=\"passed only on a retry\">flaky</span>"
    };
    let span = match (&r.verdict_json, r.status) {
        (Some(v), RunStatus::Ran) => format!(
            "<span class=\"{class}\" data-verdict-of=\"{}\" data-verdict-json=\"{}\">{word}</span>",
            esc(&r.scenario),
            esc(&format!("{prefix}{v}"))
        ),
        _ => format!("<span class=\"{class}\">{word}</span>"),
    };
    format!("{span}{flaky}")
}

pub fn render(s: &SuiteResults, dir: &Path) -> String {
    let (passed, failed) = s.counts();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pvhdma suite: {passed} passed, {failed} failed</title>\
         <style>{CSS}</style></head><body><h1>pvhdma suite: <span class=\"ok\">{passed} passed</span>, \
         <span class=\"{}\">{failed} failed</span></h1><dl class=\"head\">",
        if failed > 0 { "bad" } else { "ok" }
    );
    let cell = &s.cell;
    let unknown = || "?".to_string();
    for (k, v) in [
        ("cell", cell.id.clone()),
        ("Xen", cell.xen.clone().unwrap_or_else(unknown)),
        ("kernel", cell.kernel.clone().unwrap_or_else(unknown)),
        ("IOMMU", cell.iommu.clone()),
        ("accel", cell.accel.clone()),
        ("host", s.host.clone()),
        ("date", s.date.clone()),
        ("git", s.git.clone()),
        ("command", s.command.clone()),
        ("wall", s.wall_s.map(human_secs).unwrap_or_else(|| "-".into())),
    ] {
        let _ = write!(h, "<dt>{k}</dt><dd class=\"mono\">{}</dd>", esc(&v));
    }
    h.push_str("</dl>");
    if s.status == SuiteStatus::BuildFailed {
        let _ = write!(
            h,
            "<h2 class=\"bad\">build failed: no scenario ran</h2><pre>{}</pre>",
            esc(s.error.as_deref().unwrap_or(""))
        );
    }
    h.push_str(
        "<table><tr><th>scenario</th><th>result</th><th>wall</th><th>first failing assertion / why</th><th>address plot (click for the report)</th></tr>",
    );
    for r in &s.scenarios {
        let name = match &r.report {
            Some(rep) => format!("<a href=\"{}\">{}</a>", esc(rep), esc(&r.scenario)),
            None => esc(&r.scenario),
        };
        let mut why = r.first_failure.clone().or_else(|| r.why.clone()).unwrap_or_default();
        for (i, t) in r.earlier_tries.iter().enumerate() {
            why = format!("{why}{}try {}: {t}", if why.is_empty() { "" } else { "\n" }, i + 1);
        }
        if let Some(a) = &r.artifacts {
            why = format!("{why}{}artifacts: {a}", if why.is_empty() { "" } else { "\n" });
        }
        let plot = match (&r.plot, &r.report) {
            (Some(p), Some(rep)) => match std::fs::read_to_string(dir.join(p)) {
                Ok(svg) => format!("<a class=\"thumb\" href=\"{}\">{svg}</a>", esc(rep)),
                Err(_) => format!("<a href=\"{}\">report</a> (plot missing)", esc(rep)),
            },
            _ => String::new(),
        };
        let _ = write!(
            h,
            "<tr data-scenario=\"{}\"><td class=\"mono\">{name}</td><td>{}</td><td>{}</td><td class=\"why mono\" style=\"white-space:pre-wrap\">{}</td><td>{plot}</td></tr>",
            esc(&r.scenario),
            verdict_span(r, ""),
            r.wall_s.map(|w| format!("{w:.1}s")).unwrap_or_else(|| "-".into()),
            esc(&why)
        );
    }
    h.push_str(
        "</table><p class=\"why\">Each scenario's report.html, verdict.json and plot.svg are beside this page; \
         results.json (docs/records.md) is what this page and the matrix page are made from.</p></body></html>\n",
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{CellInfo, FORMAT};

    #[test]
    fn rows_link_plots_and_tag_verdicts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/plot.svg"), "<svg id=\"p\"></svg>").unwrap();
        let mut ran = ScenarioResult::skipped("a", "");
        ran.status = RunStatus::Ran;
        ran.why = None;
        ran.verdict = Some("fail".into());
        ran.passed = Some(false);
        ran.first_failure = Some("data_intact: expected <x>".into());
        ran.report = Some("a/report.html".into());
        ran.verdict_json = Some("a/verdict.json".into());
        ran.plot = Some("a/plot.svg".into());
        let s = SuiteResults {
            format: FORMAT,
            cell: CellInfo {
                id: "c".into(),
                iommu: "intel".into(),
                ..Default::default()
            },
            host: "h".into(),
            date: "d".into(),
            git: "g".into(),
            command: "cmd".into(),
            status: SuiteStatus::Ran,
            error: None,
            wall_s: None,
            scenarios: vec![ran, ScenarioResult::skipped("b", "cells.xen excludes 4.17")],
        };
        let html = render(&s, dir.path());
        assert!(html.contains("0 passed") && html.contains("1 failed"));
        assert!(html.contains("<a class=\"thumb\" href=\"a/report.html\"><svg id=\"p\"></svg></a>"));
        assert!(html.contains("data-verdict-of=\"a\" data-verdict-json=\"a/verdict.json\">fail<"));
        assert!(html.contains("data_intact: expected &lt;x&gt;"), "escaped");
        assert!(html.contains(">not in this cell<") && html.contains("cells.xen excludes 4.17"));
        assert!(!html.contains("<script") && !html.contains("http"), "self-contained");
    }
}
