//! dom0's side of an op on a guest's pages: find the guest's domain id and
//! grant refs, then run the op through the driver's grant ioctl.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use pvhdma_contract::markers::guest::{
    CHECK_PREFIX, CONSOLE_LOG_DIR, DISK_PREFIX, DOMID_DIR, NET_PREFIX, RELAYED_LOG_DIR, UNMAPPED_KEY,
};
use pvhdma_contract::uapi::RawSeg;
use pvhdma_contract::wire::{CheckLine, Direction, Foreign, Op, OpResult, Workload};

use crate::guest::find_grant;
use crate::report::{self, Slot};
use crate::trace::Tracer;
use crate::{ioctl, uapi, xenstore};

/// How long dom0 waits for a guest's domain id and its grant line. The
/// harness's guest timeout normally ends the run first, with a named kind.
const WAIT: Duration = Duration::from_secs(120);

/// Poll `f` every 100 ms until it gives a value or `WAIT` passes.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Result<Option<T>, String>) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() > WAIT {
            return Err(format!("gave up after {WAIT:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The domain id dom0's init wrote for `guest` when `xl create` succeeded,
/// waited for.
fn domid(guest: &str) -> Result<u32, String> {
    wait_for(&format!("guest {guest}'s domain id"), || domid_now(guest))
}

/// The domain id dom0's init wrote for `guest`, if it has written one yet.
pub(crate) fn domid_now(guest: &str) -> Result<Option<u32>, String> {
    let path = Path::new(DOMID_DIR).join(format!("{guest}.domid"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|e| format!("{}: bad domain id {t:?}: {e}", path.display()))
}

/// Everything the guest printed, as xenconsoled logs it (ahead of the relay).
fn console_log(guest: &str) -> std::path::PathBuf {
    Path::new(CONSOLE_LOG_DIR).join(format!("guest-{guest}.log"))
}

/// A guest's report lines that dom0's relay has put on dom0's console.
fn relayed_log(guest: &str) -> std::path::PathBuf {
    Path::new(RELAYED_LOG_DIR).join(format!("guest-{guest}.log"))
}

fn refs(guest: &str, op: &str) -> Result<Vec<u32>, String> {
    let path = console_log(guest);
    wait_for(&format!("guest {guest}'s grant for op {op}"), || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        find_grant(&text, op)
    })
}

/// Run `op` (which names a guest's buffer) on `file`, an open `/dev/pvhdmaN`.
pub fn run(slot: Slot, op: &Op, file: &File, tracer: Option<&Tracer>) -> OpResult {
    let Some(buffer) = &op.buffer else {
        return report::failed(slot, op, "not a guest-buffer op".into());
    };
    let domid = match domid(&buffer.guest) {
        Ok(d) => d,
        Err(e) => return report::failed(slot, op, e),
    };
    let refs = match refs(&buffer.guest, &op.name) {
        Ok(r) => r,
        Err(e) => return report::failed(slot, op, e),
    };
    let (mut raw, flags, mut grants) = match uapi::grant_request(op, slot.tag, &refs) {
        Ok(v) => v,
        Err(why) => return report::refused(slot, op, why),
    };
    if let Some(t) = tracer {
        t.clear();
    }
    let mut segs = vec![RawSeg::default(); raw.segments as usize];
    let mut result = match ioctl::run_grant(file, domid, flags, &mut raw, &mut segs, &mut grants) {
        Ok(()) => {
            let bounces = tracer.map_or(0, Tracer::take_bounces);
            report::completed(slot, op, &raw, &segs, bounces)
        }
        Err(rustix::io::Errno::INVAL) => {
            report::refused(slot, op, "the driver rejected the grant request (EINVAL)".into())
        }
        Err(e) => report::failed(slot, op, format!("grant ioctl: {e}")),
    };
    // The driver unmapped the grants before the ioctl returned (or never
    // mapped them): the guest may look at its pages now.
    if let Err(e) = tell_unmapped(domid, &op.name) {
        result.error.get_or_insert(e);
    }
    result.foreign = Some(Foreign {
        guest: buffer.guest.clone(),
        domid,
        readonly: buffer.readonly,
        grant_status: grants.iter().map(|g| g.status).collect(),
    });
    result
}

fn tell_unmapped(domid: u32, op: &str) -> Result<(), String> {
    let mut xs = xenstore::open()?;
    xenstore::write(&mut xs, &format!("/local/domain/{domid}/{UNMAPPED_KEY}/{op}"), b"1")
        .map_err(|e| format!("cannot tell guest {domid} that op {op} is unmapped: {e}"))
}

/// How long a guest's report on its pages may take to reach dom0's console
/// after dom0 unmapped them: the guest answers within a second, but the
/// relay may still be passing on the guest's boot log. Then how long the
/// last relayed lines get to leave dom0's console before it powers off.
const CHECK_WAIT: Duration = Duration::from_secs(90);
const RELAY_DRAIN: Duration = Duration::from_secs(3);
/// How long a guest with a vif or a disk gets to boot, connect and send or
/// write. The guest gives up on its own well before this (and says so); the
/// harness's run timeout bounds it too.
const NET_WAIT: Duration = Duration::from_secs(240);

/// Before dom0 powers off: wait until dom0's console has passed on each
/// guest's report of what every from-device op left in its pages, and each
/// guest's account of its send or disk write, so the harness sees those
/// lines. The ops
/// whose guest never reported are returned.
pub fn settle(workload: &Workload) -> Vec<String> {
    if workload.guests.is_empty() {
        return vec![];
    }
    let mut missing: Vec<(&str, &str)> = workload
        .ops
        .iter()
        .filter(|op| op.dir == Direction::FromDevice)
        .filter_map(|op| Some((op.buffer.as_ref()?.guest.as_str(), op.name.as_str())))
        .collect();
    let start = Instant::now();
    while !missing.is_empty() && start.elapsed() < CHECK_WAIT {
        missing.retain(|(guest, op)| {
            let text = std::fs::read_to_string(relayed_log(guest)).unwrap_or_default();
            !text.lines().any(|l| {
                l.find(CHECK_PREFIX)
                    .and_then(|i| serde_json::from_str::<CheckLine>(l[i + CHECK_PREFIX.len()..].trim_end()).ok())
                    .is_some_and(|c| c.op == *op)
            })
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    // A guest's send or disk write runs beside any ops: dom0 must stay up
    // until the guest said how it ended, or the poweroff cuts the payload
    // file or the disk's I/O short, and until the relay has put that line
    // on dom0's console: a guest that boots and writes quickly is far ahead
    // of its relay.
    let mut senders: Vec<(&str, &str)> = workload
        .guests
        .iter()
        .flat_map(|g| {
            let net = g.net.as_ref().map(|_| (g.name.as_str(), "net"));
            let disk = g.disk.as_ref().map(|_| (g.name.as_str(), "disk"));
            net.into_iter().chain(disk)
        })
        .collect();
    while !senders.is_empty() && start.elapsed() < NET_WAIT {
        senders.retain(|(guest, what)| {
            let text = std::fs::read_to_string(relayed_log(guest)).unwrap_or_default();
            let prefix = if *what == "net" { NET_PREFIX } else { DISK_PREFIX };
            !text.contains(prefix)
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(RELAY_DRAIN);
    missing.extend(senders);
    missing.into_iter().map(|(g, op)| format!("{g}/{op}")).collect()
}
