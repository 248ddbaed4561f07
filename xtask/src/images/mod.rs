//! `cargo xtask images`: build (or find in the cache) one image set.
//!
//! A set is: a QEMU wrapper for the tool root, Xen as a multiboot ELF, the
//! dom0 kernel, the pvhdma driver built against that kernel, the static agent,
//! and the base initramfs; with a recipe's `[toolstack]`, also Xen's
//! toolstack archive and a guest's base initramfs, which only runs with
//! guests use. Its cache key covers the recipe, the roots and
//! every source that goes into it, so a warm run does no work.

pub mod cache;
pub mod kernel;
pub mod qemu;
pub mod recipe;
pub mod roots;

mod dom0;
mod initramfs;
mod toolstack;

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
    /// A patch series to apply before building the kernel from source.
    pub kernel_patches: Option<PathBuf>,
    /// Where to write the manifest (default target/pvhdma/images.json).
    pub manifest_out: Option<PathBuf>,
}

/// The kernel to build from source for these options, if any: a recipe
/// with `[kernel]`, a patch series, or a `--kernel-tree` that is not built
/// yet (no bzImage). A built tree without patches is used as it is.
pub fn source_kernel(recipe: &recipe::Recipe, opts: &Options) -> anyhow::Result<Option<kernel::Plan>> {
    let tree_is_built = opts
        .kernel_tree
        .as_ref()
        .is_some_and(|t| t.join("arch/x86/boot/bzImage").is_file());
    let from_source =
        recipe.kernel.is_some() || opts.kernel_patches.is_some() || (opts.kernel_tree.is_some() && !tree_is_built);
    if !from_source {
        anyhow::ensure!(
            opts.kernel_tree.is_some() || !recipe.dom0.kernel.is_empty(),
            "The recipe {} has neither dom0.kernel nor a [kernel] table",
            recipe.name
        );
        return Ok(None);
    }
    kernel_plan(recipe, opts).map(Some)
}

/// The kernel a recipe and the user's flags ask for. The old way
/// (`PVHDMA_FAST_BOOT=0`) builds it without the project's boot series, as
/// the harness then boots without its command-line cuts.
fn kernel_plan(recipe: &recipe::Recipe, opts: &Options) -> anyhow::Result<kernel::Plan> {
    let mut spec = recipe.kernel.clone().unwrap_or_default();
    if pvhdma_harness::fastboot::env_override()? == Some(false) {
        spec.boot_patches = false;
    }
    kernel::Plan::new(Some(&spec), opts.kernel_tree.as_deref(), opts.kernel_patches.as_deref())
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

    let qemu_root = roots::ensure("qemu", &recipe.mirror, &recipe.qemu.root)?;
    let built_qemu = if recipe.qemu.builds_from_source() {
        let plan = qemu::Plan::new(&recipe.qemu, &qemu_root)?;
        Some(qemu::ensure(&recipe.mirror, &plan)?)
    } else {
        None
    };
    let xen_root = match &opts.xen {
        Some(_) => None,
        None => Some(roots::ensure("xen", &recipe.mirror, &recipe.xen.root)?),
    };
    let dom0_root = roots::ensure("dom0", &recipe.mirror, &recipe.dom0.root)?;
    let built = match source_kernel(&recipe, opts)? {
        Some(plan) => Some(kernel::ensure(&recipe.mirror, &plan)?),
        None => None,
    };
    // The toolstack needs the Xen and backend drivers of the kernel dom0
    // boots: the dom0 root's kernel package or a build from source has them
    // where the set can find them; a user's tree, built in place, may not.
    let known_modules = opts.kernel_tree.is_none();
    let tool_root = match &recipe.toolstack {
        Some(t) if known_modules => Some(roots::ensure("toolstack", &recipe.mirror, &t.root)?),
        _ => None,
    };

    let mut key = cache::Key::new("set");
    key.str(&serde_json::to_string(&recipe)?);
    for root in [
        Some(&qemu_root),
        xen_root.as_ref(),
        Some(&dom0_root),
        tool_root.as_ref(),
    ]
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
    if let Some(q) = &built_qemu {
        // The entry's name is the hash of its source, flags and patches.
        key.str("qemu-build").str(&q.entry.display().to_string());
    }
    if let Some(b) = &built {
        // The entry's name is the hash of its source, fragment and patches.
        key.str(&b.entry.display().to_string());
    } else if let Some(t) = &opts.kernel_tree {
        key.file(&t.join("arch/x86/boot/bzImage"))?.file(&t.join(".config"))?;
    }
    let sets = cache::root().join("sets");
    let set = cache::entry(&sets, &key.hex(), |out| {
        assemble(
            out,
            &recipe,
            &Roots {
                qemu: &qemu_root,
                xen: xen_root.as_deref(),
                dom0: &dom0_root,
                toolstack: tool_root.as_deref(),
            },
            opts,
            built.as_ref(),
            built_qemu.as_ref(),
        )
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

/// `cargo xtask kernel`: build (or find) the kernel alone and say where it is.
/// It always builds from source: the recipe's `[kernel]` table or the defaults.
pub fn kernel_only(opts: &Options) -> anyhow::Result<kernel::Built> {
    preflight()?;
    let recipe_path = opts.recipe.clone().unwrap_or_else(default_recipe);
    let recipe = recipe::Recipe::load(&recipe_path)?;
    let plan = kernel_plan(&recipe, opts)?;
    let built = kernel::ensure(&recipe.mirror, &plan)?;
    println!("kernel {}: {}", built.release()?, built.describe());
    println!("  image: {}", built.bzimage().display());
    println!(
        "  tree:  {} (build), {} (source)",
        built.entry.join("build").display(),
        built.entry.join("src").display()
    );
    Ok(built)
}

/// `cargo xtask qemu`: build (or find) the recipe's QEMU alone, or with
/// `source_only` only its build root (tools and the source package).
pub fn qemu_only(opts: &Options, source_only: bool) -> anyhow::Result<()> {
    preflight()?;
    let recipe_path = opts.recipe.clone().unwrap_or_else(default_recipe);
    let recipe = recipe::Recipe::load(&recipe_path)?;
    if !recipe.qemu.builds_from_source() {
        println!(
            "{}: [qemu] has no patches or source_version; the set uses the root's QEMU",
            recipe.name
        );
        return Ok(());
    }
    let qemu_root = roots::ensure("qemu", &recipe.mirror, &recipe.qemu.root)?;
    let plan = qemu::Plan::new(&recipe.qemu, &qemu_root)?;
    if source_only {
        let root = qemu::ensure_root(&recipe.mirror, &plan)?;
        println!("qemu {}: source in {}", plan.version, root.display());
        return Ok(());
    }
    let built = qemu::ensure(&recipe.mirror, &plan)?;
    println!("qemu {}: {}", plan.version, built.describe());
    println!("  binary: {}", built.binary().display());
    Ok(())
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

/// The Debian roots a set is assembled from.
struct Roots<'a> {
    qemu: &'a Path,
    /// None when the user gave their own Xen.
    xen: Option<&'a Path>,
    dom0: &'a Path,
    /// None when the recipe has no toolstack or the kernel is a user's tree.
    toolstack: Option<&'a Path>,
}

fn assemble(
    out: &Path,
    recipe: &recipe::Recipe,
    from: &Roots,
    opts: &Options,
    built: Option<&kernel::Built>,
    built_qemu: Option<&qemu::Built>,
) -> anyhow::Result<()> {
    let (qemu_root, xen_root, dom0_root) = (from.qemu, from.xen, from.dom0);
    let binary = match built_qemu {
        Some(q) => {
            // Beside the wrapper, which finds it through its own path: the
            // set is built under a partial name and renamed into place.
            std::fs::copy(q.binary(), out.join("qemu-system-x86_64"))?;
            r#""$(dirname "$0")/qemu-system-x86_64""#.to_string()
        }
        None => qemu_root.join("usr/bin/qemu-system-x86_64").display().to_string(),
    };
    let qemu = write_qemu_wrapper(out, qemu_root, &binary)?;
    let xen_src = match (&opts.xen, xen_root) {
        (Some(x), _) => x.clone(),
        (None, Some(root)) => roots::find_one(root, &recipe.xen.image)?,
        (None, None) => unreachable!("a xen root is built when no Xen is given"),
    };
    let xen = out.join("xen");
    dom0::unpack_xen(&xen_src, &xen)?;
    let (kernel, driver, e1000) = match built {
        Some(b) => {
            let image = out.join("vmlinuz");
            std::fs::copy(b.bzimage(), &image)?;
            let kernel = dom0::Kernel {
                image,
                version: b.release()?,
            };
            (kernel, b.build_driver(out)?, Some(b.e1000()))
        }
        None => {
            let tree = opts.kernel_tree.as_deref();
            if let Some(t) = tree {
                kernel::check_host_compiler(t)?;
            }
            let kernel = dom0::kernel(out, dom0_root, &recipe.dom0.kernel, tree)?;
            let driver = dom0::build_driver(out, dom0_root, &kernel.version, tree)?;
            // A built tree's own e1000 matches its kernel; Debian's would not load.
            let e1000 = tree
                .map(|t| t.join("drivers/net/ethernet/intel/e1000/e1000.ko"))
                .filter(|p| p.is_file());
            (kernel, driver, e1000)
        }
    };
    let agent = dom0::build_agent(out)?;
    let initrd = out.join("initrd.cpio");
    initramfs::write(&initrd, dom0_root, &driver, &agent, e1000.as_deref())?;
    let (toolstack, guest_initrd) = match (&recipe.toolstack, from.toolstack) {
        (Some(spec), Some(root)) => {
            let build_dir = built.map(kernel::Built::build_dir);
            let modules = match &build_dir {
                Some(b) => toolstack::Modules::Built(b),
                None => toolstack::Modules::Root(dom0_root),
            };
            let archive = out.join("toolstack.cpio");
            toolstack::write(&archive, root, &spec.bin, modules)?;
            let guest = out.join("guest-initrd.cpio");
            toolstack::write_guest(&guest, dom0_root, modules, &agent)?;
            (Some(archive), Some(guest))
        }
        _ => (None, None),
    };

    let mut versions = BTreeMap::new();
    versions.insert("recipe".into(), recipe.name.clone());
    versions.insert("xen".into(), dom0::xen_version(&xen_src));
    versions.insert("kernel".into(), kernel.version.clone());
    let qemu_version = dom0::qemu_version(&qemu)?;
    match built_qemu {
        Some(q) => {
            versions.insert("qemu".into(), qemu_version_with_patches(&qemu_version, q.patches()));
            versions.insert("qemu_build".into(), q.describe());
            // What scenarios' `cells.qemu` is matched against.
            versions.insert(pvhdma_harness::matrix::QEMU_PATCHES_KEY.into(), q.patches().join(", "));
        }
        None => {
            versions.insert("qemu".into(), qemu_version);
        }
    }
    if let Some(b) = built {
        versions.insert("kernel_build".into(), b.describe());
    } else if let Some(t) = &opts.kernel_tree {
        // Otherwise nothing in the manifest would tell this kernel from a
        // packaged one of the same release.
        versions.insert(
            "kernel_build".into(),
            format!("{} (built tree, used as it is)", t.display()),
        );
    }
    let manifest = Manifest {
        qemu,
        xen,
        kernel: kernel.image,
        kernel_version: kernel.version,
        initrd,
        toolstack,
        guest_initrd,
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

/// The manifest's `qemu` version of a built QEMU: what the binary says,
/// plus the patches, which its own version string does not name.
pub fn qemu_version_with_patches(version: &str, patches: &[String]) -> String {
    if patches.is_empty() {
        return format!("{version} [pvhdma build, no patches]");
    }
    format!("{version} [pvhdma patches: {}]", patches.join(", "))
}

/// QEMU from the tool root runs on this host through the root's own dynamic
/// loader: no chroot, so paths (sockets, images) are the host's, and no root
/// is needed to run it. `binary` (as the shell should see it) is the root's
/// own or one built from source against the same suite's libraries;
/// firmware (`-L`) is always the root's.
fn write_qemu_wrapper(out: &Path, root: &Path, binary: &str) -> anyhow::Result<PathBuf> {
    let r = root.display();
    let b = binary;
    let script = format!(
        "#!/bin/sh\n\
         # QEMU from the pvhdma tool root at {r}, run through that root's loader.\n\
         export QEMU_MODULE_DIR={r}/usr/lib/x86_64-linux-gnu/qemu\n\
         exec {r}/lib64/ld-linux-x86-64.so.2 --library-path {r}/usr/lib/x86_64-linux-gnu \\\n  \
         {b} -L {r}/usr/share/qemu -L {r}/usr/share/seabios \"$@\"\n"
    );
    let path = out.join("qemu");
    std::fs::write(&path, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}
