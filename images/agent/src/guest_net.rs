//! A guest's network traffic through its netfront interface, both ways.
//!
//! Send: the pattern over TCP to the user network's sink, waiting until the
//! peer has acknowledged every byte. Each data segment leaves the guest in
//! granted pages that dom0's netback maps and hands to dom0's NIC, so
//! whether the peer acknowledges at all is the question the scenario asks.
//!
//! Receive: a file by TFTP from the user network's server. The NIC writes
//! each frame into dom0's own buffers and netback copies it into the
//! guest's pages; the guest reports what it holds (length and FNV-1a) and
//! leaves the judging to the harness, which served the file.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::net::{insmod_shipped, sh, tftp_get, wait_for};
use crate::wire::{guest_rx_file, GuestNet, NetLine, Received, GUEST_NET_SINK};
use pvhdma_contract::pattern::fnv1a;

pub const NETFRONT_KO: &str = "/lib/modules/xen-netfront.ko";
const IFACE: &str = "eth0";
/// Until the backend connects and dom0's bridge forwards, connects fail.
const CONNECT_WAIT: Duration = Duration::from_secs(90);
/// A peer that receives nothing never acknowledges: TCP retransmits for
/// minutes, so the guest gives up on its own and says what is still queued.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// Where the fetched file lands (the guest's tmpfs root).
const RX_LOCAL: &str = "/tmp/rx";

/// Send, then fetch, as `net` asks, and report; never fails, the line
/// carries what went wrong.
pub fn run(net: &GuestNet) -> NetLine {
    let mut line = NetLine {
        sent: 0,
        acked: false,
        unacked: 0,
        error: None,
        received: None,
    };
    let up = bring_up(net);
    if net.size > 0 {
        if let Err(e) = up.clone().and_then(|()| send(net, &mut line)) {
            line.error = Some(e);
        }
    }
    if net.receive > 0 {
        line.received = Some(match up.and_then(|()| fetch(net)) {
            Ok(bytes) => Received {
                bytes: bytes.len() as u64,
                fnv1a: fnv1a(&bytes),
                error: None,
            },
            Err(e) => Received {
                bytes: 0,
                fnv1a: fnv1a(&[]),
                error: Some(e),
            },
        });
    }
    line
}

fn bring_up(net: &GuestNet) -> Result<(), String> {
    let iface = format!("/sys/class/net/{IFACE}");
    insmod_shipped(NETFRONT_KO, &[])?;
    wait_for(
        &format!("{IFACE} after insmod xen-netfront"),
        Duration::from_secs(30),
        || Path::new(&iface).exists(),
    )?;
    sh("ip", &["link", "set", IFACE, "up"])?;
    sh("ip", &["addr", "add", &net.addr, "dev", IFACE])
}

fn send(net: &GuestNet, line: &mut NetLine) -> Result<(), String> {
    let to: SocketAddr = format!("{GUEST_NET_SINK}:{}", net.port)
        .parse()
        .map_err(|e| format!("bad sink address: {e}"))?;
    let start = Instant::now();
    let mut stream = loop {
        match TcpStream::connect_timeout(&to, Duration::from_secs(5)) {
            Ok(s) => break s,
            Err(e) if start.elapsed() > CONNECT_WAIT => return Err(format!("connect {to}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    };
    let local = stream.local_addr().map_err(|e| e.to_string())?;
    let payload = net.pattern.bytes(net.seed, net.size as usize);
    // The socket's send timeout is set before each write to what is left of
    // one ACK_WAIT for the whole payload: with nothing acknowledged the send
    // buffer fills and a write blocks, and running out of time is the answer.
    let written = write_until(&mut stream, &payload, Instant::now() + ACK_WAIT);
    line.sent = written.0;
    let start = Instant::now();
    loop {
        let queued = tx_queue(local.port())?;
        line.unacked = queued;
        if queued == 0 && line.sent == payload.len() as u64 {
            line.acked = true;
            break;
        }
        // A write that timed out has already used up ACK_WAIT.
        if start.elapsed() > ACK_WAIT || written.1.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Some(e) = written.1 {
        return Err(format!("write after {} bytes: {e}", line.sent));
    }
    if !line.acked {
        return Err(format!("{} bytes never acknowledged within {ACK_WAIT:?}", line.unacked));
    }
    Ok(())
}

/// The guest's file from the user network's TFTP server, retried until the
/// backend has connected and the bridge forwards (busybox's tftp gives up
/// after a few seconds of silence on its own).
fn fetch(net: &GuestNet) -> Result<Vec<u8>, String> {
    let remote = guest_rx_file(net.port);
    let start = Instant::now();
    loop {
        match tftp_get(&remote, RX_LOCAL) {
            Ok(bytes) => return Ok(bytes),
            Err(e) if start.elapsed() > CONNECT_WAIT => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

fn write_until(s: &mut TcpStream, mut buf: &[u8], deadline: Instant) -> (u64, Option<String>) {
    let mut done = 0u64;
    while !buf.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (done, Some(format!("timed out after {ACK_WAIT:?}")));
        }
        if let Err(e) = s.set_write_timeout(Some(left)) {
            return (done, Some(e.to_string()));
        }
        match s.write(buf) {
            Ok(0) => return (done, Some("peer closed".into())),
            Ok(n) => {
                done += n as u64;
                buf = &buf[n..];
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Some(e.to_string())),
        }
    }
    (done, None)
}

/// Bytes the kernel still holds unacknowledged on the connection from
/// local `port` (the tx_queue column of /proc/net/tcp).
fn tx_queue(port: u16) -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/net/tcp").map_err(|e| format!("/proc/net/tcp: {e}"))?;
    parse_tx_queue(&text, port).ok_or_else(|| format!("no connection from port {port} in /proc/net/tcp"))
}

pub fn parse_tx_queue(text: &str, port: u16) -> Option<u64> {
    let want = format!(":{port:04X}");
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 5 || !f[1].ends_with(&want) {
            return None;
        }
        let (tx, _) = f[4].split_once(':')?;
        u64::from_str_radix(tx, 16).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_queue_from_proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                    \x20  0: 1002000A:A2F4 6402000A:04D2 01 0001F000:00000000 01:00000014 00000000     0        0 1\n";
        assert_eq!(parse_tx_queue(text, 0xA2F4), Some(0x1F000));
        assert_eq!(parse_tx_queue(text, 0x04D2), None);
    }
}
