use super::*;
use pvhdma_contract::pattern::fnv1a;
use std::collections::BTreeMap;

/// Sparse memory with holes that fault, and a log of the port calls.
#[derive(Default)]
struct FakeBus {
    mem: BTreeMap<u64, u8>,
    holes: Vec<(u64, u64)>,
    calls: Vec<(Direction, u64, usize)>,
    accesses: Vec<DmaRecord>,
}

impl FakeBus {
    fn hole(&self, addr: u64, len: usize) -> bool {
        self.holes.iter().any(|&(s, e)| addr < e && addr + len as u64 > s)
    }
    fn put(&mut self, addr: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            self.mem.insert(addr + i as u64, *b);
        }
    }
    fn get(&self, addr: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| *self.mem.get(&(addr + i)).unwrap_or(&0))
            .collect()
    }
}

impl DmaPort for FakeBus {
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.calls.push((Direction::ToDevice, addr, buf.len()));
        if self.hole(addr, buf.len()) {
            return Err(Fault);
        }
        buf.copy_from_slice(&self.get(addr, buf.len()));
        Ok(())
    }
    fn dma_write(&mut self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        self.calls.push((Direction::FromDevice, addr, data.len()));
        if self.hole(addr, data.len()) {
            return Err(Fault);
        }
        self.put(addr, data);
        Ok(())
    }
    fn access(&mut self, a: DmaRecord) {
        self.accesses.push(a);
    }
}

const CFG32: EngineConfig = EngineConfig {
    addr_bits: 32,
    decode_bits: 32,
    mutant: None,
};

fn from_dev(addr: u64, len: u32, pattern: u32, seed: u32) -> OpRequest {
    OpRequest {
        addr,
        length: len,
        control: control::FROM_DEVICE,
        pattern,
        seed,
    }
}

#[test]
fn from_device_writes_pattern_and_checksums() {
    let mut bus = FakeBus::default();
    let c = run(CFG32, &from_dev(0x1000, 300, 1, 5), &mut bus);
    assert_eq!(c.error, ErrorCode::None);
    let expect: Vec<u8> = (0..300u32).map(|i| (5 + i) as u8).collect();
    assert_eq!(bus.get(0x1000, 300), expect);
    assert_eq!(c.checksum, fnv1a(&expect));
    assert_eq!(c.bytes_done, 300);
    assert_eq!(bus.accesses.len(), 1);
    assert_eq!(bus.accesses[0].checksum, c.checksum);
    assert_eq!(bus.accesses[0].outcome, AccessOutcome::Ok);
}

#[test]
fn to_device_reads_and_checksums() {
    let mut bus = FakeBus::default();
    bus.put(0x2000, b"hello world");
    let req = OpRequest {
        addr: 0x2000,
        length: 11,
        control: 0,
        pattern: 9,
        seed: 0,
    };
    let c = run(CFG32, &req, &mut bus);
    assert_eq!(c.error, ErrorCode::None, "pattern is irrelevant to reads");
    assert_eq!(c.checksum, fnv1a(b"hello world"));
    assert_eq!(bus.accesses[0].dir, Direction::ToDevice);
}

#[test]
fn truncation_36_advertised_32_decoded() {
    let cfg = EngineConfig {
        addr_bits: 36,
        decode_bits: 32,
        mutant: None,
    };
    let mut bus = FakeBus::default();
    let c = run(cfg, &from_dev(0x1_0000_3000, 16, 0, 0x42), &mut bus);
    assert_eq!(c.error, ErrorCode::None);
    assert_eq!(bus.calls, vec![(Direction::FromDevice, 0x3000, 16)]);
    assert_eq!(bus.get(0x3000, 16), vec![0x42; 16]);
    let a = &bus.accesses[0];
    assert_eq!((a.bus_addr, a.decoded_addr), (0x1_0000_3000, 0x3000));
}

#[test]
fn beyond_addr_bits_is_refused_without_access() {
    let cfg = EngineConfig {
        addr_bits: 36,
        decode_bits: 32,
        mutant: None,
    };
    let mut bus = FakeBus::default();
    let c = run(cfg, &from_dev(0x10_0000_0000, 16, 0, 0), &mut bus);
    assert_eq!(c.error, ErrorCode::BeyondAddrBits);
    assert!(bus.calls.is_empty());
    assert_eq!(bus.accesses[0].outcome, AccessOutcome::BeyondAddrBits);
    // A range whose end crosses the limit is refused too.
    let c = run(CFG32, &from_dev(0xffff_fff0, 32, 0, 0), &mut FakeBus::default());
    assert_eq!(c.error, ErrorCode::BeyondAddrBits);
    // 64 bits never refuses.
    let cfg64 = EngineConfig {
        addr_bits: 64,
        decode_bits: 64,
        mutant: None,
    };
    assert_eq!(
        run(cfg64, &from_dev(u64::MAX - 15, 16, 0, 0), &mut FakeBus::default()).error,
        ErrorCode::None
    );
}

#[test]
fn bad_lengths() {
    for len in [0, (1 << 20) + 1] {
        let mut bus = FakeBus::default();
        assert_eq!(
            run(CFG32, &from_dev(0, len, 0, 0), &mut bus).error,
            ErrorCode::BadRequest
        );
        assert!(bus.calls.is_empty());
        assert_eq!(bus.accesses[0].outcome, AccessOutcome::BadRequest);
    }
    assert_eq!(
        run(CFG32, &from_dev(0, 16, 3, 0), &mut FakeBus::default()).error,
        ErrorCode::BadRequest
    );
}

#[test]
fn iommu_fault_reports_first_failing_page() {
    let mut bus = FakeBus::default();
    bus.holes.push((0x5000, 0x6000));
    let c = run(CFG32, &from_dev(0x3800, 0x4000, 0, 1), &mut bus);
    assert_eq!(c.error, ErrorCode::IommuFault);
    assert_eq!(c.fault_addr, 0x5000);
    assert_eq!(c.bytes_done, 0x1800, "pages before the hole were written");
    assert_eq!(bus.accesses[0].outcome, AccessOutcome::IommuFault);
}

fn desc(addr: u64, len: u32, flags: u32) -> Vec<u8> {
    let mut d = addr.to_le_bytes().to_vec();
    d.extend_from_slice(&len.to_le_bytes());
    d.extend_from_slice(&flags.to_le_bytes());
    d
}

#[test]
fn scatter_gather_runs_pattern_across_segments() {
    let mut bus = FakeBus::default();
    let mut list = desc(0x10_000, 3, 0);
    list.extend(desc(0x20_000, 5, 0));
    bus.put(0x9000, &list);
    let req = OpRequest {
        addr: 0x9000,
        length: 2,
        control: control::FROM_DEVICE | control::SG,
        pattern: 1,
        seed: 0,
    };
    let c = run(CFG32, &req, &mut bus);
    assert_eq!(c.error, ErrorCode::None);
    assert_eq!(bus.get(0x10_000, 3), vec![0, 1, 2]);
    assert_eq!(bus.get(0x20_000, 5), vec![3, 4, 5, 6, 7]);
    assert_eq!(c.checksum, fnv1a(&[0, 1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(c.bytes_done, 8);
    let kinds: Vec<_> = bus.accesses.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, vec![AccessKind::Descriptor, AccessKind::Data, AccessKind::Data]);
    assert_eq!(bus.accesses[0].len, 32);
}

#[test]
fn scatter_gather_rejects_bad_descriptors() {
    for (list, count) in [
        (desc(0x1000, 0, 0), 1),
        (desc(0x1000, 16, 1), 1),
        (desc(0x1000, (1 << 20) + 1, 0), 1),
        (Vec::new(), 0),
        (Vec::new(), 257),
    ] {
        let mut bus = FakeBus::default();
        bus.put(0x9000, &list);
        let req = OpRequest {
            addr: 0x9000,
            length: count,
            control: control::SG,
            pattern: 0,
            seed: 0,
        };
        assert_eq!(run(CFG32, &req, &mut bus).error, ErrorCode::BadRequest, "count {count}");
    }
    // Sum above 4 MiB.
    let mut bus = FakeBus::default();
    let list: Vec<u8> = (0..5).flat_map(|i| desc(i << 20, 1 << 20, 0)).collect();
    bus.put(0x9000, &list);
    let req = OpRequest {
        addr: 0x9000,
        length: 5,
        control: control::SG,
        pattern: 0,
        seed: 0,
    };
    assert_eq!(run(CFG32, &req, &mut bus).error, ErrorCode::BadRequest);
}

#[test]
fn big_transfer_is_chunked_on_aligned_boundaries() {
    let mut bus = FakeBus::default();
    let c = run(CFG32, &from_dev(0xff000, 1 << 20, 0, 0), &mut bus);
    assert_eq!(c.error, ErrorCode::None);
    assert_eq!(
        bus.calls,
        vec![
            (Direction::FromDevice, 0xff000, 0x1000),
            (Direction::FromDevice, 0x100000, 0xff000)
        ]
    );
}

/// Mutants: each one really changes what reaches memory, the completion or
/// the record, while the honest engine (the tests above) does not.
mod mutants {
    use super::*;
    use pvhdma_contract::device_cli::Mutant;

    fn with(m: Mutant) -> EngineConfig {
        EngineConfig {
            mutant: Some(m),
            ..CFG32
        }
    }

    fn pattern(len: u32, seed: u32) -> Vec<u8> {
        (0..len).map(|i| (seed + i) as u8).collect()
    }

    /// An sg request from the device over two segments (3 and 5 bytes).
    fn sg_from(bus: &mut FakeBus) -> OpRequest {
        let mut list = desc(0x10_000, 3, 0);
        list.extend(desc(0x20_000, 5, 0));
        bus.put(0x9000, &list);
        OpRequest {
            addr: 0x9000,
            length: 2,
            control: control::FROM_DEVICE | control::SG,
            pattern: 1,
            seed: 0,
        }
    }

    #[test]
    fn flip_written_byte_corrupts_memory_not_the_checksum() {
        let mut bus = FakeBus::default();
        let c = run(with(Mutant::FlipWrittenByte), &from_dev(0x1000, 300, 1, 5), &mut bus);
        let want = pattern(300, 5);
        assert_eq!(c.error, ErrorCode::None);
        assert_eq!(c.checksum, fnv1a(&want), "the checksum claims the true pattern");
        let got = bus.get(0x1000, 300);
        assert_eq!(got[0], want[0] ^ 0xff);
        assert_eq!(got[1..], want[1..]);
    }

    #[test]
    fn write_one_short_leaves_the_last_byte_and_claims_it() {
        let mut bus = FakeBus::default();
        let c = run(with(Mutant::WriteOneShort), &from_dev(0x1000, 300, 1, 5), &mut bus);
        let want = pattern(300, 5);
        assert_eq!(
            (c.error, c.bytes_done, c.checksum),
            (ErrorCode::None, 300, fnv1a(&want))
        );
        assert_eq!(bus.get(0x1000, 299), want[..299]);
        assert_eq!(bus.get(0x1000 + 299, 1), [0], "last byte never written");
        assert_eq!(bus.calls, vec![(Direction::FromDevice, 0x1000, 299)]);
    }

    #[test]
    fn half_transfer_moves_half_and_reports_all() {
        let mut bus = FakeBus::default();
        let c = run(with(Mutant::HalfTransfer), &from_dev(0x1000, 300, 1, 5), &mut bus);
        let want = pattern(300, 5);
        assert_eq!(
            (c.error, c.bytes_done, c.checksum),
            (ErrorCode::None, 300, fnv1a(&want))
        );
        assert_eq!(bus.get(0x1000, 150), want[..150]);
        assert_eq!(bus.get(0x1000 + 150, 150), vec![0; 150]);
        assert_eq!(bus.accesses[0].len, 300, "recorded as the whole length");
    }

    #[test]
    fn skip_last_segment_skips_it_and_reports_it_done() {
        let mut bus = FakeBus::default();
        let req = sg_from(&mut bus);
        let c = run(with(Mutant::SkipLastSegment), &req, &mut bus);
        assert_eq!(c.error, ErrorCode::None);
        assert_eq!((c.bytes_done, c.checksum), (8, fnv1a(&[0, 1, 2, 3, 4, 5, 6, 7])));
        assert_eq!(bus.get(0x10_000, 3), vec![0, 1, 2]);
        assert_eq!(bus.get(0x20_000, 5), vec![0; 5], "last segment never written");
        assert_eq!(bus.accesses.len(), 3, "and still recorded");
        assert_eq!(bus.accesses[2].outcome, AccessOutcome::Ok);
        // A single transfer is one segment, not a list: it moves.
        let mut bus = FakeBus::default();
        run(with(Mutant::SkipLastSegment), &from_dev(0x1000, 16, 1, 0), &mut bus);
        assert_eq!(bus.get(0x1000, 16), pattern(16, 0));
    }

    #[test]
    fn write_addr_plus_page_misses_the_buffer_but_records_it() {
        let mut bus = FakeBus::default();
        let c = run(with(Mutant::WriteAddrPlusPage), &from_dev(0x1000, 16, 1, 5), &mut bus);
        assert_eq!(c.error, ErrorCode::None);
        assert_eq!(bus.get(0x1000, 16), vec![0; 16]);
        assert_eq!(bus.get(0x2000, 16), pattern(16, 5));
        assert_eq!(bus.accesses[0].bus_addr, 0x1000);
        // The descriptor list itself is still read where it was given.
        let mut bus = FakeBus::default();
        let req = sg_from(&mut bus);
        assert_eq!(
            run(with(Mutant::WriteAddrPlusPage), &req, &mut bus).error,
            ErrorCode::None
        );
        assert_eq!(bus.get(0x11_000, 3), vec![0, 1, 2]);
    }

    #[test]
    fn fault_as_ok_swallows_the_fault() {
        let mut bus = FakeBus::default();
        bus.holes.push((0x5000, 0x6000));
        let c = run(with(Mutant::FaultAsOk), &from_dev(0x3800, 0x4000, 0, 1), &mut bus);
        assert_eq!((c.error, c.bytes_done, c.fault_addr), (ErrorCode::None, 0x4000, 0));
        assert_eq!(bus.accesses[0].outcome, AccessOutcome::Ok);
    }

    #[test]
    fn fault_recorded_ok_hides_it_from_the_record_only() {
        let mut bus = FakeBus::default();
        bus.holes.push((0x5000, 0x6000));
        let c = run(with(Mutant::FaultRecordedOk), &from_dev(0x3800, 0x4000, 0, 1), &mut bus);
        assert_eq!((c.error, c.fault_addr), (ErrorCode::IommuFault, 0x5000));
        assert_eq!(bus.accesses[0].outcome, AccessOutcome::Ok);
    }

    #[test]
    fn deferred_writes_land_only_on_flush() {
        let mut bus = FakeBus::default();
        let c = {
            let mut d = Deferred::new(&mut bus);
            let c = run(with(Mutant::DoneBeforeData), &from_dev(0x1000, 16, 1, 5), &mut d);
            assert_eq!(d.writes.len(), 1);
            d.flush();
            c
        };
        assert_eq!((c.error, c.bytes_done), (ErrorCode::None, 16));
        assert_eq!(bus.get(0x1000, 16), pattern(16, 5));
        let mut bus = FakeBus::default();
        let mut d = Deferred::new(&mut bus);
        run(CFG32, &from_dev(0x1000, 16, 1, 5), &mut d);
        drop(d);
        assert_eq!(bus.get(0x1000, 16), vec![0; 16], "not flushed: never written");
        assert_eq!(bus.accesses.len(), 1, "records pass straight through");
    }
}
