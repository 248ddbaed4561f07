//! Guests in a run: what the harness appends to dom0's initramfs for them
//! (the toolstack, the guests' kernel, each guest's xl configuration and
//! initramfs), how dom0's console lines about them are told apart, where
//! each guest's console is kept (`guest-NAME.console.log`), and when a guest
//! ends the run (`guest_failed_to_start`, `guest_crashed`, `guest_timeout`).
//!
//! A run without guests appends nothing and starts no toolstack: its
//! initramfs is byte for byte what it was before guests existed.

use crate::images::Manifest;
use crate::initrd::{Entry, Writer};
use crate::outcome::{EndKind, RunEnd};
use anyhow::Context;
use pvhdma_contract::markers::guest::{AGENT_FAILED, CRASHED, DIR, FAILED, MARK, READY, RELAY, STARTED, WORK_PATH};
use pvhdma_contract::wire::{GuestGrant, GuestSpec, GuestWork, Op, OpKind, Workload};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The archives to append to dom0's initramfs for `workload`'s guests: the
/// toolstack, then the kernel, each guest's xl configuration and its
/// initramfs (the base plus its own work). Empty without guests.
pub fn archives(m: &Manifest, workload: &Workload, fast_boot: bool, cpus: Option<&str>) -> anyhow::Result<Vec<u8>> {
    if workload.guests.is_empty() {
        return Ok(vec![]);
    }
    let (Some(toolstack), Some(guest_base)) = (&m.toolstack, &m.guest_initrd) else {
        anyhow::bail!(
            "The scenario has guests, but the image set ({}) has no toolstack: its recipe needs a [toolstack] table, and the kernel must not be a --kernel-tree",
            m.versions.get("recipe").map_or("?", String::as_str)
        );
    };
    let mut out =
        std::fs::read(toolstack).with_context(|| format!("Cannot read the toolstack {}", toolstack.display()))?;
    let kernel = std::fs::read(&m.kernel).with_context(|| format!("Cannot read {}", m.kernel.display()))?;
    let base = std::fs::read(guest_base).with_context(|| format!("Cannot read {}", guest_base.display()))?;
    // Guests boot dom0's kernel: one image in the archive serves them all.
    let kernel_path = format!("{DIR}/vmlinuz");

    let mut w = Writer::new(Vec::new());
    w.add(&Entry::Dir { path: "pvhdma" })?;
    w.add(&Entry::Dir { path: DIR })?;
    w.add(&Entry::File {
        path: &kernel_path,
        mode: 0o644,
        data: &kernel,
    })?;
    for g in &workload.guests {
        let initrd_path = format!("{DIR}/{}.initrd", g.name);
        let cmdline = crate::fastboot::guest_linux_args(fast_boot);
        let mut cfg = xl_config(g, &format!("/{kernel_path}"), &format!("/{initrd_path}"), &cmdline);
        if let Some(c) = cpus {
            cfg += &format!("cpus = \"{c}\"\n");
        }
        w.add(&Entry::File {
            path: &format!("{DIR}/{}.cfg", g.name),
            mode: 0o644,
            data: cfg.as_bytes(),
        })?;
        let initrd = guest_initrd(&base, &work_for(workload, &g.name))?;
        w.add(&Entry::File {
            path: &initrd_path,
            mode: 0o644,
            data: &initrd,
        })?;
    }
    out.extend(w.finish()?);
    Ok(out)
}

/// A guest's initramfs: the base, then its work as a second archive.
fn guest_initrd(base: &[u8], work: &GuestWork) -> anyhow::Result<Vec<u8>> {
    let json = serde_json::to_vec_pretty(work)?;
    let mut w = Writer::new(base.to_vec());
    w.add(&Entry::Dir { path: "pvhdma" })?;
    w.add(&Entry::File {
        path: WORK_PATH,
        mode: 0o644,
        data: &json,
    })?;
    Ok(w.finish()?)
}

/// The pages an op uses: one per segment.
fn pages_of(op: &Op) -> u32 {
    match op.kind {
        OpKind::Sg => op.segments,
        _ => 1,
    }
}

/// The work of guest `name`: every op whose buffer it holds.
pub fn work_for(workload: &Workload, name: &str) -> GuestWork {
    GuestWork {
        grants: workload
            .ops
            .iter()
            .filter_map(|op| {
                let b = op.buffer.as_ref()?;
                (b.guest == name).then(|| GuestGrant {
                    op: op.name.clone(),
                    pages: pages_of(op),
                    size: op.size,
                    dir: op.dir,
                    pattern: op.pattern,
                    seed: op.seed,
                    readonly: b.readonly,
                })
            })
            .collect(),
        net: workload
            .guests
            .iter()
            .find(|g| g.name == name)
            .and_then(|g| g.net.clone()),
        disk: workload
            .guests
            .iter()
            .find(|g| g.name == name)
            .and_then(|g| g.disk.clone()),
    }
}

/// dom0's hotplug script for a vif (from the toolstack archive): it puts
/// the vif into the bridge with dom0's NIC and tells netback it may connect.
pub const VIF_SCRIPT: &str = "/pvhdma/toolstack/vif-pvhdma";
/// The bridge dom0's init makes of its NIC when a guest has a vif.
pub const BRIDGE: &str = "xenbr0";

/// dom0's hotplug script for a vbd (from the toolstack archive): it tells
/// blkback which of dom0's block devices to serve.
pub const BLOCK_SCRIPT: &str = "/pvhdma/toolstack/block-pvhdma";
/// dom0's disk on the run's controller, as dom0's init waits for it.
pub const DOM0_DISK: &str = "/dev/sda";

/// The machine's CPUs a run's guests are pinned to, apart from dom0's, when
/// that is possible: dom0 on one vCPU (the fast boot's) pinned to CPU 0
/// (`dom0_vcpus_pin`), and at least one CPU more. Under TCG, dom0's kernel
/// has faulted in its entry path while a guest was being built (a triple
/// fault, an entry-stack overrun; a few in a hundred guest runs), and a
/// CPU switching between two HVM domains' vCPUs is where the emulation has
/// failed before (Xen's lazy FPU switching). Where guests run does not
/// bear on their grants' addresses or on the device's DMA.
pub fn guest_cpus(spec: &crate::machine::RunSpec) -> Option<String> {
    let has_guests = spec.workload.as_ref().is_some_and(|w| !w.guests.is_empty());
    let one_dom0_vcpu = spec.boot.fast_boot && !spec.boot.xen_extra.iter().any(|a| a.starts_with("dom0_max_vcpus"));
    let n = spec.machine.cpus;
    (has_guests && one_dom0_vcpu && !spec.boot.no_xen && n >= 2).then(|| {
        if n == 2 {
            "1".to_string()
        } else {
            format!("1-{}", n - 1)
        }
    })
}

/// A guest's xl configuration: PVH with no device model; devices only a vif
/// when the guest has `net` and a vbd of dom0's disk when it has `disk`,
/// each with the archive's own hotplug script; `extra` goes on the
/// kernel's command line.
pub fn xl_config(g: &GuestSpec, kernel: &str, ramdisk: &str, extra: &[String]) -> String {
    let cmdline = ["console=hvc0", "panic=-1"]
        .into_iter()
        .chain(extra.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let vif = match &g.net {
        Some(_) => format!("vif = [ \"bridge={BRIDGE},script={VIF_SCRIPT}\" ]\n"),
        None => String::new(),
    };
    // A raw phy backend: blkback submits the guest's granted pages as bios
    // on dom0's disk itself, with no qdisk or loop device in between.
    let disk = match &g.disk {
        Some(_) => format!(
            "disk = [ \"format=raw,vdev=xvda,access=rw,backendtype=phy,script={BLOCK_SCRIPT},target={DOM0_DISK}\" ]\n"
        ),
        None => String::new(),
    };
    vif + &disk
        + &format!(
            "# Written by the pvhdma harness for guest {name}.\n\
         name = \"{name}\"\n\
         type = \"pvh\"\n\
         kernel = \"{kernel}\"\n\
         ramdisk = \"{ramdisk}\"\n\
         cmdline = \"{cmdline}\"\n\
         memory = {mem}\n\
         vcpus = {vcpus}\n\
         on_poweroff = \"destroy\"\n\
         on_reboot = \"destroy\"\n\
         # Kept, so dom0 sees the crashed state and names it before it destroys it.\n\
         on_crash = \"preserve\"\n",
            name = g.name,
            mem = g.memory_mib,
            vcpus = g.vcpus,
        )
}

/// What a dom0 console line says about a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEvent {
    /// One line of the guest's own console.
    Line {
        name: String,
        text: String,
    },
    Started {
        name: String,
        domid: String,
    },
    Failed {
        name: String,
        why: String,
    },
    Crashed {
        name: String,
        why: String,
    },
}

/// Classify a dom0 console line; `None` if it is not about a guest. The
/// console scanner asks this before anything else, so that a guest's
/// "Kernel panic" or agent line is never taken for dom0's own.
pub fn classify(line: &str) -> Option<GuestEvent> {
    let i = line.find(MARK)?;
    let rest = &line[i..];
    let split = |body: &str| {
        let (name, text) = body.split_once(' ').unwrap_or((body, ""));
        (name.to_string(), text.trim_end_matches('\r').to_string())
    };
    if let Some(body) = rest.strip_prefix(RELAY) {
        let (name, text) = split(body);
        return Some(GuestEvent::Line { name, text });
    }
    if let Some(body) = rest.strip_prefix(STARTED) {
        let (name, domid) = split(body);
        return Some(GuestEvent::Started { name, domid });
    }
    if let Some(body) = rest.strip_prefix(FAILED) {
        let (name, why) = split(body);
        return Some(GuestEvent::Failed { name, why });
    }
    if let Some(body) = rest.strip_prefix(CRASHED) {
        let (name, why) = split(body);
        return Some(GuestEvent::Crashed { name, why });
    }
    None
}

/// The guests of one run: their console files and their state.
pub struct Guests {
    dir: PathBuf,
    names: BTreeSet<String>,
    ready: BTreeSet<String>,
    logs: BTreeMap<String, std::io::BufWriter<std::fs::File>>,
    timeout: Duration,
}

impl Guests {
    pub fn new(dir: &Path, guests: &[GuestSpec], timeout: Duration) -> Self {
        Self {
            dir: dir.to_path_buf(),
            names: guests.iter().map(|g| g.name.clone()).collect(),
            ready: BTreeSet::new(),
            logs: BTreeMap::new(),
            timeout,
        }
    }

    /// The artifact holding guest `name`'s console.
    pub fn log_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("guest-{name}.console.log"))
    }

    /// Take one event; `Some` ends the run. Milestones go to `milestones`.
    pub fn on(&mut self, ev: GuestEvent, milestones: &mut Vec<String>) -> anyhow::Result<Option<RunEnd>> {
        Ok(match ev {
            GuestEvent::Line { name, text } => {
                if !self.logs.contains_key(&name) {
                    let f = std::fs::File::create(Self::log_path(&self.dir, &name))?;
                    self.logs.insert(name.clone(), std::io::BufWriter::new(f));
                }
                let log = self.logs.get_mut(&name).expect("inserted above");
                writeln!(log, "{text}")?;
                if text.contains(READY) && self.ready.insert(name.clone()) {
                    milestones.push(format!("guest_{name}_ready"));
                }
                if let Some(i) = text.find("Kernel panic - not syncing") {
                    Some(RunEnd::new(EndKind::GuestCrashed, format!("{name}: {}", &text[i..])))
                } else {
                    text.find(AGENT_FAILED).map(|i| {
                        RunEnd::new(
                            EndKind::AgentFailed,
                            format!("guest {name}: {}", text[i + AGENT_FAILED.len()..].trim()),
                        )
                    })
                }
            }
            GuestEvent::Started { name, domid } => {
                milestones.push(format!("guest_{name}_started_domid_{domid}"));
                None
            }
            GuestEvent::Failed { name, why } => {
                Some(RunEnd::new(EndKind::GuestFailedToStart, format!("{name}: {why}")))
            }
            GuestEvent::Crashed { name, why } => Some(RunEnd::new(EndKind::GuestCrashed, format!("{name}: {why}"))),
        })
    }

    /// A guest not ready `timeout` after dom0 booted ends the run.
    pub fn check_timeout(&self, dom0_booted: Option<Instant>, now: Instant) -> Option<RunEnd> {
        let booted = dom0_booted?;
        if now.duration_since(booted) < self.timeout {
            return None;
        }
        let late: Vec<&str> = self.names.difference(&self.ready).map(String::as_str).collect();
        (!late.is_empty()).then(|| {
            RunEnd::new(
                EndKind::GuestTimeout,
                format!(
                    "{} not up {:?} after dom0 booted (no {READY})",
                    late.join(", "),
                    self.timeout
                ),
            )
        })
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        for log in self.logs.values_mut() {
            log.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvhdma_contract::wire::{DataPattern, Direction, GuestBuffer, Placement};

    fn spec(name: &str) -> GuestSpec {
        GuestSpec {
            name: name.into(),
            memory_mib: 256,
            vcpus: 1,
            net: None,
            disk: None,
        }
    }

    #[test]
    fn a_guest_with_a_disk_gets_a_vbd_of_dom0s_disk_and_its_write() {
        let mut g = spec("g1");
        assert!(!xl_config(&g, "/k", "/r", &[]).contains("disk = ["));
        g.disk = Some(pvhdma_contract::wire::GuestDisk {
            size: 1 << 20,
            pattern: DataPattern::Xorshift,
            seed: 7,
            persistent: true,
        });
        let cfg = xl_config(&g, "/k", "/r", &[]);
        assert!(
            cfg.starts_with(
                "disk = [ \"format=raw,vdev=xvda,access=rw,backendtype=phy,\
                 script=/pvhdma/toolstack/block-pvhdma,target=/dev/sda\" ]\n"
            ),
            "{cfg}"
        );
        let w = Workload {
            guests: vec![g.clone()],
            ..Workload::default()
        };
        assert_eq!(work_for(&w, "g1").disk, g.disk);
        assert!(work_for(&w, "g2").disk.is_none());
    }

    #[test]
    fn a_guest_with_net_gets_a_vif_on_the_bridge_and_its_send() {
        let mut g = spec("g1");
        assert!(!xl_config(&g, "/k", "/r", &[]).contains("vif"));
        g.net = Some(crate::scenario::guest_net(
            0,
            &crate::scenario::GuestNetCfg {
                send: Some(256 << 10),
                receive: None,
                pattern: DataPattern::Xorshift,
                seed: 3,
            },
        ));
        let cfg = xl_config(&g, "/k", "/r", &[]);
        assert!(
            cfg.contains("vif = [ \"bridge=xenbr0,script=/pvhdma/toolstack/vif-pvhdma\" ]\n"),
            "{cfg}"
        );
        let w = Workload {
            guests: vec![g],
            ..Workload::default()
        };
        let net = work_for(&w, "g1").net.unwrap();
        assert_eq!(
            (net.addr.as_str(), net.port, net.size, net.seed),
            ("10.0.2.16/24", 5000, 256 << 10, 3)
        );
        assert!(work_for(&w, "g2").net.is_none());
    }

    fn list_cpio(bytes: &[u8]) -> Vec<String> {
        let mut child = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("cpio is installed by .ci/run");
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn guest_archives_carry_toolstack_kernel_configs_and_initrds() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, data: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let mut ts = Writer::new(Vec::new());
        ts.add(&Entry::Dir { path: "pvhdma" }).unwrap();
        ts.add(&Entry::File {
            path: "pvhdma/marker",
            mode: 0o644,
            data: b"x",
        })
        .unwrap();
        let mut m = Manifest {
            qemu: file("qemu", b""),
            xen: file("xen", b""),
            kernel: file("vmlinuz", b"kernel"),
            kernel_version: "6.12".into(),
            initrd: file("initrd", b""),
            toolstack: Some(file("toolstack.cpio", &ts.finish().unwrap())),
            guest_initrd: Some(file("guest.cpio", &Writer::new(Vec::new()).finish().unwrap())),
            versions: Default::default(),
            xen_cmdline: vec![],
        };
        let w = Workload {
            guests: vec![spec("g1"), spec("g-2")],
            ..Workload::default()
        };
        let bytes = archives(&m, &w, true, None).unwrap();
        // Two archives back to back, as Linux unpacks them; cpio reads one.
        let toolstack = std::fs::read(m.toolstack.as_ref().unwrap()).unwrap();
        assert!(bytes.starts_with(&toolstack));
        assert_eq!(list_cpio(&toolstack), ["pvhdma", "pvhdma/marker"]);
        let names = list_cpio(&bytes[toolstack.len()..]);
        for want in [
            "pvhdma/guests/vmlinuz",
            "pvhdma/guests/g1.cfg",
            "pvhdma/guests/g1.initrd",
            "pvhdma/guests/g-2.cfg",
            "pvhdma/guests/g-2.initrd",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
        assert!(
            archives(&m, &Workload::default(), true, None).unwrap().is_empty(),
            "no guests, nothing appended"
        );

        m.toolstack = None;
        let err = archives(&m, &w, true, None).unwrap_err().to_string();
        assert!(err.contains("[toolstack]"), "{err}");
    }

    fn op(name: &str, kind: OpKind, guest: Option<&str>) -> Op {
        Op {
            name: name.into(),
            kind,
            placement: Placement::Any,
            size: 4096,
            count: 1,
            dir: Direction::ToDevice,
            pattern: DataPattern::Incrementing,
            seed: 3,
            segments: 4,
            bus_addr: None,
            device: 0,
            buffer: guest.map(|g| GuestBuffer {
                guest: g.into(),
                readonly: true,
            }),
        }
    }

    #[test]
    fn a_guest_gets_only_its_own_ops() {
        let w = Workload {
            ops: vec![
                op("own", OpKind::Single, None),
                op("a-sg", OpKind::Sg, Some("a")),
                op("b-single", OpKind::Single, Some("b")),
            ],
            ..Workload::default()
        };
        let work = work_for(&w, "a");
        assert_eq!(work.grants.len(), 1);
        assert_eq!((work.grants[0].op.as_str(), work.grants[0].pages), ("a-sg", 4));
        assert!(work.grants[0].readonly);
        assert_eq!(work_for(&w, "b").grants[0].pages, 1, "single uses one page");
        assert!(work_for(&w, "c").grants.is_empty());
    }

    #[test]
    fn guests_get_the_cpus_dom0_is_not_pinned_to() {
        use crate::machine::{IommuKind, RunSpec};
        let mut r = RunSpec::boot_only("t", IommuKind::Intel);
        assert_eq!(guest_cpus(&r), None, "no guests");
        r.workload = Some(Workload {
            guests: vec![spec("g1")],
            ..Workload::default()
        });
        assert_eq!(guest_cpus(&r).as_deref(), Some("1"));
        assert!(crate::qemu::xen_cmdline(&r, &[]).contains(" dom0_vcpus_pin"));
        r.machine.cpus = 4;
        assert_eq!(guest_cpus(&r).as_deref(), Some("1-3"));
        // dom0 with more than one vCPU (the old way, or a scenario's own
        // option) would share the guests' CPUs: nothing is pinned then.
        r.boot.xen_extra = vec!["dom0_max_vcpus=2".into()];
        assert_eq!(guest_cpus(&r), None);
        r.boot.xen_extra.clear();
        r.boot.fast_boot = false;
        assert_eq!(guest_cpus(&r), None);
        assert!(!crate::qemu::xen_cmdline(&r, &[]).contains("dom0_vcpus_pin"));
        r.boot.fast_boot = true;
        r.machine.cpus = 1;
        assert_eq!(guest_cpus(&r), None);
    }

    #[test]
    fn xl_config_is_a_device_less_pvh_guest() {
        let cfg = xl_config(&spec("g1"), "/k", "/r", &crate::fastboot::guest_linux_args(true));
        for want in [
            "name = \"g1\"",
            "type = \"pvh\"",
            "memory = 256",
            "vcpus = 1",
            "ramdisk = \"/r\"",
            "on_crash = \"preserve\"",
            "cmdline = \"console=hvc0 panic=-1 initcall_blacklist=jent_mod_init,",
        ] {
            assert!(cfg.contains(want), "{want} missing from\n{cfg}");
        }
        // No devices: nothing that would need hotplug scripts or a backend.
        assert!(!cfg
            .lines()
            .any(|l| ["vif", "disk", "pci", "vfb"].iter().any(|d| l.starts_with(d))));
    }

    #[test]
    fn dom0_lines_about_guests_are_classified() {
        assert_eq!(
            classify("PVHDMA-GUEST g1 [    0.000000] Linux version 6.12\r"),
            Some(GuestEvent::Line {
                name: "g1".into(),
                text: "[    0.000000] Linux version 6.12".into()
            })
        );
        assert_eq!(
            classify("PVHDMA-GUEST-STARTED g1 1"),
            Some(GuestEvent::Started {
                name: "g1".into(),
                domid: "1".into()
            })
        );
        assert!(
            matches!(classify("PVHDMA-GUEST-FAILED g1 xl create: libxl: error"), Some(GuestEvent::Failed { why, .. }) if why.starts_with("xl create"))
        );
        assert!(matches!(
            classify("PVHDMA-GUEST-CRASHED g1 gone"),
            Some(GuestEvent::Crashed { .. })
        ));
        assert_eq!(classify("PVHDMA-BOOTED"), None);
        assert_eq!(classify("(XEN) d1v0 something"), None);
    }

    #[test]
    fn guest_lines_go_to_their_own_file_and_end_runs_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Guests::new(dir.path(), &[spec("g1")], Duration::from_secs(5));
        let mut ms = vec![];
        let line = |t: &str| GuestEvent::Line {
            name: "g1".into(),
            text: t.into(),
        };
        assert_eq!(g.on(line("hello"), &mut ms).unwrap(), None);
        assert_eq!(g.on(line(READY), &mut ms).unwrap(), None);
        assert_eq!(ms, ["guest_g1_ready"]);
        let end = g
            .on(
                line("[ 2.0] Kernel panic - not syncing: Attempted to kill init!"),
                &mut ms,
            )
            .unwrap();
        assert!(matches!(end, Some(e) if e.kind == EndKind::GuestCrashed && e.detail.starts_with("g1: Kernel panic")));
        let end = g
            .on(line("PVHDMA-GUEST-AGENT-FAILED exit 1: gntalloc ioctl"), &mut ms)
            .unwrap();
        assert_eq!(
            end,
            Some(RunEnd::new(EndKind::AgentFailed, "guest g1: exit 1: gntalloc ioctl"))
        );
        g.flush().unwrap();
        let text = std::fs::read_to_string(Guests::log_path(dir.path(), "g1")).unwrap();
        assert!(text.starts_with("hello\nPVHDMA-GUEST-READY\n"), "{text}");

        let failed = GuestEvent::Failed {
            name: "g1".into(),
            why: "xl create: boom".into(),
        };
        assert_eq!(
            g.on(failed, &mut ms).unwrap(),
            Some(RunEnd::new(EndKind::GuestFailedToStart, "g1: xl create: boom"))
        );
    }

    #[test]
    fn a_guest_that_never_comes_up_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Guests::new(dir.path(), &[spec("a"), spec("b")], Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(
            g.check_timeout(None, t0 + Duration::from_secs(60)),
            None,
            "dom0 not up yet"
        );
        assert_eq!(g.check_timeout(Some(t0), t0 + Duration::from_secs(4)), None);
        let line = GuestEvent::Line {
            name: "a".into(),
            text: READY.into(),
        };
        g.on(line, &mut vec![]).unwrap();
        let end = g.check_timeout(Some(t0), t0 + Duration::from_secs(5));
        assert!(
            matches!(&end, Some(e) if e.kind == EndKind::GuestTimeout && e.detail.starts_with("b not up")),
            "{end:?}"
        );
    }
}
