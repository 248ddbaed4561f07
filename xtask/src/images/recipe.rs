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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    pub mirror: String,
    pub qemu: RootSpec,
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
    fn unknown_fields_are_refused() {
        let err = toml::from_str::<RootSpec>("suite = \"trixie\"\npackges = []\n").unwrap_err();
        assert!(err.to_string().contains("packges"), "{err}");
    }
}
