//! QMP over a unix socket, through the `qapi` crate, with a full transcript.
//!
//! A tap sits between the socket and qapi: it writes every line both ways to
//! `qmp.log`, hands events to the harness as JSON, and withholds from qapi any
//! event its generated schema cannot decode. qapi-qmp's schema predates QEMU
//! 11.1, and its untagged message type turns one unknown event into a stream
//! error that would end the whole connection.

use anyhow::Context;
use qapi::futures::{QapiService, QmpStreamTokio};
use qapi::qmp;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, WriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

type Service = QapiService<QmpStreamTokio<WriteHalf<DuplexStream>>>;

/// A negotiated QMP connection.
pub struct Qmp {
    service: Service,
    events: mpsc::UnboundedReceiver<serde_json::Value>,
}

#[derive(Clone)]
struct Transcript {
    file: Arc<Mutex<std::fs::File>>,
    start: Instant,
}

impl Transcript {
    fn line(&self, dir: &str, text: &str) {
        let mut f = self.file.lock().expect("transcript lock");
        let _ = writeln!(f, "{:>9.3} {dir} {text}", self.start.elapsed().as_secs_f64());
    }
}

/// Does qapi's generated schema decode this line?
pub fn qapi_understands(line: &str) -> bool {
    serde_json::from_str::<qmp::QmpMessageAny>(line).is_ok()
}

impl Qmp {
    /// Connect to QEMU's QMP socket and negotiate capabilities.
    pub async fn connect(socket: &Path, transcript: &Path) -> anyhow::Result<Self> {
        // QEMU binds the socket (so its path appears) a moment before it
        // listens: a connect in between is refused. Retry briefly.
        let mut tries = 0;
        let stream = loop {
            match UnixStream::connect(socket).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                r => break r.with_context(|| format!("Cannot connect to QMP at {}", socket.display()))?,
            }
        };
        let file = std::fs::OpenOptions::new().create(true).append(true).open(transcript)?;
        let t = Transcript {
            file: Arc::new(Mutex::new(file)),
            start: Instant::now(),
        };
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (sock_r, mut sock_w) = stream.into_split();
        let (tap_r, mut tap_w) = tokio::io::split(theirs);

        let tr = t.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(sock_r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tr.line("<-", &line);
                let value: Option<serde_json::Value> = serde_json::from_str(&line).ok();
                let is_event = value.as_ref().is_some_and(|v| v.get("event").is_some());
                if let (true, Some(v)) = (is_event, value) {
                    let _ = events_tx.send(v);
                }
                // The greeting is not a QmpMessage but qapi reads it itself.
                let greeting = line.contains("\"QMP\"");
                if is_event && !greeting && !qapi_understands(&line) {
                    tr.line("!!", "event withheld from qapi: not in its schema");
                    continue;
                }
                if tap_w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let tw = t.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(tap_r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tw.line("->", &line);
                if sock_w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });

        let negotiation = QmpStreamTokio::open(ours).await.context("No QMP greeting")?;
        let stream = negotiation
            .negotiate()
            .await
            .context("QMP capability negotiation failed")?;
        let (service, qapi_events) = stream.into_parts();
        tokio::spawn(qapi_events.into_future());
        Ok(Self { service, events })
    }

    /// The VM's run state, e.g. "running".
    pub async fn status(&self) -> anyhow::Result<String> {
        let info = self
            .service
            .execute(qmp::query_status {})
            .await
            .context("query-status failed")?;
        Ok(format!("{:?}", info.status).to_lowercase())
    }

    /// Pause the guest's CPUs (QEMU answers with a STOP event).
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.service.execute(qmp::stop {}).await.context("stop failed")?;
        Ok(())
    }

    /// Resume the guest's CPUs (QEMU answers with a RESUME event).
    pub async fn cont(&self) -> anyhow::Result<()> {
        self.service.execute(qmp::cont {}).await.context("cont failed")?;
        Ok(())
    }

    /// Ask QEMU to exit; it may close the socket before answering.
    pub async fn quit(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.service.execute(qmp::quit {})).await;
    }

    /// Events received so far, oldest first.
    pub fn drain_events(&mut self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QMP peer that greets, accepts capabilities, then sends an event no
    /// qapi schema knows before answering query-status: the connection must
    /// survive it, and the harness must still see the event.
    #[tokio::test]
    async fn unknown_events_do_not_break_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("qmp.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let peer = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 3, "minor": 1, "major": 11}, "package": ""}, "capabilities": ["oob"]}}"#;
            w.write_all(format!("{greeting}\n").as_bytes()).await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let id = v.get("id").cloned().unwrap_or(serde_json::Value::Null);
                let reply = match v["execute"].as_str().unwrap() {
                    "qmp_capabilities" => serde_json::json!({"return": {}, "id": id}),
                    "query-status" => {
                        let ev = r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SOME_FUTURE_EVENT", "data": {"x": 1}}"#;
                        w.write_all(format!("{ev}\n").as_bytes()).await.unwrap();
                        serde_json::json!({"return": {"status": "running", "running": true}, "id": id})
                    }
                    other => panic!("unexpected command {other}"),
                };
                w.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
            }
        });
        let transcript = dir.path().join("qmp.log");
        let mut qmp = Qmp::connect(&sock, &transcript).await.unwrap();
        assert_eq!(qmp.status().await.unwrap(), "running");
        assert_eq!(qmp.status().await.unwrap(), "running");
        let events = qmp.drain_events();
        assert!(events.iter().any(|e| e["event"] == "SOME_FUTURE_EVENT"), "{events:?}");
        let log = std::fs::read_to_string(&transcript).unwrap();
        assert!(log.contains("event withheld from qapi"), "{log}");
        drop(qmp);
        peer.abort();
    }

    /// The socket's path exists before anything listens on it (QEMU binds,
    /// then listens): connect waits for the listener instead of failing.
    #[tokio::test]
    async fn a_path_that_is_not_listening_yet_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("qmp.sock");
        // A bound socket that was dropped leaves its path: connects are refused.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let path = sock.clone();
        let peer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            std::fs::remove_file(&path).unwrap();
            let listener = tokio::net::UnixListener::bind(&path).unwrap();
            let (s, _) = listener.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 1, "major": 11}, "package": ""}, "capabilities": []}}"#;
            w.write_all(format!("{greeting}\n").as_bytes()).await.unwrap();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let reply = serde_json::json!({"return": {}, "id": v.get("id").cloned()});
                w.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
            }
        });
        let qmp = Qmp::connect(&sock, &dir.path().join("qmp.log")).await;
        assert!(qmp.is_ok(), "{:#}", qmp.err().unwrap());
        drop(qmp);
        peer.abort();
    }

    #[test]
    fn known_events_decode_and_unknown_ones_are_caught() {
        assert!(qapi_understands(
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}"#
        ));
        assert!(!qapi_understands(
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "NOT_A_REAL_EVENT_IN_ANY_QEMU"}"#
        ));
    }
}
