//! The docs speak the contract's run-end vocabulary: every list of run-end
//! kinds names exactly [`EndKind::ALL`], and no doc, scenario or config uses
//! a spelling that is not one of them.

use pvhdma_contract::run_end::EndKind;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The backticked words of the text from `after` up to the next `.`, `;` or `|`.
fn listed_after(text: &str, after: &str) -> BTreeSet<String> {
    let start = text.find(after).unwrap_or_else(|| panic!("{after:?} not found")) + after.len();
    let rest = &text[start..];
    let end = rest.find(['.', '|', ';']).unwrap_or(rest.len());
    rest[..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.contains(' '))
        .map(String::from)
        .collect()
}

fn names(include_finished: bool) -> BTreeSet<String> {
    EndKind::ALL
        .into_iter()
        .filter(|k| include_finished || k.is_failure())
        .map(|k| k.name().to_string())
        .collect()
}

#[test]
fn readme_lists_every_failure_kind() {
    assert_eq!(listed_after(&read("README.md"), "with a named kind:"), names(false));
}

#[test]
fn scenario_language_lists_every_kind() {
    assert_eq!(
        listed_after(&read("scenarios/README.md"), "one of the run-end kinds:"),
        names(true)
    );
}

/// Words that look like run-end kinds (`dom0_*`, `xen_*`, `*_timeout`, ...)
/// but are not one: a second spelling of one thing.
fn stray_kinds(text: &str) -> Vec<String> {
    let known = names(true);
    let shapes = ["dom0_", "xen_", "qemu_", "device_", "agent_", "console_", "linux_"];
    let mut out = vec![];
    for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let kindlike = shapes.iter().any(|s| w.starts_with(s))
            && [
                "crash", "crashed", "halt", "halted", "panic", "panicked", "exited", "failed", "lost",
            ]
            .iter()
            .any(|t| w.ends_with(t));
        if (kindlike || w.ends_with("_timeout")) && !known.contains(w) {
            out.push(w.to_string());
        }
    }
    out
}

#[test]
fn no_second_spelling_anywhere() {
    let mut files = vec![root().join("README.md"), root().join(".config/nextest.toml")];
    for dir in ["docs", "scenarios"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap().flatten() {
            let p = e.path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("md" | "yaml" | "json")) {
                files.push(p);
            }
        }
    }
    let bad: Vec<String> = files
        .iter()
        .flat_map(|p: &PathBuf| {
            let text = std::fs::read_to_string(p).unwrap();
            let rel = p.strip_prefix(root()).unwrap_or(Path::new("")).display().to_string();
            stray_kinds(&text).into_iter().map(move |w| format!("{rel}: {w}"))
        })
        .collect();
    assert!(bad.is_empty(), "not run-end kinds: {bad:?}");
}

#[test]
fn the_stray_check_sees_an_old_spelling() {
    assert_eq!(stray_kinds("ended as `dom0_crashed` twice"), vec!["dom0_crashed"]);
    assert!(stray_kinds("ended as `dom0_crash`, then `boot_timeout`").is_empty());
}
