//! dom0's agent: run the workload through /dev/pvhdmaN, report on the
//! console, power off. Started by the initramfs's /init. With `--guest` it
//! is the agent inside a guest instead (pvhdma_agent::guest_role).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use pvhdma_agent::markers::{DONE_MARKER, RESULT_PREFIX, SUMMARY_PREFIX, WORKLOAD_PATH};
use pvhdma_agent::report::{self, Slot};
use pvhdma_agent::trace::{Tracer, TRACEFS};
use pvhdma_agent::wire::{Op, OpKind, OpResult, Summary, Workload};
use pvhdma_agent::{backends, foreign, guest_role, ioctl, kmsg, net, pool, uapi, xen_cpuid};
use pvhdma_contract::markers::guest::WORK_PATH as GUEST_WORK_PATH;
use pvhdma_contract::uapi::RawSeg;

const CLASS_MISC: &str = "/sys/class/misc";

struct Opts {
    workload: String,
    dev_dir: String,
    poweroff: bool,
    /// The agent inside a guest: grant pages instead of running ops.
    guest: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        workload: format!("/{WORKLOAD_PATH}"),
        dev_dir: "/dev".into(),
        poweroff: true,
        guest: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--workload" => o.workload = args.next().ok_or("--workload needs a path")?,
            "--dev-dir" => o.dev_dir = args.next().ok_or("--dev-dir needs a path")?,
            // For trying the agent outside a throwaway VM.
            "--no-poweroff" => o.poweroff = false,
            "--guest" => o.guest = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// One console line per record, written and flushed at once so that a
/// kernel message cannot land in the middle of it as easily.
fn emit(prefix: &str, json: &str) {
    let line = format!("{prefix}{json}\n");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// A remark for whoever reads the console. stdout, not stderr: init keeps
/// stderr in a file that it shows only when the agent fails.
fn note(msg: &str) {
    emit("pvhdma-agent: ", msg);
}

fn run(o: &Opts) -> Result<(), String> {
    let text = std::fs::read_to_string(&o.workload).map_err(|e| format!("cannot read {}: {e}", o.workload))?;
    let workload: Workload = serde_json::from_str(&text).map_err(|e| format!("bad workload {}: {e}", o.workload))?;

    let mut summary = Summary::default();
    let tracer = if workload.tracepoints {
        match Tracer::enable(Path::new(TRACEFS)) {
            Ok((t, groups)) => {
                summary.tracepoints = groups;
                Some(t)
            }
            Err(e) => {
                note(&format!("tracing off: {e}"));
                None
            }
        }
    } else {
        None
    };
    if report::devices(Path::new(CLASS_MISC)).is_empty() {
        note("no pvhdma device bound (driver not loaded, or no 5056:d3a0 device on the bus)");
    }

    let mut files: HashMap<u32, Result<File, String>> = HashMap::new();
    let mut index = 0u32;
    for (op_index, op) in workload.ops.iter().enumerate() {
        for run in 0..op.count {
            let slot = Slot {
                index,
                op: op_index as u32,
                run,
                tag: index + 1,
            };
            index += 1;
            let result = if op.kind == OpKind::NetTftp {
                // The NIC's DMA goes through the same DMA API: count its bounces too.
                if let Some(t) = &tracer {
                    t.clear();
                }
                let mut result = net::run(slot, op);
                result.bounces = tracer.as_ref().map_or(0, Tracer::take_bounces);
                result
            } else {
                run_on_recorder(&mut files, &o.dev_dir, tracer.as_ref(), slot, op)
            };
            summary.ops += 1;
            summary.bounces += result.bounces;
            if report::is_failure(&result) {
                summary.failed += 1;
            }
            emit(
                RESULT_PREFIX,
                &serde_json::to_string(&result).map_err(|e| e.to_string())?,
            );
        }
    }

    let unchecked = foreign::settle(&workload);
    // A guest's send through netback ends in dom0's NIC driver, and its disk
    // I/O through blkback in dom0's disk controller driver, whose DMA goes
    // through the same DMA API: what bounced since the last op is theirs.
    if workload.guests.iter().any(|g| g.net.is_some() || g.disk.is_some()) {
        if let Some(t) = &tracer {
            summary.bounces += t.take_bounces();
        }
    }
    if !unchecked.is_empty() {
        note(&format!("no guest check for {}", unchecked.join(", ")));
    }
    summary.devices = report::devices(Path::new(CLASS_MISC));
    match kmsg::read_all("/dev/kmsg") {
        Ok(facts) => {
            summary.kmsg_from_start = facts.from_start;
            summary.swiotlb = facts.swiotlb;
            summary.overflow_warnings = facts.overflow_warnings;
            summary.kernel_warnings = facts.kernel_warnings;
        }
        Err(e) => summary.kernel_warnings.push(format!("cannot read /dev/kmsg: {e}")),
    }
    summary.swiotlb_nslabs = pool::nslabs(Path::new(pool::DEBUGFS));
    summary.xen_iommu_mappings = xen_cpuid::iommu_mappings();
    summary.vbds = backends::vbds(&workload);
    summary.vifs = backends::vifs(&workload);
    emit(
        SUMMARY_PREFIX,
        &serde_json::to_string(&summary).map_err(|e| e.to_string())?,
    );
    emit(DONE_MARKER, "");
    Ok(())
}

/// One op through the driver's ioctl on `/dev/pvhdma<device>` (opened once per device).
fn run_on_recorder(
    files: &mut HashMap<u32, Result<File, String>>,
    dev_dir: &str,
    tracer: Option<&Tracer>,
    slot: Slot,
    op: &Op,
) -> OpResult {
    let file = files.entry(op.device).or_insert_with(|| {
        let path = format!("{}/pvhdma{}", dev_dir, op.device);
        File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {path}: {e}"))
    });
    if op.buffer.is_some() {
        return match file {
            Ok(f) => foreign::run(slot, op, f, tracer),
            Err(e) => report::failed(slot, op, e.clone()),
        };
    }
    match (file, uapi::request(op, slot.tag)) {
        (Err(e), _) => report::failed(slot, op, e.clone()),
        (_, Err(why)) => report::refused(slot, op, why),
        (Ok(f), Ok(mut raw)) => {
            if let Some(t) = tracer {
                t.clear();
            }
            // Sized per op: an sg op may carry up to MAX_SEGMENTS segments.
            let mut segs = vec![RawSeg::default(); raw.segments as usize];
            match ioctl::run(&*f, &mut raw, &mut segs) {
                Ok(()) => {
                    let bounces = tracer.map_or(0, Tracer::take_bounces);
                    report::completed(slot, op, &raw, &segs, bounces)
                }
                // The driver validates the request the same way the
                // agent did; EINVAL means the two disagree.
                Err(rustix::io::Errno::INVAL) => {
                    report::refused(slot, op, "the driver rejected the request (EINVAL)".into())
                }
                Err(e) => report::failed(slot, op, format!("ioctl: {e}")),
            }
        }
    }
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pvhdma-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if opts.guest {
        let Err(e) = guest_role::run(&format!("/{GUEST_WORK_PATH}"));
        // One line: the guest's init quotes its last line.
        eprintln!("pvhdma-agent: {}", e.replace('\n', " "));
        return ExitCode::FAILURE;
    }
    if let Err(e) = run(&opts) {
        // One line: init quotes it in PVHDMA-AGENT-FAILED.
        eprintln!("pvhdma-agent: {}", e.replace('\n', " "));
        return ExitCode::FAILURE;
    }
    if opts.poweroff {
        rustix::fs::sync();
        if let Err(e) = rustix::system::reboot(rustix::system::RebootCommand::PowerOff) {
            eprintln!("pvhdma-agent: poweroff failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
