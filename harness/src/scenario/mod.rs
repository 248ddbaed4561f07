//! The scenario language: one YAML file says what to boot, which DMA workload
//! dom0 runs and what must hold. `scenarios/README.md` is the user's guide;
//! `scenarios/schema.json` is generated from these types ([`schema_json`]).
//!
//! Entry points: [`load`] / [`parse_str`] give a [`Scenario`];
//! [`Scenario::to_run_spec`] turns it into what `vm` boots;
//! `verdict::evaluate` judges the run against `Scenario::expect`.

mod expect;
mod model;
mod parse;
mod size;
mod util;

#[cfg(test)]
mod guest_tests;
#[cfg(test)]
mod tests;

pub use expect::{
    id_matches, parse_bdf, BootExpect, BootExpectMap, Check, Count, DeviceAddrs, Expect, ExpectFailure,
    GuestDiskExpect, GuestNetExpect, LogExpect, OpCheck, OpExpect, PoolState, TraceExpect, TranslatedAddrs,
};
pub use model::{
    AccelCfg, BufferCfg, Cells, DeviceCfg, DirCfg, DiskCfg, DiskControllerCfg, Dom0Cfg, Dom0ModeCfg, GrantCfg,
    GuestCfg, GuestDiskCfg, GuestNetCfg, GuestTypeCfg, Inject, IommuCfg, MachineCfg, NetCfg, OpCfg, OpKindCfg,
    PlacementCfg, Scenario, Timeouts, Xen, XenCfg,
};
pub use parse::{load, parse_str, scenario_files, ScenarioError};
pub use size::{parse_bytes, parse_duration, ByteSize, HumanDuration, MemSize, SizeError};
pub use util::Pattern;

use crate::machine::{
    Accel, BootSpec, DeviceSpec, DiskController, DiskSpec, Dom0Mode, IommuKind, MachineSpec, NetDevice, RunSpec,
};
use pvhdma_contract::wire;
use std::path::PathBuf;

/// Where the scenario catalog lives (the workspace's `scenarios/`).
pub fn scenarios_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"))
}

/// The schema's path, relative to the workspace root.
pub const SCHEMA_PATH: &str = "scenarios/schema.json";

/// The JSON Schema of the scenario format, as written to `scenarios/schema.json`
/// by `cargo xtask schema` (editors use it for completion and checking).
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    s.push('\n');
    s
}

impl Scenario {
    /// What `vm` boots for this scenario. Defaults not stated in the file are
    /// the harness's: 8G, 2 cpus, intel, dom0_mem 1G, 120 s timeouts.
    pub fn to_run_spec(&self) -> RunSpec {
        let machine = MachineSpec {
            memory_mib: self.machine.memory.mib,
            cpus: self.machine.cpus,
            iommu: match self.machine.iommu {
                IommuCfg::Intel => IommuKind::Intel,
                IommuCfg::Amd => IommuKind::Amd,
                IommuCfg::None => IommuKind::None,
            },
            accel: match self.machine.accel {
                AccelCfg::Kvm => Accel::Kvm,
                // auto is TCG here; the probe that may choose KVM (accel.rs)
                // belongs to running a cell, not to this pure mapping.
                AccelCfg::Tcg | AccelCfg::Auto => Accel::Tcg,
            },
            extra_devices: vec![],
            net: match self.machine.net {
                NetCfg::None => NetDevice::None,
                NetCfg::E1000 => NetDevice::E1000,
            },
            disk: self.machine.disk.as_ref().map(|d| DiskSpec {
                controller: match d.controller {
                    DiskControllerCfg::Piix4Ide => DiskController::Piix4Ide,
                },
                size: d.size,
            }),
        };
        let boot = match &self.xen {
            Xen::Boot(x) => BootSpec {
                dom0_mode: match x.dom0 {
                    Dom0ModeCfg::Pvh => Dom0Mode::Pvh,
                    Dom0ModeCfg::Pv => Dom0Mode::Pv,
                },
                dom0_mem_mib: x.dom0_mem.mib,
                xen_extra: x.options.clone(),
                dom0_extra: self.dom0.cmdline.clone(),
                no_xen: false,
                ..BootSpec::default()
            },
            Xen::None => BootSpec {
                dom0_extra: self.dom0.cmdline.clone(),
                no_xen: true,
                ..BootSpec::default()
            },
        };
        let devices = self
            .devices
            .iter()
            .map(|d| DeviceSpec {
                addr_bits: d.addr_bits,
                decode_bits: d.decode_bits(),
                inject: self.inject.and_then(|i| i.device),
            })
            .collect();
        // Guests alone still need a workload: it is what carries them to dom0.
        let workload = (!self.workload.is_empty() || !self.guests.is_empty()).then(|| wire::Workload {
            ops: self.workload.iter().map(OpCfg::to_wire).collect(),
            // The bounce count comes from the swiotlb tracepoint; always on.
            tracepoints: true,
            shell: false,
            guests: self
                .guests
                .iter()
                .enumerate()
                .map(|(i, g)| wire::GuestSpec {
                    name: g.name.value.clone(),
                    memory_mib: u32::try_from(g.memory.mib).unwrap_or(u32::MAX),
                    vcpus: g.vcpus,
                    net: g.net.as_ref().map(|n| guest_net(i, n)),
                    disk: g.disk.as_ref().map(|d| wire::GuestDisk {
                        size: d.write,
                        pattern: d.pattern,
                        seed: d.seed,
                        persistent: d.persistent,
                    }),
                })
                .collect(),
        });
        RunSpec {
            name: self.name.clone(),
            machine,
            boot,
            devices,
            workload,
            boot_timeout: self.timeouts.boot.0,
            run_timeout: self.timeouts.run.0,
            guest_timeout: self.timeouts.guest.0,
            live_console: false,
            shell: false,
        }
    }

    /// The named op of the workload.
    pub fn op(&self, name: &str) -> Option<&OpCfg> {
        self.workload.iter().find(|o| o.name.value == name)
    }
}

impl OpCfg {
    pub fn name(&self) -> &str {
        &self.name.value
    }

    /// The agent's form of this op (docs/records.md section 2).
    pub fn to_wire(&self) -> wire::Op {
        wire::Op {
            name: self.name.value.clone(),
            kind: match self.kind {
                OpKindCfg::Coherent => wire::OpKind::Coherent,
                OpKindCfg::Single => wire::OpKind::Single,
                OpKindCfg::Sg => wire::OpKind::Sg,
                OpKindCfg::Raw => wire::OpKind::Raw,
                OpKindCfg::NetTftp => wire::OpKind::NetTftp,
            },
            placement: match self.placement {
                PlacementCfg::Low => wire::Placement::Low,
                PlacementCfg::High => wire::Placement::High,
                PlacementCfg::Any => wire::Placement::Any,
            },
            size: self.size,
            count: self.count,
            dir: match self.dir {
                DirCfg::ToDevice => wire::Direction::ToDevice,
                DirCfg::FromDevice => wire::Direction::FromDevice,
            },
            pattern: self.pattern,
            seed: self.seed,
            segments: self.segments,
            bus_addr: self.bus_addr.map(ByteSize::bytes),
            device: self.device,
            buffer: self.buffer.as_ref().map(|b| wire::GuestBuffer {
                guest: b.guest.clone(),
                readonly: b.grant == GrantCfg::Ro,
            }),
        }
    }
}

/// The `i`th guest's place in QEMU's user network: dom0's own address is
/// 10.0.2.15, so guests take 10.0.2.16 up; each sends to its own port,
/// which also names the file it fetches.
pub fn guest_net(i: usize, n: &GuestNetCfg) -> wire::GuestNet {
    wire::GuestNet {
        addr: format!("10.0.2.{}/24", 16 + i),
        port: 5000 + i as u16,
        size: n.send.unwrap_or(0),
        pattern: n.pattern,
        seed: n.seed,
        receive: n.receive.unwrap_or(0),
    }
}
