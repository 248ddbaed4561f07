//! Writes `dma.jsonl` (docs/records.md, section 1): one line per access,
//! flushed as it is written so a killed run still leaves whole records.

use crate::record::DmaRecord;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

pub struct Recorder {
    out: BufWriter<File>,
    seq: u64,
    start: Instant,
}

impl Recorder {
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Self> {
        Ok(Recorder {
            out: BufWriter::new(File::create(path)?),
            seq: 0,
            start,
        })
    }

    /// Sequence number of the last record written (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Numbers and timestamps `rec`, then writes it.
    pub fn write(&mut self, rec: DmaRecord) -> std::io::Result<u64> {
        self.seq += 1;
        let rec = DmaRecord {
            seq: self.seq,
            t_us: self.start.elapsed().as_micros() as u64,
            ..rec
        };
        serde_json::to_writer(&mut self.out, &rec)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::record::{AccessKind, AccessOutcome, Direction};

    #[test]
    fn writes_parseable_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dma.jsonl");
        let mut r = Recorder::create(&path, Instant::now()).unwrap();
        let cfg = EngineConfig {
            addr_bits: 36,
            decode_bits: 32,
            mutant: None,
        };
        let a = DmaRecord {
            tag: 3,
            ..cfg.record(
                AccessKind::Data,
                Direction::FromDevice,
                0x1_0000_1000,
                16,
                AccessOutcome::Ok,
                5,
            )
        };
        assert_eq!(r.write(DmaRecord { op_seq: 1, ..a.clone() }).unwrap(), 1);
        assert_eq!(r.write(DmaRecord { op_seq: 2, ..a }).unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let recs: Vec<DmaRecord> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[1].seq, recs[1].op_seq, recs[1].tag), (2, 2, 3));
        assert!(text.contains("\"dir\":\"from_device\""));
        assert!(text.contains("\"decoded_addr\":4096"));
    }
}
