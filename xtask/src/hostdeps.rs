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

pub fn ensure() -> anyhow::Result<()> {
    let missing: Vec<&str> = NEEDED
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
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    anyhow::ensure!(status.success(), "apt-get install {} failed", missing.join(" "));
    Ok(())
}

/// `prog` on PATH, like the shell's lookup.
pub fn which(prog: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| p.is_file())
}
