//! Host packages the image build and tests need, installed on demand.
//!
//! Only bookworm's own packages: newer userlands go into their own roots.

use std::process::Command;

/// (command that must exist, Debian package that provides it)
const NEEDED: &[(&str, &str)] = &[
    ("mmdebstrap", "mmdebstrap"),
    ("cpio", "cpio"),
    ("gzip", "gzip"),
    ("xz", "xz-utils"),
    // Kernel patch series (--kernel-patches, a recipe's [kernel] patches).
    ("patch", "patch"),
];

/// What the browser check of the report pages (harness/tests/browser.rs)
/// needs: Debian's Chromium, never a browser downloaded from elsewhere.
/// Only `check` runs that test, so only `check` installs it.
pub const BROWSER: &[(&str, &str)] = &[("chromium", "chromium")];

pub fn ensure() -> anyhow::Result<()> {
    ensure_these(NEEDED)
}

/// The packages of `check` on top of [`ensure`]'s.
pub fn ensure_browser() -> anyhow::Result<()> {
    ensure_these(BROWSER)
}

fn ensure_these(needed: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(cmd, _)| which(cmd).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        anyhow::bail!(
            "Missing host packages: {}. Install them with `sudo apt-get install {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("[deps] installing {}", missing.join(", "));
    let update = Command::new("apt-get").args(["update", "-qq"]).status()?;
    anyhow::ensure!(update.success(), "apt-get update failed");
    let status = Command::new("apt-get")
        // Other jobs on the machine may hold dpkg's lock for a while.
        .args(["-o", "DPkg::Lock::Timeout=300"])
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    anyhow::ensure!(status.success(), "apt-get install {} failed", missing.join(" "));
    Ok(())
}

/// Where xtask installs the cargo tools it needs (cargo-nextest): inside the
/// workspace's target directory, so a clean clone sets itself up.
pub fn tools_dir() -> std::path::PathBuf {
    pvhdma_harness::images::workspace_root().join("target/tools")
}

/// PATH with the tools directory's `bin` first.
pub fn path_with_tools() -> std::ffi::OsString {
    let mut dirs = vec![tools_dir().join("bin")];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(dirs).unwrap_or_default()
}

/// cargo-nextest on the PATH that [`path_with_tools`] gives, installed from
/// crates.io with its lock file when it is missing.
pub fn ensure_nextest() -> anyhow::Result<()> {
    let found = |p: &std::ffi::OsStr| std::env::split_paths(p).any(|d| d.join("cargo-nextest").is_file());
    let path = path_with_tools();
    if found(&path) {
        return Ok(());
    }
    eprintln!("[deps] installing cargo-nextest into {} (once)", tools_dir().display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "--locked", "--quiet", "cargo-nextest", "--root"])
        .arg(tools_dir())
        .status()?;
    anyhow::ensure!(status.success(), "cargo install cargo-nextest failed");
    anyhow::ensure!(
        found(&path_with_tools()),
        "cargo-nextest was installed but is not on the path"
    );
    Ok(())
}

/// `prog` on PATH, like the shell's lookup.
pub fn which(prog: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| p.is_file())
}
