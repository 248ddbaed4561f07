//! KVM or TCG: what `accel: auto` means on this host.
//!
//! Xen is a hypervisor, so the guest CPU QEMU gives it must itself offer VMX
//! or SVM. With KVM that needs nested virtualization in the host's
//! `kvm_intel` / `kvm_amd` (`nested=Y` or `1`). The machines this project was
//! built on have a `/dev/kvm` that belongs to `kvm_pvm`, a paravirtual KVM
//! that cannot run Xen, so there the answer is TCG. A GitHub
//! runner's KVM may expose nested virtualization; then the answer is KVM.
//!
//! [`decide_in`] reads only files under a root directory, so the decision is
//! unit-tested against a fake sysfs in a tempdir. `PVHDMA_ACCEL=tcg|kvm`
//! forces the answer ([`decide`]).

use crate::machine::Accel;
use std::path::Path;

/// The environment variable that forces the answer.
pub const ENV: &str = "PVHDMA_ACCEL";

/// What `accel: auto` becomes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub accel: Accel,
    pub reason: String,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.accel {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        };
        write!(f, "accel {name}: {}", self.reason)
    }
}

fn tcg(reason: impl Into<String>) -> Decision {
    Decision {
        accel: Accel::Tcg,
        reason: reason.into(),
    }
}

/// The decision for this host (`PVHDMA_ACCEL` first, then [`decide_in`] `/`).
pub fn decide() -> Decision {
    match std::env::var(ENV).as_deref() {
        Ok("tcg") => tcg(format!("forced by {ENV}=tcg")),
        Ok("kvm") => Decision {
            accel: Accel::Kvm,
            reason: format!("forced by {ENV}=kvm"),
        },
        _ => decide_in(Path::new("/")),
    }
}

/// The decision from the files under `root` (`/` on a real host):
/// `dev/kvm`, `sys/module/{kvm_pvm,kvm_intel,kvm_amd}`, `proc/modules`.
pub fn decide_in(root: &Path) -> Decision {
    let kvm = root.join("dev/kvm");
    if !kvm.exists() {
        return tcg("no /dev/kvm");
    }
    // Usable: this user can open it read-write (what QEMU does).
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(&kvm) {
        return tcg(format!("/dev/kvm is not usable by this user ({e})"));
    }
    if module_loaded(root, "kvm_pvm") {
        return tcg("/dev/kvm is the paravirtual kvm_pvm, which cannot run a hypervisor (no nested VMX/SVM for Xen)");
    }
    let mut seen = Vec::new();
    for module in ["kvm_intel", "kvm_amd"] {
        if !module_loaded(root, module) {
            continue;
        }
        let param = root.join(format!("sys/module/{module}/parameters/nested"));
        let value = std::fs::read_to_string(&param).unwrap_or_default();
        let value = value.trim();
        if value == "Y" || value == "1" {
            return Decision {
                accel: Accel::Kvm,
                reason: format!("/dev/kvm usable and {module} has nested={value}: Xen gets VMX/SVM"),
            };
        }
        seen.push(format!(
            "{module} nested={}",
            if value.is_empty() { "?" } else { value }
        ));
    }
    if seen.is_empty() {
        tcg("/dev/kvm exists but neither kvm_intel nor kvm_amd is loaded")
    } else {
        tcg(format!(
            "{}: without nested virtualization Xen cannot run under KVM",
            seen.join(", ")
        ))
    }
}

/// Loaded as seen in sysfs, or listed in /proc/modules (some hosts have only one of them).
fn module_loaded(root: &Path, name: &str) -> bool {
    if root.join("sys/module").join(name).exists() {
        return true;
    }
    std::fs::read_to_string(root.join("proc/modules"))
        .map(|t| t.lines().any(|l| l.split_whitespace().next() == Some(name)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(tempfile::TempDir);

    impl Fake {
        fn new() -> Self {
            Self(tempfile::tempdir().unwrap())
        }
        fn file(self, rel: &str, text: &str) -> Self {
            let p = self.0.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
            self
        }
        fn dir(self, rel: &str) -> Self {
            std::fs::create_dir_all(self.0.path().join(rel)).unwrap();
            self
        }
        fn decide(&self) -> Decision {
            decide_in(self.0.path())
        }
    }

    #[test]
    fn no_dev_kvm_is_tcg() {
        let d = Fake::new()
            .file("sys/module/kvm_intel/parameters/nested", "Y\n")
            .decide();
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("no /dev/kvm"), "{d}");
    }

    #[test]
    fn kvm_pvm_is_tcg_even_when_nested_looks_on() {
        let d = Fake::new()
            .file("dev/kvm", "")
            .dir("sys/module/kvm_pvm/parameters")
            .file("sys/module/kvm_intel/parameters/nested", "Y\n")
            .decide();
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("kvm_pvm"), "{d}");
    }

    #[test]
    fn kvm_pvm_seen_in_proc_modules() {
        let d = Fake::new()
            .file("dev/kvm", "")
            .file(
                "proc/modules",
                "kvm_pvm 73728 0 - Live 0x0\nkvm 1146880 1 kvm_pvm, Live 0x0\n",
            )
            .decide();
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("kvm_pvm"), "{d}");
    }

    #[test]
    fn nested_intel_or_amd_is_kvm() {
        for (module, value) in [("kvm_intel", "Y\n"), ("kvm_amd", "1\n")] {
            let d = Fake::new()
                .file("dev/kvm", "")
                .file(&format!("sys/module/{module}/parameters/nested"), value)
                .decide();
            assert_eq!(d.accel, Accel::Kvm, "{module}: {d}");
            assert!(d.reason.contains(module), "{d}");
        }
    }

    #[test]
    fn module_without_nested_is_tcg() {
        let d = Fake::new()
            .file("dev/kvm", "")
            .file("sys/module/kvm_amd/parameters/nested", "0\n")
            .decide();
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("kvm_amd nested=0"), "{d}");
    }

    #[test]
    fn kvm_without_a_vendor_module_is_tcg() {
        let d = Fake::new().file("dev/kvm", "").dir("sys/module/kvm").decide();
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("neither"), "{d}");
    }

    #[test]
    fn unopenable_dev_kvm_is_tcg() {
        // A directory cannot be opened read-write: stands in for EACCES.
        let d = Fake::new()
            .dir("dev/kvm")
            .file("sys/module/kvm_intel/parameters/nested", "Y\n")
            .decide();
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("not usable"), "{d}");
    }
}
