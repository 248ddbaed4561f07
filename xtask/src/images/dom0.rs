//! The dom0 parts of a set: Xen, the kernel, the driver and the agent.

use anyhow::Context;
use pvhdma_harness::images::workspace_root;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Write Xen as the ELF QEMU's multiboot loader takes (Debian ships it gzipped).
pub fn unpack_xen(src: &Path, dst: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(src).with_context(|| format!("Cannot read Xen at {}", src.display()))?;
    if data.starts_with(&[0x1f, 0x8b]) {
        let out = std::fs::File::create(dst)?;
        let status = Command::new("gzip")
            .arg("-dc")
            .arg(src)
            .stdout(out)
            .status()
            .context("Cannot run gzip")?;
        anyhow::ensure!(status.success(), "gzip -dc {} failed", src.display());
    } else {
        std::fs::write(dst, &data)?;
    }
    let head = std::fs::read(dst)?;
    anyhow::ensure!(
        head.starts_with(b"\x7fELF"),
        "{} is not an ELF image (QEMU's -kernel needs Xen's ELF)",
        src.display()
    );
    Ok(())
}

pub struct Kernel {
    pub image: PathBuf,
    pub version: String,
}

/// Copy the kernel into the set and learn its version.
pub fn kernel(out: &Path, root: &Path, pattern: &str, tree: Option<&Path>) -> anyhow::Result<Kernel> {
    let (src, version) = match tree {
        Some(t) => {
            let release = std::fs::read_to_string(t.join("include/config/kernel.release")).with_context(|| {
                format!(
                    "{} is not a built kernel tree (no include/config/kernel.release)",
                    t.display()
                )
            })?;
            (t.join("arch/x86/boot/bzImage"), release.trim().to_string())
        }
        None => {
            let src = super::roots::find_one(root, pattern)?;
            let modules = super::roots::find_one(root, "usr/lib/modules/*")?;
            let version = modules.file_name().unwrap().to_string_lossy().to_string();
            (src, version)
        }
    };
    let image = out.join("vmlinuz");
    std::fs::copy(&src, &image).with_context(|| format!("Cannot copy the kernel {}", src.display()))?;
    Ok(Kernel { image, version })
}

/// Build pvhdma.ko against the exact dom0 kernel: in the dom0 root with its
/// headers and compiler, or against the user's own tree with the host's.
pub fn build_driver(out: &Path, root: &Path, version: &str, tree: Option<&Path>) -> anyhow::Result<PathBuf> {
    let src = workspace_root().join("images/driver");
    eprintln!("[images] building the pvhdma driver for {version}");
    let ko = match tree {
        Some(t) => {
            let build = out.join("driver-build");
            copy_dir(&src, &build)?;
            run(Command::new("make")
                .arg("-C")
                .arg(t)
                .arg(format!("M={}", build.display()))
                .arg("modules"))?;
            build.join("pvhdma.ko")
        }
        None => {
            // The build tree inside the root is private to this process, so
            // parallel builds of different sets never collide.
            let inner = format!("tmp/pvhdma-driver-{}", std::process::id());
            let build = root.join(&inner);
            let _ = std::fs::remove_dir_all(&build);
            copy_dir(&src, &build)?;
            // objtool of newer kernels (7.x) reads /proc ("read_stack_limit:
            // fopen failed"), so mount one, in a private mount namespace that
            // ends with the build: nothing is left mounted in the cache. The
            // host's mount does it: bookworm's apt-variant root has none.
            let script = r#"mount -t proc proc "$1/proc" && exec chroot "$1" make -C "$2" M="$3" modules"#;
            let result = run(Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
                .arg(root)
                .arg(format!("/lib/modules/{version}/build"))
                .arg(format!("/{inner}")));
            let ko = out.join("pvhdma.ko.built");
            let copied = result.and_then(|_| Ok(std::fs::copy(build.join("pvhdma.ko"), &ko)?));
            let _ = std::fs::remove_dir_all(&build);
            copied.context("Building the driver failed")?;
            ko
        }
    };
    let dst = out.join("pvhdma.ko");
    std::fs::rename(&ko, &dst).or_else(|_| std::fs::copy(&ko, &dst).map(|_| ()))?;
    Ok(dst)
}

/// The agent as a static binary: dom0's initramfs has no libc.
pub fn build_agent(out: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("[images] building the static dom0 agent");
    let ws = workspace_root();
    let target_dir = ws.join("target/agent-static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(&ws)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "pvhdma-agent",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static"))?;
    let dst = out.join("pvhdma-agent");
    std::fs::copy(target_dir.join("x86_64-unknown-linux-gnu/release/pvhdma-agent"), &dst)?;
    Ok(dst)
}

pub fn xen_version(src: &Path) -> String {
    src.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

pub fn qemu_version(qemu: &Path) -> anyhow::Result<String> {
    let out = Command::new(qemu)
        .arg("--version")
        .output()
        .with_context(|| format!("Cannot run {}", qemu.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} --version failed: {}",
        qemu.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("Cannot run {cmd:?}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub(super) fn copy_dir(src: &Path, dst: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src).with_context(|| format!("Cannot list {}", src.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name()))?;
        }
    }
    Ok(())
}
