//! The two xenstore requests the guest handshake needs (read and write),
//! over the kernel's xenbus device, which exists in dom0 and in every guest
//! alike: dom0 writes a key when it has unmapped an op's grants, and the
//! guest polls for it before it looks at its pages. A guest's relative path
//! resolves under its own `/local/domain/<domid>/`, where the toolstack
//! lets it read what dom0 writes.

use std::io::{Read, Write};

pub const XENBUS: &str = "/dev/xen/xenbus";

const XS_READ: u32 = 2;
const XS_WRITE: u32 = 11;
const XS_ERROR: u32 = 16;
/// The protocol's largest payload; a longer reply is a broken stream.
const MAX_PAYLOAD: usize = 4096;
const HEADER: usize = 16;

/// One request: the header (type, request id, transaction 0, length) and
/// the payload, in the host's byte order as the protocol has it.
fn encode(kind: u32, req_id: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
    if payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "xenstore request of {} bytes exceeds {MAX_PAYLOAD}",
            payload.len()
        ));
    }
    let mut m = Vec::with_capacity(HEADER + payload.len());
    for w in [kind, req_id, 0, payload.len() as u32] {
        m.extend_from_slice(&w.to_ne_bytes());
    }
    m.extend_from_slice(payload);
    Ok(m)
}

/// Send one request on `io` and take its reply: `Ok(None)` when the key
/// does not exist, the reply's payload otherwise.
fn call(io: &mut (impl Read + Write), kind: u32, payload: &[u8]) -> Result<Option<Vec<u8>>, String> {
    const REQ_ID: u32 = 1;
    io.write_all(&encode(kind, REQ_ID, payload)?)
        .map_err(|e| format!("xenstore write: {e}"))?;
    let mut h = [0u8; HEADER];
    io.read_exact(&mut h).map_err(|e| format!("xenstore reply: {e}"))?;
    let word = |i: usize| u32::from_ne_bytes(h[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let (rkind, rid, len) = (word(0), word(1), word(3) as usize);
    if len > MAX_PAYLOAD {
        return Err(format!("xenstore reply claims {len} bytes"));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body)
        .map_err(|e| format!("xenstore reply body: {e}"))?;
    if rid != REQ_ID {
        return Err(format!("xenstore replied to request {rid}, not {REQ_ID}"));
    }
    if rkind == XS_ERROR {
        let err = String::from_utf8_lossy(&body).trim_end_matches('\0').to_string();
        return if err == "ENOENT" {
            Ok(None)
        } else {
            Err(format!("xenstore: {err}"))
        };
    }
    if rkind != kind {
        return Err(format!("xenstore answered type {rkind} to a request of type {kind}"));
    }
    Ok(Some(body))
}

fn path_bytes(path: &str) -> Vec<u8> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p
}

/// The value at `path`, or `None` if it does not exist.
pub fn read(io: &mut (impl Read + Write), path: &str) -> Result<Option<Vec<u8>>, String> {
    call(io, XS_READ, &path_bytes(path))
}

/// Create or overwrite `path` with `value`.
pub fn write(io: &mut (impl Read + Write), path: &str, value: &[u8]) -> Result<(), String> {
    let mut p = path_bytes(path);
    p.extend_from_slice(value);
    call(io, XS_WRITE, &p)?.ok_or_else(|| format!("xenstore: no such path {path}"))?;
    Ok(())
}

/// The xenbus device, opened for requests.
pub fn open() -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(XENBUS)
        .map_err(|e| format!("cannot open {XENBUS}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A stream that takes the request and hands back canned reply bytes.
    struct Duplex {
        sent: Vec<u8>,
        reply: Cursor<Vec<u8>>,
    }

    impl Read for Duplex {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.reply.read(b)
        }
    }

    impl Write for Duplex {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.sent.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn duplex(kind: u32, id: u32, body: &[u8]) -> Duplex {
        Duplex {
            sent: vec![],
            reply: Cursor::new(encode(kind, id, body).unwrap()),
        }
    }

    #[test]
    fn a_read_sends_the_path_with_its_nul_and_returns_the_value() {
        let mut d = duplex(XS_READ, 1, b"1");
        assert_eq!(read(&mut d, "data/x/op").unwrap(), Some(b"1".to_vec()));
        assert_eq!(&d.sent[..4], &XS_READ.to_ne_bytes());
        assert_eq!(&d.sent[12..16], &10u32.to_ne_bytes());
        assert_eq!(&d.sent[HEADER..], b"data/x/op\0");
    }

    #[test]
    fn enoent_is_absence_and_other_errors_are_errors() {
        assert_eq!(read(&mut duplex(XS_ERROR, 1, b"ENOENT\0"), "k").unwrap(), None);
        let e = read(&mut duplex(XS_ERROR, 1, b"EACCES\0"), "k").unwrap_err();
        assert!(e.contains("EACCES"), "{e}");
    }

    #[test]
    fn a_write_puts_the_value_after_the_nul() {
        let mut d = duplex(XS_WRITE, 1, b"OK\0");
        write(&mut d, "/local/domain/3/data/k", b"1").unwrap();
        assert_eq!(&d.sent[..4], &XS_WRITE.to_ne_bytes());
        assert_eq!(&d.sent[HEADER..], b"/local/domain/3/data/k\x001");
    }

    #[test]
    fn broken_replies_are_errors_not_panics() {
        // Too long, a stranger's request id, a reply of another type, cut short.
        let mut long = encode(XS_READ, 1, b"").unwrap();
        long[12..16].copy_from_slice(&100_000u32.to_ne_bytes());
        let mut d = Duplex {
            sent: vec![],
            reply: Cursor::new(long),
        };
        assert!(read(&mut d, "k").is_err());
        assert!(read(&mut duplex(XS_READ, 7, b"1"), "k").is_err());
        assert!(read(&mut duplex(XS_WRITE, 1, b"OK\0"), "k").is_err());
        let mut short = duplex(XS_READ, 1, b"abc");
        short.reply.get_mut().truncate(HEADER + 1);
        assert!(read(&mut short, "k").is_err());
        assert!(read(&mut duplex(XS_READ, 1, b""), &"k".repeat(5000)).is_err());
    }
}
