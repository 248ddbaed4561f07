//! `cargo xtask images`: build (or find in the cache) one image set.
//!
//! A set is: a QEMU wrapper for the tool root, Xen as a multiboot ELF, the
//! dom0 kernel, the pvhdma driver built against that kernel, the static agent,
//! and the base initramfs. Its cache key covers the recipe, the roots and
//! every source that goes into it, so a warm run does no work.

pub mod cache;
pub mod recipe;
pub mod roots;

mod dom0;
mod initramfs;

use anyhow::Context;
use pvhdma_harness::images::{workspace_root, Manifest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the user asked for.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub recipe: Option<PathBuf>,
    /// Use this Xen (ELF or gzipped ELF) instead of the recipe's.
    pub xen: Option<PathBuf>,
    /// Use the kernel built in this Linux tree (arch/x86/boot/bzImage; the
    /// driver is built against the tree).
    pub kernel_tree: Option<PathBuf>,
    /// Where to write the manifest (default target/pvhdma/images.json).
    pub manifest_out: Option<PathBuf>,
}

pub fn default_recipe() -> PathBuf {
    workspace_root().join("images/recipes/default.toml")
}

/// Build or find the set and point the manifest at it.
pub fn build(opts: &Options) -> anyhow::Result<Manifest> {
    let started = Instant::now();
    preflight()?;
    let ws = workspace_root();
    let recipe_path = opts.recipe.clone().unwrap_or_else(default_recipe);
    let recipe = recipe::Recipe::load(&recipe_path)?;

    let qemu_root = roots::ensure("qemu", &recipe.mirror, &recipe.qemu)?;
    let xen_root = match &opts.xen {
        Some(_) => None,
        None => Some(roots::ensure("xen", &recipe.mirror, &recipe.xen.root)?),
    };
    let dom0_root = roots::ensure("dom0", &recipe.mirror, &recipe.dom0.root)?;

    let mut key = cache::Key::new("set");
    key.str(&serde_json::to_string(&recipe)?);
    for root in [Some(&qemu_root), xen_root.as_ref(), Some(&dom0_root)]
        .into_iter()
        .flatten()
    {
        key.str(&root.display().to_string());
    }
    key.tree(&ws.join("images/driver"))?
        .tree(&ws.join("images/initramfs"))?
        .tree(&ws.join("images/agent"))?;
    key.file(&ws.join("Cargo.lock"))?;
    if let Some(x) = &opts.xen {
        key.file(x)?;
    }
    if let Some(t) = &opts.kernel_tree {
        key.file(&t.join("arch/x86/boot/bzImage"))?.file(&t.join(".config"))?;
    }
    let sets = cache::root().join("sets");
    let set = cache::entry(&sets, &key.hex(), |out| {
        assemble(out, &recipe, &qemu_root, xen_root.as_deref(), &dom0_root, opts)
    })?;
    let manifest = Manifest::load(&set.join("images.json"))?;
    let out = opts.manifest_out.clone().unwrap_or_else(Manifest::default_path);
    std::fs::create_dir_all(out.parent().expect("manifest path has a parent"))?;
    std::fs::copy(set.join("images.json"), &out).with_context(|| format!("Cannot write {}", out.display()))?;
    eprintln!(
        "[images] {} ready in {:.1?}: {}",
        recipe.name,
        started.elapsed(),
        out.display()
    );
    Ok(manifest)
}

fn preflight() -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        anyhow::bail!(
            "Building images needs root: mmdebstrap builds Debian roots and the driver is built in one with chroot.\n\
             Run `sudo -E cargo xtask images` once; the cache ({}) is then readable by every user,\n\
             and the tests themselves run as any user (set PVHDMA_CACHE to share one cache).",
            cache::root().display()
        );
    }
    crate::hostdeps::which("mmdebstrap").context("mmdebstrap is missing: apt-get install mmdebstrap")?;
    Ok(())
}

fn assemble(
    out: &Path,
    recipe: &recipe::Recipe,
    qemu_root: &Path,
    xen_root: Option<&Path>,
    dom0_root: &Path,
    opts: &Options,
) -> anyhow::Result<()> {
    let qemu = write_qemu_wrapper(out, qemu_root)?;
    let xen_src = match (&opts.xen, xen_root) {
        (Some(x), _) => x.clone(),
        (None, Some(root)) => roots::find_one(root, &recipe.xen.image)?,
        (None, None) => unreachable!("a xen root is built when no Xen is given"),
    };
    let xen = out.join("xen");
    dom0::unpack_xen(&xen_src, &xen)?;
    let kernel = dom0::kernel(out, dom0_root, &recipe.dom0.kernel, opts.kernel_tree.as_deref())?;
    let driver = dom0::build_driver(out, dom0_root, &kernel.version, opts.kernel_tree.as_deref())?;
    let agent = dom0::build_agent(out)?;
    let initrd = out.join("initrd.cpio");
    initramfs::write(&initrd, dom0_root, &driver, &agent)?;

    let mut versions = BTreeMap::new();
    versions.insert("recipe".into(), recipe.name.clone());
    versions.insert("xen".into(), dom0::xen_version(&xen_src));
    versions.insert("kernel".into(), kernel.version.clone());
    versions.insert("qemu".into(), dom0::qemu_version(&qemu)?);
    let manifest = Manifest {
        qemu,
        xen,
        kernel: kernel.image,
        kernel_version: kernel.version,
        initrd,
        versions,
        xen_cmdline: recipe.xen.cmdline.clone(),
    };
    // The manifest names the set's final directory, not this partial one.
    let final_dir = out.with_file_name(
        out.file_name()
            .unwrap()
            .to_string_lossy()
            .split(".partial-")
            .next()
            .unwrap(),
    );
    let text =
        serde_json::to_string_pretty(&manifest)?.replace(&out.display().to_string(), &final_dir.display().to_string());
    std::fs::write(out.join("images.json"), text)?;
    Ok(())
}

/// QEMU from the tool root runs on this host through the root's own dynamic
/// loader: no chroot, so paths (sockets, images) are the host's, and no root
/// is needed to run it.
fn write_qemu_wrapper(out: &Path, root: &Path) -> anyhow::Result<PathBuf> {
    let r = root.display();
    let script = format!(
        "#!/bin/sh\n\
         # QEMU from the pvhdma tool root at {r}, run through that root's loader.\n\
         export QEMU_MODULE_DIR={r}/usr/lib/x86_64-linux-gnu/qemu\n\
         exec {r}/lib64/ld-linux-x86-64.so.2 --library-path {r}/usr/lib/x86_64-linux-gnu \\\n  \
         {r}/usr/bin/qemu-system-x86_64 -L {r}/usr/share/qemu -L {r}/usr/share/seabios \"$@\"\n"
    );
    let path = out.join("qemu");
    std::fs::write(&path, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}
