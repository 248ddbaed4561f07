//! No orphans: QEMU and the device die with their test, whether the run is
//! cancelled, the test panics, or the test process is SIGKILLed (nextest's
//! timeout, a ^C'd run).

use pvhdma_harness::images::Manifest;
use pvhdma_harness::machine::{DeviceSpec, IommuKind, RunSpec};
use pvhdma_harness::vm;
use std::time::{Duration, Instant};

fn spec(name: &str) -> RunSpec {
    RunSpec {
        devices: vec![DeviceSpec::default()],
        ..RunSpec::boot_only(name, IommuKind::Intel)
    }
}

/// Pids whose command line mentions `marker` (every run path carries the run name).
fn processes_with(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "));
            !zombie && String::from_utf8_lossy(&cmd).contains(marker)
        })
        .collect()
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Every process of the run named `name` is gone within `grace`.
fn assert_none_left(name: &str, grace: Duration) {
    assert!(
        wait_until(grace, || processes_with(name).is_empty()),
        "left behind: {:?}",
        processes_with(name)
    );
}

fn unique(tag: &str) -> String {
    format!("lifecycle-{tag}-{}", std::process::id())
}

#[test]
fn cancelled_run_leaves_no_process() -> anyhow::Result<()> {
    let m = Manifest::load_default()?;
    let name = unique("cancel");
    let rt = runtime();
    let s = spec(&name);
    let r = rt.block_on(async { tokio::time::timeout(Duration::from_secs(4), vm::run(&m, &s)).await });
    assert!(r.is_err(), "the run should still be booting after 4 s");
    assert_none_left(&name, Duration::from_secs(3));
    Ok(())
}

#[test]
fn panicking_test_leaves_no_process() -> anyhow::Result<()> {
    let m = Manifest::load_default()?;
    let name = unique("panic");
    let s = spec(&name);
    let seen = std::panic::catch_unwind(|| {
        let rt = runtime();
        rt.block_on(async {
            tokio::select! {
                _ = vm::run(&m, &s) => unreachable!("the run cannot finish in 4 s"),
                _ = tokio::time::sleep(Duration::from_secs(4)) => {
                    assert!(!processes_with(&name).is_empty(), "the run never started");
                    panic!("test body panics mid-run");
                }
            }
        })
    });
    assert!(seen.is_err());
    assert_none_left(&name, Duration::from_secs(3));
    Ok(())
}

/// Re-runs this test binary as a child that boots a VM, SIGKILLs it, and
/// checks that the kernel's parent-death signal took QEMU and the device.
#[test]
fn sigkilled_test_process_leaves_no_process() -> anyhow::Result<()> {
    if let Ok(name) = std::env::var("PVHDMA_LIFECYCLE_CHILD") {
        let m = Manifest::load_default()?;
        let rt = runtime();
        rt.block_on(vm::run(&m, &spec(&name)))?;
        return Ok(());
    }
    let name = unique("sigkill");
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", "sigkilled_test_process_leaves_no_process", "--nocapture"])
        .env("PVHDMA_LIFECYCLE_CHILD", &name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let started = wait_until(Duration::from_secs(20), || processes_with(&name).len() >= 2);
    // Let QEMU get into Xen's boot, so the kill lands mid-run.
    std::thread::sleep(Duration::from_secs(3));
    child.kill()?;
    child.wait()?;
    assert!(started, "QEMU and the device never started");
    assert_none_left(&name, Duration::from_secs(5));
    // A SIGKILLed run cannot remove its own directory; this test made it, so it does.
    for e in std::fs::read_dir(vm::artifacts_root())?.flatten() {
        if e.file_name().to_string_lossy().starts_with(&name) {
            std::fs::remove_dir_all(e.path())?;
        }
    }
    Ok(())
}

/// A run the harness cannot finish (here: the device dies at start) keeps
/// its directory and says where it is.
#[test]
fn a_run_that_cannot_start_keeps_its_artifacts() -> anyhow::Result<()> {
    // Each nextest test is its own process, so this reaches no other test.
    std::env::set_var("PVHDMA_DEVICE", "/bin/false");
    let m = Manifest::load_default()?;
    let name = unique("nostart");
    let rt = runtime();
    let err = match rt.block_on(vm::run(&m, &spec(&name))) {
        Ok(_) => anyhow::bail!("a device that exits at once should fail the run"),
        Err(e) => format!("{e:#}"),
    };
    let kept = err
        .split("artifacts kept in ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .map(std::path::PathBuf::from);
    let kept = kept.unwrap_or_else(|| panic!("no artifact path in: {err}"));
    assert!(
        kept.join("workload.json").exists(),
        "{} lost its files: {err}",
        kept.display()
    );
    assert!(err.contains("device 0 exited"), "{err}");
    std::fs::remove_dir_all(kept)?;
    Ok(())
}
