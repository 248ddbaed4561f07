//! QEMU's IOMMU trace: the emulated IOMMU's own account of each translation.
//!
//! QEMU traces only IOTLB misses, once per IOMMU page, so the translation of a
//! later access is that of the last miss whose page covers it.

use crate::outcome::TraceEntry;

/// The trace events the harness enables for each IOMMU kind.
pub const VTD_EVENTS: &[&str] = &["vtd_dmar_translate", "vtd_dmar_fault"];
pub const AMDVI_EVENTS: &[&str] = &["amdvi_translation_result", "amdvi_page_fault"];

/// Parse a whole trace file; lines of other events are skipped.
pub fn parse(text: &str) -> Vec<TraceEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn hex_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let tok = rest.split_whitespace().next()?;
    u64::from_str_radix(tok.trim_start_matches("0x").trim_end_matches(','), 16).ok()
}

fn word_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line[line.find(key)? + key.len()..].split_whitespace().next()
}

/// One trace line, in the text form of Debian's build (`-trace ...,file=`).
pub fn parse_line(line: &str) -> Option<TraceEntry> {
    if line.contains("vtd_dmar_translate") {
        // vtd_dmar_translate dev 00:03.00 iova 0x5400000 -> gpa 0x26d400000 mask 0x1fffff
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
            device: format!("sid {}", word_after(line, "sid ")?),
            iova: hex_after(line, "addr ")?,
            target: 0,
            mask: 0,
            fault: true,
        });
    }
    if line.contains("amdvi_translation_result") {
        // amdvi_translation_result devid: 00:03.0 gpa 0x5400000 hpa 0x26d400000
        // AMD-Vi's trace has no page size; a 4 KiB page is the safe reading.
        return Some(TraceEntry {
            device: word_after(line, "devid: ")?.to_string(),
            iova: hex_after(line, "gpa ")?,
            target: hex_after(line, "hpa ")?,
            mask: 0xfff,
            fault: false,
        });
    }
    if line.contains("amdvi_page_fault") {
        return Some(TraceEntry {
            device: String::new(),
            iova: hex_after(line, "address ")?,
            target: 0,
            mask: 0,
            fault: true,
        });
    }
    None
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
    fn faults_translate_nothing() {
        let t = parse("vtd_dmar_fault sid 0x18 fault 6 addr 0x70000000 write 1\n");
        assert!(t[0].fault);
    }
}
