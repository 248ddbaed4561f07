//! Debian roots built with mmdebstrap, each cached by its recipe table.
//!
//! Newer userlands live in their own roots, never in the host's apt sources:
//! adding trixie to a bookworm host upgrades its libc in place.

use super::cache;
use super::recipe::RootSpec;
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The cached root for `spec`, built if missing.
pub fn ensure(label: &str, mirror: &str, spec: &RootSpec) -> anyhow::Result<PathBuf> {
    ensure_with(label, mirror, spec, &Extra::default())
}

/// What a build root needs beyond packages: `deb-src` lines (only ever
/// inside the root) and commands run in it once the packages are in, such
/// as fetching a source package with `apt-get source`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    /// Suites whose `deb-src` index the root's apt gets.
    pub deb_src: Vec<String>,
    /// Shell commands run in the root under chroot, in order.
    pub hooks: Vec<String>,
}

/// [`ensure`] with extras; without any, the key is exactly [`ensure`]'s,
/// so existing roots are found again.
pub fn ensure_with(label: &str, mirror: &str, spec: &RootSpec, extra: &Extra) -> anyhow::Result<PathBuf> {
    let key = key(mirror, spec, extra)?;
    let dir = cache::root().join("roots");
    cache::entry(&dir, &key, |out| build(label, mirror, spec, extra, out))
}

fn key(mirror: &str, spec: &RootSpec, extra: &Extra) -> anyhow::Result<String> {
    let mut key = cache::Key::new("root");
    key.str(mirror).str(&serde_json::to_string(spec)?);
    for s in &extra.deb_src {
        key.str("deb-src").str(s);
    }
    for h in &extra.hooks {
        key.str("hook").str(h);
    }
    Ok(key.hex())
}

fn build(label: &str, mirror: &str, spec: &RootSpec, extra: &Extra, out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!(
        "[images] building the {label} root: Debian {} with {}",
        spec.suite,
        spec.packages
            .iter()
            .chain(&spec.backports)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--variant=apt", "--verbose"]);
    if !spec.packages.is_empty() {
        cmd.arg(format!("--include={}", spec.packages.join(",")));
    }
    if !spec.backports.is_empty() {
        // `--include` would take the backports package's dependencies from the
        // base suite and fail; `-t` lets apt take them from backports.
        cmd.arg(format!(
            "--customize-hook=chroot \"$1\" apt-get install -y --no-install-recommends -t {}-backports {}",
            spec.suite,
            spec.backports.join(" ")
        ));
    }
    for h in &extra.hooks {
        cmd.arg(format!(
            "--customize-hook=chroot \"$1\" sh -c '{}'",
            h.replace('\'', r"'\''")
        ));
    }
    cmd.arg(&spec.suite)
        .arg(out)
        .arg(format!("deb {mirror} {} main", spec.suite));
    if !spec.backports.is_empty() {
        cmd.arg(format!("deb {mirror} {}-backports main", spec.suite));
    }
    // A suite that is only a source index is read to fetch one pinned
    // version, whose files apt still checks against the signed index; its
    // Release may be past its Valid-Until on a mirror that is not kept
    // current (sid's is on this project's). apt refuses the option on a
    // suite that also has a `deb` line, and those are current anyway.
    let binary_suites = [spec.suite.clone(), format!("{}-backports", spec.suite)];
    for s in &extra.deb_src {
        let opts = if binary_suites.contains(s) {
            ""
        } else {
            "[check-valid-until=no] "
        };
        cmd.arg(format!("deb-src {opts}{mirror} {s} main"));
    }
    let log_path = out.with_extension("log");
    run_logged(cmd, &log_path, label)
        .with_context(|| format!("Building the {label} root failed; log: {}", log_path.display()))?;
    eprintln!("[images] {label} root ready in {:.0?}", started.elapsed());
    Ok(())
}

/// Run `cmd`, keeping its whole output in `log` and echoing mmdebstrap's
/// progress lines ("I: ...") so a long step visibly moves.
fn run_logged(mut cmd: Command, log: &Path, label: &str) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(log)?;
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("Cannot run mmdebstrap (apt-get install mmdebstrap)")?;
    let stderr = child.stderr.take().expect("piped");
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        use std::io::Write;
        writeln!(file, "{line}")?;
        if let Some(progress) = line.strip_prefix("I: ") {
            eprintln!("[images]   {label}: {progress}");
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "mmdebstrap exited with {status}");
    Ok(())
}

/// The one file in `root` that matches `pattern` (a path with `*` wildcards).
pub fn find_one(root: &Path, pattern: &str) -> anyhow::Result<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    for part in pattern.split('/') {
        let mut next = Vec::new();
        for dir in &found {
            if !part.contains('*') {
                let p = dir.join(part);
                if p.exists() {
                    next.push(p);
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for e in entries.flatten() {
                if glob_match(part, &e.file_name().to_string_lossy()) {
                    next.push(e.path());
                }
            }
        }
        found = next;
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => anyhow::bail!("Nothing matches {pattern} in {}", root.display()),
        _ => anyhow::bail!(
            "{pattern} matches {} files in {}: {found:?}",
            found.len(),
            root.display()
        ),
    }
}

fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, rest)) => {
            let Some(tail) = name.strip_prefix(pre) else {
                return false;
            };
            if !rest.contains('*') {
                return tail.len() >= rest.len() && tail.ends_with(rest);
            }
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob_match(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_change_the_key_and_none_keep_it() {
        let spec = RootSpec {
            suite: "trixie".into(),
            packages: vec!["gcc".into()],
            backports: vec![],
        };
        let plain = key("m", &spec, &Extra::default()).unwrap();
        let mut old = cache::Key::new("root");
        old.str("m").str(&serde_json::to_string(&spec).unwrap());
        assert_eq!(plain, old.hex(), "a root without extras keeps its key");
        let src = Extra {
            deb_src: vec!["trixie-backports".into()],
            hooks: vec![],
        };
        let with_src = key("m", &spec, &src).unwrap();
        assert_ne!(with_src, plain);
        let hook = Extra {
            hooks: vec!["apt-get source --download-only qemu=1:10.2.2+ds-1".into()],
            ..src.clone()
        };
        assert_ne!(key("m", &spec, &hook).unwrap(), with_src);
    }

    #[test]
    fn globs() {
        assert!(glob_match("vmlinuz-*", "vmlinuz-6.12.117+deb13-amd64"));
        assert!(glob_match("xen-*-amd64.gz", "xen-4.20-amd64.gz"));
        assert!(!glob_match("xen-*-amd64.gz", "xen-4.20-amd64.config"));
        assert!(glob_match("*", "x"));
    }

    #[test]
    fn find_one_walks_wildcard_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("usr/lib/modules/7.1-amd64")).unwrap();
        std::fs::write(d.path().join("usr/lib/modules/7.1-amd64/vmlinuz"), "k").unwrap();
        let p = find_one(d.path(), "usr/lib/modules/*/vmlinuz").unwrap();
        assert!(p.ends_with("7.1-amd64/vmlinuz"));
        assert!(find_one(d.path(), "boot/vmlinuz-*").is_err());
    }
}
