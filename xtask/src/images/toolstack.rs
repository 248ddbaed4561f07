//! Xen's toolstack for runs with guests, and a guest's base initramfs.
//!
//! The toolstack archive holds only what `xl create` of a device-less PVH
//! guest needs: xl, xenstored, xenconsoled, xen-init-dom0, the shared
//! libraries they load (resolved by the tool root's own dynamic loader), the
//! Xen device modules of dom0's kernel (those it does not have built in),
//! and the directories the tools write.
//! The harness appends it to dom0's initramfs only when a scenario has
//! guests, so dom0-only runs boot exactly the archive they always did.

use super::initramfs::{module, with_busybox};
use anyhow::Context;
use pvhdma_harness::images::workspace_root;
use pvhdma_harness::initrd::{Entry, Writer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tools copied from the recipe's `bin` directory.
pub const TOOLS: &[&str] = &["xl", "xenstored", "xenconsoled", "xen-init-dom0"];

/// Tools outside `bin`, by their path in the tool root. The hotplug scripts
/// talk to their backends through xenstore-write and xenstore-read (hard
/// links of the multi-call `xenstore`, which acts by the name it is run as).
pub const ROOT_TOOLS: &[&str] = &["usr/bin/xenstore-write", "usr/bin/xenstore-read"];

/// dom0 modules the toolstack needs, in load order (xenfs needs privcmd;
/// modules.dep lists no other dependency among them), with their directory
/// under the kernel's module tree.
pub const DOM0_MODULES: &[(&str, &str)] = &[
    ("kernel/drivers/xen", "xen-evtchn"),
    ("kernel/drivers/xen", "xen-privcmd"),
    ("kernel/drivers/xen/xenfs", "xenfs"),
    ("kernel/drivers/xen", "xen-gntdev"),
    ("kernel/drivers/xen", "xen-gntalloc"),
];

/// dom0 modules for guests' vifs, in load order (bridge needs stp and llc,
/// by modules.dep); dom0's init loads them only when a guest has one.
pub const NET_MODULES: &[(&str, &str)] = &[
    ("kernel/net/llc", "llc"),
    ("kernel/net/802", "stp"),
    ("kernel/net/bridge", "bridge"),
    ("kernel/drivers/net/xen-netback", "xen-netback"),
];

/// dom0 modules for guests' disks, in load order (by modules.dep): the
/// 32-bit IDE controller's driver (ata_piix, libata's BMDMA with its 32-bit
/// mask), the SCSI disk on top and blkback; dom0's init loads them only
/// when a guest has a disk.
pub const DISK_MODULES: &[(&str, &str)] = &[
    ("kernel/drivers/scsi", "scsi_common"),
    ("kernel/drivers/scsi", "scsi_mod"),
    ("kernel/drivers/ata", "libata"),
    ("kernel/drivers/ata", "ata_piix"),
    ("kernel/drivers/scsi", "sd_mod"),
    ("kernel/drivers/block/xen-blkback", "xen-blkback"),
];

/// Where the modules of the kernel that dom0 and the guests boot come from.
#[derive(Debug, Clone, Copy)]
pub enum Modules<'a> {
    /// The dom0 root's own kernel package, which has them all as modules.
    Root(&'a Path),
    /// A kernel built from source: its build directory (`O=`), where each
    /// module sits under its source path and `modules.builtin` names the
    /// ones built in.
    Built(&'a Path),
}

impl Modules<'_> {
    /// Module `name` from `dir` (its directory under the kernel's module
    /// tree, `kernel/...`), or `None` when the kernel has it built in: the
    /// scripts load only the modules that were shipped.
    pub fn get(&self, dir: &str, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let build = match self {
            Modules::Root(root) => return module(root, dir, name).map(Some),
            Modules::Built(build) => build,
        };
        let rel = format!("{dir}/{name}.ko");
        let ko = build.join(rel.strip_prefix("kernel/").unwrap_or(&rel));
        if ko.is_file() {
            return Ok(Some(std::fs::read(&ko)?));
        }
        let list = build.join("modules.builtin");
        let builtin = std::fs::read_to_string(&list).with_context(|| format!("Cannot read {}", list.display()))?;
        anyhow::ensure!(
            builtin.lines().any(|l| l.trim() == rel),
            "{name} is neither a module ({}) nor built into the kernel ({}): the kernel's config lacks it",
            ko.display(),
            list.display()
        );
        Ok(None)
    }
}

/// The hotplug scripts and dom0's guest script, from images/initramfs.
pub const SCRIPTS: &[&str] = &["guests.sh", "vif-pvhdma", "block-pvhdma"];

/// Directories the tools expect to exist (runtime state, logs, sockets).
const STATE_DIRS: &[&str] = &[
    "var",
    "var/run",
    "var/run/xen",
    "var/run/xenstored",
    "var/lib",
    "var/lib/xen",
    "var/lib/xenstored",
    "var/log",
    "var/log/xen",
    "var/log/xen/console",
    "etc",
    "etc/xen",
];

/// The dynamic loader's path in every x86-64 binary's PT_INTERP.
const LOADER: &str = "lib64/ld-linux-x86-64.so.2";

/// Write the toolstack archive from `tool_root` (tools under `bin`) and
/// `modules` (those of the kernel dom0 boots).
pub fn write(dst: &Path, tool_root: &Path, bin: &str, modules: Modules) -> anyhow::Result<()> {
    let bin_dir = super::roots::find_one(tool_root, bin)?;
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut tools = Vec::new();
    for tool in TOOLS {
        let path = bin_dir.join(tool);
        anyhow::ensure!(path.is_file(), "{} is missing from the toolstack root", path.display());
        let inner = inner_path(tool_root, &path)?;
        for lib in closure(tool_root, &path, &bin_dir)? {
            files.insert(inner_path(tool_root, &lib)?, lib);
        }
        tools.push((tool.to_string(), inner.clone()));
        files.insert(inner, path);
    }
    for tool in ROOT_TOOLS {
        let path = tool_root.join(tool);
        anyhow::ensure!(path.is_file(), "{} is missing from the toolstack root", path.display());
        for lib in closure(tool_root, &path, &bin_dir)? {
            files.insert(inner_path(tool_root, &lib)?, lib);
        }
        let name = Path::new(tool).file_name().unwrap_or_default().to_string_lossy();
        tools.push((name.into_owned(), tool.to_string()));
        files.insert(tool.to_string(), path);
    }
    files.insert(LOADER.into(), tool_root.join(LOADER));
    // glibc loads libgcc_s at run time (pthread_cancel, which libxl uses),
    // so no --list shows it.
    let gcc_s = super::roots::find_one(tool_root, "usr/lib/x86_64-linux-gnu/libgcc_s.so.1")?;
    files.insert(inner_path(tool_root, &gcc_s)?, gcc_s);

    let mut dirs: BTreeSet<String> = STATE_DIRS.iter().map(|d| d.to_string()).collect();
    for p in files.keys() {
        let mut cur = Path::new(p).parent();
        while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            cur = d.parent();
        }
    }
    dirs.extend(["pvhdma", "pvhdma/toolstack", "lib", "lib/modules"].map(String::from));

    let mut w = Writer::new(std::io::BufWriter::new(std::fs::File::create(dst)?));
    // Parents sort before their children, so the kernel can create each in turn.
    for d in &dirs {
        w.add(&Entry::Dir { path: d })?;
    }
    for (inner, src) in &files {
        // fs::read follows symlinks: the archive holds each file under the
        // name the loader resolved, with the contents it points at.
        let data = std::fs::read(src).with_context(|| format!("Cannot read {}", src.display()))?;
        w.add(&Entry::File {
            path: inner,
            mode: 0o755,
            data: &data,
        })?;
    }
    for (tool, inner) in &tools {
        let link = format!("pvhdma/toolstack/{tool}");
        let target = format!("/{inner}");
        w.add(&Entry::Symlink {
            path: &link,
            target: &target,
        })?;
    }
    for (dir, name) in DOM0_MODULES.iter().chain(NET_MODULES).chain(DISK_MODULES) {
        let Some(data) = modules.get(dir, name)? else {
            continue;
        };
        w.add(&Entry::File {
            path: &format!("lib/modules/{name}.ko"),
            mode: 0o644,
            data: &data,
        })?;
    }
    for script in SCRIPTS {
        let data = std::fs::read(workspace_root().join("images/initramfs").join(script))
            .with_context(|| format!("images/initramfs/{script} is missing"))?;
        w.add(&Entry::File {
            path: &format!("pvhdma/toolstack/{script}"),
            mode: 0o755,
            data: &data,
        })?;
    }
    w.finish()?;
    Ok(())
}

/// A guest's modules, from the kernel it boots (dom0's): grant-alloc,
/// netfront and blkfront.
pub const GUEST_MODULES: &[(&str, &str)] = &[
    ("kernel/drivers/xen", "xen-gntalloc"),
    ("kernel/drivers/net", "xen-netfront"),
    ("kernel/drivers/block", "xen-blkfront"),
];

/// A guest's base initramfs: busybox (from the dom0 root), its init, the
/// agent (in its guest role), and [`GUEST_MODULES`] that the kernel does
/// not have built in.
pub fn write_guest(dst: &Path, dom0_root: &Path, modules: Modules, agent: &Path) -> anyhow::Result<()> {
    let init = std::fs::read(workspace_root().join("images/initramfs/guest-init"))
        .context("images/initramfs/guest-init is missing")?;
    let agent = std::fs::read(agent)?;
    let mut shipped = Vec::new();
    for (dir, name) in GUEST_MODULES {
        if let Some(data) = modules.get(dir, name)? {
            shipped.push((format!("lib/modules/{name}.ko"), data));
        }
    }
    let mut files: Vec<(&str, u32, &[u8])> = vec![("init", 0o755, &init), ("bin/pvhdma-agent", 0o755, &agent)];
    files.extend(shipped.iter().map(|(p, d)| (p.as_str(), 0o644, d.as_slice())));
    with_busybox(dst, dom0_root, &files)
}

fn inner_path(root: &Path, p: &Path) -> anyhow::Result<String> {
    Ok(p.strip_prefix(root)
        .with_context(|| format!("{} is outside the root {}", p.display(), root.display()))?
        .to_string_lossy()
        .into_owned())
}

/// The shared libraries `binary` loads, as paths inside `root`: the root's
/// own loader lists them (`--list`), searching the root's library
/// directories and the toolstack's private `lib` beside `bin`.
fn closure(root: &Path, binary: &Path, bin_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut search = vec![root.join("usr/lib/x86_64-linux-gnu"), root.join("lib/x86_64-linux-gnu")];
    if let Some(parent) = bin_dir.parent() {
        search.push(parent.join("lib"));
    }
    let path = search
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let out = Command::new(root.join(LOADER))
        .arg("--library-path")
        .arg(&path)
        .arg("--list")
        .arg(binary)
        .output()
        .with_context(|| format!("Cannot run {}", root.join(LOADER).display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "{} --list {} failed: {}{}",
        LOADER,
        binary.display(),
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_list(&text, root)
}

/// Parse the loader's `--list` output: every `name => path (addr)` line
/// must resolve inside `root` (a library found on the host instead, or not
/// at all, would be missing at run time).
fn parse_list(text: &str, root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else {
            continue;
        };
        let path = rest.split(" (").next().unwrap_or_default().trim();
        anyhow::ensure!(path != "not found", "{name} not found in {}", root.display());
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.starts_with(root),
            "{name} resolved to {} outside {}",
            path.display(),
            root.display()
        );
        libs.push(path);
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_kernel_ships_its_modules_and_skips_its_built_in_ones() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::create_dir_all(b.join("drivers/block")).unwrap();
        std::fs::write(b.join("drivers/block/xen-blkfront.ko"), b"\x7fELF").unwrap();
        std::fs::write(
            b.join("modules.builtin"),
            "kernel/drivers/xen/xen-gntalloc.ko\nkernel/drivers/net/xen-netfront.ko\n",
        )
        .unwrap();
        let m = Modules::Built(b);
        assert_eq!(
            m.get("kernel/drivers/block", "xen-blkfront").unwrap().as_deref(),
            Some(&b"\x7fELF"[..])
        );
        assert_eq!(m.get("kernel/drivers/net", "xen-netfront").unwrap(), None);
        let err = m.get("kernel/net/bridge", "bridge").unwrap_err().to_string();
        assert!(err.contains("bridge is neither a module"), "{err}");
    }

    #[test]
    fn list_output_is_parsed_and_checked() {
        let root = Path::new("/cache/roots/abc");
        let text = "\tlinux-vdso.so.1 (0x00007ffc1c5f2000)\n\
                    \tlibxenlight.so.4.20 => /cache/roots/abc/usr/lib/x86_64-linux-gnu/libxenlight.so.4.20 (0x00007f)\n\
                    \tlibc.so.6 => /cache/roots/abc/usr/lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_list(text, root).unwrap();
        assert_eq!(libs.len(), 2);
        assert!(libs[0].ends_with("libxenlight.so.4.20"));

        let missing = "\tlibyajl.so.2 => not found\n";
        let err = parse_list(missing, root).unwrap_err().to_string();
        assert!(err.contains("libyajl.so.2 not found"), "{err}");

        let host = "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n";
        assert!(parse_list(host, root).unwrap_err().to_string().contains("outside"));
    }
}
