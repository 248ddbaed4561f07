//! The report pages, checked in a real browser: Debian's headless Chromium,
//! driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! JSON messages ended by a NUL byte, Chromium reading fd 3 and writing fd
//! 4; a shell's redirections put our pipes there, so no unsafe fd juggling).
//!
//! [`Browser::check_page`] loads a page from `file://` and reports as
//! problems:
//! - anything logged as an error: console errors, uncaught exceptions,
//!   the browser's own error log (a resource that failed to load);
//! - a request for anything but `file:`/`data:`/`about:` (the pages are
//!   self-contained);
//! - an `<svg>` that renders at zero width or height (or, when one is
//!   expected, no `<svg>` at all);
//! - a link that does not resolve: every `file:` link is opened in a second
//!   tab and must load; an in-page `#id` must name an element; other schemes
//!   are refused;
//! - a verdict shown that differs from its verdict.json: each element with
//!   `data-verdict-of="<scenario>"` names its file in `data-verdict-json`
//!   (relative to the page), and its text must be that file's outcome word.
//!
//! It saves a full-page screenshot when asked.

use crate::process::{self, Guarded};
use anyhow::Context;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout, Command};

/// Overrides the browser binary (default: `chromium` on PATH, Debian's package).
pub const ENV: &str = "PVHDMA_CHROMIUM";

/// Per protocol call and per page load.
/// Generous: `cargo xtask check` runs this beside VMs on two busy cores.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The browser binary, if there is one.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(ENV) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// A running headless Chromium (killed with its process group on drop).
pub struct Browser {
    _proc: Guarded,
    tx: ChildStdin,
    rx: BufReader<ChildStdout>,
    next_id: u64,
    /// Events read while waiting for replies, not yet claimed.
    events: Vec<Value>,
    profile: tempfile::TempDir,
}

/// What checking one page found.
#[derive(Debug, Default)]
pub struct PageReport {
    /// Everything wrong, one sentence each; empty means the page is good.
    pub problems: Vec<String>,
    /// Resolved `file:` links (fragment removed), for the caller to follow.
    pub links: Vec<String>,
    pub svgs: usize,
    /// Verdicts shown and matched against their verdict.json.
    pub verdicts: usize,
}

/// `file://` URL of an absolute path (percent-encoding what a URL path cannot hold).
pub fn file_url(path: &Path) -> String {
    let mut s = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The path of a `file:` URL (fragment and query removed, percent-decoded).
pub fn url_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    let rest = rest.split(['#', '?']).next().unwrap_or("");
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&rest[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out).to_string()))
}

/// Compare one shown verdict with the verdict.json it names.
pub fn verdict_problem(page_dir: &Path, of: &str, json_rel: &str, shown: &str) -> Option<String> {
    if json_rel.is_empty() {
        return Some(format!("the verdict shown for {of} names no verdict.json"));
    }
    let path = page_dir.join(json_rel);
    let v: Value = match std::fs::read_to_string(&path)
        .map_err(anyhow::Error::from)
        .and_then(|t| Ok(serde_json::from_str(&t)?))
    {
        Ok(v) => v,
        Err(e) => return Some(format!("{of}: cannot read {}: {e}", path.display())),
    };
    let scenario = v["scenario"].as_str().unwrap_or("");
    if scenario != of {
        return Some(format!("{of}: {} is the verdict of `{scenario}`", path.display()));
    }
    // Pages show `Judgement::word`, which is the spelling serde writes.
    let want = v["outcome"].as_str().unwrap_or("?");
    (shown.trim() != want).then(|| {
        format!(
            "{of}: the page shows `{}` but {} says `{want}`",
            shown.trim(),
            path.display()
        )
    })
}

/// What the page is asked about once loaded (one JSON string back).
const PROBE: &str = r#"JSON.stringify({
  svgs: [...document.querySelectorAll('svg')].filter(s => !s.parentElement || !s.parentElement.closest('svg')).map(s => {
    const r = s.getBoundingClientRect();
    const row = s.closest('[data-scenario]');
    return { w: r.width, h: r.height, where: row ? row.dataset.scenario : '' };
  }),
  links: [...document.querySelectorAll('a[href]')].map(a => ({ raw: a.getAttribute('href'), url: a.href })),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  verdicts: [...document.querySelectorAll('[data-verdict-of]')].map(e => ({
    of: e.dataset.verdictOf, json: e.dataset.verdictJson || '', shown: e.innerText
  })),
})"#;

impl Browser {
    /// Start headless Chromium with a throwaway profile.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = chromium().context(
            "No `chromium` on PATH: `cargo xtask check` installs Debian's package (or `apt-get install chromium`)",
        )?;
        let profile = tempfile::Builder::new().prefix("pvhdma-chromium-").tempdir()?;
        let mut cmd = Command::new("sh");
        // fd 3 is the browser's input (our stdin pipe), fd 4 its output (our
        // stdout pipe); its own stdout is not needed.
        cmd.arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg(&bin)
            .args([
                "--headless",
                "--remote-debugging-pipe",
                // Root in a container: Chromium's sandbox needs namespaces it may not get.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--mute-audio",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(process::log_stdio(&profile.path().join("chromium.stderr"))?);
        let mut proc = process::spawn("chromium", cmd)?;
        let tx = proc.child_mut().stdin.take().context("chromium's stdin")?;
        let rx = BufReader::new(proc.child_mut().stdout.take().context("chromium's stdout")?);
        let mut b = Self {
            _proc: proc,
            tx,
            rx,
            next_id: 0,
            events: Vec::new(),
            profile,
        };
        b.call(None, "Browser.getVersion", json!({})).await.with_context(|| {
            format!(
                "Chromium ({}) did not answer on its pipe; {}",
                bin.display(),
                b.stderr_tail()
            )
        })?;
        Ok(b)
    }

    fn stderr_tail(&self) -> String {
        let t = std::fs::read_to_string(self.profile.path().join("chromium.stderr")).unwrap_or_default();
        let lines: Vec<&str> = t.lines().rev().take(5).collect();
        format!("stderr: {}", lines.into_iter().rev().collect::<Vec<_>>().join(" | "))
    }

    async fn read_message(&mut self) -> anyhow::Result<Value> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(TIMEOUT, self.rx.read_until(0, &mut buf))
            .await
            .context("Chromium sent nothing for 60 s")??;
        anyhow::ensure!(n > 0 && buf.last() == Some(&0), "Chromium closed its pipe");
        buf.pop();
        serde_json::from_slice(&buf).context("Chromium sent a message that is not JSON")
    }

    /// One protocol call; events that arrive meanwhile are kept.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(0);
        self.tx.write_all(&bytes).await.context("writing to Chromium")?;
        self.tx.flush().await?;
        loop {
            let m = self.read_message().await?;
            if m.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(e) = m.get("error") {
                    anyhow::bail!("{method}: {e}");
                }
                return Ok(m["result"].clone());
            }
            if m.get("method").is_some() {
                self.events.push(m);
            }
        }
    }

    /// Wait for `method` on `session`.
    async fn wait_event(&mut self, session: &str, method: &str) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|e| e["method"] == method && e["sessionId"] == session)
            {
                return Ok(self.events.remove(i));
            }
            let m = tokio::time::timeout_at(deadline, self.read_message())
                .await
                .with_context(|| format!("no {method} within {TIMEOUT:?}"))??;
            if m.get("method").is_some() {
                self.events.push(m);
            }
        }
    }

    /// A new tab with the domains the checks listen to; returns (target, session).
    async fn open_tab(&mut self) -> anyhow::Result<(String, String)> {
        let t = self
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target = t["targetId"].as_str().context("no targetId")?.to_string();
        let a = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await?;
        let session = a["sessionId"].as_str().context("no sessionId")?.to_string();
        let s = Some(session.as_str());
        for m in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            self.call(s, m, json!({})).await?;
        }
        self.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        Ok((target, session))
    }

    /// Navigate and wait for the load event; `Err` text is the browser's reason.
    async fn load(&mut self, session: &str, url: &str) -> anyhow::Result<Result<(), String>> {
        let r = self.call(Some(session), "Page.navigate", json!({"url": url})).await?;
        if let Some(e) = r.get("errorText").and_then(Value::as_str).filter(|e| !e.is_empty()) {
            return Ok(Err(e.to_string()));
        }
        self.wait_event(session, "Page.loadEventFired").await?;
        Ok(Ok(()))
    }

    /// Load `page` (an absolute path) and check it; see the module comment.
    /// `expect_svg`: the page must show at least one plot.
    pub async fn check_page(
        &mut self,
        page: &Path,
        expect_svg: bool,
        screenshot: Option<&Path>,
    ) -> anyhow::Result<PageReport> {
        let page = std::path::absolute(page)?;
        let dir = page.parent().context("a page has a directory")?.to_path_buf();
        let url = file_url(&page);
        let mut rep = PageReport::default();
        let (target, session) = self.open_tab().await?;
        if let Err(e) = self.load(&session, &url).await? {
            rep.problems.push(format!("{} did not load: {e}", page.display()));
            self.call(None, "Target.closeTarget", json!({"targetId": target}))
                .await?;
            return Ok(rep);
        }
        let probe = self
            .call(
                Some(&session),
                "Runtime.evaluate",
                json!({"expression": PROBE, "returnByValue": true}),
            )
            .await?;
        let found: Value = serde_json::from_str(
            probe["result"]["value"]
                .as_str()
                .context("the probe returned nothing")?,
        )?;

        for s in found["svgs"].as_array().into_iter().flatten() {
            rep.svgs += 1;
            let (w, h) = (s["w"].as_f64().unwrap_or(0.0), s["h"].as_f64().unwrap_or(0.0));
            if w < 1.0 || h < 1.0 {
                let row = s["where"].as_str().filter(|x| !x.is_empty());
                rep.problems.push(format!(
                    "an SVG plot{} renders at {w}x{h}",
                    row.map(|r| format!(" (row {r})")).unwrap_or_default()
                ));
            }
        }
        if expect_svg && rep.svgs == 0 {
            rep.problems.push("no SVG plot on the page".into());
        }

        let ids: Vec<&str> = found["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for l in found["links"].as_array().into_iter().flatten() {
            let (raw, abs) = (l["raw"].as_str().unwrap_or(""), l["url"].as_str().unwrap_or(""));
            if let Some(frag) = raw.strip_prefix('#') {
                if !ids.contains(&frag) {
                    rep.problems.push(format!("link `{raw}` names no element on the page"));
                }
            } else if abs.starts_with("file://") {
                let target = abs.split('#').next().unwrap_or(abs).to_string();
                if !rep.links.contains(&target) {
                    rep.links.push(target);
                }
            } else {
                rep.problems.push(format!(
                    "link `{raw}` leaves the report ({abs}): pages must be self-contained"
                ));
            }
        }

        for v in found["verdicts"].as_array().into_iter().flatten() {
            rep.verdicts += 1;
            let (of, js, shown) = (
                v["of"].as_str().unwrap_or(""),
                v["json"].as_str().unwrap_or(""),
                v["shown"].as_str().unwrap_or(""),
            );
            rep.problems.extend(verdict_problem(&dir, of, js, shown));
        }

        if let Some(path) = screenshot {
            self.screenshot(&session, path).await?;
        }
        // Everything the page logged or fetched, up to now.
        let mine: Vec<Value> = {
            let (mine, rest) = std::mem::take(&mut self.events)
                .into_iter()
                .partition(|e| e["sessionId"] == session.as_str());
            self.events = rest;
            mine
        };
        rep.problems.extend(mine.iter().filter_map(event_problem));
        self.call(None, "Target.closeTarget", json!({"targetId": target}))
            .await?;

        // Each file link must load (a dead link is the browser's
        // ERR_FILE_NOT_FOUND); one tab for all of them.
        if !rep.links.is_empty() {
            let (t2, s2) = self.open_tab().await?;
            for link in rep.links.clone() {
                if let Err(e) = self.load(&s2, &link).await? {
                    rep.problems.push(format!("link {link} does not resolve: {e}"));
                }
            }
            self.events.retain(|e| e["sessionId"] != s2.as_str());
            self.call(None, "Target.closeTarget", json!({"targetId": t2})).await?;
        }
        Ok(rep)
    }

    /// A full-page PNG.
    async fn screenshot(&mut self, session: &str, path: &Path) -> anyhow::Result<()> {
        let m = self.call(Some(session), "Page.getLayoutMetrics", json!({})).await?;
        let size = &m["cssContentSize"];
        let w = size["width"].as_f64().unwrap_or(1280.0).clamp(1280.0, 4000.0);
        let h = size["height"].as_f64().unwrap_or(900.0).clamp(100.0, 16000.0);
        self.call(
            Some(session),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": w as u64, "height": h as u64, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        let shot = self
            .call(
                Some(session),
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().context("no screenshot data")?)
            .context("screenshot is not base64")?;
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(path, png).with_context(|| format!("Cannot write {}", path.display()))
    }
}

/// A problem an event reports, if it reports one.
pub fn event_problem(e: &Value) -> Option<String> {
    let p = &e["params"];
    match e["method"].as_str()? {
        "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
            let args: Vec<String> = p["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    a["value"]
                        .as_str()
                        .map(String::from)
                        .or_else(|| a["description"].as_str().map(String::from))
                        .unwrap_or_else(|| a["value"].to_string())
                })
                .collect();
            Some(format!("console error: {}", args.join(" ")))
        }
        "Runtime.exceptionThrown" => {
            let d = &p["exceptionDetails"];
            let text = d["exception"]["description"]
                .as_str()
                .or(d["text"].as_str())
                .unwrap_or("?");
            Some(format!("uncaught exception: {text}"))
        }
        "Log.entryAdded" if p["entry"]["level"] == "error" => Some(format!(
            "browser error: {} {}",
            p["entry"]["text"].as_str().unwrap_or("?"),
            p["entry"]["url"].as_str().unwrap_or("")
        )),
        "Network.requestWillBeSent" => {
            let url = p["request"]["url"].as_str().unwrap_or("");
            let local = ["file:", "data:", "about:"].iter().any(|s| url.starts_with(s));
            (!local).then(|| format!("the page fetches {url}: pages must be self-contained"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_round_trip() {
        let p = Path::new("/tmp/a b/r#1/report.html");
        let u = file_url(p);
        assert_eq!(u, "file:///tmp/a%20b/r%231/report.html");
        assert_eq!(url_path(&u).unwrap(), p);
        assert_eq!(url_path("file:///x/y.html#frag").unwrap(), Path::new("/x/y.html"));
        assert!(url_path("https://example.org/").is_none());
    }

    #[test]
    fn a_shown_verdict_must_match_its_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a")).unwrap();
        std::fs::write(
            d.path().join("a/verdict.json"),
            r#"{"scenario":"a","outcome":"expected_failure"}"#,
        )
        .unwrap();
        assert_eq!(
            verdict_problem(d.path(), "a", "a/verdict.json", " expected_failure\n"),
            None
        );
        let p = verdict_problem(d.path(), "a", "a/verdict.json", "pass").unwrap();
        assert!(p.contains("shows `pass`") && p.contains("`expected_failure`"), "{p}");
        let p = verdict_problem(d.path(), "b", "a/verdict.json", "expected_failure").unwrap();
        assert!(p.contains("verdict of `a`"), "{p}");
        assert!(verdict_problem(d.path(), "a", "", "pass")
            .unwrap()
            .contains("names no verdict.json"));
        assert!(verdict_problem(d.path(), "a", "nope.json", "pass")
            .unwrap()
            .contains("cannot read"));
    }

    #[test]
    fn events_that_are_problems() {
        let e = |m: &str, p: Value| json!({"method": m, "params": p});
        assert!(event_problem(&e(
            "Runtime.consoleAPICalled",
            json!({"type": "error", "args": [{"type": "string", "value": "boom"}]})
        ))
        .unwrap()
        .contains("boom"));
        assert_eq!(
            event_problem(&e("Runtime.consoleAPICalled", json!({"type": "log", "args": []}))),
            None
        );
        assert!(event_problem(&e(
            "Runtime.exceptionThrown",
            json!({"exceptionDetails": {"text": "Uncaught", "exception": {"description": "Error: x"}}})
        ))
        .unwrap()
        .contains("Error: x"));
        assert!(event_problem(&e(
            "Network.requestWillBeSent",
            json!({"request": {"url": "https://cdn.example/x.js"}})
        ))
        .is_some());
        assert_eq!(
            event_problem(&e(
                "Network.requestWillBeSent",
                json!({"request": {"url": "file:///x"}})
            )),
            None
        );
        assert!(event_problem(&e("Log.entryAdded", json!({"entry": {"level": "error", "text": "t"}}))).is_some());
    }
}
