//! dom0 kernels built from source: `cargo xtask kernel`, a recipe's
//! `[kernel]` table, `--kernel-tree SRC` and `--kernel-patches DIR`.
//!
//! The source is Debian's `linux-source-*` package of the build root's suite,
//! or the user's tree (copied, never touched). A patch series is applied in
//! name order, the project's Kconfig fragment (images/kernel/pvhdma.config)
//! goes on top of `make tinyconfig`, `make olddefconfig` settles it, and the
//! build fails if any line of the fragment did not survive. Everything runs
//! in a Debian build root under chroot, with the cache entry bind-mounted at
//! the fixed path `/kbuild`: the tree's absolute paths never name the cache's
//! partial or final directory, so an entry stays valid after it is renamed
//! into place, and the driver is later built against it with the same
//! compiler. An entry is `src/` (patched source) and `build/` (`O=` output).

use super::cache;
use super::recipe::RootSpec;
use anyhow::Context;
use pvhdma_harness::images::workspace_root;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bump when the build steps change in a way the inputs do not show.
const KERNEL_BUILDER: &str = "pvhdma-kernel-1";

/// Where an entry appears inside the build root.
const MOUNT: &str = "kbuild";

/// A recipe's `[kernel]` table: build the dom0 kernel from source. Every
/// field has a default, so an empty `[kernel]` table builds Debian trixie's
/// Linux 6.12 source with the project's fragment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// The build root's Debian suite.
    #[serde(default = "default_suite")]
    pub suite: String,
    /// Debian's source package: its tarball, /usr/src/<source>.tar.xz in the
    /// build root, is the source unless `--kernel-tree` gives one.
    #[serde(default = "default_source")]
    pub source: String,
    /// Build tools installed into the build root next to `source`.
    #[serde(default = "default_tools")]
    pub packages: Vec<String>,
    /// The Kconfig fragment, relative to the workspace.
    #[serde(default = "default_config")]
    pub config: String,
    /// A patch series directory, relative to the workspace (applied before
    /// any `--kernel-patches` series).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patches: Option<String>,
    /// Whether the project's boot-time series ([`BOOT_SERIES`]) goes first.
    #[serde(default = "yes")]
    pub boot_patches: bool,
}

/// The project's boot-time series: changes that only shorten a Xen
/// domain's boot under emulation (each patch's header says what it changes
/// and why no DMA path depends on it).
pub const BOOT_SERIES: &str = "images/kernel/boot";

fn yes() -> bool {
    true
}

fn default_suite() -> String {
    "trixie".into()
}
fn default_source() -> String {
    "linux-source-6.12".into()
}
fn default_config() -> String {
    "images/kernel/pvhdma.config".into()
}
fn default_tools() -> Vec<String> {
    // libc6-dev: kbuild's host programs (fixdep, kconfig); libelf-dev:
    // objtool; libssl-dev: sign-file and certificate tools; bc, bison, flex,
    // perl: kbuild's generators.
    [
        "make",
        "gcc",
        "libc6-dev",
        "bc",
        "bison",
        "flex",
        "perl",
        "libelf-dev",
        "libssl-dev",
        "cpio",
        "xz-utils",
        "kmod",
    ]
    .map(String::from)
    .to_vec()
}

impl Default for KernelSpec {
    fn default() -> Self {
        Self {
            suite: default_suite(),
            source: default_source(),
            packages: default_tools(),
            config: default_config(),
            patches: None,
            boot_patches: true,
        }
    }
}

impl KernelSpec {
    /// The build root: the tools plus the source package.
    pub fn root_spec(&self) -> RootSpec {
        let mut packages = self.packages.clone();
        packages.push(self.source.clone());
        RootSpec {
            suite: self.suite.clone(),
            packages,
            backports: vec![],
        }
    }
}

/// Where the source comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The build root's /usr/src/<package>.tar.xz.
    Package(String),
    /// The user's tree, copied without its VCS metadata.
    Tree(PathBuf),
}

/// One kernel to build: everything that goes into its cache key.
#[derive(Debug, Clone)]
pub struct Plan {
    pub spec: KernelSpec,
    pub source: Source,
    /// The series, already in application order.
    pub patches: Vec<PathBuf>,
    pub fragment: PathBuf,
}

impl Plan {
    /// The plan for a recipe's `[kernel]` table (or the defaults) plus the
    /// user's tree and patch series.
    pub fn new(spec: Option<&KernelSpec>, tree: Option<&Path>, user_patches: Option<&Path>) -> anyhow::Result<Plan> {
        let spec = spec.cloned().unwrap_or_default();
        let ws = workspace_root();
        let mut patches = boot_series(&spec, tree)?;
        if let Some(dir) = &spec.patches {
            patches.extend(series(&ws.join(dir))?);
        }
        if let Some(dir) = user_patches {
            patches.extend(series(dir)?);
        }
        let source = match tree {
            Some(t) => {
                anyhow::ensure!(
                    t.join("Makefile").is_file() && t.join("Kconfig").is_file(),
                    "{} is not a Linux source tree (no Makefile and Kconfig at its top)",
                    t.display()
                );
                Source::Tree(t.to_path_buf())
            }
            None => Source::Package(spec.source.clone()),
        };
        let fragment = ws.join(&spec.config);
        anyhow::ensure!(fragment.is_file(), "Kconfig fragment {} is missing", fragment.display());
        Ok(Plan {
            spec,
            source,
            patches,
            fragment,
        })
    }

    /// e.g. `linux-source-6.12 + 0001-x.patch (fragment images/kernel/pvhdma.config)`.
    pub fn describe(&self) -> String {
        let mut s = match &self.source {
            Source::Package(p) => p.clone(),
            Source::Tree(t) => t.display().to_string(),
        };
        for p in &self.patches {
            s += &format!(" + {}", p.file_name().unwrap_or_default().to_string_lossy());
        }
        s + &format!(" (fragment {})", self.spec.config)
    }

    /// The same plan without patches: the entry a patched build starts from.
    fn unpatched(&self) -> Plan {
        Plan {
            patches: vec![],
            ..self.clone()
        }
    }

    /// The cache key: builder version, build root, source identity, fragment
    /// and every patch (name and content, in order). For a tree, the key
    /// found by the last full hash is reused while no file of the tree
    /// changed (`key_memo`, `stamp`).
    pub fn key(&self, root: &Path) -> anyhow::Result<String> {
        self.key_memo(root, &cache::root().join("tree-keys"), std::time::SystemTime::now())
    }

    fn key_memo(&self, root: &Path, memo: &Path, now: std::time::SystemTime) -> anyhow::Result<String> {
        let Source::Tree(t) = &self.source else {
            return self.content_key(root);
        };
        let started = Instant::now();
        let (stamp, settled) = self.stamp(root, t, now)?;
        let memo_file = memo.join(&stamp);
        if let Ok(key) = std::fs::read_to_string(&memo_file) {
            eprintln!(
                "[kernel] the tree {} is unchanged since it was hashed ({:.1?})",
                t.display(),
                started.elapsed()
            );
            return Ok(key.trim().to_string());
        }
        let key = self.content_key(root)?;
        eprintln!("[kernel] hashed the tree {} in {:.1?}", t.display(), started.elapsed());
        if settled {
            // Written whole or not at all: a torn memo would name a wrong key.
            std::fs::create_dir_all(memo)?;
            let tmp = memo.join(format!("{stamp}.tmp-{}", std::process::id()));
            std::fs::write(&tmp, &key)?;
            std::fs::rename(&tmp, &memo_file)?;
        }
        Ok(key)
    }

    /// What the key depends on, learned without reading the tree's files:
    /// everything `content_key` reads except the tree's contents, which
    /// stand in as each file's path, size, inode, modification and change
    /// time. An edit changes ctime even when a tool restores mtime, and a
    /// copied tree has new inodes, so a stamp never outlives the content it
    /// was taken with. `settled` is false while a file changed within the
    /// last two seconds: timestamps are coarser than that, and a file still
    /// being written could change again without changing its stamp.
    fn stamp(&self, root: &Path, tree: &Path, now: std::time::SystemTime) -> anyhow::Result<(String, bool)> {
        use std::os::unix::fs::MetadataExt;
        let mut k = cache::Key::new("kernel-tree-stamp");
        k.str(KERNEL_BUILDER).str(&root.display().to_string());
        k.str(&std::fs::canonicalize(tree)?.display().to_string());
        let now = now.duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
        let mut settled = true;
        for rel in tree_files(tree)? {
            let m = std::fs::symlink_metadata(tree.join(&rel))?;
            k.str(&rel.display().to_string()).str(&format!(
                "{} {} {}.{} {}.{}",
                m.size(),
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            ));
            settled &= m.mtime().max(m.ctime()) < now - 2;
        }
        k.str("fragment").bytes(&std::fs::read(&self.fragment)?);
        for p in &self.patches {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            k.str("patch").str(&name).bytes(&std::fs::read(p)?);
        }
        Ok((k.hex(), settled))
    }

    /// The key of what the build compiles apart from its configuration
    /// (build root, source package, patches), which a build with another
    /// fragment can start from (`cache::config_seed`). `None` for a tree:
    /// hashing it again for a shortcut would cost more than it saves.
    fn source_key(&self, root: &Path) -> anyhow::Result<Option<String>> {
        let Source::Package(p) = &self.source else {
            return Ok(None);
        };
        let mut k = cache::Key::new("kernel-source");
        k.str(KERNEL_BUILDER).str(&root.display().to_string());
        k.str("package").file(&tarball(root, p))?;
        for p in &self.patches {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            k.str("patch").str(&name).bytes(&std::fs::read(p)?);
        }
        Ok(Some(k.hex()))
    }

    fn content_key(&self, root: &Path) -> anyhow::Result<String> {
        let mut k = cache::Key::new("kernel");
        k.str(KERNEL_BUILDER).str(&root.display().to_string());
        match &self.source {
            Source::Package(p) => {
                k.str("package");
                k.file(&tarball(root, p))?;
            }
            Source::Tree(t) => {
                eprintln!("[kernel] hashing the tree {} for the cache key", t.display());
                k.str("tree");
                hash_tree(&mut k, t)?;
            }
        }
        k.str("fragment").bytes(&std::fs::read(&self.fragment)?);
        for p in &self.patches {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            k.str("patch").str(&name).bytes(&std::fs::read(p)?);
        }
        Ok(k.hex())
    }
}

/// The boot-time series for one plan, first in its patches: none when the
/// spec says `boot_patches = false` (a recipe's choice, or the old way's:
/// `images::kernel_plan` turns it off for `PVHDMA_FAST_BOOT=0`). A tree
/// of the user's gets each patch only if it applies to the tree as it
/// stands (a dry run, which writes nothing): a tree that has the change
/// already, or has moved past it, is built as it is, and the build says so.
fn boot_series(spec: &KernelSpec, tree: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    if !spec.boot_patches {
        return Ok(vec![]);
    }
    let all = series(&workspace_root().join(BOOT_SERIES))?;
    let Some(tree) = tree else {
        return Ok(all);
    };
    let mut kept = Vec::new();
    for p in all {
        let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
        if gnu_patch(tree, &p, true)?.status.success() {
            kept.push(p);
        } else {
            eprintln!(
                "[kernel] boot patch {name} does not apply to {}: built without it",
                tree.display()
            );
        }
    }
    Ok(kept)
}

/// Build products by name, wherever they are.
const PRODUCTS: [&str; 7] = [".o", ".ko", ".a", ".mod", ".mod.c", ".order", ".symvers"];

/// The source files of a tree, relative and sorted. Dot files (`.git`,
/// kbuild's `.*.cmd`, an in-tree `.config`) and object files are left out:
/// they are not source, and the copy is cleaned with `make mrproper` when
/// the tree was built in place. In a git checkout, git says what is source
/// (`git_files`), so an in-place build's other products (vmlinux, bzImage,
/// generated headers, host tools) leave the key alone.
fn tree_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if let Some(files) = git_files(dir) {
        return Ok(files);
    }
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        for e in std::fs::read_dir(dir).with_context(|| format!("Cannot list {}", dir.display()))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || PRODUCTS.iter().any(|s| name.ends_with(s)) {
                continue;
            }
            if e.file_type()?.is_dir() {
                walk(base, &e.path(), out)?;
            } else {
                out.push(e.path().strip_prefix(base)?.to_path_buf());
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    Ok(files)
}

/// The files of a git checkout rooted at `dir` that git does not ignore
/// (tracked, or new and not ignored), present on disk, with the same dot
/// file and product rules as the walk: for a tree that was never built the
/// list is the walk's, so its key does not depend on having a `.git`.
/// None when `dir` is not the top of a checkout or git cannot answer
/// (not installed, a repository of another owner): then the tree is walked.
fn git_files(dir: &Path) -> Option<Vec<PathBuf>> {
    if !dir.join(".git").exists() {
        return None;
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| PathBuf::from(String::from_utf8_lossy(f).into_owned()))
        .filter(|rel| {
            let hidden = rel
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
            let name = rel.file_name().unwrap_or_default().to_string_lossy();
            !hidden && !PRODUCTS.iter().any(|s| name.ends_with(s))
        })
        // A tracked file deleted in the work tree is not part of the source.
        .filter(|rel| std::fs::symlink_metadata(dir.join(rel)).is_ok_and(|m| !m.is_dir()))
        .collect();
    files.sort();
    files.dedup();
    Some(files)
}

/// Every source file of a tree, by relative path and content (a symlink by
/// its target), in sorted order.
fn hash_tree(k: &mut cache::Key, dir: &Path) -> anyhow::Result<()> {
    for rel in tree_files(dir)? {
        let p = dir.join(&rel);
        k.str(&rel.display().to_string());
        if p.is_symlink() {
            k.str("symlink").str(&std::fs::read_link(&p)?.display().to_string());
        } else {
            k.bytes(&std::fs::read(&p).with_context(|| format!("Cannot read {}", p.display()))?);
        }
    }
    Ok(())
}

fn tarball(root: &Path, package: &str) -> PathBuf {
    root.join("usr/src").join(format!("{package}.tar.xz"))
}

/// A built kernel: its cache entry and the root it was built in.
#[derive(Debug, Clone)]
pub struct Built {
    pub entry: PathBuf,
    pub root: PathBuf,
    /// The source and the series, for the manifest's versions.
    what: String,
}

impl Built {
    pub fn describe(&self) -> String {
        self.what.clone()
    }

    pub fn bzimage(&self) -> PathBuf {
        self.entry.join("build/arch/x86/boot/bzImage")
    }

    pub fn release(&self) -> anyhow::Result<String> {
        let p = self.entry.join("build/include/config/kernel.release");
        Ok(std::fs::read_to_string(&p)
            .with_context(|| format!("Cannot read {}", p.display()))?
            .trim()
            .to_string())
    }

    pub fn e1000(&self) -> PathBuf {
        self.build_dir().join("drivers/net/ethernet/intel/e1000/e1000.ko")
    }

    /// The `O=` directory: modules under their source paths, and
    /// `modules.builtin`.
    pub fn build_dir(&self) -> PathBuf {
        self.entry.join("build")
    }

    /// Build the pvhdma driver against this kernel, in its build root, with
    /// the compiler that built the kernel.
    pub fn build_driver(&self, out: &Path) -> anyhow::Result<PathBuf> {
        let src = workspace_root().join("images/driver");
        let release = self.release()?;
        eprintln!("[images] building the pvhdma driver for {release} (source-built)");
        let inner = format!("tmp/pvhdma-driver-{}", std::process::id());
        let dir = self.root.join(&inner);
        let _ = std::fs::remove_dir_all(&dir);
        super::dom0::copy_dir(&src, &dir)?;
        let log = out.join("driver-build.log");
        let result = in_root(
            &self.root,
            &self.entry,
            &format!("make -C /{MOUNT}/build M=/{inner} modules"),
            &log,
            "driver",
        );
        let ko = out.join("pvhdma.ko");
        let copied = result.and_then(|_| Ok(std::fs::copy(dir.join("pvhdma.ko"), &ko)?));
        let _ = std::fs::remove_dir_all(&dir);
        copied.with_context(|| format!("Building the driver failed; log: {}", log.display()))?;
        Ok(ko)
    }
}

/// Build the kernel of `plan`, or find it in the cache.
pub fn ensure(mirror: &str, plan: &Plan) -> anyhow::Result<Built> {
    // From the start: on a warm run, the build root and the key are the
    // whole cost, and "ready in" is the claim a warm run is judged by.
    let started = Instant::now();
    let root = super::roots::ensure("kernel-build", mirror, &plan.spec.root_spec())?;
    if let Source::Package(p) = &plan.source {
        anyhow::ensure!(
            tarball(&root, p).is_file(),
            "{} has no {}: is `{p}` a linux-source package?",
            root.display(),
            tarball(&root, p).display()
        );
    }
    let key = plan.key(&root)?;
    let dir = cache::root().join("kernels");
    let source_key = plan.source_key(&root)?;
    let seed = match cache::patched_seed(&dir, &key, !plan.patches.is_empty(), || plan.unpatched().key(&root))? {
        Some(unpatched) => Some(Seed::Unpatched(unpatched)),
        None => source_key
            .as_deref()
            .and_then(|s| cache::config_seed(&dir, &key, s))
            .map(Seed::OtherConfig),
    };
    let entry = cache::entry(&dir, &key, |out| {
        build(&root, plan, out, seed.as_ref(), &out.with_extension("log"))
    })?;
    if let Some(s) = &source_key {
        cache::record_source_key(&entry, s);
    }
    let built = Built {
        entry,
        root,
        what: plan.describe(),
    };
    eprintln!(
        "[kernel] {} ready in {:.1?}: {}",
        built.release()?,
        started.elapsed(),
        built.bzimage().display()
    );
    Ok(built)
}

/// A cached build that a new one is copied from, so that make recompiles
/// only what differs (the build runs at the same path in the chroot).
#[derive(Debug)]
enum Seed {
    /// The same source and fragment without the patches: the patches go on
    /// top, the configuration stays.
    Unpatched(PathBuf),
    /// The same source and patches with another fragment: the configuration
    /// is made again from tinyconfig, the source stays.
    OtherConfig(PathBuf),
}

fn build(root: &Path, plan: &Plan, out: &Path, seed: Option<&Seed>, log: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let _ = std::fs::remove_file(log);
    let phase = |what: &str| eprintln!("[kernel] {:>5}s {what}", started.elapsed().as_secs());
    let src = out.join("src");
    let (copy, what) = match seed {
        Some(Seed::Unpatched(p)) => (Some(p), "the unpatched build"),
        Some(Seed::OtherConfig(p)) => (Some(p), "the build of the same source with another fragment"),
        None => (None, ""),
    };
    let fresh_config = !matches!(seed, Some(Seed::Unpatched(_)));
    match (copy, &plan.source) {
        (Some(seed), _) => {
            phase(&format!("source: copying {what} {}", seed.display()));
            run(Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", seed.display()))
                .arg(out))?;
            // Its key is not this entry's.
            let _ = std::fs::remove_file(out.join(cache::SOURCE_KEY_FILE));
        }
        (None, Source::Package(p)) => {
            phase(&format!("source: unpacking {p}"));
            std::fs::create_dir_all(&src)?;
            run(Command::new("tar")
                .arg("-C")
                .arg(&src)
                .arg("--strip-components=1")
                .arg("-xf")
                .arg(tarball(root, p)))?;
        }
        (None, Source::Tree(t)) => {
            phase(&format!("source: copying {}", t.display()));
            std::fs::create_dir_all(&src)?;
            let script = r#"tar -C "$1" --exclude-vcs -cf - . | tar -C "$2" -xf -"#;
            run(Command::new("sh").args(["-c", script, "sh"]).arg(t).arg(&src))?;
        }
    }
    // A build with another fragment has the patches applied already.
    if !plan.patches.is_empty() && !matches!(seed, Some(Seed::OtherConfig(_))) {
        phase(&format!("patches: applying {}", plan.patches.len()));
        apply_series_recorded(&src, &plan.patches, out).map_err(|e| {
            if plan
                .patches
                .iter()
                .any(|p| p.starts_with(workspace_root().join(BOOT_SERIES)))
            {
                e.context(format!(
                    "the project's boot series ({BOOT_SERIES}/) went on first; PVHDMA_FAST_BOOT=0 builds without it"
                ))
            } else {
                e
            }
        })?;
    }
    std::fs::create_dir_all(out.join("build"))?;
    if copy.is_none() {
        // An in-tree build leaves products an `O=` build refuses to use.
        if src.join(".config").exists() || src.join("include/config").exists() {
            phase("source: make mrproper (the tree was built in place)");
            in_root(root, out, &format!("make -C /{MOUNT}/src mrproper"), log, "mrproper")?;
        }
    }
    if fresh_config {
        // Over a seed's .config too: kconfig then marks only the symbols
        // whose value changed, and make rebuilds only what uses them.
        phase("config: make tinyconfig");
        in_root(
            root,
            out,
            &format!("make -C /{MOUNT}/src O=/{MOUNT}/build tinyconfig"),
            log,
            "config",
        )?;
    }
    phase(&format!(
        "config: fragment {}, make olddefconfig",
        plan.fragment.display()
    ));
    let fragment = std::fs::read_to_string(&plan.fragment)?;
    let config_path = out.join("build/.config");
    if fresh_config {
        let mut config = std::fs::OpenOptions::new().append(true).open(&config_path)?;
        writeln!(config, "\n# pvhdma fragment\n{fragment}")?;
    }
    in_root(
        root,
        out,
        &format!("make -C /{MOUNT}/src O=/{MOUNT}/build olddefconfig"),
        log,
        "config",
    )?;
    let config = std::fs::read_to_string(&config_path)?;
    check_fragment(&fragment, &config).with_context(|| {
        format!(
            "The fragment {} did not survive olddefconfig (missing dependencies?)",
            plan.fragment.display()
        )
    })?;
    phase("build: make -j2 bzImage modules");
    in_root(
        root,
        out,
        &format!("nice -n 10 make -C /{MOUNT}/src O=/{MOUNT}/build -j2 bzImage modules"),
        log,
        "build",
    )
    .with_context(|| format!("The kernel build failed; log: {}", log.display()))?;
    phase("done");
    Ok(())
}

/// Run `script` in `root` under chroot, with `entry` bind-mounted at
/// /kbuild and /proc mounted, in a private mount namespace that ends with
/// the command (nothing stays mounted in the cache). Output goes to `log`;
/// a progress line with the elapsed time and the last output line is
/// printed every 20 s.
fn in_root(root: &Path, entry: &Path, script: &str, log: &Path, phase: &str) -> anyhow::Result<()> {
    in_root_at(root, entry, MOUNT, script, log, phase, "kernel")
}

/// [`in_root`] with the entry at `/<mount>` and progress lines tagged
/// `[<tag>]`, for other builds in a Debian build root (QEMU's).
pub(super) fn in_root_at(
    root: &Path,
    entry: &Path,
    mount: &str,
    script: &str,
    log: &Path,
    phase: &str,
    tag: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(root.join(mount))?;
    let wrapper = format!(
        r#"mount --bind "$2" "$1/{mount}" && mount -t proc proc "$1/proc" && exec chroot "$1" sh -c "$3 2>&1""#
    );
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &wrapper, "sh"])
        .arg(root)
        .arg(entry)
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("Cannot run unshare")?;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(file, "### {script}")?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        writeln!(file, "{line}")?;
        if last_report.elapsed() >= Duration::from_secs(20) {
            eprintln!("[{tag}]   {phase} {}s: {}", started.elapsed().as_secs(), line.trim());
            last_report = Instant::now();
        }
        tail.push(line);
        if tail.len() > 30 {
            tail.remove(0);
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(
        status.success(),
        "`{script}` failed ({status}); last lines:\n{}",
        tail.join("\n")
    );
    Ok(())
}

/// The patch files of a series directory, in name order: `*.patch`,
/// `*.diff`, `*.mbox` (git format-patch output, a mailbox of patches, or plain
/// diffs). Files without a diff (a cover letter) are left out.
pub fn series(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("Cannot read the patch directory {}", dir.display()))? {
        let p = e?.path();
        let is_patch = p
            .extension()
            .is_some_and(|x| x == "patch" || x == "diff" || x == "mbox");
        if p.is_file() && is_patch {
            files.push(p);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let text = std::fs::read(&p)?;
        let has_diff = text
            .split(|b| *b == b'\n')
            .any(|l| l.starts_with(b"diff ") || l.starts_with(b"--- "));
        if has_diff {
            out.push(p);
        } else {
            eprintln!("[kernel] {}: no diff in it (a cover letter?), skipped", p.display());
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "{} holds no patches (*.patch, *.diff or *.mbox files with a diff)",
        dir.display()
    );
    Ok(out)
}

/// [`apply_series`], then name the patches in order in the cache entry
/// `out` (`patches.txt`), so an entry says what it was built with.
pub fn apply_series_recorded(src: &Path, patches: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    apply_series(src, patches)?;
    let names: Vec<String> = patches
        .iter()
        .map(|p| p.file_name().unwrap_or_default().to_string_lossy().to_string())
        .collect();
    std::fs::write(out.join("patches.txt"), names.join("\n") + "\n")?;
    Ok(())
}

/// Apply `patches` to the tree `src` in order with GNU patch (-p1, as git
/// writes them). Each is dry-run first, so a patch that does not apply is
/// named and leaves the tree as the previous patch left it.
pub fn apply_series(src: &Path, patches: &[PathBuf]) -> anyhow::Result<()> {
    for p in patches {
        let dry = gnu_patch(src, p, true)?;
        if !dry.status.success() {
            anyhow::bail!(
                "{} does not apply to {}:\n{}{}",
                p.display(),
                src.display(),
                String::from_utf8_lossy(&dry.stdout),
                String::from_utf8_lossy(&dry.stderr)
            );
        }
        let real = gnu_patch(src, p, false)?;
        anyhow::ensure!(
            real.status.success(),
            "patch -i {} failed after a clean dry run: {}",
            p.display(),
            String::from_utf8_lossy(&real.stdout)
        );
        eprintln!(
            "[kernel] applied {}",
            p.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    Ok(())
}

/// GNU patch -p1 of `p` on the tree `src`, or only its dry run.
fn gnu_patch(src: &Path, p: &Path, dry: bool) -> anyhow::Result<std::process::Output> {
    let mut c = Command::new("patch");
    c.args(["-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-s"])
        .arg("-d")
        .arg(src)
        .arg("-i")
        .arg(p);
    if dry {
        c.arg("--dry-run");
    }
    c.output().context("Cannot run patch (apt-get install patch)")
}

/// Kconfig assignments of a fragment or .config: `CONFIG_X=v` and
/// `# CONFIG_X is not set` (as `n`).
pub fn assignments(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# ").and_then(|r| r.strip_suffix(" is not set")) {
            if rest.starts_with("CONFIG_") {
                m.insert(rest.to_string(), "n".to_string());
            }
        } else if let Some((k, v)) = line.split_once('=') {
            if k.starts_with("CONFIG_") && !k.contains(' ') {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

/// Every assignment of `fragment` must hold in the final `config`; a
/// symbol absent from .config counts as `n`.
pub fn check_fragment(fragment: &str, config: &str) -> anyhow::Result<()> {
    let want = assignments(fragment);
    anyhow::ensure!(!want.is_empty(), "the fragment assigns nothing");
    let have = assignments(config);
    let lost: Vec<String> = want
        .iter()
        .filter_map(|(k, v)| {
            let got = have.get(k).map(String::as_str).unwrap_or("n");
            (got != v).then(|| format!("{k}={v} became {}", if got == "n" { "unset" } else { got }))
        })
        .collect();
    anyhow::ensure!(lost.is_empty(), "{} option(s) lost: {}", lost.len(), lost.join(", "));
    Ok(())
}

/// A module must be built with the compiler that built its kernel (kbuild
/// passes the kernel's compiler flags on, and a newer gcc's flags break an
/// older one). For a built tree used as it is, the host's gcc must be the
/// tree's `CONFIG_CC_VERSION_TEXT`; say so before the build fails obscurely.
pub fn check_host_compiler(tree: &Path) -> anyhow::Result<()> {
    let config = std::fs::read_to_string(tree.join(".config"))
        .with_context(|| format!("{} is not a built kernel tree (no .config)", tree.display()))?;
    let Some(built_with) = assignments(&config).get("CONFIG_CC_VERSION_TEXT").cloned() else {
        return Ok(());
    };
    let built_with = built_with.trim_matches('"').to_string();
    let host = Command::new("gcc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    compiler_matches(&built_with, &host, tree)
}

fn compiler_matches(built_with: &str, host: &str, tree: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        built_with == host,
        "{} was built with `{built_with}` but the host's gcc is `{host}`: the pvhdma driver must be \
         built with the kernel's compiler. Build the tree with the host's gcc, or pass the source tree \
         (not built, or with --kernel-patches) to have xtask build it in its own root.",
        tree.display()
    );
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("Cannot run {cmd:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAGMENT: &str =
        "# comment\nCONFIG_XEN_PVH=y\nCONFIG_E1000=m\n# CONFIG_DRM is not set\nCONFIG_LOCALVERSION=\"-pvhdma\"\n";

    #[test]
    fn fragment_that_survived_passes() {
        let config = "CONFIG_XEN_PVH=y\nCONFIG_E1000=m\nCONFIG_LOCALVERSION=\"-pvhdma\"\nCONFIG_OTHER=y\n";
        check_fragment(FRAGMENT, config).unwrap();
    }

    #[test]
    fn dropped_or_changed_options_are_named() {
        // XEN_PVH dropped (a missing dependency), E1000 built in, DRM on.
        let config = "# CONFIG_XEN_PVH is not set\nCONFIG_E1000=y\nCONFIG_DRM=y\nCONFIG_LOCALVERSION=\"-pvhdma\"\n";
        let err = check_fragment(FRAGMENT, config).unwrap_err().to_string();
        assert!(err.starts_with("3 option(s) lost"), "{err}");
        assert!(err.contains("CONFIG_XEN_PVH=y became unset"), "{err}");
        assert!(err.contains("CONFIG_E1000=m became y"), "{err}");
        assert!(err.contains("CONFIG_DRM=n became y"), "{err}");
        // Absent from .config entirely counts as unset.
        let err = check_fragment("CONFIG_XEN=y\n", "CONFIG_PCI=y\n").unwrap_err();
        assert!(err.to_string().contains("CONFIG_XEN=y became unset"));
        assert!(check_fragment("# nothing\n", "CONFIG_PCI=y\n").is_err());
    }

    #[test]
    fn the_shipped_fragment_parses_and_asks_for_the_essentials() {
        let text = std::fs::read_to_string(workspace_root().join(default_config())).unwrap();
        let a = assignments(&text);
        for k in [
            "CONFIG_XEN_PVH",
            "CONFIG_XEN_PV_DOM0",
            "CONFIG_XEN_DOM0",
            "CONFIG_INTEL_IOMMU",
            "CONFIG_AMD_IOMMU",
            "CONFIG_PCI_MSI",
            "CONFIG_SWIOTLB",
            "CONFIG_FTRACE",
            "CONFIG_MODULES",
            "CONFIG_DEVTMPFS",
            "CONFIG_RD_GZIP",
        ] {
            assert_eq!(a.get(k).map(String::as_str), Some("y"), "{k}");
        }
        assert_eq!(a.get("CONFIG_E1000").map(String::as_str), Some("m"));
        // Guests: the toolstack's devices and the backends in dom0, the
        // frontends in the guest (the same kernel).
        for k in [
            "CONFIG_XEN_DEV_EVTCHN",
            "CONFIG_XEN_PRIVCMD",
            "CONFIG_XENFS",
            "CONFIG_XEN_GNTDEV",
            "CONFIG_XEN_GRANT_DEV_ALLOC",
            "CONFIG_UNIX98_PTYS",
            "CONFIG_BRIDGE",
            "CONFIG_XEN_NETDEV_BACKEND",
            "CONFIG_XEN_NETDEV_FRONTEND",
            "CONFIG_BLOCK",
            "CONFIG_ATA_PIIX",
            "CONFIG_BLK_DEV_SD",
            "CONFIG_XEN_BLKDEV_BACKEND",
        ] {
            assert_eq!(a.get(k).map(String::as_str), Some("y"), "{k}");
        }
        // Loaded with feature_persistent=0 by some runs, so not built in.
        assert_eq!(a.get("CONFIG_XEN_BLKDEV_FRONTEND").map(String::as_str), Some("m"));
    }

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Two git format-patch files and a cover letter against a one-file tree:
    /// the second patch only applies after the first.
    fn tiny_series(dir: &Path) {
        write(
            &dir.join("0000-cover-letter.patch"),
            "From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 0/2] tiny\n\nNo diff here.\n",
        );
        write(
            &dir.join("0001-first.patch"),
            "From 1 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 1/2] first\n\n---\n\
             diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1,2 +1,2 @@\n int x;\n-int y = 0;\n+int y = 1;\n",
        );
        write(
            &dir.join("0002-second.patch"),
            "From 2 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 2/2] second\n\n---\n\
             diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1,2 +1,2 @@\n int x;\n-int y = 1;\n+int y = 2;\n",
        );
        write(&dir.join("README"), "not a patch\n");
    }

    #[test]
    fn a_series_applies_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        let (tree, pdir) = (d.path().join("tree"), d.path().join("patches"));
        write(&tree.join("a.c"), "int x;\nint y = 0;\n");
        tiny_series(&pdir);
        let s = series(&pdir).unwrap();
        let names: Vec<_> = s.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["0001-first.patch", "0002-second.patch"]);
        apply_series(&tree, &s).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("a.c")).unwrap(),
            "int x;\nint y = 2;\n"
        );
    }

    #[test]
    fn a_patch_that_does_not_apply_is_named_and_stops_the_series() {
        let d = tempfile::tempdir().unwrap();
        let (tree, pdir) = (d.path().join("tree"), d.path().join("patches"));
        write(&tree.join("a.c"), "int x;\nint y = 0;\n");
        tiny_series(&pdir);
        let mut s = series(&pdir).unwrap();
        s.reverse();
        let err = apply_series(&tree, &s).unwrap_err().to_string();
        assert!(err.contains("0002-second.patch does not apply"), "{err}");
        assert_eq!(
            std::fs::read_to_string(tree.join("a.c")).unwrap(),
            "int x;\nint y = 0;\n"
        );
        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(series(&empty).unwrap_err().to_string().contains("holds no patches"));
        assert!(series(&d.path().join("nope")).is_err());
    }

    #[test]
    fn the_shipped_rfc_patch_is_a_series() {
        let s = series(&workspace_root().join("images/kernel/patches")).unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn source_fragment_and_patches_are_in_the_key() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let tree = d.path().join("linux");
        write(&tree.join("Makefile"), "VERSION = 6\n");
        write(&tree.join("Kconfig"), "mainmenu \"x\"\n");
        // Linux has a drivers/target and symlinks to directories.
        write(&tree.join("drivers/target/t.c"), "int t;\n");
        std::os::unix::fs::symlink("../drivers", tree.join("scripts-link")).unwrap();
        let pdir = d.path().join("patches");
        tiny_series(&pdir);
        let frag = d.path().join("f.config");
        write(&frag, "CONFIG_XEN=y\n");
        let mut plan = Plan::new(None, Some(&tree), None).unwrap();
        plan.fragment = frag.clone();
        let base = plan.content_key(&root).unwrap();
        assert_eq!(base, plan.content_key(&root).unwrap(), "the key is stable");

        write(&tree.join("Makefile"), "VERSION = 7\n");
        let source = plan.content_key(&root).unwrap();
        assert_ne!(base, source, "a source change");
        write(&tree.join("drivers/target/t.c"), "int t2;\n");
        assert_ne!(
            source,
            plan.content_key(&root).unwrap(),
            "a change under drivers/target"
        );
        write(&tree.join("drivers/target/t.c"), "int t;\n");
        write(&tree.join("drivers/target/.t.o.cmd"), "kbuild's\n");
        write(&tree.join("drivers/target/t.o"), "object\n");
        assert_eq!(
            source,
            plan.content_key(&root).unwrap(),
            "build products are not source"
        );

        write(&frag, "CONFIG_XEN=y\nCONFIG_PCI=y\n");
        let config = plan.content_key(&root).unwrap();
        assert_ne!(source, config, "a fragment change");

        plan.patches = series(&pdir).unwrap();
        let patched = plan.content_key(&root).unwrap();
        assert_ne!(config, patched, "a series");
        assert_eq!(plan.unpatched().content_key(&root).unwrap(), config);
        write(&pdir.join("0002-second.patch"), "diff --git a/a.c b/a.c\n");
        let changed = plan.content_key(&root).unwrap();
        assert_ne!(patched, changed, "a patch's content");
        plan.patches.reverse();
        assert_ne!(changed, plan.content_key(&root).unwrap(), "the order");

        // The build root and the package's tarball are in it as well.
        assert_ne!(
            config,
            plan.unpatched().content_key(&d.path().join("other-root")).unwrap()
        );
        write(&root.join("usr/src/linux-source-6.12.tar.xz"), "v1");
        let mut pkg = Plan::new(None, None, None).unwrap();
        let a = pkg.content_key(&root).unwrap();
        write(&root.join("usr/src/linux-source-6.12.tar.xz"), "v2");
        assert_ne!(a, pkg.content_key(&root).unwrap(), "a new source package");
        pkg.spec.packages.push("ccache".into());
        assert_ne!(pkg.spec.root_spec(), KernelSpec::default().root_spec());
    }

    /// A warm run must not read a 1 GiB tree again, and must never reuse a
    /// key after an edit, even one that keeps the size and the mtime.
    #[test]
    fn a_tree_key_is_remembered_until_a_file_changes() {
        use std::time::{Duration, SystemTime};
        let d = tempfile::tempdir().unwrap();
        let (root, memo, tree) = (d.path().join("root"), d.path().join("memo"), d.path().join("linux"));
        write(&tree.join("Makefile"), "VERSION = 6\n");
        write(&tree.join("Kconfig"), "mainmenu \"x\"\n");
        write(&tree.join("kernel/a.c"), "int a = 1;\n");
        let plan = Plan::new(None, Some(&tree), None).unwrap();
        let memos = || std::fs::read_dir(&memo).map(|r| r.count()).unwrap_or(0);
        let later = || SystemTime::now() + Duration::from_secs(60);

        // Files written just now may still change within their timestamp's
        // granularity: the key is computed, but not remembered.
        let key = plan.key_memo(&root, &memo, SystemTime::now()).unwrap();
        assert_eq!(key, plan.content_key(&root).unwrap());
        assert_eq!(memos(), 0);

        // Settled: remembered, and the next call reads the memo, not the tree.
        assert_eq!(plan.key_memo(&root, &memo, later()).unwrap(), key);
        assert_eq!(memos(), 1);
        let file = std::fs::read_dir(&memo).unwrap().next().unwrap().unwrap().path();
        std::fs::write(&file, "from-the-memo").unwrap();
        assert_eq!(plan.key_memo(&root, &memo, later()).unwrap(), "from-the-memo");
        std::fs::write(&file, &key).unwrap();

        // An edit of the same size with the old mtime put back: ctime moved
        // (after a tick of the kernel's coarse clock), so the tree is hashed.
        std::thread::sleep(Duration::from_millis(20));
        let mtime = std::fs::metadata(tree.join("kernel/a.c")).unwrap().modified().unwrap();
        write(&tree.join("kernel/a.c"), "int a = 2;\n");
        std::fs::File::options()
            .write(true)
            .open(tree.join("kernel/a.c"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let edited = plan.key_memo(&root, &memo, later()).unwrap();
        assert_ne!(edited, key);
        assert_eq!(edited, plan.content_key(&root).unwrap());

        // A new file, and a patch series, are new stamps too.
        write(&tree.join("kernel/b.c"), "int b;\n");
        let added = plan.key_memo(&root, &memo, later()).unwrap();
        assert_ne!(added, edited);
        let pdir = d.path().join("patches");
        tiny_series(&pdir);
        let patched = Plan::new(None, Some(&tree), Some(&pdir)).unwrap();
        let pkey = patched.key_memo(&root, &memo, later()).unwrap();
        assert_eq!(pkey, patched.content_key(&root).unwrap());
        assert_ne!(pkey, added);
        // A package source has no stamp: nothing is remembered for it.
        let before = memos();
        write(&root.join("usr/src/linux-source-6.12.tar.xz"), "v1");
        Plan::new(None, None, None)
            .unwrap()
            .key_memo(&root, &memo, later())
            .unwrap();
        assert_eq!(memos(), before);
    }

    /// A developer who builds in place and then asks for a patch series
    /// must get the unpatched build as the seed, not a second cold build.
    #[test]
    fn in_a_git_checkout_only_what_git_tracks_or_would_track_is_keyed() {
        let d = tempfile::tempdir().unwrap();
        let (root, tree) = (d.path().join("root"), d.path().join("linux"));
        write(&tree.join("Makefile"), "VERSION = 6\n");
        write(&tree.join("Kconfig"), "mainmenu \"x\"\n");
        write(&tree.join("kernel/a.c"), "int a;\n");
        write(&tree.join(".gitignore"), "/vmlinux\n*.gen.h\n");
        let plan = Plan::new(None, Some(&tree), None).unwrap();
        let walked = plan.content_key(&root).unwrap();

        let git = |args: &[&str]| {
            let ok = Command::new("git").arg("-C").arg(&tree).args(args).output().unwrap();
            assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        };
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        assert_eq!(
            tree_files(&tree).unwrap(),
            ["Kconfig", "Makefile", "kernel/a.c"].map(PathBuf::from)
        );
        assert_eq!(
            plan.content_key(&root).unwrap(),
            walked,
            "a never-built tree: the walk's key"
        );

        // An in-place build's products that git ignores change nothing.
        write(&tree.join("vmlinux"), "ELF");
        write(&tree.join("include/generated/x.gen.h"), "#define X\n");
        write(&tree.join("kernel/a.o"), "obj");
        assert_eq!(plan.content_key(&root).unwrap(), walked);
        // Outside git the same files are source as far as the walk can tell.
        std::fs::rename(tree.join(".git"), d.path().join("git-aside")).unwrap();
        assert_ne!(plan.content_key(&root).unwrap(), walked);
        std::fs::rename(d.path().join("git-aside"), tree.join(".git")).unwrap();

        // A new file git would track, an edit, and a deletion all count.
        write(&tree.join("kernel/b.c"), "int b;\n");
        let added = plan.content_key(&root).unwrap();
        assert_ne!(added, walked);
        write(&tree.join("kernel/a.c"), "int a2;\n");
        let edited = plan.content_key(&root).unwrap();
        assert_ne!(edited, added);
        std::fs::remove_file(tree.join("kernel/a.c")).unwrap();
        assert_eq!(
            tree_files(&tree).unwrap(),
            ["Kconfig", "Makefile", "kernel/b.c"].map(PathBuf::from)
        );
    }

    /// The boot series goes on every kernel built from Debian's source, on
    /// a tree of the user's only where it applies, and on none when a
    /// recipe turns it off.
    #[test]
    fn the_boot_series_goes_first_where_it_applies() {
        let d = tempfile::tempdir().unwrap();
        let boot = series(&workspace_root().join(BOOT_SERIES)).unwrap();
        assert!(!boot.is_empty());
        let pkg = Plan::new(None, None, None).unwrap();
        assert_eq!(pkg.patches, boot);
        let off = KernelSpec {
            boot_patches: false,
            ..KernelSpec::default()
        };
        assert!(Plan::new(Some(&off), None, None).unwrap().patches.is_empty());
        let recipe: KernelSpec = toml::from_str("boot_patches = false").unwrap();
        assert_eq!(recipe, off);

        // A tree without the file the patch changes is built without it.
        let tree = d.path().join("linux");
        write(&tree.join("Makefile"), "VERSION = 6\n");
        write(&tree.join("Kconfig"), "mainmenu \"x\"\n");
        assert!(Plan::new(None, Some(&tree), None).unwrap().patches.is_empty());
        // A tree with the lines the patch expects gets it.
        let time_c = "\n".repeat(565)
            + "\tstatic_call_update(pv_steal_clock, xen_steal_clock);\n\
               \tparavirt_set_sched_clock(xen_sched_clock);\n\
               \n\
               \tx86_platform.calibrate_tsc = xen_tsc_khz;\n\
               \tx86_platform.get_wallclock = xen_get_wallclock;\n\
               }\n";
        write(&tree.join("arch/x86/xen/time.c"), &time_c);
        assert_eq!(Plan::new(None, Some(&tree), None).unwrap().patches, boot);
        apply_series(&tree, &boot).unwrap();
        let patched = std::fs::read_to_string(tree.join("arch/x86/xen/time.c")).unwrap();
        assert!(patched.contains("x86_platform.calibrate_cpu = xen_tsc_khz;"));
        // Applied once, it does not apply again: the tree is built as it is.
        assert!(Plan::new(None, Some(&tree), None).unwrap().patches.is_empty());
    }

    #[test]
    fn which_options_build_from_source() {
        use crate::images::{source_kernel, Options};
        let ws = workspace_root();
        let default = crate::images::recipe::Recipe::load(&ws.join("images/recipes/default.toml")).unwrap();
        let src = crate::images::recipe::Recipe::load(&ws.join("images/recipes/xen4.20-linux6.12-src.toml")).unwrap();
        let rfc = crate::images::recipe::Recipe::load(&ws.join("images/recipes/xen4.20-linux6.12-rfc-noswiotlb.toml"))
            .unwrap();
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("linux");
        write(&tree.join("Makefile"), "VERSION = 6\n");
        write(&tree.join("Kconfig"), "mainmenu \"x\"\n");
        let pdir = d.path().join("patches");
        tiny_series(&pdir);
        let opts = |tree: Option<&Path>, patches: Option<&Path>| Options {
            kernel_tree: tree.map(Path::to_path_buf),
            kernel_patches: patches.map(Path::to_path_buf),
            ..Options::default()
        };
        // The packaged kernel: nothing to build.
        assert!(source_kernel(&default, &opts(None, None)).unwrap().is_none());
        // A source tree is built; so is the recipe's [kernel] source.
        let p = source_kernel(&default, &opts(Some(&tree), None)).unwrap().unwrap();
        assert!(matches!(p.source, Source::Tree(_)) && p.patches.is_empty());
        let p = source_kernel(&src, &opts(None, None)).unwrap().unwrap();
        assert!(matches!(&p.source, Source::Package(n) if n == "linux-source-6.12"));
        // The boot series comes first, then the RFC recipe's, the user's last.
        let p = source_kernel(&rfc, &opts(None, Some(&pdir))).unwrap().unwrap();
        let names: Vec<_> = p
            .patches
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "0001-x86-xen-take-the-cpu-frequency-from-xen.patch",
                "0001-x86-xen-disable-swiotlb-for-xen-pvh.patch",
                "0001-first.patch",
                "0002-second.patch"
            ]
        );
        // A built tree is used as it is, unless patches ask for a rebuild.
        write(&tree.join("arch/x86/boot/bzImage"), "kernel");
        assert!(source_kernel(&default, &opts(Some(&tree), None)).unwrap().is_none());
        assert!(source_kernel(&default, &opts(Some(&tree), Some(&pdir)))
            .unwrap()
            .is_some());
        // A recipe with neither a packaged kernel nor [kernel] is refused.
        let mut bare = src.clone();
        bare.kernel = None;
        let err = source_kernel(&bare, &opts(None, None)).unwrap_err().to_string();
        assert!(err.contains("neither dom0.kernel nor a [kernel] table"), "{err}");
    }

    #[test]
    fn a_tree_built_with_another_compiler_is_refused_clearly() {
        let t = Path::new("/src/linux");
        compiler_matches("gcc (Debian 12.2.0-14) 12.2.0", "gcc (Debian 12.2.0-14) 12.2.0", t).unwrap();
        let err = compiler_matches("gcc (Debian 14.2.0-19) 14.2.0", "gcc (Debian 12.2.0-14) 12.2.0", t)
            .unwrap_err()
            .to_string();
        assert!(err.contains("was built with `gcc (Debian 14.2.0-19) 14.2.0`"), "{err}");
    }

    #[test]
    fn not_a_tree_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let err = Plan::new(None, Some(d.path()), None).unwrap_err().to_string();
        assert!(err.contains("is not a Linux source tree"), "{err}");
    }
}
