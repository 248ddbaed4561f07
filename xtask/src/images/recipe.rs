//! Image recipes: data under images/recipes/, one TOML file per image set.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One Debian root to build with mmdebstrap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct RootSpec {
    pub suite: String,
    #[serde(default)]
    pub packages: Vec<String>,
    /// Installed from `<suite>-backports` with `-t`, dependencies included.
    #[serde(default)]
    pub backports: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct XenSpec {
    #[serde(flatten)]
    pub root: RootSpec,
    /// Path of the (gzipped) hypervisor inside the root.
    pub image: String,
    /// Xen options every boot of this set needs, ahead of a scenario's own
    /// (the manifest carries them to the harness). Left out of the
    /// serialized recipe when empty, so recipes without it keep their
    /// cache key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmdline: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Dom0Spec {
    #[serde(flatten)]
    pub root: RootSpec,
    /// Path of the kernel image inside the root; unused (and may be left
    /// out) when the recipe builds its kernel from source (`[kernel]`).
    #[serde(default)]
    pub kernel: String,
}

/// Xen's toolstack for runs with guests: its own root (so the dom0 build
/// root, and the driver built in it, stay as they are), from which only
/// the binaries in `bin` and what they load go into an archive that the
/// harness appends to dom0's initramfs when a scenario has guests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ToolstackSpec {
    #[serde(flatten)]
    pub root: RootSpec,
    /// The directory inside the root holding xl, xenstored, xenconsoled and
    /// xen-init-dom0 (a `*` matches one directory).
    pub bin: String,
}

/// The QEMU root, and optionally a QEMU built from Debian's source with
/// the project's patches (xtask/src/images/qemu.rs). Without `patches` and
/// `source` it is just the root, serialized exactly as a plain root, so
/// recipes without them keep their cache keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct QemuSpec {
    #[serde(flatten)]
    pub root: RootSpec,
    /// Patches (`git format-patch` files, relative to the workspace) to
    /// apply, in this order, to Debian's QEMU source before building
    /// qemu-system-x86_64 from it; the binary then replaces the root's,
    /// which still provides firmware and libraries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<String>,
    /// The Debian source version to build (e.g. `1:10.2.2+ds-1`). Default:
    /// the version of qemu-system-x86 the root installs, so the built
    /// binary matches the root's firmware and data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// The suite whose `deb-src` index has `source_version` (default: the
    /// root's suite and its backports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_suite: Option<String>,
}

impl QemuSpec {
    /// Whether the set's QEMU is built from source rather than the root's.
    pub fn builds_from_source(&self) -> bool {
        !self.patches.is_empty() || self.source_version.is_some()
    }
}

/// A recipe's place in the nightly matrix (docs/matrix.md): labels only,
/// matched against scenarios' `cells.xen` / `cells.kernels`. Not part of the
/// image set's cache key: relabelling rebuilds nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct MatrixLabels {
    /// Xen's version, e.g. "4.20".
    pub xen_version: String,
    /// The dom0 kernel's version, e.g. "6.12" (a prefix of the built one).
    pub kernel: String,
    /// Leave the recipe out of `cargo xtask matrix`.
    #[serde(default)]
    pub skip: bool,
    /// The IOMMU kinds whose cells the matrix runs (`intel`, `amd`); empty
    /// (the default) is both.
    #[serde(default)]
    pub iommu: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    pub mirror: String,
    pub qemu: QemuSpec,
    pub xen: XenSpec,
    pub dom0: Dom0Spec,
    /// Build the dom0 kernel from source (images/kernel/, `cargo xtask
    /// kernel`) instead of taking `dom0.kernel` from the dom0 root. Left out
    /// of the serialized recipe when absent, so recipes without it keep
    /// their cache keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<super::kernel::KernelSpec>,
    /// Xen's toolstack, for scenarios with guests. Absent: the set cannot
    /// run guests (such scenarios say so). Left out of the serialized recipe
    /// when absent, so recipes without it keep their cache keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolstack: Option<ToolstackSpec>,
    /// Matrix labels; skipped when serializing, so the cache key ignores them.
    #[serde(default, skip_serializing)]
    pub matrix: Option<MatrixLabels>,
}

impl Recipe {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("Cannot read recipe {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("Invalid recipe {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_recipe_parses() {
        let dir = pvhdma_harness::images::workspace_root().join("images/recipes");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            Recipe::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
            n += 1;
        }
        assert!(n >= 3);
    }

    #[test]
    fn xen_cmdline_is_optional_and_keeps_empty_recipes_keys() {
        let base = "suite = \"bookworm\"\nimage = \"boot/xen.gz\"\n";
        let plain: XenSpec = toml::from_str(base).unwrap();
        assert!(plain.cmdline.is_empty());
        assert!(!serde_json::to_string(&plain).unwrap().contains("cmdline"));
        let with: XenSpec = toml::from_str(&format!("{base}cmdline = [\"hap=0\"]\n")).unwrap();
        assert_eq!(with.cmdline, ["hap=0"]);
        assert_ne!(
            serde_json::to_string(&plain).unwrap(),
            serde_json::to_string(&with).unwrap()
        );
    }

    #[test]
    fn qemu_build_fields_are_optional_and_keep_plain_recipes_keys() {
        let base = "suite = \"trixie\"\nbackports = [\"qemu-system-x86\"]\n";
        let plain: QemuSpec = toml::from_str(base).unwrap();
        assert!(!plain.builds_from_source());
        // A plain [qemu] serializes as the root alone: the set keys of
        // recipes without a QEMU build stay what they were.
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            serde_json::to_string(&plain.root).unwrap()
        );
        let patched: QemuSpec =
            toml::from_str(&format!("{base}patches = [\"images/qemu/patches/0001-x.patch\"]\n")).unwrap();
        assert!(patched.builds_from_source());
        assert_eq!(patched.patches, ["images/qemu/patches/0001-x.patch"]);
        assert_ne!(
            serde_json::to_string(&plain).unwrap(),
            serde_json::to_string(&patched).unwrap()
        );
        let pinned: QemuSpec = toml::from_str(&format!("{base}source_version = \"1:10.2.2+ds-1\"\n")).unwrap();
        assert!(pinned.builds_from_source() && pinned.patches.is_empty());
        let err = toml::from_str::<QemuSpec>(&format!("{base}pacthes = []\n")).unwrap_err();
        assert!(err.to_string().contains("pacthes"), "{err}");
    }

    #[test]
    fn the_qemu_fix_recipe_is_the_default_plus_a_qemu_build() {
        let dir = pvhdma_harness::images::workspace_root().join("images/recipes");
        let default = Recipe::load(&dir.join("default.toml")).unwrap();
        let fix = Recipe::load(&dir.join("xen4.20-linux6.12-qemu-amdvi-fix.toml")).unwrap();
        assert!(fix.qemu.builds_from_source() && !default.qemu.builds_from_source());
        assert_eq!(
            fix.qemu.root, default.qemu.root,
            "the same QEMU root: firmware, libraries"
        );
        assert_eq!(
            (&fix.xen, &fix.dom0, &fix.toolstack),
            (&default.xen, &default.dom0, &default.toolstack)
        );
        let (f, d) = (fix.matrix.unwrap(), default.matrix.unwrap());
        assert_eq!((f.xen_version, f.kernel), (d.xen_version, d.kernel));
        assert!(f.skip, "out of the matrix until its AMD-Vi guest runs have passed");
        // The root's own version: no other source is pinned.
        assert_eq!((fix.qemu.source_version, fix.qemu.source_suite), (None, None));
    }

    #[test]
    fn the_qemu_10_2_fix_recipe_is_the_fix_recipe_on_10_2_2_with_its_own_defects_fixed() {
        let dir = pvhdma_harness::images::workspace_root().join("images/recipes");
        let fix = Recipe::load(&dir.join("xen4.20-linux6.12-qemu-amdvi-fix.toml")).unwrap();
        let old = Recipe::load(&dir.join("xen4.20-linux6.12-qemu10.2-amdvi-fix.toml")).unwrap();
        assert_eq!(old.qemu.root, fix.qemu.root, "the same QEMU root: firmware, libraries");
        assert_eq!(
            (&old.xen, &old.dom0, &old.toolstack),
            (&fix.xen, &fix.dom0, &fix.toolstack)
        );
        assert_eq!(
            (old.qemu.source_version.as_deref(), old.qemu.source_suite.as_deref()),
            (Some("1:10.2.2+ds-1"), Some("sid"))
        );
        // The fix comes first and under its own name: the guest twins'
        // `cells.qemu` is matched against it.
        assert_eq!(old.qemu.patches[..fix.qemu.patches.len()], fix.qemu.patches[..]);
        assert_eq!(old.qemu.patches.len(), 3, "{:?}", old.qemu.patches);
        let (o, f) = (old.matrix.unwrap(), fix.matrix.unwrap());
        assert_eq!((o.xen_version, o.kernel), (f.xen_version, f.kernel));
        assert!(!o.skip, "in the matrix: its amd cell, guest twins and all, passed");
        assert_eq!(o.iommu, ["amd"], "its QEMU is built for AMD-Vi's sake");
        assert!(f.skip, "11.1.3's source is not served to this project's machines");
    }

    #[test]
    fn the_source_built_recipes_carry_the_default_toolstack() {
        let dir = pvhdma_harness::images::workspace_root().join("images/recipes");
        let default = Recipe::load(&dir.join("default.toml")).unwrap();
        for name in ["xen4.20-linux6.12-src.toml", "xen4.20-linux6.12-rfc-noswiotlb.toml"] {
            let r = Recipe::load(&dir.join(name)).unwrap();
            assert!(r.kernel.is_some(), "{name}");
            assert_eq!(r.toolstack, default.toolstack, "{name}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = toml::from_str::<RootSpec>("suite = \"trixie\"\npackges = []\n").unwrap_err();
        assert!(err.to_string().contains("packges"), "{err}");
    }
}
