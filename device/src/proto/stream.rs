//! Reading whole messages off the socket, with the fds that ride on them.

use super::{Header, ProtoError, HEADER_LEN};
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use std::io::{IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use thiserror::Error;

/// Most fds we take with one message (matches the `max_msg_fds` we advertise).
const MAX_FDS: usize = 8;

#[derive(Debug)]
pub struct Frame {
    pub header: Header,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("peer hung up mid-message")]
    HangUp,
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

fn read_payload(r: &mut impl Read, header: &Header) -> Result<Vec<u8>, ReadError> {
    // Header::parse bounded `size`, so this allocation is bounded too.
    let mut payload = vec![0u8; header.payload_len()];
    r.read_exact(&mut payload).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ReadError::HangUp,
        _ => ReadError::Io(e),
    })?;
    Ok(payload)
}

/// Reads one message from any byte stream. `Ok(None)` is a clean end of
/// stream between messages.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Frame>, ReadError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ReadError::HangUp),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let header = Header::parse(&head)?;
    let payload = read_payload(r, &header)?;
    Ok(Some(Frame {
        header,
        payload,
        fds: Vec::new(),
    }))
}

/// Like [`read_frame`], collecting SCM_RIGHTS fds sent with the header.
pub fn read_frame_from_socket(sock: &UnixStream) -> Result<Option<Frame>, ReadError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    let mut fds = Vec::new();
    while got < HEADER_LEN {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut head[got..])];
        let n = match recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(m) => m.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(ReadError::Io(e.into())),
        };
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                fds.extend(rights);
            }
        }
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(ReadError::HangUp) };
        }
        got += n;
    }
    let header = Header::parse(&head)?;
    let mut r = sock;
    let payload = read_payload(&mut r, &header)?;
    Ok(Some(Frame { header, payload, fds }))
}
