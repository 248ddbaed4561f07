//! The content-addressed image cache.
//!
//! An entry is a directory named by the hash of everything that went into it.
//! It is built under a `.partial-<pid>` name and renamed into place only when
//! complete, so an interrupted or failed build never leaves an entry that looks
//! complete; stale partials are removed by the next build.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Bump when the build steps change in a way the inputs do not show.
pub const BUILDER_VERSION: &str = "pvhdma-images-3";

/// The cache root: `$PVHDMA_CACHE`, else `$XDG_CACHE_HOME/pvhdma`, else `~/.cache/pvhdma`.
pub fn root() -> PathBuf {
    if let Some(p) = std::env::var_os("PVHDMA_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("pvhdma");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/pvhdma")
}

/// Accumulates a cache key.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    pub fn new(kind: &str) -> Self {
        let mut k = Self(Sha256::new());
        k.str(BUILDER_VERSION).str(kind);
        k
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }

    /// Every file below `dir` (sorted, by relative path and content),
    /// skipping build products.
    pub fn tree(&mut self, dir: &Path) -> anyhow::Result<&mut Self> {
        let mut files = Vec::new();
        walk(dir, dir, &mut files)?;
        files.sort();
        for rel in files {
            let data =
                std::fs::read(dir.join(&rel)).with_context(|| format!("Cannot read {}", dir.join(&rel).display()))?;
            self.str(&rel).bytes(&data);
        }
        Ok(self)
    }

    pub fn file(&mut self, path: &Path) -> anyhow::Result<&mut Self> {
        let data = std::fs::read(path).with_context(|| format!("Cannot read {}", path.display()))?;
        Ok(self.str(&path.display().to_string()).bytes(&data))
    }

    pub fn hex(&self) -> String {
        let d = self.0.clone().finalize();
        d.iter().take(12).map(|b| format!("{b:02x}")).collect()
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("Cannot list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "target" || name.starts_with('.') || is_build_product(&name) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(base, &path, out)?;
        } else {
            out.push(path.strip_prefix(base)?.display().to_string());
        }
    }
    Ok(())
}

fn is_build_product(name: &str) -> bool {
    [".ko", ".o", ".mod", ".mod.c", ".symvers", ".order"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Where a patched build may start from: the cached entry of the same
/// build without patches, so the build tool recompiles only what the
/// patches touched. `None` when there are no patches, when `key` is already
/// built, or when the unpatched entry is not cached; `unpatched_key` is
/// computed only when there is something to build, so a warm run keys one
/// plan, not two.
pub fn patched_seed(
    dir: &Path,
    key: &str,
    has_patches: bool,
    unpatched_key: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<Option<PathBuf>> {
    if !has_patches || dir.join(key).is_dir() {
        return Ok(None);
    }
    Ok(Some(dir.join(unpatched_key()?)).filter(|d| d.is_dir()))
}

/// The file in an entry that names what it was built from apart from its
/// configuration (see [`config_seed`]).
pub const SOURCE_KEY_FILE: &str = "source.key";

/// Where a build whose configuration changed may start from: the newest
/// complete entry in `dir` built from the same source (its
/// [`SOURCE_KEY_FILE`] says `source_key`), so the build tool recompiles only
/// what the changed options touch. `None` when `key` is already built or no
/// such entry is cached.
pub fn config_seed(dir: &Path, key: &str, source_key: &str) -> Option<PathBuf> {
    if dir.join(key).is_dir() {
        return None;
    }
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().contains(".partial-"))
        .filter(|e| std::fs::read_to_string(e.path().join(SOURCE_KEY_FILE)).is_ok_and(|k| k.trim() == source_key))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// Record in the complete entry `done` the key of its source, for
/// [`config_seed`]; an entry built before it was recorded learns it on
/// its next use. Best effort: a cache that cannot take it only loses the
/// shortcut.
pub fn record_source_key(done: &Path, source_key: &str) {
    let file = done.join(SOURCE_KEY_FILE);
    if std::fs::read_to_string(&file).is_ok_and(|k| k.trim() == source_key) {
        return;
    }
    let tmp = done.join(format!("{SOURCE_KEY_FILE}.tmp-{}", std::process::id()));
    if std::fs::write(&tmp, source_key).is_ok() {
        let _ = std::fs::rename(&tmp, &file);
    }
}

/// Get the entry `dir/key`, building it with `build` into a fresh partial
/// directory if it is missing. `build` must fill the directory it is given.
pub fn entry(dir: &Path, key: &str, build: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<PathBuf> {
    let done = dir.join(key);
    if done.is_dir() {
        return Ok(done);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("Cannot create {}", dir.display()))?;
    remove_stale_partials(dir, key);
    let partial = dir.join(format!("{key}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    match build(&partial) {
        Ok(()) => {
            std::fs::rename(&partial, &done)
                .with_context(|| format!("Cannot move {} into place", partial.display()))?;
            Ok(done)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

fn remove_stale_partials(dir: &Path, key: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_prefix(&format!("{key}.partial-")) {
            // A partial whose builder is still alive belongs to a parallel build.
            let alive = Path::new("/proc").join(pid).exists();
            if !alive {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_build_leaves_nothing_that_looks_complete() {
        let dir = tempfile::tempdir().unwrap();
        let err = entry(dir.path(), "k1", |p| {
            std::fs::write(p.join("half"), "x")?;
            anyhow::bail!("interrupted")
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let ok = entry(dir.path(), "k1", |p| Ok(std::fs::write(p.join("whole"), "x")?)).unwrap();
        assert!(ok.join("whole").exists());
        // A second call does no work.
        entry(dir.path(), "k1", |_| panic!("rebuilt a complete entry")).unwrap();
    }

    #[test]
    fn a_patched_build_starts_from_the_cached_unpatched_one_only() {
        let dir = tempfile::tempdir().unwrap();
        let never = || -> anyhow::Result<String> { panic!("keyed the unpatched plan for nothing") };
        assert_eq!(patched_seed(dir.path(), "p", false, never).unwrap(), None);
        std::fs::create_dir(dir.path().join("p")).unwrap();
        assert_eq!(patched_seed(dir.path(), "p", true, never).unwrap(), None);
        let plain = || Ok("u".to_string());
        assert_eq!(patched_seed(dir.path(), "q", true, plain).unwrap(), None);
        std::fs::create_dir(dir.path().join("u")).unwrap();
        assert_eq!(
            patched_seed(dir.path(), "q", true, plain).unwrap(),
            Some(dir.path().join("u"))
        );
    }

    #[test]
    fn a_reconfigured_build_starts_from_the_newest_entry_of_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(config_seed(d, "new", "src1"), None);
        for (name, source) in [("old", "src1"), ("other", "src2")] {
            std::fs::create_dir(d.join(name)).unwrap();
            record_source_key(&d.join(name), source);
        }
        std::fs::create_dir(d.join("unknown")).unwrap();
        std::fs::create_dir(d.join("new.partial-1")).unwrap();
        record_source_key(&d.join("new.partial-1"), "src1");
        assert_eq!(config_seed(d, "new", "src1"), Some(d.join("old")));
        assert_eq!(config_seed(d, "new", "src3"), None);
        std::fs::create_dir(d.join("new")).unwrap();
        assert_eq!(config_seed(d, "new", "src1"), None, "already built");
    }

    #[test]
    fn stale_partials_of_dead_builders_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("k2.partial-999999999")).unwrap();
        entry(dir.path(), "k2", |_| Ok(())).unwrap();
        assert!(!dir.path().join("k2.partial-999999999").exists());
    }

    #[test]
    fn keys_are_length_prefixed() {
        let a = Key::new("t").str("ab").str("c").hex();
        let b = Key::new("t").str("a").str("bc").hex();
        assert_ne!(a, b);
    }
}
