//! Suite results: what a `cargo xtask test` / `check` run leaves for people
//! and for the matrix page, in target/pvhdma/report/ (`$PVHDMA_REPORT`):
//!
//! - `<scenario>/report.html`, `verdict.json`, `plot.svg`, and `entry.json`
//!   (that scenario's [`ScenarioResult`]), written by each scenario run,
//!   passing or not: they are small;
//! - `results.json` ([`SuiteResults`], docs/records.md section 4) and
//!   `index.html`, assembled by xtask after nextest from the entries and the
//!   catalog, so scenarios that did not run say why.
//!
//! `cargo xtask report` merges several such directories into the matrix page;
//! it reads nothing but `results.json` and the files it names.

use crate::images::workspace_root;
use crate::report;
use crate::verdict::Verdict;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The version of `results.json`'s layout; readers refuse other versions.
pub const FORMAT: u32 = 1;

/// The file name of the suite's results.
pub const RESULTS_JSON: &str = "results.json";

/// The directory of one suite run's results.
pub fn report_dir() -> PathBuf {
    std::env::var_os("PVHDMA_REPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pvhdma/report"))
}

/// The matrix cell a suite ran in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellInfo {
    /// Stable name, the nightly's cell name: `<recipe>-<iommu>`, e.g.
    /// `xen4.20-linux6.12-intel`; `<recipe>-any` when no IOMMU is forced.
    pub id: String,
    pub xen: Option<String>,
    pub kernel: Option<String>,
    /// `intel`, `amd`, or `as each scenario states`.
    pub iommu: String,
    /// What `accel: auto` became on this host, with the reason.
    pub accel: String,
}

/// Did the suite get as far as running its scenarios?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuiteStatus {
    /// nextest ran (whatever its verdicts).
    Ran,
    /// The image set (or the device) could not be built: nothing ran.
    BuildFailed,
}

/// What happened to one scenario in this suite run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// It ran and was judged: `verdict` says how it came out.
    Ran,
    /// The harness could not finish it (no verdict): `why`.
    Error,
    /// Not a scenario of this cell: `why` is the rule that excluded it.
    Skipped,
    /// In the cell but not selected (a name filter or another partition),
    /// or the suite never got to it.
    NotRun,
}

/// One row of the suite: a scenario and how it came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub status: RunStatus,
    /// The verdict's outcome word (`pass`, `fail`, `expected_failure`,
    /// `unexpected_pass`, `wrong_failure`); set when `status` is `ran`.
    pub verdict: Option<String>,
    /// Pass or expected failure; `false` for an error.
    pub passed: Option<bool>,
    /// The verdict's failure kind (`assertion`, `dom0_halted`, ...).
    pub failure_kind: Option<String>,
    /// How the run ended (`finished`, `xen_panic`, ...).
    pub run_end: Option<String>,
    /// The first failing assertion as the verdict prints it (for a failed
    /// verdict with none, its headline).
    pub first_failure: Option<String>,
    /// Why it did not run or could not be judged.
    pub why: Option<String>,
    /// Wall time of the scenario, boot to verdict.
    pub wall_s: Option<f64>,
    /// Paths relative to the directory of `results.json`.
    pub report: Option<String>,
    pub verdict_json: Option<String>,
    pub plot: Option<String>,
    /// The kept artifact directory (absolute, on the machine that ran it).
    pub artifacts: Option<String>,
    /// Earlier tries of this scenario in the same suite run (nextest's
    /// retry), each as `<result>: <first failure or why>`: a pass with
    /// entries here is what nextest calls FLAKY.
    #[serde(default)]
    pub earlier_tries: Vec<String>,
}

impl ScenarioResult {
    fn bare(scenario: &str, status: RunStatus, why: Option<String>) -> Self {
        Self {
            scenario: scenario.into(),
            status,
            verdict: None,
            passed: None,
            failure_kind: None,
            run_end: None,
            first_failure: None,
            why,
            wall_s: None,
            report: None,
            verdict_json: None,
            plot: None,
            artifacts: None,
            earlier_tries: Vec::new(),
        }
    }

    /// This try, as a later try's `earlier_tries` shows it.
    pub fn as_earlier(&self) -> String {
        let word = match self.status {
            RunStatus::Error => "error",
            _ => self.verdict.as_deref().unwrap_or("?"),
        };
        let why = self.first_failure.as_deref().or(self.why.as_deref()).unwrap_or("");
        format!("{word}: {why}")
    }

    /// A scenario that ran and was judged; its files are in `<scenario>/`.
    pub fn judged(v: &Verdict, wall: Option<Duration>, artifacts: Option<&Path>) -> Self {
        let dir = &v.scenario;
        Self {
            verdict: Some(v.outcome.word().into()),
            passed: Some(v.passed()),
            failure_kind: v.failure_kind.map(|k| k.name().to_string()),
            run_end: Some(v.run_end.name().to_string()),
            first_failure: first_failure(v),
            wall_s: wall.map(|d| d.as_secs_f64()),
            report: Some(format!("{dir}/report.html")),
            verdict_json: Some(format!("{dir}/verdict.json")),
            plot: Some(format!("{dir}/plot.svg")),
            artifacts: artifacts.map(|p| p.display().to_string()),
            ..Self::bare(&v.scenario, RunStatus::Ran, None)
        }
    }

    /// A scenario the harness could not judge.
    pub fn error(scenario: &str, wall: Option<Duration>, why: &str) -> Self {
        Self {
            passed: Some(false),
            wall_s: wall.map(|d| d.as_secs_f64()),
            ..Self::bare(scenario, RunStatus::Error, Some(why.into()))
        }
    }

    pub fn skipped(scenario: &str, why: &str) -> Self {
        Self::bare(scenario, RunStatus::Skipped, Some(why.into()))
    }

    pub fn not_run(scenario: &str, why: &str) -> Self {
        Self::bare(scenario, RunStatus::NotRun, Some(why.into()))
    }

    /// Ran or errored: it counts as a result.
    pub fn attempted(&self) -> bool {
        matches!(self.status, RunStatus::Ran | RunStatus::Error)
    }
}

/// The line a person reads first about a failed verdict.
pub fn first_failure(v: &Verdict) -> Option<String> {
    if v.passed() {
        return None;
    }
    let named = |id: &str| {
        v.expect_failure
            .as_ref()
            .is_some_and(|(n, _)| crate::scenario::id_matches(n, id))
    };
    v.failed_assertions()
        .find(|a| !named(&a.id))
        .map(|a| a.to_string())
        .or_else(|| v.to_string().lines().next().map(String::from))
}

/// `results.json`: one suite run in one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteResults {
    /// [`FORMAT`].
    pub format: u32,
    pub cell: CellInfo,
    pub host: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`, when the suite started.
    pub date: String,
    /// `git describe`-like revision of the tree that ran, `+dirty` if changed.
    pub git: String,
    /// The xtask command line.
    pub command: String,
    pub status: SuiteStatus,
    /// Why the suite did not run (build failure), when it did not.
    pub error: Option<String>,
    /// Wall time of the whole suite (nextest's run).
    pub wall_s: Option<f64>,
    /// Every scenario of the catalog, sorted by name.
    pub scenarios: Vec<ScenarioResult>,
}

impl SuiteResults {
    pub fn counts(&self) -> (usize, usize) {
        let passed = self.scenarios.iter().filter(|s| s.passed == Some(true)).count();
        let failed = self.scenarios.iter().filter(|s| s.passed == Some(false)).count();
        (passed, failed)
    }

    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(RESULTS_JSON);
        let text = std::fs::read_to_string(&path).with_context(|| format!("Cannot read {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let format = v.get("format").and_then(|f| f.as_u64());
        anyhow::ensure!(
            format == Some(FORMAT as u64),
            "{}: format {format:?}, this build reads format {FORMAT}",
            path.display()
        );
        serde_json::from_value(v).with_context(|| format!("{} does not match results.json's layout", path.display()))
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("Cannot create {}", dir.display()))?;
        let path = dir.join(RESULTS_JSON);
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("Cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// The file scenario tests append their start and end to, for xtask's
/// progress lines: `start <scenario>` / `end <scenario> <result> <secs>`.
pub const PROGRESS_LOG: &str = "progress.log";

/// Append one progress line (best effort: progress is not a result).
pub fn progress(line: &str) {
    use std::io::Write;
    let dir = report_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(PROGRESS_LOG))
    {
        // One write per line: appends of a short line do not interleave.
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// Copy a judged run's small files into `<report_dir>/<scenario>/` and
/// record its entry. Called for every judged scenario, passing or not.
pub fn record_judged(run_dir: &Path, v: &Verdict, wall: Option<Duration>, kept: Option<&Path>) -> anyhow::Result<()> {
    record_judged_in(&report_dir(), run_dir, v, wall, kept)
}

/// [`record_judged`] into the report directory `root`.
pub fn record_judged_in(
    root: &Path,
    run_dir: &Path,
    v: &Verdict,
    wall: Option<Duration>,
    kept: Option<&Path>,
) -> anyhow::Result<()> {
    let dst = root.join(&v.scenario);
    std::fs::create_dir_all(&dst).with_context(|| format!("Cannot create {}", dst.display()))?;
    for f in ["report.html", "verdict.json", "plot.svg"] {
        std::fs::copy(run_dir.join(f), dst.join(f))
            .with_context(|| format!("Cannot copy {} to {}", run_dir.join(f).display(), dst.display()))?;
    }
    write_entry(&dst, &ScenarioResult::judged(v, wall, kept))
}

/// A retry's entry keeps what the earlier tries in this directory came to.
fn with_earlier(dir: &Path, mut r: ScenarioResult) -> ScenarioResult {
    if let Some(old) = std::fs::read_to_string(dir.join("entry.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<ScenarioResult>(&t).ok())
    {
        r.earlier_tries = old.earlier_tries.clone();
        r.earlier_tries.push(old.as_earlier());
    }
    r
}

/// Record a scenario the harness could not judge.
pub fn record_error(scenario: &str, why: &str) -> anyhow::Result<()> {
    let dst = report_dir().join(scenario);
    std::fs::create_dir_all(&dst)?;
    write_entry(&dst, &ScenarioResult::error(scenario, None, why))
}

fn write_entry(dir: &Path, r: &ScenarioResult) -> anyhow::Result<()> {
    let r = &with_earlier(dir, r.clone());
    let path = dir.join("entry.json");
    std::fs::write(&path, serde_json::to_string_pretty(r)?).with_context(|| format!("Cannot write {}", path.display()))
}

/// The entries the scenario runs left in `dir`, by scenario name.
pub fn read_entries(dir: &Path) -> std::collections::BTreeMap<String, ScenarioResult> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("entry.json")).ok()?;
            let r: ScenarioResult = serde_json::from_str(&text).ok()?;
            Some((r.scenario.clone(), r))
        })
        .collect()
}

/// One catalog scenario as the cell sees it: `Some(why)` when the cell skips it.
pub struct CatalogItem {
    pub scenario: String,
    pub skip: Option<String>,
}

/// Every catalog scenario once: its entry if it ran, else why not.
pub fn assemble_rows(
    catalog: &[CatalogItem],
    mut entries: std::collections::BTreeMap<String, ScenarioResult>,
) -> Vec<ScenarioResult> {
    let mut rows: Vec<ScenarioResult> = catalog
        .iter()
        .map(|c| match (entries.remove(&c.scenario), &c.skip) {
            (Some(e), _) => e,
            (None, Some(why)) => ScenarioResult::skipped(&c.scenario, why),
            (None, None) => ScenarioResult::not_run(
                &c.scenario,
                "not selected in this run (a name filter or another partition)",
            ),
        })
        .collect();
    // Entries for files no longer in the catalog still happened.
    rows.extend(entries.into_values());
    rows.sort_by(|a, b| a.scenario.cmp(&b.scenario));
    rows
}

/// Write `results.json` and `index.html` into `dir`; returns the page's path.
pub fn write_suite(dir: &Path, results: &SuiteResults) -> anyhow::Result<PathBuf> {
    results.save(dir)?;
    let page = dir.join("index.html");
    std::fs::write(&page, report::suite_page::render(results, dir))
        .with_context(|| format!("Cannot write {}", page.display()))?;
    Ok(page)
}

/// This machine's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The tree's revision: short hash, `+dirty` when the work tree differs.
pub fn git_revision(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}+dirty")
            } else {
                rev
            }
        }
        // CI runs the suite as root in a runner-owned checkout, where git
        // refuses to read the repository; the workflow names the commit.
        None => std::env::var("GITHUB_SHA")
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(12).collect())
            .unwrap_or_else(|| "unknown (not a git checkout)".into()),
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to a civil date in the proleptic Gregorian calendar (the
    // era-based method: 400-year eras of 146097 days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Now, as [`utc`].
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(secs)
}

/// `95.2` seconds as `1m 35s`.
pub fn human_secs(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_798_540_245), "2026-12-29T10:30:45Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn human_times() {
        assert_eq!(human_secs(4.4), "4s");
        assert_eq!(human_secs(95.2), "1m 35s");
        assert_eq!(human_secs(3600.0), "60m 00s");
    }

    fn suite(rows: Vec<ScenarioResult>) -> SuiteResults {
        SuiteResults {
            format: FORMAT,
            cell: CellInfo {
                id: "xen4.20-linux6.12-intel".into(),
                xen: Some("4.20".into()),
                kernel: Some("6.12.117+deb13-amd64".into()),
                iommu: "intel".into(),
                accel: "accel tcg: test".into(),
            },
            host: "h".into(),
            date: utc(0),
            git: "abc".into(),
            command: "cargo xtask test".into(),
            status: SuiteStatus::Ran,
            error: None,
            wall_s: Some(10.0),
            scenarios: rows,
        }
    }

    #[test]
    fn rows_cover_the_catalog_and_say_why() {
        let cat = vec![
            CatalogItem {
                scenario: "b".into(),
                skip: None,
            },
            CatalogItem {
                scenario: "a".into(),
                skip: Some("cells.iommu [amd] excludes intel".into()),
            },
            CatalogItem {
                scenario: "c".into(),
                skip: None,
            },
        ];
        let mut entries = std::collections::BTreeMap::new();
        entries.insert("c".to_string(), ScenarioResult::error("c", None, "qemu did not start"));
        entries.insert("gone".to_string(), ScenarioResult::error("gone", None, "x"));
        let rows = assemble_rows(&cat, entries);
        let st: Vec<(&str, RunStatus)> = rows.iter().map(|r| (r.scenario.as_str(), r.status)).collect();
        assert_eq!(
            st,
            [
                ("a", RunStatus::Skipped),
                ("b", RunStatus::NotRun),
                ("c", RunStatus::Error),
                ("gone", RunStatus::Error)
            ]
        );
        assert!(rows[0].why.as_deref().unwrap().contains("excludes intel"));
        assert_eq!(suite(rows).counts(), (0, 2));
    }

    #[test]
    fn a_retry_keeps_the_earlier_tries() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        write_entry(&a, &ScenarioResult::error("a", None, "console_lost")).unwrap();
        let mut pass = ScenarioResult::skipped("a", "");
        pass.status = RunStatus::Ran;
        pass.why = None;
        pass.verdict = Some("pass".into());
        write_entry(&a, &pass).unwrap();
        let got = &read_entries(d.path())["a"];
        assert_eq!(got.verdict.as_deref(), Some("pass"));
        assert_eq!(got.earlier_tries, ["error: console_lost"]);
    }

    #[test]
    fn results_json_round_trips_and_refuses_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let s = suite(vec![ScenarioResult::skipped("a", "why")]);
        s.save(dir.path()).unwrap();
        assert_eq!(SuiteResults::load(dir.path()).unwrap(), s);
        let text = std::fs::read_to_string(dir.path().join(RESULTS_JSON)).unwrap();
        std::fs::write(
            dir.path().join(RESULTS_JSON),
            text.replace("\"format\": 1", "\"format\": 2"),
        )
        .unwrap();
        let e = SuiteResults::load(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("format Some(2)"), "{e:#}");
        std::fs::write(dir.path().join(RESULTS_JSON), "{\"format\": 1}").unwrap();
        let e = SuiteResults::load(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("layout"), "{e:#}");
    }
}
