//! One run end to end: devices, QEMU, QMP, console, and what they left.
//!
//! Every run gets a private directory under target/pvhdma/runs (or
//! `$PVHDMA_ARTIFACTS`) holding console.log, qemu-cmdline.sh, qemu.stderr,
//! qmp.log, the IOMMU trace and each device's socket, records and log. It is
//! removed when the run is dropped unless `keep` was called.

use crate::console::{Event, Read, Scanner};
use crate::images::{workspace_root, Manifest};
use crate::machine::{DeviceSpec, RamLayout, RunSpec};
use crate::outcome::{EndKind, RunEnd, RunOutcome, Timings};
use crate::process::{self, Guarded};
use crate::qemu::{self, RunPaths};
use crate::qmp::Qmp;
use anyhow::Context;
use pvhdma_contract::device_cli::DeviceArgs;
use pvhdma_contract::record::DmaRecord;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// A finished run and its artifact directory.
pub struct Run {
    pub outcome: RunOutcome,
    dir: Option<tempfile::TempDir>,
}

impl Run {
    /// Keep the artifacts after the run is dropped; returns their path.
    pub fn keep(&mut self) -> PathBuf {
        match self.dir.take() {
            Some(d) => d.keep(),
            None => self.outcome.artifacts.clone(),
        }
    }
}

/// Where run directories go.
pub fn artifacts_root() -> PathBuf {
    std::env::var_os("PVHDMA_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pvhdma/runs"))
}

/// The device server binary: `$PVHDMA_DEVICE`, else the workspace's build.
pub fn device_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("PVHDMA_DEVICE") {
        return Ok(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("pvhdma-device"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "No pvhdma-device binary in {}: run `cargo build -p pvhdma-device`",
                target.display()
            )
        })
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

/// Under TCG a dom0 vCPU now and then triple-faults inside Xen's text, or
/// (while a guest is being built) faults in the kernel's entry path until
/// it triple-faults or overruns the entry stack: faults of the emulation,
/// not of what the run tests. Those ends, and no other, are worth a second
/// try; the first try's end is returned with the run so the verdict can say
/// it happened.
pub fn is_tcg_triple_fault(end: &RunEnd) -> bool {
    use crate::console::{DUMPED_THEN_RESET, ENTRY_STACK_OVERRUN};
    match end.kind {
        EndKind::Dom0Crash => end.detail.contains("Triple fault") || end.detail.contains(DUMPED_THEN_RESET),
        EndKind::LinuxPanic => end.detail.contains(ENTRY_STACK_OVERRUN),
        _ => false,
    }
}

/// [`run`], once more if the first try ended in [`is_tcg_triple_fault`].
/// The first try's artifacts are kept; its end comes back as `Some`.
pub async fn run_retrying_triple_fault(m: &Manifest, spec: &RunSpec) -> anyhow::Result<(Run, Option<RunEnd>)> {
    let mut first = run(m, spec).await?;
    if !is_tcg_triple_fault(&first.outcome.end) {
        return Ok((first, None));
    }
    let kept = first.keep();
    let end = first.outcome.end.clone();
    eprintln!(
        "{}: {end}; trying once more (first try kept in {})",
        spec.name,
        kept.display()
    );
    Ok((run(m, spec).await?, Some(end)))
}

/// Boot, run the workload, and collect everything.
pub async fn run(m: &Manifest, spec: &RunSpec) -> anyhow::Result<Run> {
    let spec = &crate::fastboot::with_env(spec)?;
    let root = artifacts_root();
    std::fs::create_dir_all(&root).with_context(|| format!("Cannot create {}", root.display()))?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-", sanitize(&spec.name)))
        .tempdir_in(&root)?;
    let mut run = Run {
        outcome: RunOutcome {
            end: RunEnd::finished(),
            console: String::new(),
            results: vec![],
            summary: None,
            device_records: vec![],
            iommu_trace: vec![],
            milestones: vec![],
            artifacts: dir.path().to_path_buf(),
            timings: Timings::default(),
            // The layout of the RAM `qemu::args` gives QEMU.
            ram_layout: Some(RamLayout::q35(spec.machine.memory_mib << 20)),
            guest_payloads: vec![],
            guest_disks: vec![],
            guest_served: vec![],
        },
        dir: Some(dir),
    };
    let path = run.outcome.artifacts.clone();
    if let Err(e) = run_in(m, spec, &path, &mut run.outcome).await {
        // A run the harness could not finish is the one whose logs matter most.
        let kept = run.keep();
        return Err(e.context(format!(
            "Run {} failed; artifacts kept in {}",
            spec.name,
            kept.display()
        )));
    }
    Ok(run)
}

async fn run_in(m: &Manifest, spec: &RunSpec, dir: &Path, out: &mut RunOutcome) -> anyhow::Result<()> {
    let started = Instant::now();
    let paths = RunPaths::in_dir(dir, spec.devices.len());
    log_line(dir, &crate::fastboot::describe(spec));
    write_initrd(m, spec, &paths.initrd)?;
    if let Some(d) = &spec.machine.disk {
        crate::disk::create_image(&paths.disk, d.size)?;
    }
    for (name, sum) in crate::net::write_tftp_root(spec.workload.as_ref(), &paths.tftp)? {
        log_line(dir, &format!("tftp/{name}: FNV-1a {sum:#010x}"));
    }
    std::fs::write(
        &paths.trace_events,
        qemu::trace_events(spec.machine.iommu).join("\n") + "\n",
    )?;

    let mut devices = Vec::new();
    for (i, d) in spec.devices.iter().enumerate() {
        devices.push(start_device(dir, i, d, &paths.device_sockets[i]).await?);
    }

    let args = qemu::args(m, spec, &paths);
    std::fs::write(
        dir.join("qemu-cmdline.sh"),
        format!("#!/bin/sh\n{}\n", qemu::shell_line(&m.qemu, &args)),
    )?;
    let mut cmd = Command::new(&m.qemu);
    cmd.args(&args).stderr(process::log_stdio(&dir.join("qemu.stderr"))?);
    let mut qemu = if spec.shell {
        cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit());
        process::spawn_in_our_group("QEMU", cmd)?
    } else {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        process::spawn("QEMU", cmd)?
    };
    out.timings.to_qemu_started = Some(started.elapsed());

    let qmp = connect_qmp(&mut qemu, &paths.qmp, &dir.join("qmp.log")).await;
    let qmp = match qmp {
        Ok(q) => Some(q),
        Err(e) => {
            out.end = RunEnd::new(EndKind::QemuExited, format!("{e:#}"));
            None
        }
    };

    if let Some(qmp) = &qmp {
        let status = qmp.status().await.unwrap_or_else(|e| format!("unknown ({e:#})"));
        log_line(dir, &format!("QEMU status after start: {status}"));
        if spec.shell {
            let _ = qemu.child_mut().wait().await;
        } else {
            let mut garbled = Vec::new();
            out.end = watch_console(spec, dir, &mut qemu, &mut devices, out, &mut garbled, started).await?;
            if out.end.is_finished() {
                let expected = spec.workload.as_ref().map(crate::console::expected_results);
                if let Some(why) =
                    crate::console::shortfall(expected, out.summary.as_ref(), out.results.len(), &garbled)
                {
                    out.end = RunEnd::new(EndKind::ConsoleLost, why);
                }
            }
        }
        out.timings.qemu_peak_rss_kib = qemu.pid().and_then(peak_rss_kib);
        qmp.quit(Duration::from_secs(2)).await;
    }
    let _ = qemu.finish(Duration::from_secs(5)).await;
    // Whatever way QEMU went, its last words say why: one place adds them.
    if out.end.kind == EndKind::QemuExited {
        out.end
            .detail
            .push_str(&format!("; {}", tail(&dir.join("qemu.stderr"))));
    }
    for d in devices {
        let _ = d.finish(Duration::from_secs(2)).await;
    }
    out.timings.to_end = Some(started.elapsed());

    for i in 0..spec.devices.len() {
        out.device_records
            .push(read_records(&dir.join(format!("dev{i}/dma.jsonl")))?);
    }
    out.iommu_trace = crate::trace::parse(&std::fs::read_to_string(&paths.trace_log).unwrap_or_default());
    out.console = crate::splice::unsplice(&std::fs::read_to_string(dir.join("console.log")).unwrap_or_default());
    out.guest_payloads = crate::net::guest_payloads(spec.workload.as_ref(), dir);
    out.guest_disks = crate::disk::guest_disks(spec.workload.as_ref(), &paths.disk);
    out.guest_served = crate::net::guest_served(spec.workload.as_ref());
    std::fs::write(dir.join("outcome.json"), serde_json::to_string_pretty(&*out)?)?;
    Ok(())
}

fn write_initrd(m: &Manifest, spec: &RunSpec, dst: &Path) -> anyhow::Result<()> {
    let mut bytes =
        std::fs::read(&m.initrd).with_context(|| format!("Cannot read the base initramfs {}", m.initrd.display()))?;
    let mut workload = spec.workload.clone().unwrap_or_default();
    workload.shell |= spec.shell;
    let json = serde_json::to_vec_pretty(&workload)?;
    std::fs::write(dst.with_file_name("workload.json"), &json)?;
    bytes.extend(crate::initrd::workload_archive(&json)?);
    let cpus = crate::guests::guest_cpus(spec);
    bytes.extend(crate::guests::archives(
        m,
        &workload,
        spec.boot.fast_boot,
        cpus.as_deref(),
    )?);
    std::fs::write(dst, bytes)?;
    Ok(())
}

async fn start_device(dir: &Path, i: usize, d: &DeviceSpec, socket: &Path) -> anyhow::Result<Guarded> {
    let ddir = dir.join(format!("dev{i}"));
    std::fs::create_dir_all(&ddir)?;
    // The socket lives in a private directory: only this run's QEMU connects.
    std::fs::set_permissions(&ddir, std::fs::Permissions::from_mode(0o700))?;
    let args = DeviceArgs {
        log: Some(ddir.join("device.log")),
        addr_bits: d.addr_bits,
        decode_bits: d.decode_bits,
        inject: d.inject,
        ..DeviceArgs::new(socket.to_path_buf(), ddir.join("dma.jsonl"))
    };
    let mut cmd = Command::new(device_binary()?);
    cmd.args(args.to_args())
        .stdin(Stdio::null())
        .stdout(process::log_stdio(&ddir.join("device.stderr"))?)
        .stderr(process::log_stdio(&ddir.join("device.stderr"))?);
    let mut child = process::spawn(&format!("device {i}"), cmd)?;
    process::wait_for_path(&mut child, socket, Duration::from_secs(10)).await?;
    Ok(child)
}

async fn connect_qmp(qemu: &mut Guarded, socket: &Path, transcript: &Path) -> anyhow::Result<Qmp> {
    process::wait_for_path(qemu, socket, Duration::from_secs(30)).await?;
    Qmp::connect(socket, transcript).await
}

/// Read the console until the run ends one way or another.
async fn watch_console(
    spec: &RunSpec,
    dir: &Path,
    qemu: &mut Guarded,
    devices: &mut [Guarded],
    out: &mut RunOutcome,
    garbled: &mut Vec<String>,
    started: Instant,
) -> anyhow::Result<RunEnd> {
    let stdout = qemu.child_mut().stdout.take().context("QEMU's stdout is not piped")?;
    let mut lines = crate::console::Lines::new(stdout);
    let mut log = std::io::BufWriter::new(std::fs::File::create(dir.join("console.log"))?);
    let (mut splices, mut scanner) = (crate::splice::Splices::default(), Scanner::default());
    let mut progress = Progress {
        out,
        started,
        booted_at: None,
    };
    let guest_specs = spec.workload.as_ref().map(|w| w.guests.as_slice()).unwrap_or_default();
    let mut guests = crate::guests::Guests::new(dir, guest_specs, spec.guest_timeout);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let (raw, eof) = match lines.next(&mut tick).await? {
            Read::Line(line) => (Some(line), false),
            Read::Tick => {
                log.flush()?;
                guests.flush()?;
                let end = progress
                    .overdue(spec)
                    .or_else(|| guests.check_timeout(progress.booted_at, Instant::now()));
                if let Some(end) = end {
                    return Ok(end);
                }
                if let Some((end, device_ok)) = device_exit(devices) {
                    let qemu_status = qemu_exit_within(qemu, Duration::from_secs(2)).await;
                    return Ok(blame_qemu(end, device_ok, qemu_status));
                }
                continue;
            }
            Read::Eof(last) => (last, true),
        };
        let mut whole = Vec::new();
        if let Some(line) = raw {
            writeln!(log, "{line}")?;
            if spec.live_console {
                eprintln!("{line}");
            }
            whole = splices.line(&line);
        }
        if eof {
            // A line Xen cut and dom0 never finished is judged as it stands.
            whole.extend(splices.finish());
        }
        for line in whole {
            if let Some(end) = on_line(&mut scanner, &line, dir, garbled, &mut guests, &mut progress)? {
                log.flush()?;
                guests.flush()?;
                return Ok(end);
            }
        }
        if eof {
            log.flush()?;
            guests.flush()?;
            if let Some(Event::Fatal(end)) = scanner.flush() {
                return Ok(end);
            }
            // The console closes a moment before QEMU can be reaped; waiting
            // for it names the signal of an abort.
            let how = qemu_exit_within(qemu, Duration::from_secs(2))
                .await
                .map_or_else(|| "closed its console".into(), |s| s.to_string());
            let why = format!("QEMU exited ({how}) before the run finished");
            return Ok(RunEnd::new(EndKind::QemuExited, why));
        }
    }
}

/// Hand one whole console line's meaning to its owner; `Some` when it ends
/// the run.
fn on_line(
    scanner: &mut Scanner,
    line: &str,
    dir: &Path,
    garbled: &mut Vec<String>,
    guests: &mut crate::guests::Guests,
    progress: &mut Progress,
) -> anyhow::Result<Option<RunEnd>> {
    Ok(match scanner.line(line) {
        Some(Event::Garbled(why)) => {
            log_line(dir, &format!("garbled agent line: {why}"));
            garbled.push(why);
            None
        }
        Some(Event::Guest(ev)) => guests.on(ev, &mut progress.out.milestones)?,
        Some(event) => progress.on_event(event),
        None => None,
    })
}

/// What the console has shown of a run so far.
struct Progress<'a> {
    out: &'a mut RunOutcome,
    started: Instant,
    booted_at: Option<Instant>,
}

impl Progress<'_> {
    /// Take in one console event; `Some` when it ends the run.
    fn on_event(&mut self, event: Event) -> Option<RunEnd> {
        let elapsed = Some(self.started.elapsed());
        let out = &mut *self.out;
        match event {
            Event::Fatal(end) => return Some(end),
            Event::Booted => {
                self.booted_at = Some(Instant::now());
                out.timings.to_dom0_marker = elapsed;
                out.milestones.push("dom0_booted".into());
            }
            Event::XenBanner => {
                out.timings.to_xen_banner = elapsed;
                out.milestones.push("xen_banner".into());
            }
            Event::PvhDom0 => out.milestones.push("pvh_dom0".into()),
            Event::IommuEnabled => out.milestones.push("iommu_enabled".into()),
            Event::LinuxPvh => out.milestones.push("linux_pvh".into()),
            Event::Result(r) => out.results.push(*r),
            Event::Summary(s) => out.summary = Some(s),
            Event::AgentFailed(why) => return Some(RunEnd::new(EndKind::AgentFailed, why)),
            // The caller hands these to their own owners.
            Event::Garbled(_) | Event::Guest(_) => {}
            Event::Done => {
                out.timings.to_agent_done = elapsed;
                return Some(RunEnd::finished());
            }
        }
        None
    }

    /// The boot or the workload took longer than the spec allows.
    fn overdue(&self, spec: &RunSpec) -> Option<RunEnd> {
        let (deadline, kind) = match self.booted_at {
            None => (self.started + spec.boot_timeout, EndKind::BootTimeout),
            Some(t) => (t + spec.run_timeout, EndKind::RunTimeout),
        };
        (Instant::now() >= deadline).then(|| RunEnd::new(kind, ""))
    }
}

/// How QEMU exited, if it does within `grace`.
async fn qemu_exit_within(qemu: &mut Guarded, grace: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = qemu.status() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The device leaves cleanly when QEMU hangs up on it, so a clean device
/// exit beside a dead QEMU is a consequence, and so is any device exit beside
/// a QEMU killed by a signal (an abort in QEMU, say): the end is QEMU's, and
/// its stderr, added later, says why. A device that failed while QEMU lived,
/// or before QEMU merely exited, stays the device's end.
fn blame_qemu(device_end: RunEnd, device_ok: bool, qemu: Option<ExitStatus>) -> RunEnd {
    match qemu {
        Some(q) if device_ok || q.signal().is_some() => RunEnd::new(
            EndKind::QemuExited,
            format!("QEMU exited ({q}) before the run finished; {}", device_end.detail),
        ),
        Some(q) => RunEnd::new(
            EndKind::DeviceExited,
            format!("{}; QEMU exited after it ({q})", device_end.detail),
        ),
        None => device_end,
    }
}

/// The first device that exited: its end, and whether it exited cleanly.
fn device_exit(devices: &mut [Guarded]) -> Option<(RunEnd, bool)> {
    devices.iter_mut().find_map(|d| {
        let status = d.status()?;
        Some((
            RunEnd::new(EndKind::DeviceExited, format!("{} exited ({status})", d.name())),
            status.success(),
        ))
    })
}

fn read_records(path: &Path) -> anyhow::Result<Vec<DmaRecord>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(vec![]);
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}: bad device record", path.display(), i + 1))
        })
        .collect()
}

/// VmHWM of a live process, from /proc.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Harness notes kept beside the other artifacts.
fn log_line(dir: &Path, text: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("harness.log"))
    {
        let _ = writeln!(f, "{text}");
    }
}

/// The last lines of a log, for a failure message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        format!("{} is empty", path.display())
    } else {
        format!("stderr: {}", lines.into_iter().rev().collect::<Vec<_>>().join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_left_with_qemu_is_qemus_end() {
        use std::os::unix::process::ExitStatusExt;
        let abort = ExitStatus::from_raw(6); // killed by SIGABRT
        let exit1 = ExitStatus::from_raw(1 << 8);
        let device = RunEnd::new(EndKind::DeviceExited, "device 0 exited (exit status: 0)");
        let end = blame_qemu(device.clone(), true, Some(abort));
        assert_eq!(end.kind, EndKind::QemuExited);
        assert!(end.detail.contains("SIGABRT"), "{}", end.detail);
        assert!(end.detail.contains("device 0 exited"), "{}", end.detail);
        assert_eq!(blame_qemu(device.clone(), true, Some(exit1)).kind, EndKind::QemuExited);
        // A device that failed: QEMU's abort still outranks it, a plain exit
        // of QEMU after it does not.
        let failed = RunEnd::new(EndKind::DeviceExited, "device 0 exited (exit status: 1)");
        assert_eq!(blame_qemu(failed.clone(), false, Some(abort)).kind, EndKind::QemuExited);
        let end = blame_qemu(failed.clone(), false, Some(exit1));
        assert_eq!(end.kind, EndKind::DeviceExited);
        assert!(end.detail.contains("QEMU exited after it"), "{}", end.detail);
        // QEMU still running: the device died on its own.
        assert_eq!(blame_qemu(device.clone(), true, None), device);
    }

    #[test]
    fn qemus_last_stderr_lines_name_the_abort() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qemu.stderr");
        std::fs::write(
            &path,
            "qemu-system-x86_64: iommu map to non memory area 0\n\
             qemu-system-x86_64: hw/i386/amd_iommu.c:900: amdvi_notify_iommu: \
             Assertion `mapped->size > target.size' failed.\n",
        )
        .unwrap();
        let t = tail(&path);
        assert!(t.starts_with("stderr: qemu-system-x86_64: iommu map"), "{t}");
        assert!(t.ends_with("Assertion `mapped->size > target.size' failed."), "{t}");
        std::fs::write(&path, "").unwrap();
        assert!(tail(&path).ends_with("is empty"));
    }

    #[test]
    fn only_the_triple_fault_is_retried() {
        assert!(is_tcg_triple_fault(&RunEnd::new(
            EndKind::Dom0Crash,
            "d0v1 Triple fault - invoking HVM shutdown action 1"
        )));
        assert!(is_tcg_triple_fault(&RunEnd::new(
            EndKind::Dom0Crash,
            format!(
                "Hardware Dom0 shutdown: rebooting machine ({})",
                crate::console::DUMPED_THEN_RESET
            )
        )));
        assert!(is_tcg_triple_fault(&RunEnd::new(
            EndKind::LinuxPanic,
            format!(
                "Kernel panic - not syncing: Fatal exception in interrupt ({})",
                crate::console::ENTRY_STACK_OVERRUN
            )
        )));
        for end in [
            RunEnd::new(
                EndKind::LinuxPanic,
                "Kernel panic - not syncing: Fatal exception in interrupt",
            ),
            RunEnd::new(EndKind::Dom0Crash, "Hardware Dom0 crashed: rebooting machine"),
            RunEnd::new(EndKind::XenPanic, "Triple fault"),
            RunEnd::new(EndKind::ConsoleLost, ""),
            RunEnd::finished(),
        ] {
            assert!(!is_tcg_triple_fault(&end), "{end}");
        }
    }
}
