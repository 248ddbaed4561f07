//! QEMU's command line for one run, built from typed specs.
//!
//! The flags are those seen to boot Xen with a PVH dom0 under TCG; each
//! comment says why its flag is there.

use crate::images::Manifest;
use crate::machine::{
    Accel, DiskController, Dom0Mode, IommuKind, MachineSpec, NetDevice, RunSpec, DISK_BDF, E1000_BDF,
};
use pvhdma_contract::wire::{GuestSpec, GUEST_NET_SINK};
use std::path::{Path, PathBuf};

/// The per-run files QEMU is pointed at.
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub qmp: PathBuf,
    pub trace_events: PathBuf,
    pub trace_log: PathBuf,
    pub initrd: PathBuf,
    pub device_sockets: Vec<PathBuf>,
    /// QEMU's TFTP root for `net: e1000` (files written by `vm`).
    pub tftp: PathBuf,
    /// The run's directory, where guests' network payloads land.
    pub dir: PathBuf,
    /// The raw image behind `machine.disk` (created by `vm`, read after the run).
    pub disk: PathBuf,
}

impl RunPaths {
    pub fn in_dir(dir: &Path, devices: usize) -> Self {
        Self {
            qmp: dir.join("qmp.sock"),
            trace_events: dir.join("trace-events"),
            trace_log: dir.join("iommu-trace.log"),
            initrd: dir.join("initrd.cpio"),
            device_sockets: (0..devices)
                .map(|i| dir.join(format!("dev{i}/vfio-user.sock")))
                .collect(),
            tftp: dir.join("tftp"),
            dir: dir.to_path_buf(),
            disk: dir.join("disk.img"),
        }
    }

    /// Where QEMU's user network writes what guest `name` sends.
    pub fn guest_net(&self, name: &str) -> PathBuf {
        guest_net_file(&self.dir, name)
    }
}

/// What guest `name` sent out through dom0's NIC, in run directory `dir`.
pub fn guest_net_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("guest-{name}.net.bin"))
}

/// Xen's command line: the harness's defaults, then the image set's own
/// options (`image_opts`, from its recipe), then the scenario's. Xen takes
/// the last word, so a scenario can undo an image set's option.
pub fn xen_cmdline(spec: &RunSpec, image_opts: &[String]) -> String {
    let b = &spec.boot;
    let mut args: Vec<String> = Vec::new();
    if b.dom0_mode == Dom0Mode::Pvh {
        args.push("dom0=pvh".into());
    }
    args.push(format!("dom0_mem={}M", b.dom0_mem_mib));
    // no-sharept: with an SVM CPU and QEMU's VT-d, Xen would otherwise share
    // NPT tables with VT-d, whose format differs. no-intremap (VT-d only):
    // with Xen's interrupt remapping on QEMU's VT-d, device MSIs arrive at
    // vectors Xen never set up ("No irq handler for vector"), 0 of 6 seen
    // delivered; without it 6 of 6. AMD-Vi's remapping delivers them.
    // A scenario can put `iommu=intremap` back: Xen takes the last word.
    args.push(match spec.machine.iommu {
        IommuKind::Intel => "iommu=verbose,debug,no-sharept,no-intremap".into(),
        _ => "iommu=verbose,debug,no-sharept".into(),
    });
    // Under TCG, Xen's lazy FPU switching (the default on an AMD CPU such as
    // TCG's `max`) corrupts dom0's user processes once a second domain runs:
    // segfaults in malloc, a zstd error on an intact file. Seen with a PVH
    // and a PV guest, with and without AVX, with 2G and 8G of RAM; gone with
    // eager switching or with no XSAVE in the CPU model. Eager switching is
    // what Xen does on Intel CPUs anyway, so the DMA path under test is the
    // same.
    if spec.machine.accel == Accel::Tcg {
        args.push("spec-ctrl=eager-fpu".into());
    }
    args.extend(
        [
            "console=com1",
            "com1=115200,8n1",
            "loglvl=all",
            "guest_loglvl=all",
            // Xen halts instead of rebooting, so a crash is seen, not looped.
            "noreboot",
            // Scrubbing all free memory makes an 8G VM resident in full.
            "bootscrub=false",
        ]
        .map(String::from),
    );
    args.extend(crate::fastboot::xen_args(spec));
    if crate::guests::guest_cpus(spec).is_some() {
        args.push("dom0_vcpus_pin".into());
    }
    args.extend(image_opts.iter().cloned());
    args.extend(b.xen_extra.iter().cloned());
    args.join(" ")
}

/// dom0's (or, without Xen, the kernel's) command line.
pub fn linux_cmdline(spec: &RunSpec) -> String {
    let mut args: Vec<String> = if spec.boot.no_xen {
        let iommu = match spec.machine.iommu {
            IommuKind::Intel => "intel_iommu=on iommu=nopt",
            IommuKind::Amd => "amd_iommu=on iommu=nopt",
            IommuKind::None => "",
        };
        vec!["console=ttyS0".into(), iommu.into()]
    } else {
        vec!["console=hvc0".into(), "earlyprintk=xen".into()]
    };
    args.extend(crate::fastboot::linux_args(spec));
    args.extend(spec.boot.dom0_extra.iter().cloned());
    args.retain(|a| !a.is_empty());
    args.join(" ")
}

/// The full argument list (without the program).
pub fn args(m: &Manifest, spec: &RunSpec, paths: &RunPaths) -> Vec<String> {
    let mut a = Args::default();
    machine_args(&mut a, spec, paths);
    iommu_args(&mut a, &spec.machine, paths);
    let guests = spec.workload.as_ref().map_or(&[][..], |w| &w.guests[..]);
    device_args(&mut a, &spec.machine, paths, guests);
    boot_args(&mut a, m, spec, paths);
    a.0
}

/// QEMU arguments as flag/value pairs.
#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn flag(&mut self, flag: &str, value: impl Into<String>) {
        self.0.push(flag.into());
        self.0.push(value.into());
    }

    fn switch(&mut self, flag: &str) {
        self.0.push(flag.into());
    }
}

/// A path as QEMU's option parser takes it.
fn arg_path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The machine, its memory, console and monitor.
fn machine_args(a: &mut Args, spec: &RunSpec, paths: &RunPaths) {
    let mc = &spec.machine;
    a.flag("-M", "q35");
    a.flag(
        "-accel",
        match mc.accel {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        },
    );
    a.flag(
        "-cpu",
        match mc.accel {
            // TCG's `max` is an AMD model with SVM+NPT, so Xen runs HVM with
            // HAP; -rdtscp because TCG reports an RDTSCP intercept as RDTSC
            // and Xen's length check then crashes dom0.
            Accel::Tcg => "max,-rdtscp",
            // Under KVM (only chosen with nested virtualization, accel.rs)
            // the host's own CPU model carries VMX/SVM through to Xen.
            Accel::Kvm => "host",
        },
    );
    a.flag("-smp", mc.cpus.to_string());
    a.flag("-m", format!("{}M", mc.memory_mib));
    // Guest RAM in a memfd, so QEMU's vfio-user client sends each DMA_MAP
    // with that fd and the offset in it: the device's second, independent
    // view of every translation (`RamLayout` turns the offset back into a
    // guest-physical address). share=on is what makes QEMU pass the fd.
    a.flag(
        "-object",
        format!("memory-backend-memfd,id=ram0,size={}M,share=on", mc.memory_mib),
    );
    a.flag("-machine", "memory-backend=ram0");
    a.flag("-display", "none");
    // No default CD-ROM: its ATAPI probe stalls dom0's boot for 15 s.
    a.switch("-nodefaults");
    a.switch("-no-reboot");
    a.flag(
        "-chardev",
        format!("stdio,id=con,signal={}", if spec.shell { "on" } else { "off" }),
    );
    a.flag("-serial", "chardev:con");
    a.flag("-qmp", format!("unix:{},server=on,wait=off", arg_path(&paths.qmp)));
    a.flag("-run-with", "exit-with-parent=on");
}

/// The emulated IOMMU and its trace.
fn iommu_args(a: &mut Args, mc: &MachineSpec, paths: &RunPaths) {
    match mc.iommu {
        // caching-mode / dma-remap: QEMU's vfio-user client needs map
        // notifications from the vIOMMU and refuses to start without them.
        IommuKind::Intel => a.flag("-device", "intel-iommu,caching-mode=on"),
        IommuKind::Amd => a.flag("-device", "amd-iommu,dma-remap=on"),
        IommuKind::None => return,
    }
    a.flag(
        "-trace",
        format!(
            "events={},file={}",
            arg_path(&paths.trace_events),
            arg_path(&paths.trace_log)
        ),
    );
}

/// The recorders, the NIC and any extra devices.
fn device_args(a: &mut Args, mc: &MachineSpec, paths: &RunPaths, guests: &[GuestSpec]) {
    for sock in &paths.device_sockets {
        let json = serde_json::json!({"driver": "vfio-user-pci", "socket": {"type": "unix", "path": sock}});
        a.flag("-device", json.to_string());
    }
    if mc.net == NetDevice::E1000 {
        // restrict=on: no route out of the VM; slirp's own TFTP still answers.
        // restrict=on still honours guestfwd: each guest's connections to
        // its port on the sink go into a file of the run (QEMU creates it
        // empty at start, so a send that never arrives leaves it empty).
        let mut netdev = format!("user,id=n0,restrict=on,tftp={}", arg_path(&paths.tftp));
        for g in guests {
            if let Some(n) = g.net.as_ref().filter(|n| n.size > 0) {
                netdev += &format!(
                    ",guestfwd=tcp:{GUEST_NET_SINK}:{}-file:{}",
                    n.port,
                    arg_path(&paths.guest_net(&g.name)).replace(',', ",,")
                );
            }
        }
        a.flag("-netdev", netdev);
        a.flag("-device", format!("e1000,netdev=n0,addr=0x{}", &E1000_BDF[3..5]));
    }
    if let Some(d) = &mc.disk {
        disk_args(a, d.controller, &paths.disk);
    }
    for d in &mc.extra_devices {
        a.flag("-device", d.clone());
    }
}

/// dom0's disk: the run's own image on the controller's first channel,
/// so it is dom0's first disk (/dev/sda).
fn disk_args(a: &mut Args, controller: DiskController, image: &Path) {
    let file = arg_path(image).replace(',', ",,");
    a.flag("-drive", format!("if=none,id=disk0,format=raw,file={file}"));
    let model = match controller {
        DiskController::Piix4Ide => "piix4-ide",
    };
    a.flag("-device", format!("{model},id=pvhdma-disk,addr=0x{}", &DISK_BDF[3..5]));
    a.flag("-device", "ide-hd,drive=disk0,bus=pvhdma-disk.0");
}

/// What boots: Xen with dom0 as a multiboot module, or Linux alone.
fn boot_args(a: &mut Args, m: &Manifest, spec: &RunSpec, paths: &RunPaths) {
    if spec.boot.no_xen {
        a.flag("-kernel", arg_path(&m.kernel));
        a.flag("-append", linux_cmdline(spec));
        a.flag("-initrd", arg_path(&paths.initrd));
    } else {
        a.flag("-kernel", arg_path(&m.xen));
        a.flag("-append", xen_cmdline(spec, &m.xen_cmdline));
        // QEMU's multiboot loader takes modules as a comma-separated list,
        // each followed by its command line; a comma inside a command line
        // is written twice.
        let modules = format!(
            "{} {},{}",
            arg_path(&m.kernel),
            linux_cmdline(spec).replace(',', ",,"),
            arg_path(&paths.initrd)
        );
        a.flag("-initrd", modules);
    }
}

/// The trace events to enable for this run's IOMMU.
pub fn trace_events(iommu: IommuKind) -> &'static [&'static str] {
    match iommu {
        IommuKind::Intel => crate::trace::VTD_EVENTS,
        IommuKind::Amd => crate::trace::AMDVI_EVENTS,
        IommuKind::None => &[],
    }
}

/// The command as a line that can be pasted into a shell.
pub fn shell_line(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .map(|s| shell_quote(&s))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:,+@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::*;

    fn spec() -> RunSpec {
        RunSpec {
            name: "t".into(),
            machine: MachineSpec::default(),
            // The exact command lines below are the old way; `fastboot`
            // tests what the fast boot adds.
            boot: BootSpec {
                fast_boot: false,
                ..BootSpec::default()
            },
            devices: vec![DeviceSpec::default()],
            workload: None,
            boot_timeout: std::time::Duration::from_secs(1),
            run_timeout: std::time::Duration::from_secs(1),
            guest_timeout: std::time::Duration::from_secs(1),
            live_console: false,
            shell: false,
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            qemu: "/c/qemu".into(),
            xen: "/c/xen".into(),
            kernel: "/c/vmlinuz".into(),
            kernel_version: "6.12".into(),
            initrd: "/c/initrd.cpio".into(),
            toolstack: None,
            guest_initrd: None,
            versions: Default::default(),
            xen_cmdline: vec![],
        }
    }

    #[test]
    fn pvh_defaults_match_the_platform_notes() {
        let x = xen_cmdline(&spec(), &[]);
        assert!(x.starts_with("dom0=pvh dom0_mem=1024M"), "{x}");
        assert!(x.contains("no-sharept") && x.contains("bootscrub=false") && x.contains("noreboot"));
        assert!(x.contains("spec-ctrl=eager-fpu"), "{x}");
        let a = args(&manifest(), &spec(), &RunPaths::in_dir(Path::new("/r"), 1));
        let s = shell_line(Path::new("/c/qemu"), &a);
        assert!(s.contains("-device intel-iommu,caching-mode=on"), "{s}");
        assert!(
            s.contains(r#"'{"driver":"vfio-user-pci","socket":{"path":"/r/dev0/vfio-user.sock","type":"unix"}}'"#),
            "{s}"
        );
        assert!(
            s.contains("-initrd '/c/vmlinuz console=hvc0 earlyprintk=xen,/r/initrd.cpio'"),
            "{s}"
        );
    }

    #[test]
    fn image_set_options_come_after_the_defaults_and_before_the_scenarios() {
        let mut s = spec();
        s.boot.xen_extra = vec!["hap=1".into()];
        let mut m = manifest();
        m.xen_cmdline = vec!["hap=0".into()];
        let a = args(&m, &s, &RunPaths::in_dir(Path::new("/r"), 0));
        let x = &a[a.iter().position(|a| a == "-append").unwrap() + 1];
        let at = |o: &str| x.find(o).unwrap_or_else(|| panic!("{o} missing from {x}"));
        assert!(at("bootscrub=false") < at("hap=0"), "{x}");
        assert!(at("hap=0") < at("hap=1"), "{x}");
        // A set without options adds nothing.
        assert!(!xen_cmdline(&s, &manifest().xen_cmdline).contains("hap=0"));
    }

    #[test]
    fn pv_dom0_and_amd_and_no_xen() {
        let mut s = spec();
        s.boot.dom0_mode = Dom0Mode::Pv;
        assert!(!xen_cmdline(&s, &[]).contains("dom0=pvh"));
        s.machine.iommu = IommuKind::Amd;
        let a = args(&manifest(), &s, &RunPaths::in_dir(Path::new("/r"), 0));
        assert!(a.contains(&"amd-iommu,dma-remap=on".to_string()));
        s.boot.no_xen = true;
        s.boot.dom0_extra.push("swiotlb=noforce".into());
        assert_eq!(
            linux_cmdline(&s),
            "console=ttyS0 amd_iommu=on iommu=nopt swiotlb=noforce"
        );
    }

    #[test]
    fn e1000_gets_a_user_netdev_with_the_runs_tftp_root() {
        let mut s = spec();
        let paths = RunPaths::in_dir(Path::new("/r"), 1);
        assert!(!args(&manifest(), &s, &paths).iter().any(|a| a.contains("e1000")));
        s.machine.net = NetDevice::E1000;
        let a = args(&manifest(), &s, &paths).join(" ");
        assert!(a.contains("-netdev user,id=n0,restrict=on,tftp=/r/tftp"), "{a}");
        assert!(a.contains("-device e1000,netdev=n0,addr=0x10"), "{a}");
    }

    #[test]
    fn a_disk_is_the_runs_own_image_on_the_controller_at_its_fixed_slot() {
        let mut s = spec();
        let paths = RunPaths::in_dir(Path::new("/r,x"), 1);
        assert!(!args(&manifest(), &s, &paths).iter().any(|a| a == "-drive"));
        s.machine.disk = Some(crate::machine::DiskSpec {
            controller: DiskController::Piix4Ide,
            size: 64 << 20,
        });
        let a = args(&manifest(), &s, &paths).join(" ");
        assert!(
            a.contains("-drive if=none,id=disk0,format=raw,file=/r,,x/disk.img"),
            "{a}"
        );
        assert!(a.contains("-device piix4-ide,id=pvhdma-disk,addr=0x11"), "{a}");
        assert!(a.contains("-device ide-hd,drive=disk0,bus=pvhdma-disk.0"), "{a}");
    }

    #[test]
    fn commas_in_dom0_arguments_are_escaped_for_multiboot() {
        let mut s = spec();
        s.boot.dom0_extra.push("initcall_blacklist=a,b".into());
        let a = args(&manifest(), &s, &RunPaths::in_dir(Path::new("/r"), 1));
        let i = a.iter().position(|x| x == "-initrd").unwrap();
        assert_eq!(
            a[i + 1],
            "/c/vmlinuz console=hvc0 earlyprintk=xen initcall_blacklist=a,,b,/r/initrd.cpio"
        );
    }

    #[test]
    fn quoting_survives_a_shell() {
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert_eq!(shell_quote("-m"), "-m");
    }
}
