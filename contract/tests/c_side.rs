//! Holds the C side and the init script to the contract: every define, enum
//! value and struct field of the driver's header, the driver's register
//! defines and limits, and the markers and paths of dom0's init. A change on
//! one side without the other fails here, naming what drifted.

use pvhdma_contract::{limits, markers, regs, uapi};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn repo_file(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn parse_int(v: &str) -> Option<u64> {
    let v = v.trim().trim_end_matches(['u', 'U', 'L']);
    if let Some(h) = v.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(b) = v.strip_prefix("BIT(").and_then(|b| b.strip_suffix(')')) {
        b.parse::<u32>().ok().map(|b| 1u64 << b)
    } else {
        match v {
            "SZ_1M" => Some(1 << 20),
            "SZ_4M" => Some(4 << 20),
            _ => v.parse().ok(),
        }
    }
}

/// `#define NAME VALUE` and `NAME = VALUE,` (enum) lines with integer values.
fn c_constants(src: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in src.lines() {
        let line = line.split("/*").next().unwrap_or("").trim();
        let (name, value) = if let Some(rest) = line.strip_prefix("#define ") {
            let mut it = rest.split_whitespace();
            match (it.next(), it.next()) {
                (Some(n), Some(v)) => (n, v),
                _ => continue,
            }
        } else if let Some((n, v)) = line.trim_end_matches(',').split_once(" = ") {
            (n.trim(), v)
        } else {
            continue;
        };
        if let Some(v) = parse_int(value) {
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// The fields of `struct NAME { ... };` as (name, size in bytes).
fn c_struct_fields(src: &str, name: &str) -> Vec<(String, usize)> {
    let start = src
        .find(&format!("struct {name} {{"))
        .unwrap_or_else(|| panic!("struct {name} not found"));
    let body = &src[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("};").unwrap()];
    body.lines()
        .filter_map(|l| {
            let l = l.split("/*").next()?.trim();
            let (ty, field) = l.strip_suffix(';')?.split_once(' ')?;
            let size = match ty {
                "__u32" | "__s32" => 4,
                "__u64" => 8,
                other => panic!("struct {name}: unexpected type {other}"),
            };
            assert!(
                !field.contains('['),
                "struct {name}: arrays are not part of the contract ({field})"
            );
            Some((field.trim().to_string(), size))
        })
        .collect()
}

fn check(consts: &BTreeMap<String, u64>, expected: &[(&str, u64)], file: &str) -> Vec<String> {
    expected
        .iter()
        .filter_map(|&(name, want)| match consts.get(name) {
            Some(&got) if got == want => None,
            Some(&got) => Some(format!("{file}: {name} is {got:#x}, the contract says {want:#x}")),
            None => Some(format!("{file}: {name} is missing (the contract says {want:#x})")),
        })
        .collect()
}

fn uapi_expectations() -> Vec<(&'static str, u64)> {
    use uapi::*;
    vec![
        ("PVHDMA_UAPI_VERSION", UAPI_VERSION.into()),
        ("PVHDMA_MAX_SEGS", MAX_SEGS.into()),
        ("PVHDMA_MAX_GRANT_SEGS", MAX_GRANT_SEGS.into()),
        ("PVHDMA_GRANT_READONLY", GRANT_READONLY.into()),
        ("PVHDMA_KIND_COHERENT", kind::COHERENT.into()),
        ("PVHDMA_KIND_SINGLE", kind::SINGLE.into()),
        ("PVHDMA_KIND_SG", kind::SG.into()),
        ("PVHDMA_KIND_RAW", kind::RAW.into()),
        ("PVHDMA_PLACE_ANY", place::ANY.into()),
        ("PVHDMA_PLACE_LOW", place::LOW.into()),
        ("PVHDMA_PLACE_HIGH", place::HIGH.into()),
        ("PVHDMA_DIR_TO_DEVICE", dir::TO_DEVICE.into()),
        ("PVHDMA_DIR_FROM_DEVICE", dir::FROM_DEVICE.into()),
        (
            "PVHDMA_PATTERN_FILL",
            pvhdma_contract::pattern::DataPattern::Fill.register_value().into(),
        ),
        (
            "PVHDMA_PATTERN_INCREMENTING",
            pvhdma_contract::pattern::DataPattern::Incrementing
                .register_value()
                .into(),
        ),
        (
            "PVHDMA_PATTERN_XORSHIFT",
            pvhdma_contract::pattern::DataPattern::Xorshift.register_value().into(),
        ),
        ("PVHDMA_RES_OK", res::OK.into()),
        ("PVHDMA_RES_MAP_ERROR", res::MAP_ERROR.into()),
        ("PVHDMA_RES_NO_HIGH_MEM", res::NO_HIGH_MEM.into()),
        ("PVHDMA_RES_NO_MEM", res::NO_MEM.into()),
        ("PVHDMA_RES_TIMEOUT", res::TIMEOUT.into()),
        ("PVHDMA_RES_GRANT_MAP", res::GRANT_MAP.into()),
    ]
}

fn driver_expectations() -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = regs::off::ALL
        .iter()
        .map(|&(name, off)| {
            // The driver abbreviates FAULT_ADDR_* to FAULT_*.
            (format!("REG_{}", name.replace("FAULT_ADDR_", "FAULT_")), off)
        })
        .collect();
    v.extend([
        ("PVHDMA_VENDOR".into(), regs::VENDOR_ID.into()),
        ("PVHDMA_DEVICE".into(), regs::DEVICE_ID.into()),
        ("ID_MAGIC".into(), regs::ID_VALUE.into()),
        ("CAPS_SG".into(), regs::caps::SG.into()),
        ("CAPS_MSI".into(), regs::caps::MSI.into()),
        ("CAPS_ADDR_HI".into(), regs::caps::ADDR_HI.into()),
        ("CTRL_FROM_DEV".into(), regs::control::FROM_DEVICE.into()),
        ("CTRL_SG".into(), regs::control::SG.into()),
        ("CTRL_IRQ_EN".into(), regs::control::IRQ_EN.into()),
        ("STATUS_BUSY".into(), regs::status::BUSY.into()),
        ("STATUS_DONE".into(), regs::status::DONE.into()),
        ("STATUS_ERROR".into(), regs::status::ERROR.into()),
        ("MAX_XFER".into(), limits::MAX_XFER.into()),
        ("MAX_SG_TOTAL".into(), limits::MAX_SG_TOTAL),
        ("DESC_SIZE".into(), limits::DESCRIPTOR_SIZE),
        ("FNV_INIT".into(), pvhdma_contract::pattern::FNV_INIT.into()),
    ]);
    v
}

fn drift() -> Vec<String> {
    let header = repo_file("images/driver/pvhdma_uapi.h");
    let driver = repo_file("images/driver/pvhdma.c");
    let mut errs = check(&c_constants(&header), &uapi_expectations(), "pvhdma_uapi.h");
    let drv = driver_expectations();
    let drv: Vec<(&str, u64)> = drv.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    errs.extend(check(&c_constants(&driver), &drv, "pvhdma.c"));
    for (c_name, rust) in [
        ("pvhdma_op", uapi::RawOp::FIELDS),
        ("pvhdma_seg", uapi::RawSeg::FIELDS),
        ("pvhdma_grant_op", uapi::RawGrantOp::FIELDS),
        ("pvhdma_grant_seg", uapi::RawGrantSeg::FIELDS),
    ] {
        let c: Vec<(String, usize)> = c_struct_fields(&header, c_name);
        let r: Vec<(String, usize)> = rust.iter().map(|&(n, s, _)| (n.to_string(), s)).collect();
        if c != r {
            errs.push(format!("struct {c_name}: header has {c:?}, the contract has {r:?}"));
        }
    }
    errs
}

#[test]
fn driver_header_and_defines_match_the_contract() {
    let errs = drift();
    assert!(
        errs.is_empty(),
        "C side drifted from the contract:\n{}",
        errs.join("\n")
    );
}

#[test]
fn the_parser_sees_a_drift() {
    // The twin: the same comparison on an edited header must fail.
    let header = repo_file("images/driver/pvhdma_uapi.h").replace("PVHDMA_MAX_SEGS 256", "PVHDMA_MAX_SEGS 16");
    let errs = check(&c_constants(&header), &uapi_expectations(), "edited");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("PVHDMA_MAX_SEGS is 0x10"));
    let header = repo_file("images/driver/pvhdma_uapi.h").replace("__u32 seg_cap;", "__u64 seg_cap;");
    assert_ne!(
        c_struct_fields(&header, "pvhdma_op"),
        uapi::RawOp::FIELDS
            .iter()
            .map(|&(n, s, _)| (n.to_string(), s))
            .collect::<Vec<_>>()
    );
}

#[test]
fn init_script_uses_the_contracts_markers_and_paths() {
    let init = repo_file("images/initramfs/init");
    for (what, s) in [
        ("boot marker", markers::BOOT_MARKER.to_string()),
        ("agent-failed marker", markers::AGENT_FAILED_PREFIX.to_string()),
        ("workload path", format!("/{}", markers::WORKLOAD_PATH)),
        ("agent path", markers::AGENT_PATH.to_string()),
        ("driver path", markers::DRIVER_PATH.to_string()),
    ] {
        assert!(init.contains(&s), "images/initramfs/init does not use the {what} {s:?}");
    }
}

#[test]
fn ioctl_numbers_match_the_contract() {
    let header = repo_file("images/driver/pvhdma_uapi.h");
    for (name, want) in [
        (
            "PVHDMA_IOC_RUN",
            format!("_IOWR({:#x}, {}, struct pvhdma_op)", uapi::IOC_TYPE, uapi::IOC_NR_RUN),
        ),
        (
            "PVHDMA_IOC_RUN_GRANT",
            format!(
                "_IOW({:#x}, {}, struct pvhdma_grant_op)",
                uapi::IOC_TYPE,
                uapi::IOC_NR_RUN_GRANT
            ),
        ),
    ] {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} is not defined"));
        assert_eq!(line.trim_start_matches(&format!("#define {name} ")).trim(), want);
    }
}

#[test]
fn a_grant_struct_drift_is_seen() {
    let header = repo_file("images/driver/pvhdma_uapi.h").replace("__s32 status;", "__u64 status;");
    assert_ne!(
        c_struct_fields(&header, "pvhdma_grant_seg"),
        uapi::RawGrantSeg::FIELDS
            .iter()
            .map(|&(n, s, _)| (n.to_string(), s))
            .collect::<Vec<_>>()
    );
}

#[test]
fn guest_scripts_use_the_contracts_markers_and_paths() {
    use markers::guest;
    let dom0 = repo_file("images/initramfs/guests.sh");
    for s in [
        guest::RELAY,
        guest::STARTED,
        guest::FAILED,
        guest::CRASHED,
        guest::DOMID_DIR,
        guest::CONSOLE_LOG_DIR,
        guest::TOOLSTACK_DIR,
    ] {
        assert!(dom0.contains(s), "images/initramfs/guests.sh does not use {s:?}");
    }
    let relayed = format!("{}/$1{}", guest::DOMID_DIR, guest::RELAYED_SUFFIX);
    assert!(
        dom0.contains(&relayed),
        "images/initramfs/guests.sh does not write {relayed:?}"
    );
    let init = repo_file("images/initramfs/init");
    for s in [
        format!("/{}", guest::DIR),
        format!("{}/guests.sh", guest::TOOLSTACK_DIR),
    ] {
        assert!(init.contains(&s), "images/initramfs/init does not use {s:?}");
    }
    let guest_init = repo_file("images/initramfs/guest-init");
    for s in [guest::READY, guest::AGENT_FAILED] {
        assert!(guest_init.contains(s), "images/initramfs/guest-init does not use {s:?}");
    }
}
