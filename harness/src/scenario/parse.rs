//! Reading scenario files: YAML through serde-saphyr, field paths through
//! serde_path_to_error (saphyr's own errors carry a location but no path),
//! then the checks that span several fields.

use super::expect::id_matches;
use super::model::{DirCfg, GrantCfg, NetCfg, OpCfg, OpKindCfg, PlacementCfg, Scenario, Xen};
use pvhdma_contract::limits::{GRANT_PAGE_SIZE, MAX_GRANT_PAGES, MAX_SG_TOTAL as MAX_SG_BYTES};
use serde_saphyr::{DefaultMessageFormatter, Location, MessageFormatter, Options};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a scenario file was rejected: where, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based; `None` when the problem has no single place (e.g. an I/O error).
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// Dotted field path, e.g. `expect.device_addrs.belo`; empty for the root.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ScenarioError {
    fn at(file: &Path, loc: Option<Location>, path: impl Into<String>, message: impl Into<String>) -> Self {
        let loc = loc.filter(|l| l.line() > 0);
        Self {
            file: file.to_path_buf(),
            line: loc.map(|l| l.line()),
            column: loc.map(|l| l.column()),
            path: path.into(),
            message: message.into(),
        }
    }
}

fn yaml_options() -> Options {
    // Options is non-exhaustive: start from the defaults and tighten.
    let mut o = Options::default();
    // `yes`/`on` as booleans are YAML 1.1 traps; scenarios say true/false.
    o.strict_booleans = true;
    // We render our own one-line `file:line:col: path: message`.
    o.with_snippet = false;
    o
}

/// Parse one scenario from text. `file` names it in errors and gives the
/// default `name` (its stem).
pub fn parse_str(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
    let mut path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
        serde_path_to_error::deserialize::<_, Scenario>(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    let mut scenario = parsed.map_err(|e| {
        let message = DefaultMessageFormatter.format_message(&e).escape_debug().to_string();
        // serde_path_to_error prints `.` for the root.
        let path = if path == "." { String::new() } else { path.clone() };
        ScenarioError::at(file, e.location(), path, message)
    })?;
    if scenario.name.is_empty() {
        scenario.name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    validate(&scenario, file)?;
    Ok(scenario)
}

/// Read and parse one scenario file.
pub fn load(file: &Path) -> Result<Scenario, ScenarioError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| ScenarioError::at(file, None, "", format!("cannot read: {e}")))?;
    parse_str(&text, file)
}

/// Every `*.yaml` / `*.yml` file of a directory, sorted by name.
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}

/// Checks that span several fields (single fields check themselves while
/// deserializing, with their own location).
fn validate(s: &Scenario, file: &Path) -> Result<(), ScenarioError> {
    let checked = validate_machine(s)
        .and_then(|()| validate_guests(s))
        .and_then(|guests| validate_workload(s, &guests))
        .and_then(|names| validate_expect_refs(s, &names))
        .and_then(|()| validate_twin(s));
    checked.map_err(|(loc, path, msg)| ScenarioError::at(file, loc, path, msg))
}

/// A validation failure: where, which field, what is wrong.
type Invalid = (Option<Location>, String, String);

fn validate_machine(s: &Scenario) -> Result<(), Invalid> {
    if s.devices.is_empty() {
        return Err((
            None,
            "devices".into(),
            "at least one device is needed (the agent drives the first)".into(),
        ));
    }
    if let Xen::Boot(x) = &s.xen {
        if x.dom0_mem.mib >= s.machine.memory.mib {
            return Err((
                None,
                "xen.dom0_mem".into(),
                format!(
                    "{} MiB does not fit in the machine's {} MiB",
                    x.dom0_mem.mib, s.machine.memory.mib
                ),
            ));
        }
    }
    Ok(())
}

/// Guest names, and the guests against the machine; returns the names.
fn validate_guests(s: &Scenario) -> Result<BTreeSet<&str>, Invalid> {
    let mut names = BTreeSet::new();
    let mut guest_mib = 0;
    for (i, g) in s.guests.iter().enumerate() {
        let (loc, path) = (Some(g.name.referenced), format!("guests[{i}].name"));
        let name = g.name.value.as_str();
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err((
                loc,
                path,
                format!("`{name}`: guest names are letters, digits and `-` (they name files and domains)"),
            ));
        }
        if !names.insert(name) {
            return Err((loc, path, format!("duplicate guest name `{name}`")));
        }
        guest_mib += g.memory.mib;
        if g.net.is_some() && s.machine.net != NetCfg::E1000 {
            return Err((
                loc,
                format!("guests[{i}].net"),
                "a guest's vif is bridged to dom0's NIC: it needs `machine.net: e1000`".into(),
            ));
        }
        if g.net.as_ref().is_some_and(|n| n.send.is_none() && n.receive.is_none()) {
            return Err((
                loc,
                format!("guests[{i}].net"),
                "say what the vif moves: `send`, `receive` or both".into(),
            ));
        }
        if g.net.is_some() && s.workload.iter().any(|op| op.kind == OpKindCfg::NetTftp) {
            return Err((
                loc,
                format!("guests[{i}].net"),
                "net_tftp configures dom0's NIC itself; a guest's vif puts it in a bridge".into(),
            ));
        }
        validate_guest_disk(s, i)?;
    }
    if s.guests.is_empty() {
        return Ok(names);
    }
    match &s.xen {
        Xen::None => Err((
            None,
            "guests".into(),
            "guests need Xen (`xen: none` boots no hypervisor)".into(),
        )),
        Xen::Boot(x) if x.dom0_mem.mib + guest_mib >= s.machine.memory.mib => Err((
            None,
            "guests".into(),
            format!(
                "dom0's {} MiB and the guests' {guest_mib} MiB do not fit in the machine's {} MiB",
                x.dom0_mem.mib, s.machine.memory.mib
            ),
        )),
        Xen::Boot(_) => Ok(names),
    }
}

/// A guest's vbd is dom0's one disk, whole: it needs the machine's disk, room
/// for the write, and no other guest on it.
fn validate_guest_disk(s: &Scenario, i: usize) -> Result<(), Invalid> {
    let g = &s.guests[i];
    let Some(d) = &g.disk else {
        return Ok(());
    };
    let (loc, path) = (Some(g.name.referenced), format!("guests[{i}].disk"));
    let Some(m) = &s.machine.disk else {
        return Err((
            loc,
            path,
            "a guest's vbd is dom0's disk: it needs `machine.disk`".into(),
        ));
    };
    if u64::from(d.write) > m.size {
        return Err((
            loc,
            path,
            format!("write {} bytes: more than the disk's {}", d.write, m.size),
        ));
    }
    if s.guests[..i].iter().any(|o| o.disk.is_some()) {
        return Err((loc, path, "dom0 has one disk: only one guest may have `disk`".into()));
    }
    Ok(())
}

/// An op whose buffer is a guest's pages: what a grant can carry.
fn validate_buffer(
    op: &OpCfg,
    guests: &BTreeSet<&str>,
    no_pool: bool,
    states_map_error: bool,
) -> Result<(), (&'static str, String)> {
    let Some(b) = &op.buffer else { return Ok(()) };
    if !guests.contains(b.guest.as_str()) {
        let known = guests.iter().copied().collect::<Vec<_>>().join(", ");
        return Err((
            "buffer.guest",
            format!("no guest is named `{}` (guests: {known})", b.guest),
        ));
    }
    if !matches!(op.kind, OpKindCfg::Single | OpKindCfg::Sg) {
        return Err(("buffer", "a guest's pages serve single and sg ops only".into()));
    }
    if op.size > GRANT_PAGE_SIZE {
        return Err(("size", "a guest buffer is one 4K page per segment: size <= 4K".into()));
    }
    if op.segments > MAX_GRANT_PAGES {
        return Err((
            "segments",
            format!("a guest grants at most {MAX_GRANT_PAGES} pages per op"),
        ));
    }
    // With a pool, a bounce back into a read-only grant would be dom0's CPU
    // writing it, so the driver gives such a mapping up before the device
    // runs; without one the device's own write is what the op tests. A
    // scenario that means to test the driver's refusal says so by stating
    // the op's `map_error`; one that does not has most likely asked for the
    // IOMMU's refusal in the wrong machine.
    if b.grant == GrantCfg::Ro && op.dir == DirCfg::FromDevice && !no_pool && !states_map_error {
        return Err((
            "buffer.grant",
            "a read-only grant takes from_device data through the IOMMU only when dom0 has no \
             swiotlb pool (`dom0.cmdline: [swiotlb=noforce]`); with a pool the driver refuses a \
             bounced mapping (a bounce would make dom0's CPU write the page): state the op's \
             `map_error` to test that refusal"
                .into(),
        ));
    }
    if op.placement != PlacementCfg::Any {
        return Err((
            "placement",
            "dom0 does not choose where a guest's pages land: leave placement out".into(),
        ));
    }
    Ok(())
}

/// Each op on its own and against the machine and the guests; returns the
/// op names.
fn validate_workload<'a>(s: &'a Scenario, guests: &BTreeSet<&str>) -> Result<BTreeSet<&'a str>, Invalid> {
    let mut names = BTreeSet::new();
    let no_pool = s.dom0.cmdline.iter().any(|a| a == "swiotlb=noforce");
    for (i, op) in s.workload.iter().enumerate() {
        let loc = Some(op.name.referenced);
        let path = |f: &str| format!("workload[{i}].{f}");
        let bad = |f: &str, msg: String| Err((loc, path(f), msg));
        let name = op.name.value.as_str();
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('.') {
            return bad(
                "name",
                format!("`{name}`: op names are non-empty, without spaces or dots (they appear in assertion ids)"),
            );
        }
        if !names.insert(name) {
            return bad("name", format!("duplicate op name `{name}`"));
        }
        match (op.kind, op.bus_addr) {
            (OpKindCfg::Raw, None) => return bad("bus_addr", "a raw op needs bus_addr".into()),
            (k, Some(_)) if k != OpKindCfg::Raw => {
                return bad(
                    "bus_addr",
                    "bus_addr is only for kind raw (the DMA API chooses the others)".into(),
                )
            }
            _ => {}
        }
        if op.device as usize >= s.devices.len() {
            let n = s.devices.len();
            return bad("device", format!("device {} does not exist ({n} devices)", op.device));
        }
        if op.kind == OpKindCfg::NetTftp && s.machine.net != NetCfg::E1000 {
            return bad("kind", "net_tftp needs `machine.net: e1000`".into());
        }
        if op.segments > 1 && op.kind != OpKindCfg::Sg {
            return bad("segments", "segments is only for kind sg".into());
        }
        let states_map_error = s.expect.ops.get(name).is_some_and(|e| e.value.map_error.is_some());
        if let Err((field, msg)) = validate_buffer(op, guests, no_pool, states_map_error) {
            return bad(field, msg);
        }
        if u64::from(op.size) * u64::from(op.segments) > MAX_SG_BYTES {
            return bad(
                "segments",
                format!(
                    "size x segments exceeds the device's {} MiB per transfer",
                    MAX_SG_BYTES >> 20
                ),
            );
        }
    }
    Ok(names)
}

/// `expect.ops` names only ops of the workload.
fn validate_expect_refs(s: &Scenario, names: &BTreeSet<&str>) -> Result<(), Invalid> {
    for (name, e) in &s.expect.ops {
        if !names.contains(name.as_str()) {
            return Err((
                Some(e.referenced),
                format!("expect.ops.{name}"),
                format!(
                    "no workload op is named `{name}` (ops: {})",
                    names.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        // Only a guest looks at its own pages after a device wrote them.
        let op = s.workload.iter().find(|o| o.name.value == *name);
        let guest_from = op.is_some_and(|o| o.buffer.is_some() && o.dir == DirCfg::FromDevice);
        if e.value.guest_sees.is_some() && !guest_from {
            return Err((
                Some(e.referenced),
                format!("expect.ops.{name}.guest_sees"),
                format!("`{name}` is not a from_device op on a guest's buffer: no guest looks at its pages"),
            ));
        }
    }
    Ok(())
}

/// A negative twin names one of its own assertions and says why it fails;
/// fault injection only exists in twins.
fn validate_twin(s: &Scenario) -> Result<(), Invalid> {
    if let Some(f) = &s.expect_failure {
        let wanted = f.assertion.value.as_str();
        let at = Some(f.assertion.referenced);
        // A run that must end otherwise says so in `expect.boot`; a twin of
        // `boot` would pass on any broken boot at all.
        if wanted == "boot" {
            return Err((
                at,
                "expect_failure.assertion".into(),
                "`boot` cannot be the expected failure: state the expected end in `expect.boot` instead".into(),
            ));
        }
        let ids = s.expect.assertion_ids();
        if !ids.iter().any(|id| id_matches(wanted, id)) {
            return Err((
                at,
                "expect_failure.assertion".into(),
                format!(
                    "`{wanted}` names no assertion of this scenario (it has: {})",
                    ids.join(", ")
                ),
            ));
        }
        if f.reason.trim().is_empty() {
            return Err((
                at,
                "expect_failure.reason".into(),
                "say why this scenario must fail".into(),
            ));
        }
    }
    if s.inject.is_some() && s.expect_failure.is_none() {
        return Err((
            None,
            "inject".into(),
            "fault injection belongs in a negative twin: add expect_failure".into(),
        ));
    }
    Ok(())
}
