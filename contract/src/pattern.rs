//! The data patterns and checksum that the device, the driver and the agent
//! must compute alike: the device generates from-device data with them and
//! checksums to-device data; the driver fills and checks buffers; the agent
//! recomputes both to cross-check the driver.

use serde::{Deserialize, Serialize};

/// Which byte stream a transfer carries (the PATTERN register's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DataPattern {
    /// Every byte is the seed's low byte.
    Fill,
    /// Byte i is `seed + i` (mod 256).
    Incrementing,
    /// Little-endian words of xorshift32 (13, 17, 5) from the seed (0 means 1).
    #[default]
    Xorshift,
}

impl DataPattern {
    pub const ALL: [DataPattern; 3] = [DataPattern::Fill, DataPattern::Incrementing, DataPattern::Xorshift];

    pub fn register_value(self) -> u32 {
        match self {
            DataPattern::Fill => 0,
            DataPattern::Incrementing => 1,
            DataPattern::Xorshift => 2,
        }
    }

    pub fn from_register(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.register_value() == v)
    }

    /// The first `len` bytes of the stream.
    pub fn bytes(self, seed: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        PatternStream::new(self, seed).fill(&mut out);
        out
    }
}

/// A pattern's byte stream; byte i counts across segments, so one stream
/// fills the segments of a scatter-gather transfer in order.
#[derive(Debug, Clone)]
pub struct PatternStream {
    pattern: DataPattern,
    seed: u32,
    i: u64,
    x: u32,
    word: [u8; 4],
}

impl PatternStream {
    pub fn new(pattern: DataPattern, seed: u32) -> Self {
        PatternStream {
            pattern,
            seed,
            i: 0,
            x: if seed == 0 { 1 } else { seed },
            word: [0; 4],
        }
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = match self.pattern {
                DataPattern::Fill => self.seed as u8,
                DataPattern::Incrementing => (u64::from(self.seed).wrapping_add(self.i)) as u8,
                DataPattern::Xorshift => {
                    if self.i.is_multiple_of(4) {
                        self.x ^= self.x << 13;
                        self.x ^= self.x >> 17;
                        self.x ^= self.x << 5;
                        self.word = self.x.to_le_bytes();
                    }
                    self.word[(self.i % 4) as usize]
                }
            };
            self.i += 1;
        }
    }
}

/// FNV-1a 32's offset basis: the checksum of no bytes.
pub const FNV_INIT: u32 = 0x811c_9dc5;

/// FNV-1a 32 over `bytes`, continuing from `h` (start with [`FNV_INIT`]).
pub fn fnv1a_update(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
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
        assert_eq!(DataPattern::Fill.bytes(0x1234, 3), vec![0x34; 3]);
    }

    #[test]
    fn incrementing_wraps() {
        assert_eq!(DataPattern::Incrementing.bytes(0xfe, 4), vec![0xfe, 0xff, 0, 1]);
    }

    #[test]
    fn xorshift_first_word_and_zero_seed() {
        // x = 1: 1 ^ 1<<13 = 0x2001; ^ >>17 = 0x2001; ^ <<5 = 0x42021.
        assert_eq!(DataPattern::Xorshift.bytes(0, 4), 0x0004_2021u32.to_le_bytes());
        assert_eq!(DataPattern::Xorshift.bytes(0, 8)[4..], 67_634_689u32.to_le_bytes());
        assert_eq!(DataPattern::Xorshift.bytes(1, 6), DataPattern::Xorshift.bytes(0, 6));
        let long = DataPattern::Xorshift.bytes(7, 64);
        assert_eq!(DataPattern::Xorshift.bytes(7, 13), long[..13]);
    }

    #[test]
    fn stream_continues_across_fills() {
        let whole = DataPattern::Xorshift.bytes(9, 10);
        let mut s = PatternStream::new(DataPattern::Xorshift, 9);
        let (mut a, mut b) = ([0u8; 3], [0u8; 7]);
        s.fill(&mut a);
        s.fill(&mut b);
        assert_eq!([&a[..], &b[..]].concat(), whole);
    }

    #[test]
    fn register_values_round_trip() {
        for p in DataPattern::ALL {
            assert_eq!(DataPattern::from_register(p.register_value()), Some(p));
        }
        assert_eq!(DataPattern::from_register(3), None);
    }
}
