//! Reports: per run, `verdict.json` and a self-contained `report.html` (the
//! verdict, the address plot, the accesses, a guest's granted pages) in the
//! run's artifact directory;
//! across runs, the summary table `cargo xtask test` prints at the end.
//! JUnit is nextest's job.

pub mod matrix_page;
pub mod suite_page;
pub mod svg;

use crate::outcome::RunOutcome;
use crate::scenario::Scenario;
use crate::verdict::{guest_check, hex, join, Status, Verdict};
use anyhow::Context;
use pvhdma_contract::wire::OpResult;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// Write `verdict.json`, `report.html` and `plot.svg` (the address plot on
/// its own, for the suite page) into `dir` (the run's artifact directory).
pub fn write_run_report(
    dir: &Path,
    scenario: &Scenario,
    outcome: &RunOutcome,
    verdict: &Verdict,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(verdict).context("serializing the verdict")?;
    let path = dir.join("verdict.json");
    std::fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    let path = dir.join("report.html");
    std::fs::write(&path, render_html(scenario, outcome, verdict))
        .with_context(|| format!("writing {}", path.display()))?;
    let path = dir.join("plot.svg");
    std::fs::write(&path, svg::plot(&plot_points(outcome))).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The results of ops on a guest's granted pages.
fn guest_results(outcome: &RunOutcome) -> impl Iterator<Item = &OpResult> {
    outcome.results.iter().filter(|r| r.foreign.is_some())
}

/// What became of each granted page of `r`: the bus address the device
/// was given for it, or why none.
fn fate(r: &OpResult, i: usize) -> String {
    match (r.map_error, r.dma_addrs.get(i)) {
        (true, _) => "mapping failed".into(),
        (false, Some(&d)) if r.bounced => format!("bounced to bus {}", hex(d)),
        (false, Some(&d)) => format!("given as bus {}", hex(d)),
        (false, None) => "not mapped".into(),
    }
}

/// The points of the address plot: one per device access, and one per
/// page a guest granted (at its guest-physical address in dom0).
pub fn plot_points(outcome: &RunOutcome) -> Vec<svg::Point> {
    let grants = guest_results(outcome).flat_map(|r| {
        let f = r.foreign.as_ref().expect("guest results have foreign");
        let ro = if f.readonly { "ro" } else { "rw" };
        r.phys_addrs.iter().enumerate().map(move |(i, &p)| svg::Point {
            bus: p,
            translated: None,
            fault: false,
            grant: true,
            label: format!(
                "op {} #{i}: guest {}'s {ro} page at dom0 guest-physical {}, {}",
                r.name,
                f.guest,
                hex(p),
                fate(r, i)
            ),
        })
    });
    let accesses: Vec<svg::Point> = join::of_outcome(outcome)
        .iter()
        .map(|a| svg::Point {
            bus: a.record.decoded_addr,
            translated: a.translated(),
            fault: a.record.outcome == pvhdma_contract::record::AccessOutcome::IommuFault,
            grant: false,
            label: format!(
                "{}: bus {} -> {}",
                a.describe(),
                hex(a.record.bus_addr),
                a.translated().map(hex).unwrap_or_else(|| "?".into())
            ),
        })
        .collect();
    accesses.into_iter().chain(grants).collect()
}

/// One row per page a guest granted: where it sat in dom0, what the device
/// was given for it, and what the guest found in it afterwards.
fn guest_pages_table(outcome: &RunOutcome) -> String {
    let mut h = String::new();
    let mut rows = guest_results(outcome).peekable();
    if rows.peek().is_none() {
        return h;
    }
    h.push_str(concat!(
        "<h2>Guest pages</h2><table><tr><th>op</th><th>guest (domid)</th><th>grant</th><th>page</th>",
        "<th>dom0 guest-physical</th><th>device got</th><th>guest sees</th></tr>"
    ));
    for r in rows {
        let f = r.foreign.as_ref().expect("guest results have foreign");
        let sees = guest_check(&outcome.console, &f.guest, &r.name).map_or("-".into(), |s| s.to_string());
        for (i, &p) in r.phys_addrs.iter().enumerate() {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td>{i}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.name),
                esc(&f.guest),
                f.domid,
                if f.readonly { "ro" } else { "rw" },
                hex(p),
                esc(&fate(r, i)),
                esc(&sees)
            );
        }
    }
    h.push_str("</table>");
    h
}

/// The whole page; inline CSS and SVG only.
pub fn render_html(scenario: &Scenario, outcome: &RunOutcome, verdict: &Verdict) -> String {
    let mut h = String::new();
    let (word, color) = if verdict.passed() {
        ("PASS", "#1a7f37")
    } else {
        ("FAIL", "#c00")
    };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{name}: {word}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:70em}} table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left;font-family:monospace}}\
         .pass{{color:#1a7f37}} .fail{{color:#c00}} .skipped{{color:#777}} pre{{background:#f4f4f4;padding:1em}}\
         </style></head><body><h1>{name} <span style=\"color:{color}\">{word}</span> \
         <small>(<span data-verdict-of=\"{name}\" data-verdict-json=\"verdict.json\">{outcome}</span>)</small></h1>\
         <p>{desc}</p>",
        name = esc(&scenario.name),
        outcome = verdict.outcome.word(),
        desc = esc(&scenario.description),
    );
    let _ = write!(h, "<pre>{}</pre>", esc(&verdict.to_string()));
    h.push_str("<h2>Assertions</h2><table><tr><th>id</th><th>status</th><th>expected</th><th>seen</th></tr>");
    for a in &verdict.assertions {
        let class = match a.status {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skipped => "skipped",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{class}\">{class}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.id),
            esc(&a.expected),
            esc(&a.detail)
        );
    }
    h.push_str("</table><h2>Device accesses</h2>");
    h.push_str(&svg::plot(&plot_points(outcome)));
    h.push_str("<table><tr><th>seq</th><th>op</th><th>tag</th><th>kind</th><th>bus</th><th>decoded</th><th>len</th><th>outcome</th><th>translated (trace)</th><th>translated (device)</th></tr>");
    for a in join::of_outcome(outcome) {
        let r = a.record;
        let opt = |v: Option<u64>| v.map(hex).unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{:#x}</td><td>{:?}</td><td>{}</td><td>{}</td></tr>",
            r.seq,
            esc(a.op.map(|o| o.name.as_str()).unwrap_or("?")),
            r.tag,
            r.kind,
            hex(r.bus_addr),
            hex(r.decoded_addr),
            r.len,
            r.outcome,
            opt(a.trace_target),
            opt(a.device_target)
        );
    }
    h.push_str("</table>");
    h.push_str(&guest_pages_table(outcome));
    if let Some(s) = &outcome.summary {
        let _ = write!(
            h,
            "<h2>dom0 summary</h2><p>ops {}, failed {}, bounces {}, overflow warnings {}</p><p>swiotlb pool: {}</p>",
            s.ops,
            s.failed,
            s.bounces,
            s.overflow_warnings,
            esc(&pool_views(s))
        );
    }
    let _ = write!(
        h,
        "<h2>Run</h2><p>ended: {} &middot; artifacts: {}</p></body></html>",
        esc(verdict.run_end.name()),
        esc(&outcome.artifacts.display().to_string())
    );
    h.push('\n');
    h
}

/// dom0's two statements about its swiotlb pool, each with what it can
/// and cannot say, so "no pool" reads as evidenced or as not.
fn pool_views(s: &pvhdma_contract::wire::Summary) -> String {
    let log = match (s.swiotlb, s.kmsg_from_start) {
        (Some(r), _) => format!("kernel log: mapped [{}, {})", hex(r.start), hex(r.end)),
        (None, true) => "kernel log (whole): no pool line".into(),
        (None, false) => "kernel log: no pool line, but not read from its start".into(),
    };
    let fs = match s.swiotlb_nslabs {
        Some(0) => "debugfs: none".to_string(),
        Some(n) => format!("debugfs: {n} slabs"),
        None => "debugfs: not available".into(),
    };
    format!("{log}; {fs}")
}

/// One line of the summary table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub name: String,
    /// `pass`, `fail`, `expected_failure`, `unexpected_pass`, `wrong_failure`,
    /// or `error` when the run could not be judged at all.
    pub result: String,
    pub passed: bool,
    pub wall: Option<Duration>,
    /// `xen_panic`, `assertion`, `unexpected_pass`, ... (empty when passed).
    pub failure_kind: Option<String>,
}

impl SummaryRow {
    pub fn from_verdict(v: &Verdict, wall: Option<Duration>) -> Self {
        Self {
            name: v.scenario.clone(),
            result: match v.retried_after {
                Some(_) => format!("{} (retried)", v.outcome.word()),
                None => v.outcome.word().into(),
            },
            passed: v.passed(),
            wall,
            failure_kind: v.failure_kind.map(|k| k.name().to_string()),
        }
    }

    /// A run that produced no verdict (the harness itself failed).
    pub fn error(name: &str, wall: Option<Duration>, why: &str) -> Self {
        Self {
            name: name.into(),
            result: "error".into(),
            passed: false,
            wall,
            failure_kind: Some(why.into()),
        }
    }
}

/// The aligned text table, sorted as given, with a closing count line.
pub fn summary_table(rows: &[SummaryRow]) -> String {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.result.clone(),
                r.wall
                    .map(|d| format!("{:.1}s", d.as_secs_f64()))
                    .unwrap_or_else(|| "-".into()),
                r.failure_kind.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let head = ["scenario", "result", "wall", "failure"];
    let mut width = head.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, c: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<a$}  {:<b$}  {:>c$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            a = width[0],
            b = width[1],
            c = width[2]
        );
    };
    line(&mut out, head);
    for c in &cells {
        line(&mut out, [&c[0], &c[1], &c[2], &c[3]]);
    }
    let passed = rows.iter().filter(|r| r.passed).count();
    let _ = writeln!(out, "scenarios: {passed} passed, {} failed", rows.len() - passed);
    // trim the padding of the last column
    out.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{RunEnd, Timings, TraceEntry};
    use crate::scenario::parse_str;
    use crate::verdict::evaluate;

    fn run() -> (Scenario, RunOutcome) {
        let s = parse_str(
            "description: plot <me>\nworkload: [{name: hs, kind: single, size: 4K}]\nexpect: {data_intact: true}\n",
            Path::new("demo.yaml"),
        )
        .unwrap();
        let result = serde_json::from_value(serde_json::json!({
            "index": 0, "name": "hs", "kind": "single", "tag": 1, "map_error": false, "error": null,
            "dma_addrs": [0x10_0000], "phys_addrs": [0x10_0000], "bounced": false, "device_status": 2,
            "device_error": 0, "device_seq": 1, "intact": false, "irq": true, "len": 4096
        }))
        .unwrap();
        let record = serde_json::from_value(serde_json::json!({
            "seq": 1, "t_us": 5, "tag": 1, "op_seq": 1, "kind": "data", "dir": "from_device",
            "bus_addr": 0x10_0000, "decoded_addr": 0x10_0000, "len": 4096, "outcome": "ok", "checksum": 1
        }))
        .unwrap();
        let o = RunOutcome {
            end: RunEnd::finished(),
            console: String::new(),
            results: vec![result],
            // dom0's word for the recorder's PCI address: the trace's
            // lines of that requester are its translations.
            summary: Some(pvhdma_contract::wire::Summary {
                devices: vec![pvhdma_contract::wire::DeviceInfo {
                    name: "pvhdma0".into(),
                    bdf: "0000:00:03.0".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            device_records: vec![vec![record]],
            iommu_trace: vec![TraceEntry {
                device: "00:03.00".into(),
                iova: 0x10_0000,
                target: 0x2_0010_0000,
                mask: 0xfff,
                fault: false,
            }],
            milestones: vec![],
            artifacts: "/tmp/x".into(),
            timings: Timings::default(),
            ram_layout: None,
            guest_payloads: vec![],
            guest_disks: vec![],
            guest_served: vec![],
        };
        (s, o)
    }

    #[test]
    fn writes_verdict_json_and_html() {
        let (s, o) = run();
        let v = evaluate(&s, &o);
        let dir = tempfile::tempdir().unwrap();
        write_run_report(dir.path(), &s, &o, &v).unwrap();
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("verdict.json")).unwrap()).unwrap();
        assert_eq!(j["outcome"], "fail");
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(html.contains("<svg") && html.contains("FAIL"));
        assert!(html.contains("plot &lt;me&gt;"), "escaped");
        assert!(html.contains("0x2_0010_0000"), "the trace translation is shown");
        assert!(!html.contains("<script") && !html.contains("href="), "self-contained");
    }

    #[test]
    fn the_page_shows_both_views_of_the_pool() {
        let (s, mut o) = run();
        o.summary = Some(pvhdma_contract::wire::Summary {
            kmsg_from_start: true,
            swiotlb_nslabs: Some(0),
            ..Default::default()
        });
        let html = render_html(&s, &o, &evaluate(&s, &o));
        assert!(
            html.contains("swiotlb pool: kernel log (whole): no pool line; debugfs: none"),
            "{html}"
        );
        o.summary = Some(pvhdma_contract::wire::Summary {
            swiotlb: Some(pvhdma_contract::wire::Range {
                start: 0x7bfd_f000,
                end: 0x7ffd_f000,
            }),
            ..Default::default()
        });
        let html = render_html(&s, &o, &evaluate(&s, &o));
        assert!(
            html.contains("kernel log: mapped [0x7bfd_f000, 0x7ffd_f000); debugfs: not available"),
            "{html}"
        );
    }

    #[test]
    fn plot_points_carry_translations() {
        let (_, o) = run();
        let p = plot_points(&o);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].bus, p[0].translated, p[0].fault),
            (0x10_0000, Some(0x2_0010_0000), false)
        );
    }

    #[test]
    fn granted_pages_are_marked_and_listed_even_when_never_mapped() {
        let (s, mut o) = run();
        let foreign: pvhdma_contract::wire::OpResult = serde_json::from_value(serde_json::json!({
            "index": 1, "name": "fs", "kind": "single", "tag": 9, "map_error": true, "error": null,
            "dma_addrs": [], "phys_addrs": [0x2_7cdc_2000u64], "bounced": false, "device_status": 0,
            "device_error": 0, "device_seq": 0, "intact": false, "irq": false, "len": 4096, "bytes_done": 0,
            "foreign": {"guest": "g1", "domid": 1, "readonly": false, "grant_status": [0]}
        }))
        .unwrap();
        o.results.push(foreign);
        o.console += "PVHDMA-GUEST g1 PVHDMA-GUEST-CHECK {\"op\":\"fs\",\"sees\":\"unchanged\"}\n";
        let p = plot_points(&o);
        let g: Vec<_> = p.iter().filter(|p| p.grant).collect();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].bus, 0x2_7cdc_2000);
        assert!(g[0]
            .label
            .contains("guest g1's rw page at dom0 guest-physical 0x2_7cdc_2000, mapping failed"));
        let html = render_html(&s, &o, &evaluate(&s, &o));
        assert!(
            html.contains("<td>fs</td><td>g1 (1)</td><td>rw</td><td>0</td><td>0x2_7cdc_2000</td><td>mapping failed</td><td>unchanged</td>"),
            "{html}"
        );
        // A run without guests has no such section.
        let (_, plain) = run();
        assert!(!render_html(&s, &plain, &evaluate(&s, &plain)).contains("Guest pages"));
    }

    #[test]
    fn summary_table_aligns_and_counts() {
        let rows = vec![
            SummaryRow {
                name: "pvh-vtd-noforce".into(),
                result: "pass".into(),
                passed: true,
                wall: Some(Duration::from_millis(21_340)),
                failure_kind: None,
            },
            SummaryRow {
                name: "neg-x".into(),
                result: "unexpected_pass".into(),
                passed: false,
                wall: Some(Duration::from_secs(30)),
                failure_kind: Some("unexpected_pass".into()),
            },
            SummaryRow::error("broken", None, "qemu did not start"),
        ];
        let t = summary_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "scenario         result            wall  failure");
        assert_eq!(lines[1], "pvh-vtd-noforce  pass             21.3s");
        assert_eq!(lines[2], "neg-x            unexpected_pass  30.0s  unexpected_pass");
        assert_eq!(lines[3], "broken           error                -  qemu did not start");
        assert_eq!(lines[4], "scenarios: 1 passed, 2 failed");
    }

    #[test]
    fn summary_row_from_verdict() {
        let (s, o) = run();
        let v = evaluate(&s, &o);
        let r = SummaryRow::from_verdict(&v, None);
        assert_eq!(
            (r.result.as_str(), r.passed, r.failure_kind.as_deref()),
            ("fail", false, Some("assertion"))
        );
    }
}
