//! Command-line flags, parsed by hand: xtask keeps its dependencies few.

use crate::images::Options as ImageOptions;
use anyhow::Context;
use std::path::PathBuf;

pub const HELP: &str = "\
cargo xtask <command>

Commands:
  images [--recipe FILE] [--xen FILE] [--kernel-tree DIR]
        Build (or find in the cache) the Xen + PVH dom0 image set.
        --xen: your own Xen (ELF or .gz); --kernel-tree: your own built Linux tree.
  help  This text.
";

pub enum Cmd {
    Help,
    Images(ImageOptions),
}

pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Cmd> {
    let Some(cmd) = args.next() else { return Ok(Cmd::Help) };
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "help" | "-h" | "--help" => Ok(Cmd::Help),
        "images" => Ok(Cmd::Images(image_options(&rest)?)),
        other => anyhow::bail!("Unknown command `{other}`; try `cargo xtask help`"),
    }
}

/// Parse the image flags out of `args`, leaving others to the caller.
pub fn image_options(args: &[String]) -> anyhow::Result<ImageOptions> {
    let mut o = ImageOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> anyhow::Result<PathBuf> {
            Ok(PathBuf::from(
                it.next().with_context(|| format!("{name} needs a value"))?,
            ))
        };
        match a.as_str() {
            "--recipe" => o.recipe = Some(value("--recipe")?),
            "--xen" => o.xen = Some(std::path::absolute(value("--xen")?)?),
            "--kernel-tree" => o.kernel_tree = Some(std::path::absolute(value("--kernel-tree")?)?),
            other => anyhow::bail!("Unknown flag `{other}` for images; try `cargo xtask help`"),
        }
    }
    Ok(o)
}
