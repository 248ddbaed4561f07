//! The image set `cargo xtask images` built, as the harness finds it.
//!
//! xtask writes `target/pvhdma/images.json`; `PVHDMA_IMAGES` overrides the path.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Paths of one built image set (all absolute).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// A wrapper that runs the tool root's QEMU on this host.
    pub qemu: PathBuf,
    /// Xen as a multiboot ELF.
    pub xen: PathBuf,
    pub kernel: PathBuf,
    pub kernel_version: String,
    /// The base initramfs (busybox, modules, driver, agent, init).
    pub initrd: PathBuf,
    /// Xen's toolstack as a cpio archive, appended to dom0's initramfs only
    /// for runs with guests; absent when the recipe has no `[toolstack]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolstack: Option<PathBuf>,
    /// The base initramfs of a guest (busybox, its init, the agent, the
    /// grant-alloc module); present with `toolstack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_initrd: Option<PathBuf>,
    /// Human-readable versions, for reports.
    pub versions: std::collections::BTreeMap<String, String>,
    /// Xen options every boot of this set needs (its recipe's `[xen]
    /// cmdline`), placed after the harness's defaults and before a
    /// scenario's own `xen.options`, so a scenario can still undo one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xen_cmdline: Vec<String>,
}

impl Manifest {
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("PVHDMA_IMAGES") {
            return PathBuf::from(p);
        }
        workspace_root().join("target/pvhdma/images.json")
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("No image set at {}: run `cargo xtask images` first", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("Malformed image manifest {}", path.display()))
    }

    pub fn load_default() -> anyhow::Result<Self> {
        Self::load(&Self::default_path())
    }
}

/// The workspace root, found from this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness is inside the workspace")
        .to_path_buf()
}
