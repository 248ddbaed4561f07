//! QEMU's IOMMU trace: the emulated IOMMU's own account of each translation.
//!
//! QEMU traces every translation call, hits as well as misses: one line per
//! IOMMU page that each DMA message touches (a message is split at page
//! boundaries and each piece translated on its own). Each line names the
//! requester (bus:dev.fn), so lines are joined only with the device that
//! caused them (see `verdict::join`).

use crate::outcome::TraceEntry;
use std::collections::HashMap;

/// The trace events the harness enables for each IOMMU kind.
pub const VTD_EVENTS: &[&str] = &["vtd_dmar_translate", "vtd_dmar_fault"];
pub const AMDVI_EVENTS: &[&str] = &["amdvi_translation_result", "amdvi_page_fault"];

/// Parse a whole trace file; lines of other events are skipped.
pub fn parse(text: &str) -> Vec<TraceEntry> {
    let mut t: Vec<TraceEntry> = text.lines().filter_map(parse_line).collect();
    infer_amdvi_pages(&mut t);
    t
}

fn hex_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let tok = rest.split_whitespace().next()?;
    u64::from_str_radix(tok.trim_start_matches("0x").trim_end_matches(','), 16).ok()
}

fn word_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line[line.find(key)? + key.len()..].split_whitespace().next()
}

/// A VT-d source id (bus << 8 | dev << 3 | fn) as `bb:dd.f`.
fn sid_bdf(sid: u64) -> String {
    format!("{:02x}:{:02x}.{:x}", (sid >> 8) & 0xff, (sid >> 3) & 0x1f, sid & 7)
}

/// Marks a line of AMD-Vi's trace, whose page size is not printed: its
/// `mask` is a guess until [`infer_amdvi_pages`] settles it.
const AMDVI_UNSIZED: u64 = u64::MAX;

/// One trace line, in the text form of Debian's build (`-trace ...,file=`).
pub fn parse_line(line: &str) -> Option<TraceEntry> {
    if line.contains("vtd_dmar_translate") {
        // vtd_dmar_translate dev 00:03.00 iova 0x5400000 -> gpa 0x26d400000 mask 0x1fffff
        // (iova and gpa are the page's bases; the mask gives its size)
        return Some(TraceEntry {
            device: word_after(line, "dev ")?.to_string(),
            iova: hex_after(line, "iova ")?,
            target: hex_after(line, "gpa ")?,
            mask: hex_after(line, "mask ")?,
            fault: false,
        });
    }
    if line.contains("vtd_dmar_fault") {
        // vtd_dmar_fault sid 0x18 fault 6 addr 0x70000000 write 1
        return Some(TraceEntry {
            device: sid_bdf(hex_after(line, "sid ")?),
            iova: hex_after(line, "addr ")?,
            target: 0,
            mask: 0,
            fault: true,
        });
    }
    if line.contains("amdvi_translation_result") {
        // amdvi_translation_result devid: 00:03.0 gpa 0x5480000 hpa 0x26d400000
        // gpa is the address asked for, hpa the base of the page it lies in.
        // A failed walk (no entry, no permission, no valid device entry)
        // leaves hpa 0: that is a fault, never a translation to 0.
        let target = hex_after(line, "hpa ")?;
        return Some(TraceEntry {
            device: word_after(line, "devid: ")?.to_string(),
            iova: hex_after(line, "gpa ")?,
            target,
            mask: if target == 0 { 0 } else { AMDVI_UNSIZED },
            fault: target == 0,
        });
    }
    // `amdvi_page_fault` names no device, and every failed walk it reports is
    // also an `amdvi_translation_result` with hpa 0, which does: the fault is
    // counted there, once.
    None
}

const PAGE_SIZES: [u64; 3] = [1 << 30, 1 << 21, 1 << 12];

/// AMD-Vi prints the page's base but not its size. A size is possible when
/// the base is aligned to it and no other line of the same device puts an
/// address of the same (would-be) page elsewhere; the largest possible size
/// is taken. Xen maps a PVH dom0 with superpages where it can, and a 4 KiB
/// page that only happens to be 2 MiB-aligned is told apart by its
/// neighbours, which land elsewhere.
fn infer_amdvi_pages(t: &mut [TraceEntry]) {
    // (device, page size, page number) -> the bases seen for it
    let mut bases: HashMap<(String, u64, u64), Vec<u64>> = HashMap::new();
    for e in t.iter().filter(|e| e.mask == AMDVI_UNSIZED) {
        for size in PAGE_SIZES {
            let v = bases.entry((e.device.clone(), size, e.iova / size)).or_default();
            if !v.contains(&e.target) {
                v.push(e.target);
            }
        }
    }
    for e in t.iter_mut().filter(|e| e.mask == AMDVI_UNSIZED) {
        let size = PAGE_SIZES
            .into_iter()
            .find(|&size| e.target % size == 0 && bases[&(e.device.clone(), size, e.iova / size)].len() == 1)
            .unwrap_or(1 << 12);
        e.mask = size - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtd_line_from_the_platform_notes() {
        let e = parse_line("vtd_dmar_translate dev 00:03.00 iova 0x5400000 -> gpa 0x26d400000 mask 0x1fffff").unwrap();
        assert_eq!((e.iova, e.target, e.mask), (0x5400000, 0x26d400000, 0x1fffff));
        assert_eq!(e.device, "00:03.00");
    }

    #[test]
    fn pid_and_time_prefix_is_tolerated() {
        let e =
            parse_line("4242@1732550000.123456:vtd_dmar_translate dev 00:03.00 iova 0x1000 -> gpa 0x2000 mask 0xfff");
        assert_eq!(e.unwrap().target, 0x2000);
    }

    #[test]
    fn other_events_are_skipped() {
        let t = parse(
            "vtd_dmar_translate dev 00:03.00 iova 0x5400000 -> gpa 0x26d400000 mask 0x1fffff\n\
             other_event foo\n\
             vtd_dmar_translate dev 00:03.00 iova 0x5400000 -> gpa 0x300000000 mask 0x1fffff\n",
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn faults_translate_nothing_and_name_their_requester() {
        // sid 0x18: bus 0, device 3, function 0.
        let t = parse("vtd_dmar_fault sid 0x18 fault 6 addr 0x70000000 write 1\n");
        assert!(t[0].fault);
        assert_eq!(t[0].device, "00:03.0");
        assert_eq!(sid_bdf(0x0181), "01:10.1");
    }

    #[test]
    fn amdvi_hpa_0_is_a_fault_not_a_translation_to_0() {
        // A failed walk, as QEMU traces it: the page fault (no device named),
        // then the result with hpa 0.
        let t = parse(
            "amdvi_page_fault error: page fault accessing guest physical address 0x70000000\n\
             amdvi_translation_result devid: 00:03.0 gpa 0x70000000 hpa 0x0\n",
        );
        assert_eq!(t.len(), 1, "the fault is counted once: {t:?}");
        assert!(t[0].fault);
        assert_eq!((t[0].device.as_str(), t[0].iova), ("00:03.0", 0x7000_0000));
    }

    #[test]
    fn amdvi_page_size_from_alignment_and_neighbours() {
        // A 2 MiB page (two addresses in it, one base); 4 KiB pages whose
        // first base happens to be 2 MiB-aligned (its neighbour lands
        // elsewhere); a base that is only 4 KiB-aligned.
        let t = parse(
            "amdvi_translation_result devid: 00:02.0 gpa 0x4080000 hpa 0x26c000000\n\
             amdvi_translation_result devid: 00:02.0 gpa 0x4090000 hpa 0x26c000000\n\
             amdvi_translation_result devid: 00:02.0 gpa 0x8000000 hpa 0x300000000\n\
             amdvi_translation_result devid: 00:02.0 gpa 0x8001000 hpa 0x280005000\n\
             amdvi_translation_result devid: 00:02.0 gpa 0x9003000 hpa 0x280007000\n",
        );
        let masks: Vec<u64> = t.iter().map(|e| e.mask).collect();
        assert_eq!(masks, vec![0x1f_ffff, 0x1f_ffff, 0xfff, 0xfff, 0xfff]);
        // Another device's lines say nothing about this one's pages.
        let t = parse(
            "amdvi_translation_result devid: 00:02.0 gpa 0x8000000 hpa 0x300200000\n\
             amdvi_translation_result devid: 00:10.0 gpa 0x8001000 hpa 0x280005000\n",
        );
        assert_eq!(t[0].mask, 0x1f_ffff);
    }
}
