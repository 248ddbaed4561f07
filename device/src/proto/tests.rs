use super::header::{FLAG_NO_REPLY, TYPE_REPLY};
use super::*;

fn msg(id: u16, cmd: u16, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Header {
        id,
        command: cmd,
        size: (HEADER_LEN + payload.len()) as u32,
        flags,
        error: 0,
    }
    .encode()
    .to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn header_round_trip() {
    let h = Header {
        id: 0xbeef,
        command: 9,
        size: 32,
        flags: FLAG_NO_REPLY,
        error: 0,
    };
    assert_eq!(Header::parse(&h.encode()), Ok(h));
    assert!(h.no_reply() && !h.is_reply());
}

#[test]
fn header_rejects_bad_sizes_and_types() {
    let mut h = Header {
        id: 1,
        command: 1,
        size: 15,
        flags: 0,
        error: 0,
    };
    assert_eq!(Header::parse(&h.encode()), Err(ProtoError::BadSize(15)));
    h.size = (MAX_MSG_SIZE + 1) as u32;
    assert!(matches!(Header::parse(&h.encode()), Err(ProtoError::BadSize(_))));
    h.size = u32::MAX;
    assert!(matches!(Header::parse(&h.encode()), Err(ProtoError::BadSize(_))));
    h.size = 16;
    h.flags = 2;
    assert_eq!(Header::parse(&h.encode()), Err(ProtoError::BadType(2)));
}

#[test]
fn version_negotiation_as_qemu_sends_it() {
    let caps =
        br#"{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"write_multiple":true}}"#;
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(caps);
    p.push(0);
    let (_, req) = decode_message(&msg(1, 1, 0, &p)).unwrap();
    let Request::Version(v) = req else { panic!("{req:?}") };
    assert_eq!(v.max_data_xfer(), 1 << 20);
    let ours = negotiate(&v).unwrap();
    let enc = ours.encode();
    assert_eq!(enc.last(), Some(&0), "JSON must end in NUL for QEMU");
    let back = Version::parse(&enc).unwrap();
    assert_eq!(back, ours);
    assert!(
        back.capabilities.get("write_multiple").is_none(),
        "we never ask for WRITE_MULTI"
    );
    // Missing NUL, bad JSON, wrong major.
    assert_eq!(
        Version::parse(&[0, 0, 0, 0, b'{', b'}']),
        Err(ProtoError::BadVersionData)
    );
    assert_eq!(Version::parse(&[0, 0, 0, 0, b'{', 0]), Err(ProtoError::BadVersionData));
    assert!(negotiate(&Version::parse(&[1, 0, 0, 0]).unwrap()).is_err());
}

#[test]
fn requests_decode() {
    let mut p = u32s(&[32, 3]);
    p.extend_from_slice(&7u64.to_le_bytes());
    p.extend_from_slice(&0x1000u64.to_le_bytes());
    p.extend_from_slice(&0x2000u64.to_le_bytes());
    let (_, r) = decode_message(&msg(2, 2, 0, &p)).unwrap();
    assert_eq!(
        r,
        Request::DmaMap(DmaMap {
            argsz: 32,
            flags: 3,
            offset: 7,
            address: 0x1000,
            size: 0x2000
        })
    );

    let mut p = u32s(&[24, DMA_UNMAP_ALL]);
    p.extend_from_slice(&0u64.to_le_bytes());
    p.extend_from_slice(&0u64.to_le_bytes());
    let (_, r) = decode_message(&msg(3, 3, 0, &p)).unwrap();
    assert_eq!(
        r,
        Request::DmaUnmap(DmaUnmap {
            argsz: 24,
            flags: 2,
            address: 0,
            size: 0
        })
    );

    let mut p = 0x2cu64.to_le_bytes().to_vec();
    p.extend_from_slice(&u32s(&[0, 4]));
    p.extend_from_slice(&[1, 0, 0, 0]);
    let (h, r) = decode_message(&msg(4, 10, FLAG_NO_REPLY, &p)).unwrap();
    assert!(h.no_reply());
    assert_eq!(
        r,
        Request::RegionWrite(RegionAccess {
            offset: 0x2c,
            region: 0,
            count: 4,
            data: vec![1, 0, 0, 0]
        })
    );

    let p = u32s(&[20, 0x24, 0, 0, 1]);
    let (_, r) = decode_message(&msg(5, 8, 0, &p)).unwrap();
    assert!(matches!(r, Request::SetIrqs(IrqSet { index: 0, count: 1, .. })));
    let (_, r) = decode_message(&msg(6, 13, 0, &[])).unwrap();
    assert_eq!(r, Request::DeviceReset);
}

#[test]
fn malformed_requests_are_errors() {
    // Unknown command, and a known one this device does not offer.
    assert_eq!(
        decode_message(&msg(1, 99, 0, &[])).unwrap_err(),
        ProtoError::UnknownCommand(99)
    );
    assert_eq!(
        decode_message(&msg(1, 15, 0, &[0; 8])).unwrap_err(),
        ProtoError::UnknownCommand(15)
    );
    // Short payloads for every fixed-layout request.
    for (cmd, need) in [
        (2u16, 32usize),
        (3, 24),
        (4, 4),
        (5, 12),
        (7, 12),
        (8, 20),
        (9, 16),
        (10, 16),
        (1, 4),
    ] {
        let e = decode_message(&msg(1, cmd, 0, &vec![0; need - 1])).unwrap_err();
        assert!(matches!(e, ProtoError::Short(..)), "cmd {cmd}: {e:?}");
    }
    // Write count disagreeing with its data; read count above the maximum.
    let mut p = 0u64.to_le_bytes().to_vec();
    p.extend_from_slice(&u32s(&[0, 8, 1]));
    assert!(matches!(
        decode_message(&msg(1, 10, 0, &p)),
        Err(ProtoError::CountMismatch(..))
    ));
    let mut p = 0u64.to_le_bytes().to_vec();
    p.extend_from_slice(&u32s(&[0, u32::MAX]));
    assert!(matches!(
        decode_message(&msg(1, 9, 0, &p)),
        Err(ProtoError::CountMismatch(..))
    ));
    // Size field disagreeing with the buffer; truncated header; a reply.
    let mut m = msg(1, 4, 0, &[0; 16]);
    m.pop();
    assert!(matches!(decode_message(&m), Err(ProtoError::BadSize(_))));
    assert!(decode_message(&[1, 2, 3]).is_err());
    assert!(decode_message(&msg(1, 4, TYPE_REPLY, &[0; 16])).is_err());
}

#[test]
fn stream_reading_handles_hangups_and_bounds() {
    let one = msg(1, 13, 0, &[]);
    let mut two = one.clone();
    two.extend_from_slice(&msg(2, 4, 0, &[0; 16]));
    let mut r = two.as_slice();
    assert_eq!(read_frame(&mut r).unwrap().unwrap().header.id, 1);
    assert_eq!(read_frame(&mut r).unwrap().unwrap().payload.len(), 16);
    assert!(read_frame(&mut r).unwrap().is_none(), "clean EOF between messages");
    // Hang-up inside the header and inside the payload.
    assert!(matches!(read_frame(&mut &one[..7]), Err(ReadError::HangUp)));
    let m = msg(2, 4, 0, &[0; 16]);
    assert!(matches!(read_frame(&mut &m[..20]), Err(ReadError::HangUp)));
    // A huge declared size is refused before anything is allocated.
    let h = Header {
        id: 1,
        command: 10,
        size: u32::MAX,
        flags: 0,
        error: 0,
    }
    .encode();
    assert!(matches!(
        read_frame(&mut &h[..]),
        Err(ReadError::Proto(ProtoError::BadSize(_)))
    ));
}

#[test]
fn dma_requests_and_replies() {
    let m = encode_dma_read(9, 0x1000, 4);
    let h = Header::parse(m[..16].try_into().unwrap()).unwrap();
    assert_eq!((h.command, h.size, h.is_reply()), (11, 32, false));
    // QEMU's read reply: the request's address/count then the data.
    let mut p = m[16..].to_vec();
    p.extend_from_slice(&[1, 2, 3, 4]);
    let rh = Header {
        id: 9,
        command: 11,
        size: 36,
        flags: TYPE_REPLY,
        error: 0,
    };
    assert_eq!(parse_dma_read_reply(&rh, &p, 4), Ok(vec![1, 2, 3, 4]));
    assert!(parse_dma_read_reply(&rh, &p[..19], 4).is_err(), "short data");
    let eh = Header {
        flags: TYPE_REPLY | 0x20,
        error: errno::EFAULT,
        size: 16,
        ..rh
    };
    assert_eq!(parse_dma_read_reply(&eh, &[], 4), Err(DmaRefused(errno::EFAULT)));

    let m = encode_dma_write(10, 0x2000, &[5; 8]);
    assert_eq!(m.len(), 16 + 16 + 8);
    // QEMU answers DMA_WRITE with a bare header.
    let wh = Header {
        id: 10,
        command: 12,
        size: 16,
        flags: TYPE_REPLY,
        error: 0,
    };
    assert_eq!(parse_dma_write_reply(&wh), Ok(()));
    assert_eq!(
        parse_dma_write_reply(&Header {
            flags: TYPE_REPLY | 0x20,
            error: 1,
            ..wh
        }),
        Err(DmaRefused(1))
    );

    let e = encode_error(3, 99, errno::ENOSYS);
    let h = Header::parse(e[..16].try_into().unwrap()).unwrap();
    assert!(h.is_reply() && h.is_error() && h.error == errno::ENOSYS && h.size == 16);
}

/// Deterministic random buffers (xorshift64): the decoder must never panic,
/// and valid headers with random payloads must not either.
#[test]
fn random_buffers_never_panic() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let len = (next() % 96) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = decode_message(&buf);
        let _ = read_frame(&mut buf.as_slice());
        if len >= HEADER_LEN {
            // Make the header plausible so the payload parsers run.
            let cmd = (next() % 20) as u16;
            buf[2..4].copy_from_slice(&cmd.to_le_bytes());
            buf[4..8].copy_from_slice(&(len as u32).to_le_bytes());
            buf[8..12].copy_from_slice(&0u32.to_le_bytes());
            let _ = decode_message(&buf);
        }
    }
}
