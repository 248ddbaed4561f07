use super::*;
use crate::machine::{Accel, Dom0Mode, IommuKind};
use pvhdma_contract::run_end::EndKind;
use std::path::Path;
use std::time::Duration;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    parse_str(text, Path::new("scenarios/x.yaml"))
}

const MIN: &str = "description: d\n";

#[test]
fn every_catalog_file_parses() {
    let files = scenario_files(&scenarios_dir()).expect("scenarios/ is readable");
    assert!(files.len() >= 9, "catalog has {} files", files.len());
    for f in files {
        let s = load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.description.trim().is_empty(), "{}: no description", f.display());
        let spec = s.to_run_spec();
        assert_eq!(spec.name, f.file_stem().unwrap().to_string_lossy());
        // Twins are named neg-*, so the default set is obvious from a listing.
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            stem.starts_with("neg-"),
            s.expect_failure.is_some(),
            "{stem}: neg- prefix iff expect_failure"
        );
    }
}

#[test]
fn every_catalog_twin_pins_its_cause() {
    // The named assertion failing for some other reason must not count as
    // the twin's success: each says what its failure must show.
    for f in scenario_files(&scenarios_dir()).expect("scenarios/ is readable") {
        let s = load(&f).unwrap_or_else(|e| panic!("{e}"));
        if let Some(t) = &s.expect_failure {
            assert!(t.message.is_some(), "{}: expect_failure has no message", f.display());
        }
    }
}

#[test]
fn misspelled_field_names_file_line_column_and_path() {
    let text = "description: d\nexpect:\n  data_intact: true\n  device_addrs:\n    belo: 4G\n";
    let e = parse(text).unwrap_err();
    assert_eq!((e.line, e.column), (Some(5), Some(5)));
    assert_eq!(e.path, "expect.device_addrs.belo");
    let shown = e.to_string();
    assert!(
        shown.starts_with("scenarios/x.yaml:5:5: expect.device_addrs.belo: unknown field `belo`"),
        "{shown}"
    );
    assert!(shown.contains("below"), "lists the expected fields: {shown}");
}

#[test]
fn bad_values_are_located_too() {
    let e = parse("description: d\nmachine:\n  memory: 8Q\n").unwrap_err();
    assert_eq!((e.line, e.path.as_str()), (Some(3), "machine.memory"), "{e}");
    assert!(e.message.contains("8Q"), "{e}");

    let e = parse("description: d\nworkload:\n  - {name: a, kind: single, size: 2M}\n").unwrap_err();
    assert_eq!(e.path, "workload[0].size", "{e}");
    assert_eq!(e.line, Some(3), "{e}");

    let e = parse("description: d\nmachine:\n  iommu: arm\n").unwrap_err();
    assert_eq!(e.path, "machine.iommu", "{e}");

    let e = parse("description: d\nexpect:\n  data_intact: yes\n").unwrap_err();
    assert_eq!(e.path, "expect.data_intact", "{e}");

    let e = parse("description: d\nexpect:\n  log: {contains: [\"(\"]}\n").unwrap_err();
    assert!(e.path.starts_with("expect.log.contains"), "{e}");
    assert!(e.message.contains("regular expression"), "{e}");

    let e = parse("description: d\nxen:\n  dom0_mem: 1G\n  optons: []\n").unwrap_err();
    assert_eq!((e.line, e.path.as_str()), (Some(4), "xen.optons"), "{e}");

    let e = parse("name: x\n").unwrap_err();
    assert!(e.message.contains("description"), "{e}");

    let e = parse("description: d\nexpect:\n  translations_agree: true\ninject: {ram_below_4g: 1G}\n").unwrap_err();
    assert_eq!(e.path, "inject", "{e}");
    assert!(e.message.contains("expect_failure"), "{e}");
}

#[test]
fn inject_device_reaches_every_device_and_is_strict() {
    let twin = "description: d
devices: [{addr_bits: 32}, {addr_bits: 36}]
expect:
  data_intact: true
\
                expect_failure: {assertion: data_intact, reason: r}
inject: {device: flip_written_byte}
";
    let s = parse(twin).unwrap();
    let spec = s.to_run_spec();
    let injected: Vec<_> = spec.devices.iter().map(|d| d.inject).collect();
    let flip = Some(pvhdma_contract::device_cli::Mutant::FlipWrittenByte);
    assert_eq!(injected, vec![flip, flip]);

    let e = parse(&twin.replace("flip_written_byte", "flip_a_byte")).unwrap_err();
    assert!(e.path.starts_with("inject.device"), "{e}");
    let e = parse(
        "description: d
expect:
  data_intact: true
inject: {device: no_irq}
",
    )
    .unwrap_err();
    assert_eq!(e.path, "inject", "{e}");
    // Without inject the device is honest.
    assert!(parse(MIN)
        .unwrap()
        .to_run_spec()
        .devices
        .iter()
        .all(|d| d.inject.is_none()));
}

#[test]
fn defaults_are_the_harness_defaults() {
    let s = parse(MIN).unwrap();
    assert_eq!(s.name, "x");
    let spec = s.to_run_spec();
    assert_eq!(spec.machine.memory_mib, 8192);
    assert_eq!(spec.machine.cpus, 2);
    assert_eq!(spec.machine.iommu, IommuKind::Intel);
    assert_eq!(spec.machine.accel, Accel::Tcg);
    assert_eq!(spec.boot.dom0_mode, Dom0Mode::Pvh);
    assert_eq!(spec.boot.dom0_mem_mib, 1024);
    assert!(!spec.boot.no_xen);
    assert_eq!(
        spec.devices,
        vec![crate::machine::DeviceSpec {
            addr_bits: 32,
            decode_bits: 32,
            inject: None,
        }]
    );
    assert_eq!(spec.boot_timeout, Duration::from_secs(120));
    assert_eq!(spec.run_timeout, Duration::from_secs(120));
    assert!(spec.workload.is_none(), "no ops: boot only");
    assert_eq!(s.expect.assertion_ids(), vec!["boot", "kernel_warnings"]);
}

#[test]
fn full_mapping_to_run_spec() {
    let s = parse(
        "name: custom\ndescription: d\nmachine: {memory: 6G, cpus: 1, iommu: amd, accel: kvm}\n\
         xen: {dom0: pv, dom0_mem: 1536M, options: [bootscrub=false]}\n\
         dom0: {cmdline: [swiotlb=noforce]}\ndevices: [{addr_bits: 36, decode_bits: 32}, {addr_bits: 64}]\n\
         workload:\n  - {name: r, kind: raw, bus_addr: \"0x7000_0000\", size: 4K, dir: to_device, pattern: fill, seed: 9}\n\
         \x20 - {name: s, kind: sg, placement: high, size: 512, segments: 3, count: 2}\n\
         timeouts: {boot: 90s, run: 1m}\n",
    )
    .unwrap();
    let spec = s.to_run_spec();
    assert_eq!(spec.name, "custom");
    assert_eq!((spec.machine.memory_mib, spec.machine.cpus), (6144, 1));
    assert_eq!((spec.machine.iommu, spec.machine.accel), (IommuKind::Amd, Accel::Kvm));
    assert_eq!((spec.boot.dom0_mode, spec.boot.dom0_mem_mib), (Dom0Mode::Pv, 1536));
    assert_eq!(spec.boot.xen_extra, vec!["bootscrub=false"]);
    assert_eq!(spec.boot.dom0_extra, vec!["swiotlb=noforce"]);
    assert_eq!(spec.devices[0].decode_bits, 32);
    assert_eq!(spec.devices[1].decode_bits, 64, "decode_bits defaults to addr_bits");
    assert_eq!(
        (spec.boot_timeout, spec.run_timeout),
        (Duration::from_secs(90), Duration::from_secs(60))
    );
    let w = spec.workload.unwrap();
    assert!(w.tracepoints);
    assert_eq!(w.ops[0].bus_addr, Some(0x7000_0000));
    assert_eq!(w.ops[0].kind, wire::OpKind::Raw);
    assert_eq!(w.ops[0].dir, wire::Direction::ToDevice);
    assert_eq!(w.ops[0].pattern, wire::DataPattern::Fill);
    assert_eq!((w.ops[1].size, w.ops[1].segments, w.ops[1].count), (512, 3, 2));
    assert_eq!(w.ops[1].placement, wire::Placement::High);
    assert_eq!(w.ops[1].dir, wire::Direction::FromDevice, "dir defaults to from_device");
}

#[test]
fn xen_none_is_the_control_mode() {
    let s = parse("description: d\nxen: none\ndom0: {cmdline: [intel_iommu=on]}\n").unwrap();
    assert_eq!(s.xen, Xen::None);
    let spec = s.to_run_spec();
    assert!(spec.boot.no_xen);
    assert_eq!(spec.boot.dom0_extra, vec!["intel_iommu=on"]);
    let e = parse("description: d\nxen: off\n").unwrap_err();
    assert_eq!(e.path, "xen", "{e}");
}

#[test]
fn boot_and_count_forms() {
    let s = parse("description: d\nexpect: {boot: xen_panic}\n").unwrap();
    assert_eq!(s.expect.boot.outcome(), EndKind::XenPanic);
    let s = parse("description: d\nexpect: {boot: {outcome: dom0_crash, message: SVM}}\n").unwrap();
    assert_eq!(s.expect.boot.outcome(), EndKind::Dom0Crash);
    assert_eq!(s.expect.boot.message().unwrap().as_str(), "SVM");
    let e = parse("description: d\nexpect: {boot: {outcome: finished, mesage: x}}\n").unwrap_err();
    assert_eq!(e.path, "expect.boot.mesage", "{e}");

    let s =
        parse("description: d\nexpect: {bounces: 0, iommu_faults: true, mapping_errors: {min: 1, max: 3}}\n").unwrap();
    assert_eq!(s.expect.bounces, Some(Count::exactly(0)));
    assert_eq!(s.expect.iommu_faults, Some(Count::at_least(1)));
    assert_eq!(
        s.expect.mapping_errors,
        Some(Count {
            min: Some(1),
            max: Some(3)
        })
    );
    let e = parse("description: d\nexpect: {bounces: {count: 1, min: 1}}\n").unwrap_err();
    assert_eq!(e.path, "expect.bounces", "{e}");
    let e = parse("description: d\nexpect: {bounces: {mn: 1}}\n").unwrap_err();
    assert_eq!(e.path, "expect.bounces.mn", "{e}");
}

#[test]
fn cross_field_checks_point_at_the_op() {
    let dup =
        "description: d\nworkload:\n  - {name: a, kind: coherent, size: 4K}\n  - {name: a, kind: single, size: 4K}\n";
    let e = parse(dup).unwrap_err();
    assert_eq!((e.line, e.path.as_str()), (Some(4), "workload[1].name"), "{e}");

    let e = parse("description: d\nworkload:\n  - {name: r, kind: raw, size: 4K}\n").unwrap_err();
    assert_eq!(e.path, "workload[0].bus_addr", "{e}");
    let e = parse("description: d\nworkload:\n  - {name: c, kind: coherent, size: 4K, bus_addr: 0}\n").unwrap_err();
    assert_eq!(e.path, "workload[0].bus_addr", "{e}");
    let e = parse("description: d\nworkload:\n  - {name: c, kind: single, size: 4K, segments: 2}\n").unwrap_err();
    assert_eq!(e.path, "workload[0].segments", "{e}");

    let e = parse(
        "description: d\nworkload:\n  - {name: a, kind: coherent, size: 4K}\nexpect:\n  ops:\n    b: {intact: true}\n",
    )
    .unwrap_err();
    assert_eq!(e.path, "expect.ops.b", "{e}");
    assert_eq!(e.line, Some(6), "{e}");

    let e = parse("description: d\nxen: {dom0_mem: 8G}\n").unwrap_err();
    assert_eq!(e.path, "xen.dom0_mem", "{e}");
}

#[test]
fn expect_failure_must_name_a_stated_assertion() {
    let ok =
        "description: d\nexpect: {device_addrs: {below: 4G}}\nexpect_failure: {assertion: device_addrs, reason: r}\n";
    parse(ok).unwrap();
    let bad = "description: d\nexpect: {data_intact: true}\nexpect_failure: {assertion: bounces, reason: r}\n";
    let e = parse(bad).unwrap_err();
    assert_eq!((e.line, e.path.as_str()), (Some(3), "expect_failure.assertion"), "{e}");
    assert!(e.message.contains("data_intact"), "lists the ids it has: {e}");
}

#[test]
fn assertion_ids_are_stable() {
    let s = parse(
        "description: d\nworkload: [{name: hs, kind: single, size: 4K}]\nexpect:\n  device_addrs: {below: 4G, at_least_one_access: true}\n\
         \x20 translated_addrs: {some_at_or_above: 4G}\n  translations_agree: true\n  data_intact: true\n  iommu_faults: 0\n\
         \x20 bounces: 0\n  device_addrs_in_swiotlb: true\n  mapping_errors: 0\n  log: {contains: [a], lacks: [b]}\n\
         \x20 ops: {hs: {map_error: true, device_error: 0}}\n",
    )
    .unwrap();
    assert_eq!(
        s.expect.assertion_ids(),
        vec![
            "boot",
            "device_addrs.below",
            "device_addrs.at_least_one_access",
            "translated_addrs.some_at_or_above",
            "translations_agree",
            "data_intact",
            "iommu_faults",
            "bounces",
            "device_addrs_in_swiotlb",
            "mapping_errors",
            "kernel_warnings",
            "log.contains",
            "log.lacks",
            "ops.hs.map_error",
            "ops.hs.device_error",
        ]
    );
}

#[test]
fn schema_file_is_fresh() {
    let path = scenarios_dir().join("schema.json");
    if std::env::var_os("PVHDMA_WRITE_SCHEMA").is_some() {
        // Escape hatch until/besides `cargo xtask schema`.
        std::fs::write(&path, schema_json()).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == schema_json(),
        "{} is stale or missing: run `cargo xtask schema` (it writes scenario::schema_json())",
        path.display()
    );
}

#[test]
fn schema_describes_the_format() {
    let v: serde_json::Value = serde_json::from_str(&schema_json()).unwrap();
    let props = &v["properties"];
    for key in [
        "name",
        "description",
        "machine",
        "xen",
        "dom0",
        "devices",
        "workload",
        "timeouts",
        "expect",
        "expect_failure",
        "cells",
    ] {
        assert!(props.get(key).is_some(), "schema lacks {key}");
    }
    assert_eq!(
        v["additionalProperties"],
        serde_json::Value::Bool(false),
        "strict at the top"
    );
    assert_eq!(v["required"], serde_json::json!(["description"]));
}

#[test]
fn a_twin_of_boot_is_refused_at_load_time() {
    let e =
        parse("description: d\nexpect: {boot: xen_panic}\nexpect_failure: {assertion: boot, reason: r}\n").unwrap_err();
    assert_eq!((e.line, e.path.as_str()), (Some(3), "expect_failure.assertion"), "{e}");
    assert!(e.message.contains("expect.boot"), "{e}");
}
