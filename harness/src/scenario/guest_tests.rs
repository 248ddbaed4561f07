//! The `guests:` and `buffer:` parts of the scenario language.

use super::*;
use std::path::Path;
use std::time::Duration;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    parse_str(text, Path::new("scenarios/x.yaml"))
}

const GUEST: &str = "description: d\nguests:\n  - {name: g1, type: pvh, memory: 128M, vcpus: 1}\n";

#[test]
fn guest_scenarios_parse_and_map_to_the_wire() {
    let files = scenario_files(&scenarios_dir()).expect("scenarios/ is readable");
    let guests: Vec<_> = files
        .into_iter()
        .map(|f| (load(&f).unwrap_or_else(|e| panic!("{e}")), f))
        .filter(|(s, _)| !s.guests.is_empty())
        .collect();
    assert!(guests.len() >= 4, "{} guest scenarios", guests.len());
    for (s, f) in guests {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(stem.starts_with("neg-"), s.expect_failure.is_some(), "{stem}");
        let w = s.to_run_spec().workload.expect("guests make a workload");
        assert_eq!(w.guests.len(), 1, "{stem}");
        assert!(w.ops.iter().all(|o| o.buffer.is_some()), "{stem}");
    }

    let s = parse(&format!(
        "{GUEST}workload:\n  - {{name: a, kind: sg, size: 4K, segments: 2, dir: to_device, buffer: {{guest: g1, grant: ro}}}}\n"
    ))
    .unwrap();
    let spec = s.to_run_spec();
    let w = spec.workload.unwrap();
    assert_eq!(
        (w.guests[0].name.as_str(), w.guests[0].memory_mib, w.guests[0].vcpus),
        ("g1", 128, 1)
    );
    let b = w.ops[0].buffer.as_ref().unwrap();
    assert_eq!((b.guest.as_str(), b.readonly), ("g1", true));
    assert_eq!(spec.guest_timeout, Duration::from_secs(120));

    // Guests alone, without ops, still start (and need a workload).
    assert!(parse(GUEST).unwrap().to_run_spec().workload.is_some());
}

#[test]
fn guest_mistakes_are_refused_with_their_place() {
    let cases = [
        (
            "description: d\nguests:\n  - {name: g1, memory: 128M, vcpu: 1}\n",
            "guests[0]",
        ),
        ("description: d\nguests:\n  - {name: g1, type: hvm}\n", "guests[0].type"),
        ("description: d\nguests:\n  - {name: 'a b'}\n", "guests[0].name"),
        (
            "description: d\nguests:\n  - {name: a}\n  - {name: a}\n",
            "guests[1].name",
        ),
        ("description: d\nxen: none\nguests:\n  - {name: a}\n", "guests"),
        ("description: d\nguests:\n  - {name: a, memory: 8G}\n", "guests"),
    ];
    for (text, path) in cases {
        let e = parse(text).unwrap_err();
        assert!(e.path.starts_with(path), "{text}: {e}");
    }
    // Errors about one guest or one op point at it: file:line:column.
    let e = parse("description: d\nguests:\n  - {name: a}\n  - {name: a}\n").unwrap_err();
    assert_eq!((e.line, e.column), (Some(4), Some(12)), "{e}");
    assert!(
        e.to_string()
            .starts_with("scenarios/x.yaml:4:12: guests[1].name: duplicate"),
        "{e}"
    );
    let op = |o: &str| parse(&format!("{GUEST}workload:\n  - {o}\n")).unwrap_err();
    let e = op("{name: a, kind: single, size: 4K, buffer: {guest: g2}}");
    assert_eq!(e.path, "workload[0].buffer.guest", "{e}");
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("g1"), "{e}");
    let e = op("{name: a, kind: coherent, size: 4K, buffer: {guest: g1}}");
    assert_eq!(e.path, "workload[0].buffer", "{e}");
    let e = op("{name: a, kind: single, size: 8K, buffer: {guest: g1}}");
    assert_eq!(e.path, "workload[0].size", "{e}");
    let e = op("{name: a, kind: sg, size: 4K, segments: 17, buffer: {guest: g1}}");
    assert_eq!(e.path, "workload[0].segments", "{e}");
    let e = op("{name: a, kind: single, size: 4K, placement: high, buffer: {guest: g1}}");
    assert_eq!(e.path, "workload[0].placement", "{e}");
    let e = op("{name: a, kind: single, size: 4K, dir: from_device, buffer: {guest: g1, grant: ro}}");
    assert_eq!(e.path, "workload[0].buffer.grant", "{e}");
    assert!(
        e.to_string().starts_with("scenarios/x.yaml:5:") && e.message.contains("swiotlb=noforce"),
        "{e}"
    );
    // Without a pool nothing bounces: the device's own write is the test.
    let ro_write =
        "workload:\n  - {name: a, kind: single, size: 4K, dir: from_device, buffer: {guest: g1, grant: ro}}\n";
    parse(&format!("{GUEST}dom0: {{cmdline: [swiotlb=noforce]}}\n{ro_write}")).unwrap_or_else(|e| panic!("{e}"));
    let e = parse(&format!("{GUEST}dom0: {{cmdline: [swiotlb=force]}}\n{ro_write}")).unwrap_err();
    assert_eq!(e.path, "workload[0].buffer.grant", "{e}");
    // With a pool, a scenario that states the op's map_error means to test
    // the driver's refusal of the bounced mapping.
    for claim in ["true", "false"] {
        parse(&format!(
            "{GUEST}{ro_write}expect:\n  ops:\n    a: {{ map_error: {claim} }}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let e = parse(&format!(
        "{GUEST}{ro_write}expect:\n  ops:\n    a: {{ intact: false }}\n"
    ))
    .unwrap_err();
    assert!(e.message.contains("state the op's `map_error`"), "{e}");
    let e = op("{name: a, kind: single, size: 4K, buffer: {guest: g1, grant: rx}}");
    assert!(e.path.starts_with("workload[0].buffer"), "{e}");
}

#[test]
fn a_guest_net_needs_the_e1000_and_maps_to_the_wire() {
    let net = "guests:\n  - {name: g1, net: {send: 256K, seed: 7}}\n  - {name: g2, net: {send: 1K}}\n";
    let s = parse(&format!("description: d\nmachine: {{net: e1000}}\n{net}")).unwrap();
    let w = s.to_run_spec().workload.unwrap();
    let n = w.guests[0].net.as_ref().unwrap();
    assert_eq!(
        (n.addr.as_str(), n.port, n.size, n.seed),
        ("10.0.2.16/24", 5000, 256 << 10, 7)
    );
    let n = w.guests[1].net.as_ref().unwrap();
    assert_eq!(
        (n.addr.as_str(), n.port, n.size, n.seed),
        ("10.0.2.17/24", 5001, 1024, 0)
    );

    let e = parse(&format!("description: d\n{net}")).unwrap_err();
    assert_eq!(e.path, "guests[0].net", "{e}");
    assert!(e.message.contains("machine.net: e1000"), "{e}");
    let e = parse(&format!(
        "description: d\nmachine: {{net: e1000}}\n{net}workload:\n  - {{name: f, kind: net_tftp, size: 1M}}\n"
    ))
    .unwrap_err();
    assert_eq!(e.path, "guests[0].net", "{e}");
    for bad in [
        "{send: 0}",
        "{send: 17M}",
        "{send: 1K, port: 9}",
        "{receive: 0}",
        "{seed: 3}",
    ] {
        let e = parse(&format!(
            "description: d\nmachine: {{net: e1000}}\nguests:\n  - {{name: g1, net: {bad}}}\n"
        ))
        .unwrap_err();
        assert!(e.path.starts_with("guests[0]"), "{bad}: {e}");
    }
    let e = parse("description: d\nmachine: {net: e1000}\nguests:\n  - {name: g1, net: {seed: 3}}\n").unwrap_err();
    assert!(e.message.contains("`send`, `receive` or both"), "{e}");
    // A guest that only fetches sends nothing.
    let s = parse("description: d\nmachine: {net: e1000}\nguests:\n  - {name: g1, net: {receive: 256K}}\n").unwrap();
    let w = s.to_run_spec().workload.unwrap();
    let n = w.guests[0].net.as_ref().unwrap();
    assert_eq!((n.size, n.receive), (0, 256 << 10));
}

#[test]
fn a_guest_disk_needs_the_machines_disk_and_maps_to_the_wire() {
    let disk = "machine: {disk: {controller: piix4-ide, size: 64M}}\n";
    let guest = "guests:\n  - {name: g1, disk: {write: 1M, seed: 3}}\n";
    let s = parse(&format!("description: d\n{disk}{guest}")).unwrap();
    let spec = s.to_run_spec();
    let d = spec.machine.disk.unwrap();
    assert_eq!(
        (d.controller, d.size),
        (crate::machine::DiskController::Piix4Ide, 64 << 20)
    );
    let g = &spec.workload.unwrap().guests[0];
    let w = g.disk.as_ref().unwrap();
    assert_eq!((w.size, w.seed, w.persistent), (1 << 20, 3, true));
    let s = parse(&format!(
        "description: d\n{disk}guests:\n  - {{name: g1, disk: {{write: 1M, persistent: false}}}}\n"
    ))
    .unwrap();
    assert!(
        !s.to_run_spec().workload.unwrap().guests[0]
            .disk
            .as_ref()
            .unwrap()
            .persistent
    );

    let e = parse(&format!("description: d\n{guest}")).unwrap_err();
    assert_eq!(e.path, "guests[0].disk", "{e}");
    assert!(e.message.contains("machine.disk"), "{e}");
    let e = parse(&format!(
        "description: d\n{disk}guests:\n  - {{name: g1, disk: {{write: 4K}}}}\n  - {{name: g2, disk: {{write: 4K}}}}\n"
    ))
    .unwrap_err();
    assert_eq!(e.path, "guests[1].disk", "{e}");
    let e = parse(
        "description: d\nmachine: {disk: {controller: piix4-ide, size: 1M}}\nguests:\n  - {name: g1, disk: {write: 2M}}\n",
    )
    .unwrap_err();
    assert!(e.message.contains("more than the disk"), "{e}");
    for bad in ["{write: 0}", "{write: 6000}", "{write: 32M}", "{write: 4K, offset: 1}"] {
        let e = parse(&format!(
            "description: d\n{disk}guests:\n  - {{name: g1, disk: {bad}}}\n"
        ))
        .unwrap_err();
        assert!(e.path.starts_with("guests[0].disk"), "{bad}: {e}");
    }
    for bad in [
        "{controller: piix4-ide, size: 100K}",
        "{controller: lsi53c895a, size: 64M}",
        "{controller: piix4-ide}",
    ] {
        let e = parse(&format!("description: d\nmachine: {{disk: {bad}}}\n")).unwrap_err();
        assert!(e.path.starts_with("machine.disk"), "{bad}: {e}");
        assert!(e.to_string().starts_with("scenarios/x.yaml:2:"), "{bad}: {e}");
    }
}
