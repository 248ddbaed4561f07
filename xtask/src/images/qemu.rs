//! qemu-system-x86_64 built from Debian's QEMU source with the project's
//! patches (images/qemu/patches/), for a recipe whose `[qemu]` table has
//! `patches` (or `source_version`).
//!
//! The source is Debian's `qemu` source package, fetched with `apt-get
//! source` into a build root of its own (mmdebstrap; the `deb-src` lines
//! exist only inside that root), by default of the exact version of
//! qemu-system-x86 that the recipe's QEMU root installs. It is unpacked
//! with `dpkg-source -x` (Debian's own patches applied), the recipe's
//! patches go on top in order, and a minimal x86_64-softmmu build is
//! configured (`CONFIGURE`). Only the binary goes into the set; firmware,
//! `-L` directories and libraries still come from the QEMU root. The entry
//! is mounted at the fixed path `/qbuild` in the build root, so ninja's
//! absolute paths stay valid after the entry is renamed into place, and a
//! patched build can start from the unpatched one's build directory.

use super::cache;
use super::recipe::{QemuSpec, RootSpec};
use super::roots;
use anyhow::Context;
use pvhdma_harness::images::workspace_root;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bump when the build steps change in a way the inputs do not show.
const QEMU_BUILDER: &str = "pvhdma-qemu-1";

/// Where an entry appears inside the build root.
const MOUNT: &str = "qbuild";

/// The Debian binary package whose version the source must match.
const SYSTEM_PACKAGE: &str = "qemu-system-x86";

/// Where the build root keeps the downloaded source package.
const SOURCE_DIR: &str = "usr/src/qemu";

/// Build tools, and the -dev packages of exactly the features `CONFIGURE`
/// enables (glib and zlib are always required; slirp for `-netdev user`;
/// fdt because x86's microvm machine needs it).
const TOOLS: [&str; 16] = [
    "gcc",
    "libc6-dev",
    "make",
    "ninja-build",
    "meson",
    "pkgconf",
    "python3",
    "python3-venv",
    "python3-distlib",
    "flex",
    "bison",
    "dpkg-dev",
    "libglib2.0-dev",
    "zlib1g-dev",
    "libslirp-dev",
    "libfdt-dev",
];

/// A minimal build of what the harness runs: q35 with TCG (KVM where a
/// runner offers nested virtualization), user networking for `-netdev user`
/// with guestfwd, the default device set (e1000, piix4-ide, both vIOMMUs,
/// the vfio-user client), the `log` trace backend for `-trace file=`. No
/// modules, tools, docs or downloads; no firmware blobs (Debian's `+ds`
/// source has none; the root's are used). The binary reports
/// `--with-pkgversion`, which names neither the patches (that would
/// recompile every file whenever the series changes; the manifest names
/// them) nor the root, only that this is not Debian's own build.
pub const CONFIGURE: [&str; 17] = [
    "--target-list=x86_64-softmmu",
    "--prefix=/usr",
    "--without-default-features",
    "--enable-system",
    "--disable-user",
    "--disable-tools",
    "--disable-guest-agent",
    "--disable-docs",
    "--disable-modules",
    "--disable-download",
    "--disable-werror",
    "--disable-install-blobs",
    "--enable-tcg",
    "--enable-kvm",
    "--enable-slirp",
    "--enable-fdt=system",
    "--enable-trace-backends=log",
];

/// One QEMU to build: everything that goes into its cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The build root's suite (the QEMU root's).
    pub suite: String,
    /// Suites whose `deb-src` index the build root gets.
    pub source_suites: Vec<String>,
    /// The Debian source version to build.
    pub version: String,
    /// The version of qemu-system-x86 in the QEMU root (firmware, data).
    pub root_version: String,
    /// The series, in application order.
    pub patches: Vec<PathBuf>,
    pub configure: Vec<String>,
}

impl Plan {
    /// The plan for a recipe's `[qemu]` table and the root built from it.
    pub fn new(spec: &QemuSpec, qemu_root: &Path) -> anyhow::Result<Plan> {
        let status_path = qemu_root.join("var/lib/dpkg/status");
        let status =
            std::fs::read_to_string(&status_path).with_context(|| format!("Cannot read {}", status_path.display()))?;
        let root_version = installed_version(&status, SYSTEM_PACKAGE)
            .with_context(|| format!("{SYSTEM_PACKAGE} is not installed in {}", qemu_root.display()))?;
        Self::for_version(spec, &root_version, &workspace_root())
    }

    fn for_version(spec: &QemuSpec, root_version: &str, ws: &Path) -> anyhow::Result<Plan> {
        let suite = spec.root.suite.clone();
        let source_suites = match &spec.source_suite {
            Some(s) => vec![s.clone()],
            None => vec![suite.clone(), format!("{suite}-backports")],
        };
        let patches = spec
            .patches
            .iter()
            .map(|p| {
                let path = ws.join(p);
                anyhow::ensure!(path.is_file(), "QEMU patch {} is missing", path.display());
                Ok(path)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Plan {
            suite,
            source_suites,
            version: spec.source_version.clone().unwrap_or_else(|| root_version.to_string()),
            root_version: root_version.to_string(),
            patches,
            configure: CONFIGURE.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// The build root: tools, `deb-src` lines, and the source package
    /// fetched into /usr/src/qemu. The version is in the hook, so a new
    /// version gets a root of its own and an old root is never changed.
    fn root(&self) -> (RootSpec, roots::Extra) {
        let spec = RootSpec {
            suite: self.suite.clone(),
            packages: TOOLS.iter().map(|s| s.to_string()).collect(),
            backports: vec![],
        };
        let extra = roots::Extra {
            deb_src: self.source_suites.clone(),
            hooks: vec![format!(
                "mkdir -p /{SOURCE_DIR} && cd /{SOURCE_DIR} && apt-get source --download-only qemu={}",
                self.version
            )],
        };
        (spec, extra)
    }

    /// The cache key: builder version, build root (which names the source
    /// version), the version itself, the configure flags and every patch
    /// (name and content, in order).
    pub fn key(&self, root: &Path) -> anyhow::Result<String> {
        let mut k = cache::Key::new("qemu");
        k.str(QEMU_BUILDER).str(&root.display().to_string());
        k.str("version").str(&self.version);
        for f in &self.configure {
            k.str("configure").str(f);
        }
        for p in &self.patches {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            k.str("patch")
                .str(&name)
                .bytes(&std::fs::read(p).with_context(|| format!("Cannot read {}", p.display()))?);
        }
        Ok(k.hex())
    }

    /// The same plan without patches: the entry a patched build starts from.
    fn unpatched(&self) -> Plan {
        Plan {
            patches: vec![],
            ..self.clone()
        }
    }

    /// For the manifest: which source, which patches, and where the rest
    /// of QEMU comes from.
    pub fn describe(&self) -> String {
        let mut s = format!("built by pvhdma from Debian source qemu {}", self.version);
        if self.patches.is_empty() {
            s += " (no patches)";
        }
        for p in &self.patches {
            s += &format!(" + {}", p.file_name().unwrap_or_default().to_string_lossy());
        }
        s + &format!(
            "; firmware and libraries from Debian's {SYSTEM_PACKAGE} {}",
            self.root_version
        )
    }

    /// `--with-pkgversion`: Debian's own form ("Debian VERSION") marked as
    /// this project's build.
    fn pkgversion(&self) -> String {
        format!("Debian {}, pvhdma build", self.version)
    }
}

/// The `Version:` of an installed package in a dpkg status file.
pub fn installed_version(status: &str, package: &str) -> Option<String> {
    for stanza in status.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut installed = false;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if name == Some(package) && installed {
            return version.map(String::from);
        }
    }
    None
}

/// A built QEMU: its cache entry and what it is.
#[derive(Debug, Clone)]
pub struct Built {
    pub entry: PathBuf,
    what: String,
    patches: Vec<String>,
}

impl Built {
    pub fn binary(&self) -> PathBuf {
        self.entry.join("qemu-system-x86_64")
    }

    pub fn describe(&self) -> String {
        self.what.clone()
    }

    /// The patch file names, in order.
    pub fn patches(&self) -> &[String] {
        &self.patches
    }
}

/// The build root of `plan`, with the source package in it.
pub fn ensure_root(mirror: &str, plan: &Plan) -> anyhow::Result<PathBuf> {
    let (spec, extra) = plan.root();
    roots::ensure_with("qemu-build", mirror, &spec, &extra).with_context(|| {
        format!(
            "The QEMU build root (with `apt-get source qemu={}` from {}) failed: is that source version in the archive?",
            plan.version,
            plan.source_suites.join(", ")
        )
    })
}

/// Build the QEMU of `plan`, or find it in the cache.
pub fn ensure(mirror: &str, plan: &Plan) -> anyhow::Result<Built> {
    let started = Instant::now();
    let root = ensure_root(mirror, plan)?;
    let dsc = find_dsc(&root.join(SOURCE_DIR))?;
    let key = plan.key(&root)?;
    let dir = cache::root().join("qemu");
    let seed = cache::patched_seed(&dir, &key, !plan.patches.is_empty(), || plan.unpatched().key(&root))?;
    let entry = cache::entry(&dir, &key, |out| {
        build(&root, plan, &dsc, out, seed.as_deref(), &out.with_extension("log"))
    })?;
    let built = Built {
        entry,
        what: plan.describe(),
        patches: plan
            .patches
            .iter()
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().to_string())
            .collect(),
    };
    eprintln!(
        "[qemu] {} ready in {:.1?}: {}",
        plan.version,
        started.elapsed(),
        built.binary().display()
    );
    Ok(built)
}

/// The one `.dsc` that `apt-get source --download-only` left in `dir`.
fn find_dsc(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("Cannot list {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "dsc") {
            found.push(p);
        }
    }
    anyhow::ensure!(
        found.len() == 1,
        "expected one .dsc in {}, found {found:?}",
        dir.display()
    );
    Ok(found.remove(0))
}

/// Quote `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn build(root: &Path, plan: &Plan, dsc: &Path, out: &Path, seed: Option<&Path>, log: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let _ = std::fs::remove_file(log);
    let phase = |what: &str| eprintln!("[qemu] {:>5}s {what}", started.elapsed().as_secs());
    let in_root = |script: &str, what: &str| super::kernel::in_root_at(root, out, MOUNT, script, log, what, "qemu");
    let src = out.join("src");
    match seed {
        Some(seed) => {
            phase(&format!("source: copying the unpatched build {}", seed.display()));
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", seed.display()))
                .arg(out)
                .status()
                .context("Cannot run cp")?;
            anyhow::ensure!(status.success(), "copying {} failed", seed.display());
            // The seed's binary is the unpatched one; it must not survive
            // a build that fails to relink.
            let _ = std::fs::remove_file(out.join("qemu-system-x86_64"));
        }
        None => {
            let inner = Path::new("/").join(dsc.strip_prefix(root)?);
            phase(&format!(
                "source: dpkg-source -x {}",
                dsc.file_name().unwrap_or_default().to_string_lossy()
            ));
            in_root(
                &format!("dpkg-source -x {} /{MOUNT}/src", sh_quote(&inner.display().to_string())),
                "source",
            )?;
        }
    }
    if !plan.patches.is_empty() {
        phase(&format!("patches: applying {}", plan.patches.len()));
        super::kernel::apply_series_recorded(&src, &plan.patches, out)?;
    }
    if seed.is_none() {
        phase("configure: x86_64-softmmu, minimal");
        let mut args: Vec<String> = plan.configure.iter().map(|a| sh_quote(a)).collect();
        args.push(sh_quote(&format!("--with-pkgversion={}", plan.pkgversion())));
        std::fs::create_dir_all(out.join("build"))?;
        in_root(
            &format!("cd /{MOUNT}/build && nice -n 10 ../src/configure {}", args.join(" ")),
            "configure",
        )?;
    }
    phase("build: ninja -j2 qemu-system-x86_64");
    in_root(
        &format!("nice -n 10 ninja -C /{MOUNT}/build -j2 qemu-system-x86_64"),
        "build",
    )
    .with_context(|| format!("The QEMU build failed; log: {}", log.display()))?;
    std::fs::copy(out.join("build/qemu-system-x86_64"), out.join("qemu-system-x86_64"))?;
    std::fs::write(out.join("build.txt"), plan.describe() + "\n")?;
    phase("done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str =
        "Package: qemu-system-common\nStatus: install ok installed\nVersion: 1:11.1.3+ds-1~bpo13+1\n\n\
                          Package: qemu-system-x86\nStatus: deinstall ok config-files\nVersion: 1:10.0.0\n\n\
                          Package: qemu-system-x86\nStatus: install ok installed\nPriority: optional\n\
                          Version: 1:11.1.3+ds-1~bpo13+1\nDepends: libc6\n";

    #[test]
    fn the_installed_version_is_read_from_dpkg_status() {
        assert_eq!(
            installed_version(STATUS, "qemu-system-x86").as_deref(),
            Some("1:11.1.3+ds-1~bpo13+1")
        );
        assert_eq!(installed_version(STATUS, "qemu-utils"), None);
        assert_eq!(
            installed_version("Package: x\nStatus: deinstall ok config-files\nVersion: 1\n", "x"),
            None
        );
    }

    fn spec(toml_text: &str) -> QemuSpec {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn the_root_version_is_the_default_source() {
        let d = tempfile::tempdir().unwrap();
        let plain = spec("suite = \"trixie\"\nbackports = [\"qemu-system-x86\"]\n");
        let p = Plan::for_version(&plain, "1:11.1.3+ds-1~bpo13+1", d.path()).unwrap();
        assert_eq!(p.version, "1:11.1.3+ds-1~bpo13+1");
        assert_eq!(p.source_suites, ["trixie", "trixie-backports"]);
        assert!(p.patches.is_empty());
        let (_, extra) = p.root();
        assert_eq!(extra.deb_src, ["trixie", "trixie-backports"]);
        assert!(extra.hooks[0].ends_with("apt-get source --download-only qemu=1:11.1.3+ds-1~bpo13+1"));

        let other = spec("suite = \"trixie\"\nsource_version = \"1:10.2.2+ds-1\"\nsource_suite = \"sid\"\n");
        let p = Plan::for_version(&other, "1:11.1.3+ds-1~bpo13+1", d.path()).unwrap();
        assert_eq!(
            (p.version.as_str(), p.source_suites.as_slice()),
            ("1:10.2.2+ds-1", &["sid".to_string()][..])
        );
        assert!(p.describe().contains("Debian source qemu 1:10.2.2+ds-1 (no patches)"));
        assert!(p
            .describe()
            .ends_with("from Debian's qemu-system-x86 1:11.1.3+ds-1~bpo13+1"));
    }

    #[test]
    fn patches_are_kept_in_the_recipes_order_and_must_exist() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("b.patch"), "diff b\n").unwrap();
        std::fs::write(d.path().join("a.patch"), "diff a\n").unwrap();
        let s = spec("suite = \"trixie\"\npatches = [\"b.patch\", \"a.patch\"]\n");
        let p = Plan::for_version(&s, "1:11.1.3", d.path()).unwrap();
        let names: Vec<_> = p.patches.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["b.patch", "a.patch"]);
        assert!(p.describe().contains("1:11.1.3 + b.patch + a.patch;"));
        let missing = spec("suite = \"trixie\"\npatches = [\"nope.patch\"]\n");
        let err = Plan::for_version(&missing, "1", d.path()).unwrap_err().to_string();
        assert!(err.contains("nope.patch is missing"), "{err}");
    }

    #[test]
    fn version_patches_and_configure_flags_are_in_the_key() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::write(d.path().join("a.patch"), "diff a\n").unwrap();
        std::fs::write(d.path().join("b.patch"), "diff b\n").unwrap();
        let s = spec("suite = \"trixie\"\npatches = [\"a.patch\", \"b.patch\"]\n");
        let p = Plan::for_version(&s, "1:11.1.3", d.path()).unwrap();
        let base = p.key(&root).unwrap();
        assert_eq!(base, p.key(&root).unwrap(), "stable");

        let unpatched = p.unpatched().key(&root).unwrap();
        assert_ne!(base, unpatched, "the series");
        let mut reordered = p.clone();
        reordered.patches.reverse();
        assert_ne!(base, reordered.key(&root).unwrap(), "the order");
        std::fs::write(d.path().join("b.patch"), "diff b2\n").unwrap();
        assert_ne!(base, p.key(&root).unwrap(), "a patch's content");
        std::fs::write(d.path().join("b.patch"), "diff b\n").unwrap();

        let mut v = p.clone();
        v.version = "1:11.1.4".into();
        assert_ne!(base, v.key(&root).unwrap(), "the source version");
        let mut c = p.clone();
        c.configure.push("--enable-debug".into());
        assert_ne!(base, c.key(&root).unwrap(), "a configure flag");
        assert_ne!(base, p.key(&d.path().join("other-root")).unwrap(), "the build root");

        // A new version is a new build root: the fetch hook names it.
        assert_ne!(p.root().1, v.root().1);
        assert_eq!(p.root().0, v.root().0);
    }

    #[test]
    fn configure_asks_for_what_the_harness_uses() {
        for f in [
            "--target-list=x86_64-softmmu",
            "--enable-slirp",
            "--disable-modules",
            "--disable-docs",
            "--enable-trace-backends=log",
        ] {
            assert!(CONFIGURE.contains(&f), "{f}");
        }
        assert_eq!(
            sh_quote("Debian 1:10.2.2+ds-1, it's"),
            r"'Debian 1:10.2.2+ds-1, it'\''s'"
        );
    }

    #[test]
    fn the_shipped_patches_apply_as_a_series() {
        let ws = workspace_root();
        for (recipe, version) in [
            ("xen4.20-linux6.12-qemu-amdvi-fix.toml", "1:11.1.3+ds-1~bpo13+1"),
            ("xen4.20-linux6.12-qemu10.2-amdvi-fix.toml", "1:10.2.2+ds-1"),
        ] {
            let r = crate::images::recipe::Recipe::load(&ws.join("images/recipes").join(recipe)).unwrap();
            assert!(r.qemu.builds_from_source());
            let p = Plan::for_version(&r.qemu, "1:11.1.3+ds-1~bpo13+1", &ws).unwrap();
            assert_eq!(p.version, version, "{recipe}");
            assert!(!p.patches.is_empty());
            for patch in &p.patches {
                let text = std::fs::read_to_string(patch).unwrap();
                assert!(
                    text.starts_with("From "),
                    "{}: not git format-patch output",
                    patch.display()
                );
                assert!(text.contains("\n--- a/hw/"), "{}", patch.display());
            }
        }
    }
}
