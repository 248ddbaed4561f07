//! Matrix cells: which scenarios a cell (image set x IOMMU kind) runs, and how.
//!
//! A cell is the image set the manifest names (its Xen and kernel versions)
//! and, when `PVHDMA_IOMMU` is set (`cargo xtask test --iommu K`), one IOMMU
//! kind for the whole run. The rule (scenarios/README.md, "Matrix cells"):
//!
//! - `cells.xen` / `cells.kernels`: the scenario runs only on an image set
//!   whose version matches one entry by dotted prefix (`4.20` matches Xen
//!   `4.20` and `4.20.1`; `6.12` matches `6.12.117+deb13-amd64`). Empty: any.
//! - IOMMU, only when the run has a kind K: a scenario with `cells.iommu`
//!   is portable over those kinds; it runs when K is listed, with its machine's
//!   IOMMU set to K. A scenario without `cells.iommu` keeps the IOMMU its
//!   machine states (intel by default) and runs in that kind's cell only;
//!   `iommu: none` runs in the intel cell, so it runs once per image set.
//! - Not applicable: the test is listed as ignored, with the reason.

use crate::images::Manifest;
use crate::machine::IommuKind;
use crate::scenario::{IommuCfg, Scenario};

/// The environment variable that sets the run's IOMMU kind.
pub const IOMMU_ENV: &str = "PVHDMA_IOMMU";

/// The IOMMU kinds that are matrix cells.
pub const IOMMU_KINDS: [IommuCfg; 2] = [IommuCfg::Intel, IommuCfg::Amd];

/// What the current run is: the image set's versions and the forced IOMMU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    pub iommu: Option<IommuCfg>,
    /// Xen's version, e.g. `4.20` (None: unknown, no filtering).
    pub xen: Option<String>,
    /// The dom0 kernel's version, e.g. `6.12.117+deb13-amd64`.
    pub kernel: Option<String>,
    /// Whether the image set carries Xen's toolstack (None: unknown, no
    /// filtering). Guests need it; a cell without it cannot create them.
    pub toolstack: Option<bool>,
    /// The set's QEMU as `cells.qemu` names it: `stock`, or the patches it
    /// was built with (None: unknown, no filtering).
    pub qemu: Option<Vec<String>>,
}

/// The manifest's `versions` key listing the patches of a QEMU built from
/// source (comma-separated file names); absent for the root's own QEMU.
pub const QEMU_PATCHES_KEY: &str = "qemu_patches";

/// `cells.qemu`'s name for the QEMU root's own binary.
pub const STOCK_QEMU: &str = "stock";

/// The set's QEMU labels from its manifest (see [`Cell::qemu`]).
pub fn qemu_labels(m: &Manifest) -> Vec<String> {
    match m.versions.get(QEMU_PATCHES_KEY) {
        Some(list) if !list.trim().is_empty() => list.split(',').map(|p| p.trim().to_string()).collect(),
        // Built from source without patches: neither stock nor patched.
        Some(_) => vec![],
        None => vec![STOCK_QEMU.to_string()],
    }
}

/// What to do with one scenario in a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it; `Some(kind)` replaces the machine's IOMMU.
    Run(Option<IommuKind>),
    /// Not this cell's scenario, and why.
    Skip(String),
}

pub fn iommu_name(k: IommuCfg) -> &'static str {
    match k {
        IommuCfg::Intel => "intel",
        IommuCfg::Amd => "amd",
        IommuCfg::None => "none",
    }
}

pub fn parse_iommu(s: &str) -> anyhow::Result<IommuCfg> {
    match s {
        "intel" => Ok(IommuCfg::Intel),
        "amd" => Ok(IommuCfg::Amd),
        other => anyhow::bail!("IOMMU kind `{other}`: expected intel or amd"),
    }
}

fn to_kind(k: IommuCfg) -> IommuKind {
    match k {
        IommuCfg::Intel => IommuKind::Intel,
        IommuCfg::Amd => IommuKind::Amd,
        IommuCfg::None => IommuKind::None,
    }
}

impl Cell {
    /// The run's cell: `PVHDMA_IOMMU` and the manifest's versions (when one is given).
    pub fn current(m: Option<&Manifest>) -> anyhow::Result<Self> {
        let iommu = match std::env::var(IOMMU_ENV) {
            Ok(s) if !s.is_empty() => Some(parse_iommu(&s).map_err(|e| anyhow::anyhow!("{IOMMU_ENV}: {e}"))?),
            _ => None,
        };
        Ok(Self {
            iommu,
            xen: m.and_then(xen_version),
            kernel: m.map(|m| m.kernel_version.clone()).filter(|v| !v.is_empty()),
            toolstack: m.map(|m| m.toolstack.is_some()),
            qemu: m.map(qemu_labels),
        })
    }

    /// A name for logs, e.g. `xen 4.20, kernel 6.12.117+deb13-amd64, iommu amd`.
    pub fn describe(&self) -> String {
        format!(
            "xen {}, kernel {}, iommu {}",
            self.xen.as_deref().unwrap_or("?"),
            self.kernel.as_deref().unwrap_or("?"),
            self.iommu.map(iommu_name).unwrap_or("as each scenario states"),
        )
    }

    pub fn decide(&self, s: &Scenario) -> Decision {
        let cells = s.cells.clone().unwrap_or_default();
        for (what, wanted, have) in [
            ("xen", &cells.xen, &self.xen),
            ("kernels", &cells.kernels, &self.kernel),
        ] {
            if let (false, Some(v)) = (wanted.is_empty(), have) {
                if !wanted.iter().any(|w| version_matches(w, v)) {
                    return Decision::Skip(format!("cells.{what} {wanted:?} excludes {v}"));
                }
            }
        }
        if let (false, Some(have)) = (cells.qemu.is_empty(), &self.qemu) {
            if !cells.qemu.iter().any(|w| have.contains(w)) {
                let have = if have.is_empty() {
                    "built without patches".to_string()
                } else {
                    have.join(", ")
                };
                return Decision::Skip(format!("cells.qemu {:?} excludes this set's QEMU ({have})", cells.qemu));
            }
        }
        if !s.guests.is_empty() && self.toolstack == Some(false) {
            return Decision::Skip(
                "has guests, and this cell's image set has no toolstack (its recipe's [toolstack] table)".into(),
            );
        }
        let Some(k) = self.iommu else {
            return Decision::Run(None);
        };
        let listed: Vec<IommuCfg> = cells
            .iommu
            .iter()
            .copied()
            .filter(|c| IOMMU_KINDS.contains(c))
            .collect();
        if !listed.is_empty() {
            return if listed.contains(&k) {
                Decision::Run(Some(to_kind(k)))
            } else {
                Decision::Skip(format!(
                    "cells.iommu [{}] excludes {}",
                    listed.iter().map(|c| iommu_name(*c)).collect::<Vec<_>>().join(", "),
                    iommu_name(k)
                ))
            };
        }
        let home = match s.machine.iommu {
            IommuCfg::None => IommuCfg::Intel,
            other => other,
        };
        if home == k {
            Decision::Run(None)
        } else {
            Decision::Skip(format!(
                "pins machine.iommu: {} (no cells.iommu), not this cell's {}",
                iommu_name(s.machine.iommu),
                iommu_name(k)
            ))
        }
    }
}

/// Fit one scenario's spec to the current cell and host: the cell's IOMMU
/// (see the module rule) and, for `accel: auto`, [`crate::accel::decide`].
/// Errors when the scenario does not belong to the cell. Returns lines for
/// the run's harness.log.
pub fn apply(m: &Manifest, s: &Scenario, spec: &mut crate::machine::RunSpec) -> anyhow::Result<Vec<String>> {
    let cell = Cell::current(Some(m))?;
    let mut notes = vec![format!("cell: {}", cell.describe())];
    match cell.decide(s) {
        Decision::Skip(why) => anyhow::bail!("Not a scenario of this cell ({}): {why}", cell.describe()),
        Decision::Run(Some(k)) => {
            notes.push(format!(
                "cell: machine IOMMU {:?} -> {k:?} ({IOMMU_ENV})",
                spec.machine.iommu
            ));
            spec.machine.iommu = k;
        }
        Decision::Run(None) => {}
    }
    if s.machine.accel == crate::scenario::AccelCfg::Auto {
        let d = crate::accel::decide();
        spec.machine.accel = d.accel;
        notes.push(format!("accel: auto -> {d}"));
    }
    Ok(notes)
}

/// Append the notes of [`apply`] to the run's harness.log.
pub fn record(artifacts: &std::path::Path, notes: &[String]) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(artifacts.join("harness.log"))
    {
        for n in notes {
            let _ = writeln!(f, "{n}");
        }
    }
}

/// Xen's version from the manifest: `versions.xen_version`, else parsed
/// from the image's file name (`xen-4.20-amd64.gz` gives `4.20`).
pub fn xen_version(m: &Manifest) -> Option<String> {
    if let Some(v) = m.versions.get("xen_version") {
        return Some(v.clone());
    }
    first_version(m.versions.get("xen")?)
}

/// The first `N.N[.N...]` in `s`.
pub fn first_version(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            let v = s[start..i].trim_end_matches('.');
            if v.contains('.') {
                return Some(v.to_string());
            }
        } else {
            i += 1;
        }
    }
    None
}

/// `label` matches `version` when its dotted parts are the version's first
/// parts: `6.12` matches `6.12.117+deb13-amd64`, not `6.1.x` or `6.120`.
pub fn version_matches(label: &str, version: &str) -> bool {
    let Some(v) = first_version(version).or_else(|| Some(version.to_string())) else {
        return false;
    };
    let mut vp = v.split('.');
    label.split('.').all(|l| vp.next() == Some(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(extra: &str) -> Scenario {
        crate::scenario::parse_str(&format!("description: t\n{extra}"), std::path::Path::new("t.yaml")).unwrap()
    }

    fn cell(iommu: Option<IommuCfg>) -> Cell {
        Cell {
            iommu,
            xen: Some("4.20".into()),
            kernel: Some("6.12.117+deb13-amd64".into()),
            toolstack: Some(true),
            qemu: Some(vec![STOCK_QEMU.into()]),
        }
    }

    const FIX: &str = "0001-amd_iommu-unmap-every-record-a-wider-UNMAP-overlaps.patch";

    fn fixed(iommu: Option<IommuCfg>) -> Cell {
        Cell {
            qemu: Some(vec![FIX.into()]),
            ..cell(iommu)
        }
    }

    #[test]
    fn cells_qemu_picks_the_stock_or_a_patched_qemu() {
        let stock = scenario("cells: {qemu: [stock]}\n");
        let patched = scenario(&format!("cells: {{qemu: [{FIX}]}}\n"));
        let any = scenario("");
        assert_eq!(cell(None).decide(&stock), Decision::Run(None));
        assert_eq!(fixed(None).decide(&patched), Decision::Run(None));
        let Decision::Skip(why) = fixed(None).decide(&stock) else {
            panic!()
        };
        assert!(why.contains(&format!("excludes this set's QEMU ({FIX})")), "{why}");
        let Decision::Skip(why) = cell(None).decide(&patched) else {
            panic!()
        };
        assert!(why.contains("(stock)"), "{why}");
        for c in [cell(None), fixed(None)] {
            assert_eq!(c.decide(&any), Decision::Run(None));
        }
        // A QEMU built without patches is neither.
        let plain = Cell {
            qemu: Some(vec![]),
            ..cell(None)
        };
        let Decision::Skip(why) = plain.decide(&stock) else {
            panic!()
        };
        assert!(why.contains("built without patches"), "{why}");
        // No manifest: no filtering.
        let unknown = Cell {
            qemu: None,
            ..cell(None)
        };
        assert_eq!(unknown.decide(&patched), Decision::Run(None));
    }

    #[test]
    fn qemu_labels_come_from_the_manifest() {
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "qemu": "/q", "xen": "/x", "kernel": "/k", "kernel_version": "6.12", "initrd": "/i", "versions": {}
        }))
        .unwrap();
        assert_eq!(qemu_labels(&m), [STOCK_QEMU]);
        m.versions
            .insert(QEMU_PATCHES_KEY.into(), format!("{FIX}, 0002-b.patch"));
        assert_eq!(qemu_labels(&m), [FIX, "0002-b.patch"]);
        m.versions.insert(QEMU_PATCHES_KEY.into(), String::new());
        assert!(qemu_labels(&m).is_empty());
    }

    #[test]
    fn guests_run_only_where_the_image_set_has_a_toolstack() {
        let s = scenario("guests: [{name: g1}]\nworkload: [{name: a, kind: single, size: 4K, buffer: {guest: g1}}]\n");
        assert_eq!(cell(None).decide(&s), Decision::Run(None));
        let bare = Cell {
            toolstack: Some(false),
            ..cell(None)
        };
        let Decision::Skip(why) = bare.decide(&s) else { panic!() };
        assert!(why.contains("no toolstack"), "{why}");
        // A scenario without guests does not care.
        assert_eq!(bare.decide(&scenario("")), Decision::Run(None));
    }

    #[test]
    fn versions_match_by_dotted_prefix() {
        assert!(version_matches("6.12", "6.12.117+deb13-amd64"));
        assert!(version_matches("6", "6.12.117+deb13-amd64"));
        assert!(!version_matches("6.1", "6.12.117+deb13-amd64"));
        assert!(!version_matches("4.2", "4.20"));
        assert!(version_matches("4.20", "4.20"));
        assert_eq!(first_version("xen-4.17-amd64.gz").as_deref(), Some("4.17"));
        assert_eq!(first_version("7.3.1+bpo-amd64").as_deref(), Some("7.3.1"));
    }

    #[test]
    fn without_a_forced_iommu_everything_runs_as_stated() {
        let s = scenario("machine: { iommu: amd }\n");
        assert_eq!(cell(None).decide(&s), Decision::Run(None));
    }

    #[test]
    fn a_pinned_iommu_runs_only_in_its_own_cell() {
        let s = scenario("machine: { iommu: amd }\n");
        assert_eq!(cell(Some(IommuCfg::Amd)).decide(&s), Decision::Run(None));
        let Decision::Skip(why) = cell(Some(IommuCfg::Intel)).decide(&s) else {
            panic!()
        };
        assert!(why.contains("pins machine.iommu: amd"), "{why}");
        // The default machine is intel.
        assert_eq!(cell(Some(IommuCfg::Intel)).decide(&scenario("")), Decision::Run(None));
    }

    #[test]
    fn no_iommu_scenarios_ride_with_intel() {
        let s = scenario("machine: { iommu: none }\n");
        assert_eq!(cell(Some(IommuCfg::Intel)).decide(&s), Decision::Run(None));
        assert!(matches!(cell(Some(IommuCfg::Amd)).decide(&s), Decision::Skip(_)));
    }

    #[test]
    fn cells_iommu_makes_a_scenario_portable() {
        let s = scenario("cells: { iommu: [intel, amd] }\n");
        assert_eq!(
            cell(Some(IommuCfg::Amd)).decide(&s),
            Decision::Run(Some(IommuKind::Amd))
        );
        let s = scenario("machine: { iommu: amd }\ncells: { iommu: [amd] }\n");
        let Decision::Skip(why) = cell(Some(IommuCfg::Intel)).decide(&s) else {
            panic!()
        };
        assert!(why.contains("cells.iommu [amd] excludes intel"), "{why}");
    }

    #[test]
    fn xen_and_kernel_labels_filter_against_the_image_set() {
        let s = scenario("cells: { xen: [\"4.17\"] }\n");
        let Decision::Skip(why) = cell(None).decide(&s) else {
            panic!()
        };
        assert!(why.contains("cells.xen") && why.contains("4.20"), "{why}");
        let s = scenario("cells: { kernels: [\"7\", \"6.12\"], xen: [\"4.20\"] }\n");
        assert_eq!(cell(None).decide(&s), Decision::Run(None));
        // Unknown versions (no manifest) filter nothing.
        let s = scenario("cells: { xen: [\"4.17\"] }\n");
        assert_eq!(Cell::default().decide(&s), Decision::Run(None));
    }

    #[test]
    fn the_xen417_hap_twin_runs_only_in_the_xen_4_17_intel_cell() {
        let path = crate::images::workspace_root().join("scenarios/xen417-hap-halts.yaml");
        let s = crate::scenario::load(&path).unwrap();
        let c417 = |iommu| Cell {
            xen: Some("4.17".into()),
            ..cell(Some(iommu))
        };
        assert_eq!(c417(IommuCfg::Intel).decide(&s), Decision::Run(None));
        assert!(matches!(c417(IommuCfg::Amd).decide(&s), Decision::Skip(_)));
        // The default image set (Xen 4.20) never boots it.
        assert!(matches!(cell(Some(IommuCfg::Intel)).decide(&s), Decision::Skip(_)));
        assert!(matches!(cell(None).decide(&s), Decision::Skip(_)));
    }

    #[test]
    fn the_amdvi_abort_runs_only_in_amd_cells_with_a_toolstack() {
        let path = crate::images::workspace_root().join("scenarios/guest-pvh-amdvi-qemu-aborts.yaml");
        let s = crate::scenario::load(&path).unwrap();
        assert_eq!(cell(Some(IommuCfg::Amd)).decide(&s), Decision::Run(None));
        // Run alone (no cell forced), it keeps the AMD-Vi its machine states.
        assert_eq!(cell(None).decide(&s), Decision::Run(None));
        let Decision::Skip(why) = cell(Some(IommuCfg::Intel)).decide(&s) else {
            panic!()
        };
        assert!(why.contains("pins machine.iommu: amd"), "{why}");
        let bare = Cell {
            toolstack: Some(false),
            ..cell(Some(IommuCfg::Amd))
        };
        let Decision::Skip(why) = bare.decide(&s) else { panic!() };
        assert!(why.contains("no toolstack"), "{why}");
    }

    #[test]
    fn every_shipped_scenario_runs_in_exactly_one_iommu_cell() {
        for f in crate::scenario::scenario_files(&crate::scenario::scenarios_dir()).unwrap() {
            let s = crate::scenario::load(&f).unwrap();
            if matches!(cell(None).decide(&s), Decision::Skip(_)) {
                continue; // not for this image set at all
            }
            let n = IOMMU_KINDS
                .iter()
                .filter(|k| matches!(cell(Some(**k)).decide(&s), Decision::Run(_)))
                .count();
            let portable = s.cells.as_ref().is_some_and(|c| !c.iommu.is_empty());
            assert!(n >= 1, "{} runs in no IOMMU cell", f.display());
            assert!(portable || n == 1, "{} runs in {n} cells", f.display());
        }
    }
}
