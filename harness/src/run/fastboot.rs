//! Fast boot: command-line cuts that take work out of the Xen + dom0 boot
//! under TCG without touching what the scenarios ask about (DMA addressing,
//! the IOMMU, swiotlb).
//!
//! Every cut was found in a profile of the Debian kernel as PVH dom0 under TCG
//! (`initcall_debug` and per-line wall-clock timestamps of the console); the
//! catalog run with and without them is recorded in docs/bench.md.
//! `BootSpec::fast_boot` switches them on (the default); the environment
//! variable [`ENV`] overrides it for a whole run (`0` = the old way, `1` =
//! fast), so a bench or a suspicious developer can compare both.
//!
//! What is deliberately *not* cut: the console's log level. Scenarios match
//! kernel messages on the console (`expect.log`: e1000's probe line, the
//! DMAR / AMD-Vi banners, "DMA addr ... overflow", "BUG:"), and most of those
//! are info-level, so `quiet` would turn `contains` checks into failures and
//! `lacks` checks into blind passes.

use crate::machine::RunSpec;

/// `PVHDMA_FAST_BOOT=0` boots the old way, `=1` the fast way, whatever the
/// spec says; unset leaves the spec's choice.
pub const ENV: &str = "PVHDMA_FAST_BOOT";

/// Appended to Xen's command line (before a scenario's own `xen.options`,
/// so a scenario still has the last word).
pub const XEN_ARGS: &[&str] = &[
    // dom0 gets one vCPU instead of one per physical CPU. Under TCG every
    // cross-CPU step of a Linux boot (secondary CPU bring-up and its delay
    // calibration, stop_machine for code patching, IPIs) is emulated nested
    // virtualization on an oversubscribed host; one vCPU halved the boot
    // (profile in docs/bench.md). The DMA path does not depend on dom0's
    // vCPU count: the device's MSIs go to vCPU 0 either way. Xen itself
    // still runs on every CPU of the VM.
    "dom0_max_vcpus=1",
];

/// Initcalls of the Debian kernel skipped in a dom0 under Xen, each with why
/// it is safe to skip.
pub const DOM0_SKIPPED_INITCALLS: &[&str] = &[
    // The ACPI PM timer belongs to Xen: dom0's reads of its port fail the
    // kernel's consistency check ("PM-Timer failed consistency check ...
    // aborting"), so the clocksource is never registered anyway; the check
    // itself spent 2-5 s in trapped port reads. dom0 runs on Xen's clocksource.
    "init_acpi_pm_clocksource",
];

/// Initcalls skipped on every boot of the Debian kernel (dom0 or the
/// Linux-only controls), each with why it is safe to skip.
pub const SKIPPED_INITCALLS: &[&str] = &[
    // The jitter entropy RNG times memory accesses to gather noise (2.6 s
    // under TCG). Nothing in a run needs it: the kernel's own RNG is seeded
    // without it, and the DRBG continues without it outside FIPS mode.
    "jent_mod_init",
    // Only a known-answer self-test of the SP800-108 KDF (2.2 s); the KDF
    // stays available.
    "crypto_kdf108_init",
    // The "encrypted" key type (kernel-held encrypted blobs); registering it
    // instantiates hmac(sha256) and cbc(aes) at boot (2.6-3.0 s). No run
    // uses kernel keys.
    "init_encrypted",
];

/// Other dom0 / kernel arguments.
pub const LINUX_ARGS: &[&str] = &[
    // The crypto self-tests run for every algorithm the kernel registers
    // (a few seconds under TCG); no run does cryptography, and the tests
    // check the implementations, not the machine.
    "cryptomgr.notests=1",
];

/// The spec with the environment's override applied; a value other than `0`
/// or `1` is an error that names the variable.
pub fn with_env(spec: &RunSpec) -> anyhow::Result<RunSpec> {
    let mut s = spec.clone();
    if let Some(fast) = env_override()? {
        s.boot.fast_boot = fast;
    }
    Ok(s)
}

/// What [`ENV`] asks for: `Some(false)` the old way, `Some(true)` the fast
/// way, `None` when it is unset. Image building reads it too: the old way
/// builds a source kernel without the project's boot series.
pub fn env_override() -> anyhow::Result<Option<bool>> {
    std::env::var_os(ENV)
        .map(|v| parse_env(&v.to_string_lossy()))
        .transpose()
}

fn parse_env(v: &str) -> anyhow::Result<bool> {
    match v.trim() {
        "1" => Ok(true),
        "0" => Ok(false),
        other => anyhow::bail!("{ENV}={other:?}: expected 0 (boot the old way) or 1 (fast boot)"),
    }
}

/// Xen arguments the fast boot adds for this spec.
pub fn xen_args(spec: &RunSpec) -> Vec<String> {
    if !spec.boot.fast_boot || spec.boot.no_xen {
        return vec![];
    }
    XEN_ARGS.iter().map(|a| a.to_string()).collect()
}

/// Kernel arguments the fast boot adds for this spec.
pub fn linux_args(spec: &RunSpec) -> Vec<String> {
    if !spec.boot.fast_boot {
        return vec![];
    }
    let mut initcalls: Vec<&str> = SKIPPED_INITCALLS.to_vec();
    if !spec.boot.no_xen {
        // Without Xen the VM's PM timer is the kernel's own and works.
        initcalls.extend(DOM0_SKIPPED_INITCALLS);
    }
    let mut args = vec![format!("initcall_blacklist={}", initcalls.join(","))];
    args.extend(LINUX_ARGS.iter().map(|a| a.to_string()));
    if spec.boot.no_xen {
        args.extend(NO_XEN_ARGS.iter().map(|a| a.to_string()));
    }
    args
}

/// Kernel arguments for a guest's Linux (the same kernel as dom0's): the
/// cuts that do not depend on being dom0. A guest boots while the run
/// waits for it, so its boot is as much the run's cost as dom0's.
pub fn guest_linux_args(fast_boot: bool) -> Vec<String> {
    if !fast_boot {
        return vec![];
    }
    let mut args = vec![format!("initcall_blacklist={}", SKIPPED_INITCALLS.join(","))];
    args.extend(LINUX_ARGS.iter().map(|a| a.to_string()));
    args
}

/// Added when Linux boots without Xen (the control runs).
pub const NO_XEN_ARGS: &[&str] = &[
    // The IO-APIC timer check counts timer interrupts over a few emulated
    // milliseconds; on a loaded host TCG delivers too few and the kernel
    // panics ("timer doesn't work through Interrupt-remapped IO-APIC"), seen
    // in 2 of 2 tries of control-linux-vtd with the host at load 14. A timer
    // that really did not work would still stop the boot, as a boot timeout.
    // Under Xen, dom0 has no IO-APIC timer and the check does not run.
    "no_timer_check",
];

/// One line for the run's harness.log.
pub fn describe(spec: &RunSpec) -> String {
    if spec.boot.fast_boot {
        format!("fast boot: on ({ENV}=0 for the old way)")
    } else {
        "fast boot: off".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::IommuKind;
    use crate::qemu::{linux_cmdline, xen_cmdline};

    fn spec(fast: bool) -> RunSpec {
        let mut s = RunSpec::boot_only("t", IommuKind::Intel);
        s.boot.fast_boot = fast;
        s
    }

    #[test]
    fn fast_boot_is_the_default() {
        assert!(crate::machine::BootSpec::default().fast_boot);
    }

    #[test]
    fn off_adds_nothing_and_on_adds_every_cut() {
        let (old, new) = (spec(false), spec(true));
        assert_eq!(linux_cmdline(&old), "console=hvc0 earlyprintk=xen");
        assert!(!xen_cmdline(&old, &[]).contains("dom0_max_vcpus"));
        let l = linux_cmdline(&new);
        assert_eq!(
            l,
            "console=hvc0 earlyprintk=xen \
             initcall_blacklist=jent_mod_init,crypto_kdf108_init,init_encrypted,init_acpi_pm_clocksource \
             cryptomgr.notests=1"
        );
        assert!(xen_cmdline(&new, &[]).contains(" dom0_max_vcpus=1"));
    }

    #[test]
    fn a_scenario_still_has_the_last_word() {
        let mut s = spec(true);
        s.boot.xen_extra.push("dom0_max_vcpus=2".into());
        s.boot.dom0_extra.push("swiotlb=noforce".into());
        let x = xen_cmdline(&s, &[]);
        assert!(x.find("dom0_max_vcpus=1") < x.find("dom0_max_vcpus=2"), "{x}");
        assert!(linux_cmdline(&s).ends_with("swiotlb=noforce"));
    }

    #[test]
    fn linux_without_xen_keeps_its_pm_timer_and_all_cpus() {
        let mut s = spec(true);
        s.boot.no_xen = true;
        let l = linux_cmdline(&s);
        assert!(l.contains("initcall_blacklist=jent_mod_init,"), "{l}");
        assert!(!l.contains("init_acpi_pm_clocksource"), "{l}");
        assert!(l.ends_with("cryptomgr.notests=1 no_timer_check"), "{l}");
        assert!(xen_args(&s).is_empty());
    }

    #[test]
    fn the_environment_overrides_and_rejects_nonsense() {
        assert!(parse_env("1").unwrap());
        assert!(!parse_env("0").unwrap());
        let e = parse_env("yes").unwrap_err().to_string();
        assert!(e.contains(ENV) && e.contains("expected 0"), "{e}");
    }
}
