//! Guests, the agent's pure part in both roles.
//!
//! One `buffer: {guest: ...}` op flows like this: the harness lists the
//! guest's grants in the guest's own initramfs (`GuestWork`); the agent
//! inside the guest allocates and fills the pages and prints one
//! `PVHDMA-GRANT` line per op on its console; dom0's xenconsoled logs that
//! console to a file, where dom0's agent finds the grant refs
//! ([`find_grant`]) and runs the op through the driver's grant ioctl.

use pvhdma_contract::markers::guest::GRANT_PREFIX;
use pvhdma_contract::wire::{Direction, GrantLine, GuestGrant};

/// What the guest writes into each page before granting it: the pattern
/// for to-device data (the device checksums it), its complement for
/// from-device data (so bytes the device never wrote show).
pub fn initial_pages(g: &GuestGrant) -> Vec<Vec<u8>> {
    expected_pages(g)
        .into_iter()
        .map(|page| match g.dir {
            Direction::ToDevice => page,
            Direction::FromDevice => page.iter().map(|b| !b).collect(),
        })
        .collect()
}

/// The pattern each page holds once a from-device transfer arrived: one
/// run of the pattern across all pages, `size` bytes in each.
pub fn expected_pages(g: &GuestGrant) -> Vec<Vec<u8>> {
    let all = g.pattern.bytes(g.seed, (g.size * g.pages) as usize);
    all.chunks(g.size as usize).map(<[u8]>::to_vec).collect()
}

/// The refs a guest published for `op`, from its console log. The last
/// line wins: a guest prints each op once, but a log may be replayed.
pub fn find_grant(log: &str, op: &str) -> Result<Option<Vec<u32>>, String> {
    let mut found = None;
    for line in log.lines() {
        let Some(i) = line.find(GRANT_PREFIX) else { continue };
        let json = line[i + GRANT_PREFIX.len()..].trim_end_matches('\r');
        let g: GrantLine = serde_json::from_str(json).map_err(|e| format!("bad grant line {line:?}: {e}"))?;
        if g.op == op {
            found = Some(g.refs);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvhdma_contract::wire::DataPattern;

    fn grant(dir: Direction) -> GuestGrant {
        GuestGrant {
            op: "x".into(),
            pages: 4,
            size: 100,
            dir,
            pattern: DataPattern::Incrementing,
            seed: 3,
            readonly: false,
        }
    }

    #[test]
    fn pages_carry_the_pattern_or_its_complement() {
        let g = grant(Direction::ToDevice);
        let pages = initial_pages(&g);
        assert_eq!(pages.len(), 4);
        // The pattern runs on across pages, as the driver's checksum expects.
        let all = DataPattern::Incrementing.bytes(3, 400);
        assert_eq!(pages[1], all[100..200]);
        let g = grant(Direction::FromDevice);
        assert_eq!(initial_pages(&g)[1][0], !all[100]);
        assert_eq!(expected_pages(&g)[1], all[100..200]);
    }

    #[test]
    fn grant_refs_come_from_the_console_log() {
        let log = "[ 1.0] booting\r\n\
                   PVHDMA-GRANT {\"op\":\"a\",\"refs\":[8,9]}\r\n\
                   PVHDMA-GRANT {\"op\":\"b\",\"refs\":[10]}\n";
        assert_eq!(find_grant(log, "a").unwrap(), Some(vec![8, 9]));
        assert_eq!(find_grant(log, "b").unwrap(), Some(vec![10]));
        assert_eq!(find_grant(log, "c").unwrap(), None);
        assert!(find_grant("PVHDMA-GRANT {\"op\":", "a").is_err());
    }
}
