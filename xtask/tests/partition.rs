//! The nightly runs each cell as two nextest hash partitions: together they
//! must run every scenario of the cell exactly once. And the two IOMMU cells
//! together must cover the whole catalog. Asked of the real `cargo nextest
//! list` (no VM boots), with the same `-p pvhdma-harness --test scenarios`
//! as `cargo xtask test`, so the scenarios binary it needs is the one that
//! command builds (a warm build is only cargo's freshness check).

use std::collections::BTreeSet;
use std::process::Command;

fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The scenarios nextest would run: `filter-match` is `matches`.
fn listed(iommu: Option<&str>, partition: Option<&str>) -> BTreeSet<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(workspace()).args([
        "nextest",
        "list",
        "-p",
        "pvhdma-harness",
        "--test",
        "scenarios",
        "--message-format",
        "json",
        "--cargo-quiet",
    ]);
    if let Some(p) = partition {
        c.args(["--partition", &format!("hash:{p}")]);
    }
    match iommu {
        Some(k) => c.env("PVHDMA_IOMMU", k),
        None => c.env_remove("PVHDMA_IOMMU"),
    };
    let out = c.output().expect("cargo nextest runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nextest's JSON");
    let mut names = BTreeSet::new();
    for suite in v["rust-suites"].as_object().expect("rust-suites").values() {
        for (name, case) in suite["testcases"].as_object().expect("testcases") {
            if case["filter-match"]["status"] == "matches" {
                names.insert(name.clone());
            }
        }
    }
    names
}

#[test]
fn two_partitions_run_every_scenario_of_a_cell_exactly_once() {
    let all = listed(None, None);
    assert!(all.len() >= 5, "{all:?}");
    let mut by_cell = BTreeSet::new();
    for iommu in [None, Some("intel"), Some("amd")] {
        let full = listed(iommu, None);
        let p1 = listed(iommu, Some("1/2"));
        let p2 = listed(iommu, Some("2/2"));
        let both: Vec<_> = p1.intersection(&p2).collect();
        assert!(both.is_empty(), "{iommu:?}: in both partitions: {both:?}");
        let union: BTreeSet<String> = p1.union(&p2).cloned().collect();
        assert_eq!(union, full, "{iommu:?}: the partitions' union is not the cell");
        if iommu.is_some() {
            by_cell.extend(full);
        }
    }
    // The IOMMU cells together run the whole catalog (none is lost).
    assert_eq!(by_cell, all);
}
