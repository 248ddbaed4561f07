//! The pages people read after a run: the suite page that `test` / `check`
//! write (target/pvhdma/report/index.html, with results.json), the progress
//! lines before a suite starts, and `cargo xtask report DIR...`, which merges
//! several result directories (the nightly cells' artifacts) into the
//! matrix page.

use crate::flags::CellFlags;
use crate::images;
use pvhdma_harness::images::{workspace_root, Manifest};
use pvhdma_harness::report::matrix_page;
use pvhdma_harness::results::{
    self, assemble_rows, human_secs, read_entries, CatalogItem, CellInfo, ScenarioResult, SuiteResults, SuiteStatus,
    FORMAT, RESULTS_JSON,
};
use pvhdma_harness::{accel, matrix, scenario};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// One suite run in progress: what its results.json header will say.
pub struct Suite {
    pub cell: CellInfo,
    pub date: String,
    pub started: Instant,
    pub command: String,
}

/// The recipe's name and matrix labels (for a cell whose images never built).
fn recipe_labels(img: &images::Options) -> (String, Option<String>, Option<String>) {
    let path = img.recipe.clone().unwrap_or_else(images::default_recipe);
    match images::recipe::Recipe::load(&path) {
        Ok(r) => {
            let l = r.matrix.clone().unwrap_or_default();
            let some = |s: String| (!s.is_empty()).then_some(s);
            (r.name, some(l.xen_version), some(l.kernel))
        }
        Err(_) => (
            path.file_stem().unwrap_or_default().to_string_lossy().to_string(),
            None,
            None,
        ),
    }
}

/// The cell's name: the nightly's `<recipe>-<iommu>` (`-any` without `--iommu`).
pub fn cell_id(recipe: &str, iommu: Option<&str>) -> String {
    format!("{recipe}-{}", iommu.unwrap_or("any"))
}

impl Suite {
    /// The image set's versions, once it is built (the recipe's labels until then).
    pub fn versions_from(&mut self, cell: &matrix::Cell) {
        if let Some(x) = &cell.xen {
            self.cell.xen = Some(x.clone());
        }
        if let Some(k) = &cell.kernel {
            self.cell.kernel = Some(k.clone());
        }
    }

    pub fn start(img: &images::Options, flags: &CellFlags) -> Self {
        let (recipe, xen_label, kernel_label) = recipe_labels(img);
        let iommu = flags
            .iommu
            .clone()
            .or_else(|| std::env::var(matrix::IOMMU_ENV).ok().filter(|s| !s.is_empty()));
        Self {
            cell: CellInfo {
                id: cell_id(&recipe, iommu.as_deref()),
                xen: xen_label,
                kernel: kernel_label,
                iommu: iommu.unwrap_or_else(|| "as each scenario states".into()),
                accel: accel::decide().to_string(),
            },
            date: results::now_utc(),
            started: Instant::now(),
            command: std::iter::once("cargo xtask".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    fn results(&self, status: SuiteStatus, error: Option<String>, scenarios: Vec<ScenarioResult>) -> SuiteResults {
        SuiteResults {
            format: FORMAT,
            cell: self.cell.clone(),
            host: results::host_name(),
            date: self.date.clone(),
            git: results::git_revision(&workspace_root()),
            command: self.command.clone(),
            status,
            error,
            wall_s: Some(self.started.elapsed().as_secs_f64()),
            scenarios,
        }
    }
}

/// The catalog as `cell` sees it (which scenarios it skips, and why).
pub fn catalog(cell: &matrix::Cell) -> anyhow::Result<Vec<CatalogItem>> {
    let mut out = Vec::new();
    for f in scenario::scenario_files(&scenario::scenarios_dir())? {
        let name = f.file_stem().unwrap_or_default().to_string_lossy().to_string();
        let skip = match scenario::load(&f).map(|s| cell.decide(&s)) {
            Ok(matrix::Decision::Skip(why)) => Some(why),
            _ => None,
        };
        out.push(CatalogItem { scenario: name, skip });
    }
    Ok(out)
}

/// Start from an empty report directory: entries of an earlier run must not
/// pass for this one's.
pub fn reset() -> anyhow::Result<()> {
    let dir = results::report_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| anyhow::anyhow!("Cannot clear {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Nothing ran because the images (or the device) did not build: say so in
/// results.json, every scenario "not run", so the matrix page shows it.
pub fn build_failed(suite: &Suite, cell: &matrix::Cell, err: &anyhow::Error) -> anyhow::Result<PathBuf> {
    reset()?;
    let rows = catalog(cell)?
        .into_iter()
        .map(|c| match c.skip {
            Some(why) => ScenarioResult::skipped(&c.scenario, &why),
            None => ScenarioResult::not_run(&c.scenario, "the image build failed"),
        })
        .collect();
    let r = suite.results(SuiteStatus::BuildFailed, Some(format!("{err:#}")), rows);
    results::write_suite(&results::report_dir(), &r)
}

/// Write results.json and index.html from what the scenario runs recorded;
/// remember each scenario's wall time for the next run's estimate. Returns
/// the page.
pub fn finish(suite: &Suite, cell: &matrix::Cell) -> anyhow::Result<PathBuf> {
    let dir = results::report_dir();
    let rows = assemble_rows(&catalog(cell)?, read_entries(&dir));
    let r = suite.results(SuiteStatus::Ran, None, rows);
    let page = results::write_suite(&dir, &r)?;
    let mut h = History::load();
    h.record(&r);
    h.save()?;
    Ok(page)
}

/// Wall times of earlier runs on this machine, by scenario.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub scenarios: BTreeMap<String, Timing>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    pub wall_s: f64,
    pub date: String,
}

impl History {
    fn path() -> PathBuf {
        workspace_root().join("target/pvhdma/timings.json")
    }

    pub fn load() -> Self {
        std::fs::read_to_string(Self::path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let p = Self::path();
        std::fs::create_dir_all(p.parent().expect("has a parent"))?;
        std::fs::write(&p, serde_json::to_string_pretty(self)?)?;
        Ok(())
    }

    pub fn record(&mut self, r: &SuiteResults) {
        for s in &r.scenarios {
            if let (true, Some(w)) = (s.attempted(), s.wall_s) {
                let t = Timing {
                    wall_s: w,
                    date: r.date.clone(),
                };
                self.scenarios.insert(s.scenario.clone(), t);
            }
        }
    }

    /// The line announcing a run of `names` with `parallel` VMs at a time.
    pub fn estimate(&self, names: &[String], parallel: usize) -> String {
        let known: Vec<f64> = names
            .iter()
            .filter_map(|n| self.scenarios.get(n).map(|t| t.wall_s))
            .collect();
        if known.is_empty() {
            return "no earlier run on this machine to estimate from".into();
        }
        let sum: f64 = known.iter().sum();
        let par = parallel.max(1);
        if known.len() == names.len() {
            return format!(
                "last time on this machine they took {} of VM time: about {} with {par} at a time",
                human_secs(sum),
                human_secs(sum / par as f64)
            );
        }
        // Scenarios never timed here are guessed at the average of the others.
        let total = sum / known.len() as f64 * names.len() as f64;
        format!(
            "{} of them took {} of VM time last time on this machine; at that average, about {} with {par} at a time",
            known.len(),
            human_secs(sum),
            human_secs(total / par as f64)
        )
    }
}

/// The scenario tests nextest will run with these arguments: `(names, exact)`.
/// `exact` is false when nextest could not list with them (run-only
/// arguments): then the cell's catalog minus its skips is the guess.
pub fn selected(extra: &[String], env: &[(&str, String)], cell: &matrix::Cell) -> (Vec<String>, bool) {
    let list = |args: &[String]| -> Option<Vec<String>> {
        let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.current_dir(workspace_root())
            .args(["nextest", "list", "-p", "pvhdma-harness", "--test", "scenarios"])
            .args(["--message-format", "json", "--cargo-quiet"])
            .args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.stderr(std::process::Stdio::null()).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let mut names = Vec::new();
        for suite in v["rust-suites"].as_object()?.values() {
            for (name, case) in suite["testcases"].as_object()? {
                if case["filter-match"]["status"] == "matches" {
                    names.push(name.clone());
                }
            }
        }
        Some(names)
    };
    if let Some(n) = list(&list_args(extra)) {
        return (n, true);
    }
    let guess = catalog(cell)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.skip.is_none())
        .map(|c| c.scenario)
        .collect();
    (guess, false)
}

/// The arguments of `nextest run` that choose tests, as `nextest list`
/// takes them: names, filter expressions, partitions, ignored-ness. The
/// rest (threads, retries, output) is for running and is dropped.
pub fn list_args(extra: &[String]) -> Vec<String> {
    const CHOOSE_WITH_VALUE: [&str; 5] = ["-E", "--filterset", "--filter-expr", "--partition", "--run-ignored"];
    const RUN_WITH_VALUE: [&str; 9] = [
        "-j",
        "--test-threads",
        "--retries",
        "--profile",
        "--status-level",
        "--final-status-level",
        "--show-progress",
        "--max-fail",
        "--message-format",
    ];
    let mut out = Vec::new();
    let mut it = extra.iter();
    while let Some(a) = it.next() {
        let flag = a.split('=').next().unwrap_or(a);
        if CHOOSE_WITH_VALUE.contains(&flag) {
            out.push(a.clone());
            if !a.contains('=') {
                out.extend(it.next().cloned());
            }
        } else if RUN_WITH_VALUE.contains(&flag) {
            if !a.contains('=') {
                it.next();
            }
        } else if !a.starts_with('-') || matches!(a.as_str(), "--ignored" | "--include-ignored" | "--exact") {
            out.push(a.clone());
        }
    }
    out
}

/// VMs side by side: nextest's `-j N` / `--test-threads N` if given, else the
/// `vm` test group's limit (.config/nextest.toml).
pub fn parallelism(extra: &[String]) -> usize {
    let mut it = extra.iter();
    while let Some(a) = it.next() {
        let v = if a == "-j" || a == "--test-threads" {
            it.next().cloned()
        } else {
            a.strip_prefix("--test-threads=")
                .or_else(|| a.strip_prefix("-j"))
                .map(String::from)
        };
        if let Some(n) = v.and_then(|v| v.parse::<usize>().ok()) {
            return n.clamp(1, 2);
        }
    }
    2
}

/// Print, before nextest starts, how many scenarios will run and how long
/// that took last time; returns how many.
pub fn announce(extra: &[String], env: &[(&str, String)], cell: &matrix::Cell) -> usize {
    let (names, exact) = selected(extra, env, cell);
    let about = if exact { "" } else { "about " };
    println!(
        "[suite] {about}{} scenario{} to run; {}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        History::load().estimate(&names, parallelism(extra))
    );
    names.len()
}

/// Prints each scenario's start and end while nextest runs (nextest itself
/// prints only ends), from the lines the scenario tests append to
/// `progress.log` in the report directory.
pub struct Progress {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the progress lines count.
#[derive(Debug, Default)]
pub struct ProgressState {
    pub total: usize,
    pub running: usize,
    pub done: usize,
    /// Scenarios that ended once: a second start is nextest's retry.
    pub ended: std::collections::BTreeSet<String>,
}

/// One `progress.log` line as the line to print, if it is one.
pub fn progress_line(line: &str, st: &mut ProgressState, since_start: std::time::Duration) -> Option<String> {
    let at = human_secs(since_start.as_secs_f64());
    let mut w = line.split_whitespace();
    match (w.next()?, w.next()?) {
        ("start", name) => {
            st.running += 1;
            let retry = if st.ended.contains(name) { "retry, " } else { "" };
            Some(format!("[suite +{at}] start {name} ({retry}{} running)", st.running))
        }
        ("end", name) => {
            st.running = st.running.saturating_sub(1);
            if st.ended.insert(name.to_string()) {
                st.done += 1;
            }
            let word = w.next().unwrap_or("?");
            let secs: f64 = w.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
            Some(format!(
                "[suite +{at}] end   {name}: {word} in {} ({} of {} done)",
                human_secs(secs),
                st.done,
                st.total
            ))
        }
        _ => None,
    }
}

impl Progress {
    pub fn follow(total: usize) -> Self {
        use std::io::{Read, Seek};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let path = results::report_dir().join(results::PROGRESS_LOG);
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut st = ProgressState {
                total,
                ..Default::default()
            };
            let (mut offset, mut partial) = (0u64, String::new());
            loop {
                // Read what is new, then stop only after a last read.
                let last = flag.load(std::sync::atomic::Ordering::SeqCst);
                if let Ok(mut f) = std::fs::File::open(&path) {
                    let mut buf = String::new();
                    if f.seek(std::io::SeekFrom::Start(offset)).is_ok() && f.read_to_string(&mut buf).is_ok() {
                        offset += buf.len() as u64;
                        partial.push_str(&buf);
                        while let Some(i) = partial.find('\n') {
                            let line: String = partial.drain(..=i).collect();
                            if let Some(p) = progress_line(&line, &mut st, started.elapsed()) {
                                println!("{p}");
                            }
                        }
                    }
                }
                if last {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// --- cargo xtask report DIR... ---

/// The result directories under `dirs`: each DIR holding results.json, or
/// else its subdirectories that do (a folder of downloaded artifacts).
pub fn result_dirs(dirs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for d in dirs {
        anyhow::ensure!(d.is_dir(), "{} is not a directory", d.display());
        if d.join(RESULTS_JSON).is_file() {
            out.push(d.clone());
            continue;
        }
        let mut subs: Vec<PathBuf> = std::fs::read_dir(d)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join(RESULTS_JSON).is_file())
            .collect();
        anyhow::ensure!(
            !subs.is_empty(),
            "{} has no {RESULTS_JSON}, nor has any directory in it (expected the report directory of `cargo xtask test`)",
            d.display()
        );
        subs.sort();
        out.extend(subs);
    }
    Ok(out)
}

fn copy_tree(src: &Path, dst: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let to = dst.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &to)?;
        } else {
            std::fs::copy(e.path(), &to)?;
        }
    }
    Ok(())
}

/// `cargo xtask report DIR... [--out DIR]`: copy each result directory under
/// OUT (so the page's links travel with it) and write OUT/index.html.
pub fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<PathBuf> {
    let dirs = result_dirs(dirs)?;
    let mut sources = Vec::new();
    std::fs::create_dir_all(out)?;
    for (i, d) in dirs.iter().enumerate() {
        let r = SuiteResults::load(d)?;
        let name = format!(
            "{i:02}-{}",
            r.cell
                .id
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-', "_")
        );
        let dst = out.join(&name);
        if dst.exists() {
            std::fs::remove_dir_all(&dst)?;
        }
        copy_tree(d, &dst)?;
        sources.push(matrix_page::Source {
            prefix: format!("{name}/"),
            results: r,
        });
    }
    let columns = matrix_page::merge(&sources);
    let page = out.join("index.html");
    std::fs::write(&page, matrix_page::render(&columns))?;
    for c in &columns {
        let words: Vec<String> = c
            .squares
            .iter()
            .map(|(s, sq)| format!("{s}: {}", matrix_page::square_word(sq)))
            .collect();
        println!("{}\n  {}", c.info.id, words.join("\n  "));
    }
    Ok(page)
}

pub fn run_report(dirs: &[PathBuf], out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target/pvhdma/matrix"));
    let page = merge(dirs, &out)?;
    println!("matrix page: {}", page.display());
    Ok(ExitCode::SUCCESS)
}

/// The closing line of `test` / `check`.
pub fn page_line(page: &Path) -> String {
    format!("report: {}", page.display())
}

/// The manifest's cell, for a run whose images built.
pub fn cell_of(m: &Manifest, iommu: Option<pvhdma_harness::scenario::IommuCfg>) -> anyhow::Result<matrix::Cell> {
    Ok(matrix::Cell {
        iommu: iommu.or(matrix::Cell::current(None)?.iommu),
        xen: matrix::xen_version(m),
        kernel: Some(m.kernel_version.clone()),
        toolstack: Some(m.toolstack.is_some()),
        qemu: Some(matrix::qemu_labels(m)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_reads_nextest_flags() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(parallelism(&v("")), 2);
        assert_eq!(parallelism(&v("-j 1 pvh")), 1);
        assert_eq!(parallelism(&v("-j1")), 1);
        assert_eq!(parallelism(&v("--test-threads=1")), 1);
        assert_eq!(parallelism(&v("--test-threads 8")), 2, "the vm group caps it");
    }

    #[test]
    fn progress_lines_count_running_and_done() {
        let mut st = ProgressState {
            total: 3,
            ..Default::default()
        };
        let t = std::time::Duration::from_secs(75);
        assert_eq!(
            progress_line("start a\n", &mut st, t).unwrap(),
            "[suite +1m 15s] start a (1 running)"
        );
        progress_line("start b", &mut st, t);
        assert_eq!(
            progress_line("end a pass 41.2\n", &mut st, t).unwrap(),
            "[suite +1m 15s] end   a: pass in 41s (1 of 3 done)"
        );
        assert_eq!((st.running, st.done), (1, 1));
        assert_eq!(
            progress_line("start a", &mut st, t).unwrap(),
            "[suite +1m 15s] start a (retry, 2 running)"
        );
        progress_line("end a pass 40", &mut st, t);
        assert_eq!(st.done, 1, "a retry is not one more scenario done");
        assert_eq!(progress_line("garbage", &mut st, t), None);
    }

    #[test]
    fn list_keeps_only_what_chooses_tests() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            list_args(&v(
                "-j 1 --retries 2 --no-fail-fast pvh-vtd --partition hash:1/2 -E test(x) --test-threads=1"
            )),
            v("pvh-vtd --partition hash:1/2 -E test(x)")
        );
        assert_eq!(list_args(&v("-j1 --partition=hash:2/2")), v("--partition=hash:2/2"));
    }

    #[test]
    fn estimates_from_history() {
        let mut h = History::default();
        assert!(h.estimate(&["a".into()], 2).contains("no earlier run"));
        for (n, w) in [("a", 30.0), ("b", 90.0)] {
            h.scenarios.insert(
                n.into(),
                Timing {
                    wall_s: w,
                    date: "d".into(),
                },
            );
        }
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(
            h.estimate(&names, 2),
            "2 of them took 2m 00s of VM time last time on this machine; at that average, about 1m 30s with 2 at a time"
        );
        assert_eq!(
            h.estimate(&names[..2], 1),
            "last time on this machine they took 2m 00s of VM time: about 2m 00s with 1 at a time"
        );
    }

    #[test]
    fn cell_ids_match_the_nightly_names() {
        assert_eq!(cell_id("xen4.20-linux6.12", Some("amd")), "xen4.20-linux6.12-amd");
        assert_eq!(cell_id("xen4.20-linux6.12", None), "xen4.20-linux6.12-any");
        // The nightly's cells are `<recipe name>-<iommu>` too.
        for e in crate::matrix::entries(&workspace_root(), 1).unwrap() {
            assert_eq!(cell_id(&e.recipe_name, Some(&e.iommu)), e.cell);
        }
    }

    #[test]
    fn report_dirs_are_found_one_level_down_and_bad_input_is_named() {
        let d = tempfile::tempdir().unwrap();
        let e = result_dirs(&[d.path().to_path_buf()]).unwrap_err();
        assert!(e.to_string().contains("has no results.json"), "{e}");
        for n in ["b", "a"] {
            std::fs::create_dir_all(d.path().join(n)).unwrap();
            std::fs::write(d.path().join(n).join(RESULTS_JSON), "{}").unwrap();
        }
        let found = result_dirs(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(found, [d.path().join("a"), d.path().join("b")]);
        let e = merge(&[d.path().join("a")], &d.path().join("out")).unwrap_err();
        assert!(format!("{e:#}").contains("format None"), "{e:#}");
        assert!(result_dirs(&[d.path().join("missing")]).is_err());
    }
}
