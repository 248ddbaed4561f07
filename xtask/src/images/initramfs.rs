//! The base dom0 initramfs: busybox, init, the driver and the agent.
//! Layout: images/initramfs/README.md.

use anyhow::Context;
use pvhdma_harness::images::workspace_root;
use pvhdma_harness::initrd::{Entry, Writer};
use std::path::Path;
use std::process::Command;

/// `e1000`: the module to ship, when the kernel is not the dom0 root's own
/// (a source-built or user-built kernel); else the root's is used.
pub fn write(dst: &Path, dom0_root: &Path, driver: &Path, agent: &Path, e1000: Option<&Path>) -> anyhow::Result<()> {
    let init =
        std::fs::read(workspace_root().join("images/initramfs/init")).context("images/initramfs/init is missing")?;
    let ko = std::fs::read(driver)?;
    let agent = std::fs::read(agent)?;
    let e1000 = match e1000 {
        Some(p) => std::fs::read(p).with_context(|| format!("Cannot read {}", p.display()))?,
        None => e1000_module(dom0_root)?,
    };

    with_busybox(
        dst,
        dom0_root,
        &[
            ("init", 0o755, &init),
            ("lib/modules/pvhdma.ko", 0o644, &ko),
            ("lib/modules/e1000.ko", 0o644, &e1000),
            ("bin/pvhdma-agent", 0o755, &agent),
        ],
    )
}

/// An initramfs of busybox (from the dom0 root) and these files
/// (path, mode, bytes), in order.
pub fn with_busybox(dst: &Path, dom0_root: &Path, files: &[(&str, u32, &[u8])]) -> anyhow::Result<()> {
    let mut w = Writer::new(std::io::BufWriter::new(std::fs::File::create(dst)?));
    busybox_base(&mut w, dom0_root)?;
    for &(path, mode, data) in files {
        w.add(&Entry::File { path, mode, data })?;
    }
    w.finish()?;
    Ok(())
}

/// What every initramfs here starts with (dom0's and a guest's): the mount
/// points, /dev/console, static busybox and one symlink per applet.
fn busybox_base<W: std::io::Write>(w: &mut Writer<W>, dom0_root: &Path) -> anyhow::Result<()> {
    let busybox_path = super::roots::find_one(dom0_root, "usr/bin/busybox")?;
    let busybox = std::fs::read(&busybox_path)?;
    // Debian's busybox-static is static, so the host can ask it for its applets.
    let list = Command::new(&busybox_path)
        .arg("--list-full")
        .output()
        .context("Cannot run busybox --list-full")?;
    anyhow::ensure!(list.status.success(), "busybox --list-full failed");
    let applets = String::from_utf8(list.stdout)?;

    for d in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "lib",
        "lib/modules",
        "pvhdma",
    ] {
        w.add(&Entry::Dir { path: d })?;
    }
    w.add(&Entry::CharDev {
        path: "dev/console",
        major: 5,
        minor: 1,
    })?;
    w.add(&Entry::File {
        path: "bin/busybox",
        mode: 0o755,
        data: &busybox,
    })?;
    for applet in applets
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "bin/busybox")
    {
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        w.add(&Entry::Symlink {
            path: applet,
            target: &target,
        })?;
    }
    Ok(())
}

/// The e1000 NIC driver for the `net_tftp` op, decompressed: Debian 13
/// ships it as `.ko.xz` (Debian 12 as plain `.ko`), and busybox insmod hands
/// the file to init_module as it is. It has no dependencies (its
/// modules.dep line is empty).
fn e1000_module(dom0_root: &Path) -> anyhow::Result<Vec<u8>> {
    module(dom0_root, "kernel/drivers/net/ethernet/intel/e1000", "e1000")
}

/// Module `name` from `dir` (relative to the kernel's module directory in
/// the dom0 root), decompressed if the root ships it as `.ko.xz`.
pub fn module(dom0_root: &Path, dir: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    let dir = format!("usr/lib/modules/*/{dir}");
    if let Ok(plain) = super::roots::find_one(dom0_root, &format!("{dir}/{name}.ko")) {
        return Ok(std::fs::read(plain)?);
    }
    let xz = super::roots::find_one(dom0_root, &format!("{dir}/{name}.ko.xz"))?;
    let out = Command::new("xz")
        .arg("-dc")
        .arg(&xz)
        .output()
        .context("Cannot run xz (apt-get install xz-utils)")?;
    anyhow::ensure!(out.status.success(), "xz -dc {} failed", xz.display());
    anyhow::ensure!(out.stdout.starts_with(b"\x7fELF"), "{} is not a module", xz.display());
    Ok(out.stdout)
}
