//! The agent inside a guest: grant and fill the pages of every op dom0 will
//! run on this guest's memory, publish the refs on the console, and report
//! what each from-device op left in its pages once dom0 unmapped them.
//! Never returns on success: the grants must outlive dom0's use of them,
//! and dom0 ends the run.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use pvhdma_contract::markers::guest::{CHECK_PREFIX, DISK_PREFIX, GRANT_PREFIX, NET_PREFIX, UNMAPPED_KEY};
use pvhdma_contract::wire::{CheckLine, Direction, GrantLine, GuestSees, GuestWork};

use crate::gntalloc::Grant;
use crate::guest::{expected_pages, initial_pages};
use crate::xenstore;

const GNTALLOC: &str = "/dev/xen/gntalloc";
/// dom0 is the backend that maps the pages.
const DOM0: u16 = 0;

fn emit(prefix: &str, json: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{prefix}{json}\n").as_bytes());
    let _ = out.flush();
}

/// Run `job` beside the grants (dom0 may be running ops on them meanwhile)
/// and print its report after `prefix`.
fn beside<T: serde::Serialize>(prefix: &'static str, job: impl FnOnce() -> T + Send + 'static) {
    std::thread::spawn(move || emit(prefix, &serde_json::to_string(&job()).unwrap_or_default()));
}

pub fn run(work_path: &str) -> Result<std::convert::Infallible, String> {
    let text = std::fs::read_to_string(work_path).map_err(|e| format!("cannot read {work_path}: {e}"))?;
    let work: GuestWork = serde_json::from_str(&text).map_err(|e| format!("bad guest work {work_path}: {e}"))?;
    if let Some(net) = work.net.clone() {
        beside(NET_PREFIX, move || crate::guest_net::run(&net));
    }
    if let Some(disk) = work.disk.clone() {
        beside(DISK_PREFIX, move || crate::guest_disk::run(&disk));
    }
    let mut held = Vec::new();
    for g in &work.grants {
        let grant = Grant::alloc(Path::new(GNTALLOC), DOM0, g.pages, g.readonly)?;
        for (i, page) in initial_pages(g).iter().enumerate() {
            grant.write_page(i, page);
        }
        let line = GrantLine {
            op: g.op.clone(),
            refs: grant.refs.clone(),
        };
        emit(GRANT_PREFIX, &serde_json::to_string(&line).map_err(|e| e.to_string())?);
        held.push((g, grant, false));
    }
    // From-device data: look at each op's pages once dom0 says it unmapped
    // them, so what the guest reports is what it keeps.
    let pending = held.iter().any(|(g, _, _)| g.dir == Direction::FromDevice);
    let mut xs = if pending { Some(xenstore::open()?) } else { None };
    loop {
        for (g, grant, reported) in held.iter_mut() {
            if *reported || g.dir != Direction::FromDevice {
                continue;
            }
            let Some(xs) = xs.as_mut() else { continue };
            if xenstore::read(xs, &format!("{UNMAPPED_KEY}/{}", g.op))?.is_none() {
                continue;
            }
            *reported = true;
            let want = expected_pages(g);
            let pages: Vec<Vec<u8>> = want
                .iter()
                .enumerate()
                .map(|(i, p)| grant.read_page(i, p.len()))
                .collect();
            let line = CheckLine {
                op: g.op.clone(),
                sees: GuestSees::of(&pages, &want, &initial_pages(g)),
            };
            emit(CHECK_PREFIX, &serde_json::to_string(&line).map_err(|e| e.to_string())?);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
