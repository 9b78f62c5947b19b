//! The files a merge writes: `<id>.merging` data files (rotated at `max_file_size`, each sealed
//! and synced) with their hints, written before the commit record names them.

use std::sync::Arc;

use engine_api::{IoClass, Result, Storage, WritableFile};

use crate::datafile::{DATA_START, DataFile, FileName, FileShape, encode_header, new_nonce};
use crate::engine::Inner;
use crate::hint::{self, HintBuilder};
use crate::keydir::Loc;
use crate::reader::Op;
use crate::record::{self, Frame, Kind, SEAL_LEN, Seal};

/// Appends are gathered up to this size: merges write in large sequential chunks.
const WRITE_CHUNK: usize = 1 << 20;

/// A finished output: sealed, synced, hinted, and opened for reads.
pub(crate) struct Finished {
    pub(crate) file: Arc<DataFile>,
    /// Bytes of tombstones the merge had to keep: counted as live so the file does not look
    /// fragmented and get merged again for nothing.
    pub(crate) kept_tombstone_bytes: u64,
}

struct Output {
    id: u32,
    out: Box<dyn WritableFile>,
    nonce: u32,
    len: u64,
    pending: Vec<u8>,
    hint: HintBuilder,
    records: u64,
    min_seq: u64,
    max_seq: u64,
    kept_tombstone_bytes: u64,
}

/// Every output of one merge.
pub(crate) struct Outputs<'a> {
    inner: &'a Inner,
    current: Option<Output>,
    finished: Vec<Finished>,
    created: Vec<u32>,
    pub(crate) bytes_written: u64,
}

impl<'a> Outputs<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Outputs {
            inner,
            current: None,
            finished: Vec::new(),
            created: Vec::new(),
            bytes_written: 0,
        }
    }

    /// Copies `op` (whose CRC the scan verified) into the current output; returns its new
    /// location. The sequence number is kept: recovery orders by it, not by file.
    pub(crate) fn copy(&mut self, op: &Op<'_>) -> Result<Loc> {
        let full = self
            .current
            .as_ref()
            .is_some_and(|c| c.len + op.len > self.inner.max_file_size && c.records > 0);
        if full {
            self.finish_current()?;
        }
        if self.current.is_none() {
            self.current = Some(self.start()?);
        }
        let Some(cur) = self.current.as_mut() else {
            return Err(engine_api::Error::invalid("merge output missing"));
        };
        let offset = cur.len;
        let kind = if op.tombstone {
            Kind::Tombstone
        } else {
            Kind::Put
        };
        // Outputs are synced whole before any commit names them: no record relies on `synced`.
        let frame = Frame {
            nonce: cur.nonce,
            synced: DATA_START,
        };
        record::encode(&mut cur.pending, frame, op.seq, kind, op.key, op.value);
        cur.len += op.len;
        cur.hint.add(&Op { offset, ..*op });
        cur.records += 1;
        cur.min_seq = cur.min_seq.min(op.seq);
        cur.max_seq = cur.max_seq.max(op.seq);
        if op.tombstone {
            cur.kept_tombstone_bytes += op.len;
        }
        let loc = Loc {
            file: cur.id,
            offset: u32::try_from(offset).map_err(|_| engine_api::Error::invalid("offset"))?,
            len: u32::try_from(op.len).map_err(|_| engine_api::Error::invalid("length"))?,
            seq: op.seq,
        };
        if cur.pending.len() >= WRITE_CHUNK {
            self.bytes_written += flush(cur)?;
        }
        Ok(loc)
    }

    fn start(&mut self) -> Result<Output> {
        let id = self.inner.allocate_file_id()?;
        let path = FileName::Merging(id).path(&self.inner.dir);
        let out = self.inner.storage.create(&path, IoClass::Compaction)?;
        self.created.push(id);
        let nonce = new_nonce();
        Ok(Output {
            id,
            out,
            nonce,
            len: DATA_START,
            // Base sequence 0: a merge output holds old records, never the newest ones.
            pending: encode_header(0, nonce),
            hint: HintBuilder::new(),
            records: 0,
            min_seq: u64::MAX,
            max_seq: 0,
            kept_tombstone_bytes: 0,
        })
    }

    /// Seals, syncs and hints the current output, and opens it for reads.
    fn finish_current(&mut self) -> Result<()> {
        let Some(mut cur) = self.current.take() else {
            return Ok(());
        };
        let seal = Seal {
            records: cur.records,
            min_seq: cur.min_seq,
            max_seq: cur.max_seq,
            offset: cur.len,
        };
        record::encode_seal(&mut cur.pending, cur.nonce, &seal);
        cur.len += SEAL_LEN as u64;
        self.bytes_written += flush(&mut cur)?;
        self.inner.commit.poison().guard(|| cur.out.sync())?;
        let shape = FileShape::sealed(0, cur.nonce, &seal);
        let hint = cur.hint.finish(cur.id, &shape);
        hint::write(
            &self.inner.storage,
            self.inner.commit.poison(),
            &self.inner.dir,
            cur.id,
            &hint,
        )?;
        self.bytes_written += hint.len() as u64;
        let path = FileName::Merging(cur.id).path(&self.inner.dir);
        let reader = self.inner.storage.open(&path, IoClass::UserRead)?;
        self.finished.push(Finished {
            file: DataFile::new(cur.id, reader, shape),
            kept_tombstone_bytes: cur.kept_tombstone_bytes,
        });
        Ok(())
    }

    /// Finishes the last output and returns them all.
    pub(crate) fn finish(&mut self) -> Result<Vec<Finished>> {
        self.finish_current()?;
        Ok(std::mem::take(&mut self.finished))
    }

    /// Removes everything this merge created (before its commit only). Best effort: open
    /// removes any `.merging` file no commit record names, and any hint without a data file.
    pub(crate) fn abort(&mut self) {
        self.current = None;
        self.finished.clear();
        let storage = &self.inner.storage;
        for id in self.created.drain(..) {
            for name in [FileName::Merging(id), FileName::Hint(id)] {
                let path = name.path(&self.inner.dir);
                if storage.exists(&path).unwrap_or(false) {
                    let _ = storage.remove(&path);
                }
            }
        }
    }
}

fn flush(cur: &mut Output) -> Result<u64> {
    cur.out.append(&cur.pending)?;
    let n = cur.pending.len() as u64;
    cur.pending.clear();
    Ok(n)
}
