//! End to end: Xen + a PVH dom0 boot to the marker under each IOMMU, and a
//! broken boot is named as such within seconds.

use pvhdma_harness::images::Manifest;
use pvhdma_harness::machine::{IommuKind, RunSpec};
use pvhdma_harness::outcome::EndKind;
use pvhdma_harness::vm;
use std::time::Duration;

fn spec(name: &str, iommu: IommuKind) -> RunSpec {
    RunSpec::boot_only(name, iommu)
}

async fn boot(name: &str, iommu: IommuKind) -> anyhow::Result<vm::Run> {
    let m = Manifest::load_default()?;
    Ok(vm::run_retrying_triple_fault(&m, &spec(name, iommu)).await?.0)
}

fn assert_pvh_with_iommu(run: &mut vm::Run) {
    let o = &run.outcome;
    let ok = o.end.is_finished()
        && ["xen_banner", "iommu_enabled", "pvh_dom0", "linux_pvh", "dom0_booted"]
            .iter()
            .all(|m| o.milestones.iter().any(|x| x == m));
    if !ok {
        let (end, milestones) = (o.end.clone(), o.milestones.clone());
        let dir = run.keep();
        panic!(
            "boot ended {end:?} with milestones {milestones:?}; artifacts kept in {}",
            dir.display()
        );
    }
}

#[tokio::test]
async fn pvh_dom0_boots_with_vtd() -> anyhow::Result<()> {
    let mut run = boot("boot-vtd", IommuKind::Intel).await?;
    assert_pvh_with_iommu(&mut run);
    assert!(run.outcome.console.contains("Intel VT-d"), "Xen did not report VT-d");
    Ok(())
}

#[tokio::test]
async fn pvh_dom0_boots_with_amdvi() -> anyhow::Result<()> {
    let mut run = boot("boot-amdvi", IommuKind::Amd).await?;
    assert_pvh_with_iommu(&mut run);
    assert!(run.outcome.console.contains("AMD-Vi"), "Xen did not report AMD-Vi");
    Ok(())
}

/// A PVH dom0 needs an IOMMU: without one Xen panics, and the run must end
/// on the panic, not at the boot timeout.
#[tokio::test]
async fn pvh_dom0_without_iommu_is_a_named_xen_panic() -> anyhow::Result<()> {
    let mut run = boot("boot-no-iommu", IommuKind::None).await?;
    let panic_seen = run.outcome.end.kind == EndKind::XenPanic;
    let ended_early = run.outcome.timings.to_end.unwrap_or_default() < Duration::from_secs(120);
    let dir = run.keep();
    assert!(
        panic_seen,
        "expected a Xen panic, got {:?}; artifacts in {}",
        run.outcome.end,
        dir.display()
    );
    assert!(ended_early, "the panic was not noticed before the timeout");
    for f in ["console.log", "qemu-cmdline.sh", "qemu.stderr", "qmp.log"] {
        assert!(dir.join(f).exists(), "{f} missing from {}", dir.display());
    }
    eprintln!("artifacts of the broken boot kept in {}", dir.display());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
