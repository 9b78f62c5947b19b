//! Sequential reading of a data file, for recovery, merges and hint building.
//!
//! [`Scanner`] reads the file in large chunks and decodes one verified record at a time.
//! [`scan_ops`] sits on top: it assembles batches (members count only once their `BatchEnd` is
//! read, so a torn batch is never half applied), and applies the damage policy: a scan of a file
//! not yet known to be sealed stops at the first damage (the caller decides, with
//! [`synced_after`], whether it is a torn tail or damage); in a sealed file damage is a
//! [`engine_api::Error::Corruption`], or, in salvage mode, a skipped and reported range. A seal
//! record counts only where a forward scan reaches it at the very end of the range.

use std::path::Path;

use engine_api::{Error, ReadableFile, Result};

use crate::record::{self, Bad, HEADER_LEN, Kind, Record, Seal};

const CHUNK: usize = 1 << 20;

/// Reads records from `start` up to `end` of a file.
pub(crate) struct Scanner<'f> {
    file: &'f dyn ReadableFile,
    nonce: u32,
    end: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_start: u64,
    /// Bytes of `buf` already consumed.
    pos: usize,
}

/// One step of a [`Scanner`].
pub(crate) enum Item<'a> {
    /// A verified record at `offset`, `len` bytes long.
    Record {
        offset: u64,
        len: u64,
        record: Record<'a>,
    },
    /// Bytes at `offset` that are not a valid record.
    Damaged { offset: u64, bad: Bad },
    /// The end of the range.
    End,
}

impl<'f> Scanner<'f> {
    pub(crate) fn new(file: &'f dyn ReadableFile, nonce: u32, start: u64, end: u64) -> Self {
        Scanner {
            file,
            nonce,
            end,
            buf: Vec::new(),
            buf_start: start,
            pos: 0,
        }
    }

    /// File offset of the next unread byte.
    pub(crate) fn offset(&self) -> u64 {
        self.buf_start + self.pos as u64
    }

    /// Makes at least `need` unread bytes available; `false` if the range ends first.
    fn fill(&mut self, need: usize) -> Result<bool> {
        if self.pos > self.buf.len() {
            // A resync stepped past the buffered bytes.
            self.buf_start += self.pos as u64;
            self.buf.clear();
            self.pos = 0;
        }
        let have = self.buf.len() - self.pos;
        if have >= need {
            return Ok(true);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        let avail = self.end.saturating_sub(buf_end);
        if (have as u64).saturating_add(avail) < need as u64 {
            return Ok(false);
        }
        let want = usize::try_from(avail)
            .unwrap_or(usize::MAX)
            .min((need - have).max(CHUNK));
        self.buf.drain(..self.pos);
        self.buf_start += self.pos as u64;
        self.pos = 0;
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let dst = self.buf.get_mut(old..).unwrap_or_default();
        self.file.read_exact_at(dst, buf_end)?;
        Ok(true)
    }

    /// The next record, damage, or the end. Damage does not advance the scanner.
    pub(crate) fn next(&mut self) -> Result<Item<'_>> {
        let offset = self.offset();
        if offset >= self.end {
            return Ok(Item::End);
        }
        let len = match self.probe()? {
            Ok(len) => len,
            Err(bad) => return Ok(Item::Damaged { offset, bad }),
        };
        let start = self.pos;
        self.pos += len;
        let bytes = self.buf.get(start..start + len).unwrap_or_default();
        match record::decode(bytes, self.nonce) {
            Ok(record) => Ok(Item::Record {
                offset,
                len: len as u64,
                record,
            }),
            Err(bad) => Ok(Item::Damaged { offset, bad }),
        }
    }

    /// Checks that a valid record starts at the current position; returns its length.
    fn probe(&mut self) -> Result<Result<usize, Bad>> {
        if !self.fill(HEADER_LEN)? {
            return Ok(Err(Bad::Short));
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let header = match record::Header::parse(rest) {
            Ok(h) => h,
            Err(bad) => return Ok(Err(bad)),
        };
        let len = header.record_len();
        if !self.fill(len)? {
            return Ok(Err(Bad::Short));
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        Ok(record::decode(rest, self.nonce).map(|_| len))
    }

    /// Salvage: moves past damage at the current position to the next offset where a valid
    /// record starts (or the end). Costly, and used only by an opt-in salvage open or merge.
    pub(crate) fn resync(&mut self) -> Result<()> {
        loop {
            self.pos += 1;
            if self.offset() >= self.end || self.probe()?.is_ok() {
                return Ok(());
            }
        }
    }
}

/// A put or a delete, as replay and merges see it (batch members only once committed).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Op<'a> {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) seq: u64,
    pub(crate) tombstone: bool,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// A damaged range of a file: skipped by a salvage open, or cut as a torn tail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The damaged file.
    pub path: std::path::PathBuf,
    /// First damaged byte.
    pub offset: u64,
    /// Bytes skipped.
    pub len: u64,
    /// What the reader expected there.
    pub reason: String,
}

/// How [`scan_ops`] treats damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// A file not known to be sealed: the scan stops at the first damage and reports where
    /// ([`Outcome::stopped`]); whether it is a torn tail is the caller's call.
    TornTail,
    /// A sealed file: damage is a corruption error.
    Strict,
    /// A sealed file opened for salvage: damage is skipped and reported.
    Salvage,
}

/// What a scan found.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// End of the last complete record (or batch) before any torn tail.
    pub(crate) valid_end: u64,
    /// Put and tombstone records delivered.
    pub(crate) records: u64,
    pub(crate) min_seq: u64,
    pub(crate) max_seq: u64,
    /// Ranges skipped (salvage only).
    pub(crate) damage: Vec<Damage>,
    /// The seal record that ends the range, if a forward scan reached one there.
    pub(crate) seal: Option<Seal>,
    /// Where a [`Policy::TornTail`] scan stopped (the first damaged record, or the start of
    /// the batch it broke), and why.
    pub(crate) stopped: Option<(u64, Bad)>,
}

struct Pending {
    offset: u64,
    len: u64,
    seq: u64,
    tombstone: bool,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Where and how to scan: a file, its path (for errors), its nonce and a byte range.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub(crate) file: &'a dyn ReadableFile,
    pub(crate) path: &'a Path,
    pub(crate) nonce: u32,
}

/// Scans `[start, end)` of `src`, calling `sink` for every put and delete in order.
pub(crate) fn scan_ops(
    src: Source<'_>,
    (start, end): (u64, u64),
    policy: Policy,
    sink: &mut dyn FnMut(Op<'_>) -> Result<()>,
) -> Result<Outcome> {
    let path = src.path;
    let mut scanner = Scanner::new(src.file, src.nonce, start, end);
    let mut out = Outcome {
        valid_end: start,
        min_seq: u64::MAX,
        ..Outcome::default()
    };
    let mut batch: Vec<Pending> = Vec::new();
    loop {
        let mut skip_damaged = false;
        let damage_at = match scanner.next()? {
            Item::End if batch.is_empty() => return Ok(out),
            Item::End => (batch_start(&batch, end), Bad::Short),
            Item::Damaged { offset, bad } => {
                skip_damaged = true;
                (batch_start(&batch, offset), bad)
            }
            Item::Record {
                offset,
                len,
                record,
            } if ends_range(&record, &batch, offset, len, end) => {
                out.seal = record.seal();
                out.valid_end = offset + len;
                continue;
            }
            Item::Record {
                offset,
                len,
                record,
            } => match step(&mut batch, &mut out, offset, len, &record, sink)? {
                Ok(()) => continue,
                Err(bad) => (batch_start(&batch, offset), bad),
            },
        };
        let (offset, bad) = damage_at;
        batch.clear();
        match policy {
            Policy::TornTail => {
                out.stopped = Some((offset, bad));
                return Ok(out);
            }
            Policy::Strict => return Err(Error::corruption(path, offset, bad.expected())),
            Policy::Salvage => {
                if skip_damaged {
                    scanner.resync()?;
                }
                let len = scanner.offset().saturating_sub(offset).max(1);
                out.damage.push(Damage {
                    path: path.to_path_buf(),
                    offset,
                    len,
                    reason: bad.expected(),
                });
            }
        }
    }
}

/// Whether `rec` is a seal that ends the range where a forward scan reached it: outside any
/// batch, naming its own offset, its last byte the range's last.
fn ends_range(rec: &Record<'_>, batch: &[Pending], offset: u64, len: u64, end: u64) -> bool {
    batch.is_empty() && offset + len == end && rec.seal().is_some_and(|s| s.offset == offset)
}

/// Whether some valid record at or after `from` (found by resynchronising past damage) says
/// that the bytes at `from` had been synced when it was written: then damage at `from` is not a
/// torn tail (those bytes were durable once), but corruption. Every record carries the file's
/// synced length at the time it was written, and a seal's is its own offset.
pub(crate) fn synced_after(src: Source<'_>, from: u64, end: u64) -> Result<bool> {
    let mut scanner = Scanner::new(src.file, src.nonce, from, end);
    loop {
        match scanner.next()? {
            Item::End => return Ok(false),
            Item::Record { record, .. } if record.synced > from => return Ok(true),
            Item::Record { .. } => {}
            Item::Damaged { .. } => scanner.resync()?,
        }
    }
}

/// Whether every byte of `[from, end)` of `file` is zero: the unwritten part of a
/// preallocated file. Zeros never verify as a record (a record's CRC is seeded with the
/// file's nonce, and kind 0 is no kind).
pub(crate) fn zero_tail(file: &dyn ReadableFile, from: u64, end: u64) -> Result<bool> {
    let want = usize::try_from(end.saturating_sub(from)).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; want.min(CHUNK)];
    let mut at = from;
    while at < end {
        let n = usize::try_from(end - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(chunk, at)?;
        if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

fn batch_start(batch: &[Pending], otherwise: u64) -> u64 {
    batch.first().map_or(otherwise, |p| p.offset)
}

/// Applies one record; `Err(bad)` when it breaks the batch framing.
fn step(
    batch: &mut Vec<Pending>,
    out: &mut Outcome,
    offset: u64,
    len: u64,
    rec: &Record<'_>,
    sink: &mut dyn FnMut(Op<'_>) -> Result<()>,
) -> Result<Result<(), Bad>> {
    match rec.kind {
        Kind::Put | Kind::Tombstone if batch.is_empty() => {
            let op = Op {
                offset,
                len,
                seq: rec.seq,
                tombstone: rec.kind.is_tombstone(),
                key: rec.key,
                value: rec.value,
            };
            deliver(out, sink, op)?;
        }
        Kind::BatchPut | Kind::BatchTombstone => {
            // Checked: `seq` comes from disk, and a member after `u64::MAX` is bad framing.
            let expected = batch.last().map_or(Some(rec.seq), |p| p.seq.checked_add(1));
            if expected != Some(rec.seq) {
                return Ok(Err(Bad::Length));
            }
            batch.push(Pending {
                offset,
                len,
                seq: rec.seq,
                tombstone: rec.kind.is_tombstone(),
                key: rec.key.to_vec(),
                value: rec.value.to_vec(),
            });
        }
        Kind::BatchEnd => {
            let first = batch.first().map(|p| p.seq);
            let matches = rec.batch_end().is_some_and(|(seq, count)| {
                Some(seq) == first && usize::try_from(count).ok() == Some(batch.len())
            });
            if !matches {
                return Ok(Err(Bad::Length));
            }
            for p in batch.drain(..) {
                let op = Op {
                    offset: p.offset,
                    len: p.len,
                    seq: p.seq,
                    tombstone: p.tombstone,
                    key: &p.key,
                    value: &p.value,
                };
                deliver(out, sink, op)?;
            }
        }
        // A put outside a batch while one is open, or a seal before the end of the range.
        Kind::Put | Kind::Tombstone | Kind::Seal => return Ok(Err(Bad::Length)),
    }
    if batch.is_empty() {
        out.valid_end = offset + len;
    }
    Ok(Ok(()))
}

fn deliver(
    out: &mut Outcome,
    sink: &mut dyn FnMut(Op<'_>) -> Result<()>,
    op: Op<'_>,
) -> Result<()> {
    out.records += 1;
    out.min_seq = out.min_seq.min(op.seq);
    out.max_seq = out.max_seq.max(op.seq);
    sink(op)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use engine_api::{IoClass, SimStorage, Storage};

    use super::{Policy, Source, scan_ops};
    use crate::record::{self, Frame, Kind};

    /// A batch member numbered `u64::MAX` followed by one numbered 0: the sequence numbers come
    /// from disk, and `u64::MAX + 1` must be bad framing, never wrap to 0 (or panic).
    #[test]
    fn a_batch_whose_numbers_would_wrap_is_bad_framing() {
        let frame = Frame {
            nonce: 7,
            synced: 0,
        };
        let mut bytes = Vec::new();
        record::encode(&mut bytes, frame, u64::MAX, Kind::BatchPut, b"a", b"1");
        record::encode(&mut bytes, frame, 0, Kind::BatchPut, b"b", b"2");
        record::encode_batch_end(&mut bytes, frame, u64::MAX, 2);
        let sim = SimStorage::new();
        sim.create_dir_all(Path::new("/d")).unwrap();
        let path = Path::new("/d/f");
        sim.create(path, IoClass::Other)
            .unwrap()
            .append(&bytes)
            .unwrap();
        let file = sim.open(path, IoClass::Other).unwrap();
        let src = Source {
            file: &*file,
            path,
            nonce: frame.nonce,
        };
        let range = (0, bytes.len() as u64);
        let out = scan_ops(src, range, Policy::TornTail, &mut |_| Ok(())).unwrap();
        assert_eq!(out.records, 0, "a wrapped batch was applied");
        assert_eq!(out.stopped.map(|(at, _)| at), Some(0));
    }
}
