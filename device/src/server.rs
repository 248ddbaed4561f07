//! The vfio-user server: one socket, one client, then exit.
//!
//! Two threads: this one reads every message in order and answers the
//! client's requests; the engine thread runs DMA operations. They must be
//! apart because QEMU answers our DMA_READ/DMA_WRITE from its main loop, which
//! may itself be waiting on our reply to a register read (it holds the big
//! lock then): a doorbell that blocked the message loop until its DMA ended
//! would deadlock with a guest polling STATUS.

use crate::device::{region_info, Device, Doorbell, Job, NUM_REGIONS};
use crate::engine::{self, DmaPort, EngineConfig, Fault};
use crate::irq::{self, NUM_IRQS};
use crate::log::Log;
use crate::maps::{MapEntry, MapError};
use crate::proto::{
    self, decode_request, encode_dma_read, encode_dma_write, encode_error, encode_reply, errno, negotiate,
    parse_dma_read_reply, parse_dma_write_reply, read_frame_from_socket, replies, Command, DmaMap, DmaUnmap, Frame,
    IrqSet, ReadError, RegionAccess, Request, Version, DMA_UNMAP_ALL,
};
use crate::record::{DmaMessage, DmaRecord};
use crate::recorder::Recorder;
use anyhow::{bail, Context, Result};
use pvhdma_contract::device_cli::Mutant;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the engine waits for QEMU to answer one DMA message before it
/// counts the access as failed.
const DMA_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest DMA_READ/DMA_WRITE we send. QEMU 11.1 allows 1 MiB, but a 512 KiB
/// DMA_READ was seen to wedge the connection here (the reply, larger than the
/// socket buffer, never completed and QEMU stopped answering); 64 KiB pieces
/// stay well inside the buffer.
const DMA_PIECE: usize = 64 << 10;

/// The server runs from the command line the harness built.
pub use pvhdma_contract::device_cli::DeviceArgs as Options;

/// Removes the socket path when the server ends, however it ends.
struct SocketPath(PathBuf);

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Shared {
    dev: Mutex<Device>,
    writer: Mutex<UnixStream>,
    log: Arc<Log>,
    cfg: EngineConfig,
    /// The client's max_data_xfer_size, once it told us.
    max_xfer: AtomicUsize,
}

impl Shared {
    fn dev(&self) -> std::sync::MutexGuard<'_, Device> {
        self.dev.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).write_all(bytes)
    }
}

pub fn run(opts: &Options) -> Result<()> {
    let start = Instant::now();
    if opts.socket.symlink_metadata().is_ok() {
        bail!("{} already exists; refusing to replace it", opts.socket.display());
    }
    let log = Arc::new(match &opts.log {
        Some(p) => Log::to_file(p, start).with_context(|| format!("opening log {}", p.display()))?,
        None => Log::to_stderr(start),
    });
    let recorder =
        Recorder::create(&opts.records, start).with_context(|| format!("creating {}", opts.records.display()))?;
    let listener = UnixListener::bind(&opts.socket).with_context(|| format!("binding {}", opts.socket.display()))?;
    let _path = SocketPath(opts.socket.clone());
    let conn_slot: Arc<Mutex<Option<UnixStream>>> = Arc::default();
    watch_signals(&opts.socket, conn_slot.clone(), log.clone())?;
    log.line(format_args!(
        "listening on {} (addr_bits {}, decode_bits {})",
        opts.socket.display(),
        opts.addr_bits,
        opts.decode_bits
    ));

    let (stream, _) = listener.accept().context("accepting the client")?;
    log.line("client connected");
    *conn_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(stream.try_clone()?);

    let cfg = EngineConfig {
        addr_bits: opts.addr_bits,
        decode_bits: opts.decode_bits,
        mutant: opts.inject,
    };
    if let Some(m) = opts.inject {
        log.line(format_args!("MUTANT {m}: this device misbehaves on purpose"));
    }
    let shared = Arc::new(Shared {
        dev: Mutex::new(Device::new(cfg, recorder, log.clone())),
        writer: Mutex::new(stream.try_clone()?),
        log: log.clone(),
        cfg,
        max_xfer: AtomicUsize::new(proto::MAX_DATA),
    });
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (reply_tx, reply_rx) = mpsc::channel::<Frame>();
    let engine_shared = shared.clone();
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || engine_loop(&engine_shared, &job_rx, &reply_rx))
        .context("starting the engine thread")?;

    let result = message_loop(&stream, &shared, &job_tx, &reply_tx);
    log.line(match &result {
        Ok(()) => "client disconnected; exiting".to_string(),
        Err(e) => format!("connection ended: {e:#}"),
    });
    result
}

/// SIGTERM/SIGINT: hang up on the client (the message loop then ends and the
/// socket path is removed), or exit at once if no client came yet.
fn watch_signals(path: &Path, conn: Arc<Mutex<Option<UnixStream>>>, log: Arc<Log>) -> Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("installing signal handlers")?;
    let path = path.to_path_buf();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log.line(format_args!("signal {sig}: shutting down"));
            let _ = std::fs::remove_file(&path);
            match conn.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                Some(s) => {
                    let _ = s.shutdown(Shutdown::Both);
                }
                None => std::process::exit(0),
            }
        }
    })?;
    Ok(())
}

fn message_loop(stream: &UnixStream, sh: &Shared, jobs: &Sender<Job>, replies: &Sender<Frame>) -> Result<()> {
    loop {
        let frame = match read_frame_from_socket(stream) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            // The stream cannot be resynchronised after a bad header.
            Err(ReadError::Proto(e)) => bail!("unusable message: {e}"),
            Err(e) => return Err(e).context("reading from the client"),
        };
        if frame.header.is_reply() {
            // Only the engine sends requests; a reply it no longer waits for
            // is logged and dropped there.
            let _ = replies.send(frame);
            continue;
        }
        let h = frame.header;
        let reply = handle(sh, jobs, frame);
        if !h.no_reply() {
            sh.send(&reply).context("writing a reply")?;
        }
    }
}

/// Answer one request: decode it, act on it, encode the reply.
fn handle(sh: &Shared, jobs: &Sender<Job>, frame: Frame) -> Vec<u8> {
    let h = frame.header;
    let answer = match decode_request(&h, &frame.payload) {
        Ok(req) => respond(sh, jobs, req, frame),
        Err(e) => {
            sh.log.line(format_args!("msg {} cmd {}: {e}", h.id, h.command));
            Err(if matches!(e, proto::ProtoError::UnknownCommand(_)) {
                errno::ENOSYS
            } else {
                errno::EINVAL
            })
        }
    };
    match answer {
        Ok(payload) => encode_reply(h.id, h.command, &payload),
        Err(code) => encode_error(h.id, h.command, code),
    }
}

/// A reply payload, or the errno of an error reply.
type Answer = std::result::Result<Vec<u8>, u32>;

fn respond(sh: &Shared, jobs: &Sender<Job>, req: Request, frame: Frame) -> Answer {
    match req {
        Request::Version(v) => on_version(sh, &v),
        Request::DmaMap(m) => on_dma_map(sh, &m, !frame.fds.is_empty()),
        Request::DmaUnmap(u) => {
            on_dma_unmap(sh, &u);
            Ok(frame.payload[..replies::DMA_UNMAP_ECHO].to_vec())
        }
        // VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI
        Request::DeviceGetInfo { .. } => Ok(replies::device_info(0b11, NUM_REGIONS, NUM_IRQS)),
        Request::GetRegionInfo { index, .. } => region_info(index)
            .map(|(size, flags)| replies::region_info(index, flags, size))
            .ok_or(errno::EINVAL),
        Request::GetIrqInfo { index, .. } => irq::info(index)
            .map(|(flags, count)| replies::irq_info(index, flags, count))
            .ok_or(errno::EINVAL),
        Request::SetIrqs(s) => on_set_irqs(sh, &s, frame.fds),
        Request::RegionRead(r) => on_region_read(sh, &r),
        Request::RegionWrite(w) => on_region_write(sh, jobs, &w),
        Request::DeviceReset => {
            sh.log.line("device reset");
            sh.dev().reset();
            Ok(vec![])
        }
    }
}

fn on_version(sh: &Shared, v: &Version) -> Answer {
    match negotiate(v) {
        Ok(ours) => {
            sh.max_xfer.store(v.max_data_xfer(), Ordering::Relaxed);
            sh.log
                .line(format_args!("version {}.{} caps {}", v.major, v.minor, v.capabilities));
            Ok(ours.encode())
        }
        Err(e) => {
            sh.log.line(format_args!("version refused: {e}"));
            Err(errno::EINVAL)
        }
    }
}

fn on_dma_map(sh: &Shared, m: &DmaMap, has_fd: bool) -> Answer {
    // The fd (if any) is dropped, so closed, with the frame: the device never
    // maps guest memory, so every access stays visible to QEMU's IOMMU.
    let entry = MapEntry {
        size: m.size,
        flags: m.flags,
        offset: m.offset,
        has_fd,
    };
    let mut dev = sh.dev();
    match dev.maps.map(m.address, entry) {
        Ok(()) => {
            sh.log.line(format_args!(
                "dma_map iova {:#x} size {:#x} flags {} offset {:#x} fd {} ({} maps)",
                m.address,
                m.size,
                m.flags,
                m.offset,
                has_fd,
                dev.maps.len()
            ));
            Ok(vec![])
        }
        Err(e) => {
            sh.log.line(format_args!(
                "dma_map iova {:#x} size {:#x} refused: {e:?}",
                m.address, m.size
            ));
            Err(if e == MapError::Overlap {
                errno::EEXIST
            } else {
                errno::EINVAL
            })
        }
    }
}

fn on_dma_unmap(sh: &Shared, u: &DmaUnmap) {
    let mut dev = sh.dev();
    let n = if u.flags & DMA_UNMAP_ALL != 0 {
        dev.maps.clear()
    } else {
        dev.maps.unmap(u.address, u.size)
    };
    // QEMU unmaps ranges that match no earlier map; that is not an error.
    sh.log.line(format_args!(
        "dma_unmap iova {:#x} size {:#x} flags {}: {n} removed{}",
        u.address,
        u.size,
        u.flags,
        if n == 0 { " (matched no map; accepted)" } else { "" }
    ));
}

fn on_set_irqs(sh: &Shared, s: &IrqSet, fds: Vec<std::os::fd::OwnedFd>) -> Answer {
    let nfds = fds.len();
    let mut dev = sh.dev();
    match dev.irqs.set(s.index, s.flags, s.start, s.count, fds) {
        Ok(resignal) => {
            sh.log.line(format_args!(
                "set_irqs index {} flags {:#x} start {} count {} fds {nfds}",
                s.index, s.flags, s.start, s.count
            ));
            if resignal && dev.regs.irq_pending() {
                dev.signal();
            }
            Ok(vec![])
        }
        Err(why) => {
            sh.log
                .line(format_args!("set_irqs index {} flags {:#x}: {why}", s.index, s.flags));
            Err(errno::EINVAL)
        }
    }
}

fn on_region_read(sh: &Shared, r: &RegionAccess) -> Answer {
    match sh.dev().region_read(r.region, r.offset, r.count as usize) {
        Some(data) => Ok(replies::region_access(r.offset, r.region, r.count, &data)),
        None => {
            sh.log.line(format_args!(
                "region {} read {:#x}+{}: out of range",
                r.region, r.offset, r.count
            ));
            Err(errno::EINVAL)
        }
    }
}

fn on_region_write(sh: &Shared, jobs: &Sender<Job>, w: &RegionAccess) -> Answer {
    let mut dev = sh.dev();
    let Some(fx) = dev.region_write(w.region, w.offset, &w.data) else {
        sh.log.line(format_args!(
            "region {} write {:#x}+{}: out of range",
            w.region, w.offset, w.count
        ));
        return Err(errno::EINVAL);
    };
    if fx.doorbell {
        if let Doorbell::Start(job) = dev.doorbell() {
            sh.log
                .line(format_args!("op {}: start {:?} tag {}", job.op_seq, job.req, job.tag));
            let _ = jobs.send(job);
        }
    }
    Ok(replies::region_access(w.offset, w.region, w.count, &[]))
}

fn engine_loop(sh: &Shared, jobs: &Receiver<Job>, replies: &Receiver<Frame>) {
    let mut next_id = 0u16;
    while let Ok(job) = jobs.recv() {
        let mut port = MessagePort {
            sh,
            replies,
            next_id: &mut next_id,
            job,
            sent: Vec::new(),
        };
        let log_end = |c: &engine::Completion| {
            sh.log.line(format_args!(
                "op {}: end error {:?} bytes {} checksum {:#010x} fault {:#x}",
                job.op_seq, c.error, c.bytes_done, c.checksum, c.fault_addr
            ));
        };
        if sh.cfg.mutant == Some(Mutant::DoneBeforeData) {
            // Mutant: DONE (and the interrupt) first, the data after.
            let mut deferred = engine::Deferred::new(&mut port);
            let c = engine::run(sh.cfg, &job.req, &mut deferred);
            log_end(&c);
            sh.dev().finish(&c);
            deferred.flush();
            continue;
        }
        let c = engine::run(sh.cfg, &job.req, &mut port);
        log_end(&c);
        sh.dev().finish(&c);
    }
}

/// DMA through vfio-user messages, answered by QEMU with `pci_dma_read` /
/// `pci_dma_write` on the device's bus-master address space.
struct MessagePort<'a> {
    sh: &'a Shared,
    replies: &'a Receiver<Frame>,
    next_id: &'a mut u16,
    job: Job,
    /// Messages sent since the last record, for the next one.
    sent: Vec<DmaMessage>,
}

impl MessagePort<'_> {
    fn call(&mut self, id: u16, command: Command, msg: &[u8]) -> Result<Frame, Fault> {
        if let Err(e) = self.sh.send(msg) {
            self.sh.log.line(format_args!("dma request send failed: {e}"));
            return Err(Fault);
        }
        let deadline = Instant::now() + DMA_REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.replies.recv_timeout(left) {
                Ok(f) if f.header.id == id && f.header.command == command as u16 => return Ok(f),
                Ok(f) => self
                    .sh
                    .log
                    .line(format_args!("stray reply id {} cmd {}", f.header.id, f.header.command)),
                Err(RecvTimeoutError::Timeout) => {
                    self.sh
                        .log
                        .line(format_args!("no reply to {command:?} id {id}; counted as a fault"));
                    return Err(Fault);
                }
                Err(RecvTimeoutError::Disconnected) => return Err(Fault),
            }
        }
    }

    fn id(&mut self) -> u16 {
        *self.next_id = self.next_id.wrapping_add(1);
        *self.next_id
    }

    fn piece(&self) -> usize {
        self.sh.max_xfer.load(Ordering::Relaxed).clamp(4096, DMA_PIECE)
    }
}

impl DmaPort for MessagePort<'_> {
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let piece = self.piece();
        for (i, part) in buf.chunks_mut(piece).enumerate() {
            let a = addr + (i * piece) as u64;
            let id = self.id();
            let len = part.len() as u64;
            let reply = self.call(id, Command::DmaRead, &encode_dma_read(id, a, len));
            self.sent.push(DmaMessage {
                addr: a,
                len,
                ok: reply.is_ok(),
            });
            let f = reply?;
            match parse_dma_read_reply(&f.header, &f.payload, part.len()) {
                Ok(data) => part.copy_from_slice(&data),
                Err(e) => {
                    self.sent.last_mut().expect("just pushed").ok = false;
                    self.sh
                        .log
                        .line(format_args!("dma_read {a:#x}+{:#x} refused: errno {}", part.len(), e.0));
                    return Err(Fault);
                }
            }
        }
        Ok(())
    }

    fn dma_write(&mut self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        let piece = self.piece();
        for (i, part) in data.chunks(piece).enumerate() {
            let a = addr + (i * piece) as u64;
            let id = self.id();
            let reply = self.call(id, Command::DmaWrite, &encode_dma_write(id, a, part));
            let ok = reply.as_ref().is_ok_and(|f| parse_dma_write_reply(&f.header).is_ok());
            self.sent.push(DmaMessage {
                addr: a,
                len: part.len() as u64,
                ok,
            });
            let f = reply?;
            if let Err(e) = parse_dma_write_reply(&f.header) {
                self.sh.log.line(format_args!(
                    "dma_write {a:#x}+{:#x} refused: errno {}",
                    part.len(),
                    e.0
                ));
                return Err(Fault);
            }
        }
        Ok(())
    }

    fn access(&mut self, access: DmaRecord) {
        let sent = std::mem::take(&mut self.sent);
        self.sh.dev().record(access, self.job.tag, self.job.op_seq, sent);
    }
}
