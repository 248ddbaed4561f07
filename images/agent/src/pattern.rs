//! The device's data patterns and checksum (device/REGISTERS.md), taken from
//! the device model itself, so the agent cross-checks the C driver's
//! computation against the implementation the device runs.

use crate::wire::Pattern;
use pvhdma_device::engine;

pub use engine::FNV_OFFSET as FNV_INIT;

/// The PATTERN register value of a pattern.
fn register_value(p: Pattern) -> u32 {
    match p {
        Pattern::Fill => 0,
        Pattern::Incrementing => 1,
        Pattern::Xorshift => 2,
    }
}

/// Byte `i` of a transfer, counted across segments.
pub fn pattern_bytes(pattern: Pattern, seed: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    engine::Pattern::new(register_value(pattern), seed)
        .expect("every wire pattern is a register value")
        .fill(&mut out);
    out
}

/// FNV-1a 32, continuing from `h` (start with [`FNV_INIT`]).
pub fn fnv1a_update(h: u32, bytes: &[u8]) -> u32 {
    engine::fnv1a(h, bytes)
}

pub fn fnv1a(bytes: &[u8]) -> u32 {
    fnv1a_update(FNV_INIT, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_vectors() {
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
        assert_eq!(fnv1a_update(fnv1a(b"foo"), b"bar"), fnv1a(b"foobar"));
    }

    #[test]
    fn fill_uses_low_byte_of_seed() {
        assert_eq!(pattern_bytes(Pattern::Fill, 0x1234, 3), vec![0x34; 3]);
    }

    #[test]
    fn incrementing_wraps() {
        assert_eq!(pattern_bytes(Pattern::Incrementing, 0xfe, 4), vec![0xfe, 0xff, 0, 1]);
    }

    #[test]
    fn xorshift_first_word_and_zero_seed() {
        // x = 1: 1 ^ 1<<13 = 0x2001; ^ >>17 = 0x2001; ^ <<5 = 0x42021.
        assert_eq!(pattern_bytes(Pattern::Xorshift, 0, 4), 0x0004_2021u32.to_le_bytes());
        assert_eq!(
            pattern_bytes(Pattern::Xorshift, 1, 6),
            pattern_bytes(Pattern::Xorshift, 0, 6)
        );
        // Lengths that are not a word multiple are a prefix of the longer stream.
        let long = pattern_bytes(Pattern::Xorshift, 7, 64);
        assert_eq!(pattern_bytes(Pattern::Xorshift, 7, 13), long[..13]);
    }
}
