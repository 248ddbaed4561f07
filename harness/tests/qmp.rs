//! QMP against real QEMU 11.1: negotiate, query status, pause and resume
//! (their events arrive), quit; the transcript keeps both directions.

use pvhdma_harness::images::Manifest;
use pvhdma_harness::process;
use pvhdma_harness::qmp::Qmp;
use std::time::Duration;
use tokio::process::Command;

#[tokio::test]
async fn qemu_11_qmp_round_trip() -> anyhow::Result<()> {
    let m = Manifest::load_default()?;
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("qmp.sock");
    let mut cmd = Command::new(&m.qemu);
    cmd.args([
        "-M",
        "q35",
        "-accel",
        "tcg",
        "-display",
        "none",
        "-nodefaults",
        "-S",
        "-run-with",
        "exit-with-parent=on",
    ])
    .arg("-qmp")
    .arg(format!("unix:{},server=on,wait=off", sock.display()));
    let mut qemu = process::spawn("QEMU", cmd)?;
    process::wait_for_path(&mut qemu, &sock, Duration::from_secs(10)).await?;
    let transcript = dir.path().join("qmp.log");
    let mut qmp = Qmp::connect(&sock, &transcript).await?;
    assert_eq!(qmp.status().await?, "prelaunch");
    qmp.cont().await?;
    assert_eq!(qmp.status().await?, "running");
    qmp.stop().await?;
    assert_eq!(qmp.status().await?, "paused");
    qmp.quit(Duration::from_secs(5)).await;
    assert!(
        qemu.finish(Duration::from_secs(5)).await.is_some(),
        "QEMU did not exit on quit"
    );
    let names: Vec<String> = qmp
        .drain_events()
        .iter()
        .filter_map(|e| e["event"].as_str().map(String::from))
        .collect();
    for want in ["RESUME", "STOP", "SHUTDOWN"] {
        assert!(names.iter().any(|n| n == want), "no {want} event in {names:?}");
    }
    let log = std::fs::read_to_string(&transcript)?;
    assert!(
        log.contains("-> {\"execute\":\"qmp_capabilities\"") || log.contains("qmp_capabilities"),
        "{log}"
    );
    assert!(
        !log.contains("withheld"),
        "QEMU 11.1 sent an event qapi cannot decode:\n{log}"
    );
    Ok(())
}
