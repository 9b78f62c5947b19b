//! Record framing shared by the WAL and the manifest, and the WAL's batch payload.
//! Spec: `docs/formats/wal.md`.
//!
//! ```text
//! record  = crc32 (u32 LE) | len (u32 LE) | kind (u8) | payload (len bytes)
//! crc32   = CRC-32 (ISO-HDLC) over len, kind and payload
//! ```

use engine_api::{BatchOp, MAX_VALUE_LEN, check_key};

use crate::coding::{Reader, put_bytes, u32_at, u32_of};
use crate::key::{self, Kind, SeqNo};

/// Bytes before a record's payload.
pub(crate) const HEADER_LEN: usize = 9;

/// What a record holds. DO NOT CHANGE the values: they are on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// A WAL write batch.
    Batch = 1,
    /// A manifest version edit.
    Edit = 2,
    /// A compaction-log record.
    CompactionLog = 3,
    /// The first record of a WAL: which WAL came before it and how long that one is.
    WalHeader = 4,
}

/// Frames `payload` as one record.
pub(crate) fn encode_record(kind: RecordKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&u32_of(payload.len()).to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(out.get(4..).unwrap_or_default());
    if let Some(head) = out.get_mut(..4) {
        head.copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// Why a record could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// The file ends inside the header or the payload.
    Truncated,
    /// The checksum does not match.
    Checksum,
    /// The checksum matches but the kind is not the one this log holds.
    WrongKind,
}

impl BadRecord {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            BadRecord::Truncated => "a complete record (the file ends inside one)",
            BadRecord::Checksum => "a record whose CRC-32 matches its bytes",
            BadRecord::WrongKind => "a record of this log's kind",
        }
    }
}

/// One decoded record: its offset and payload.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) offset: u64,
    pub(crate) kind: u8,
    pub(crate) payload: &'a [u8],
}

/// Decodes the record at `at`: the record and the offset just past it.
pub(crate) fn decode_at(
    buf: &[u8],
    at: usize,
    kind: RecordKind,
) -> Result<(Record<'_>, usize), BadRecord> {
    let crc = u32_at(buf, at).ok_or(BadRecord::Truncated)?;
    let len = u32_at(buf, at + 4).ok_or(BadRecord::Truncated)?;
    let len = usize::try_from(len).map_err(|_| BadRecord::Truncated)?;
    let end = at
        .checked_add(HEADER_LEN)
        .and_then(|h| h.checked_add(len))
        .ok_or(BadRecord::Truncated)?;
    let covered = buf.get(at + 4..end).ok_or(BadRecord::Truncated)?;
    if crc32fast::hash(covered) != crc {
        return Err(BadRecord::Checksum);
    }
    let found = covered.get(4).copied().unwrap_or(0);
    let header_in_wal = kind == RecordKind::Batch && found == RecordKind::WalHeader as u8;
    if found != kind as u8 && !header_in_wal {
        return Err(BadRecord::WrongKind);
    }
    let payload = covered.get(5..).unwrap_or_default();
    Ok((
        Record {
            offset: at as u64,
            kind: found,
            payload,
        },
        end,
    ))
}

/// Every record of a log, in order, and where (and why) reading stopped early, if it did.
pub(crate) struct Scanned<'a> {
    pub(crate) records: Vec<Record<'a>>,
    /// The end of the last good record.
    pub(crate) valid_len: u64,
    /// The first bad record, if reading stopped before the end of the file.
    pub(crate) bad: Option<(u64, BadRecord)>,
    /// Whether a well-formed record of this kind starts anywhere after the bad one (only
    /// looked for when asked): evidence that the damage is not a torn tail.
    pub(crate) good_after_bad: bool,
}

/// Reads every record of `buf` until the end or the first bad record. With `resync`, a bad
/// record is followed by a search for any good record after it, at every offset.
pub(crate) fn scan(buf: &[u8], kind: RecordKind, resync: bool) -> Scanned<'_> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        match decode_at(buf, at, kind) {
            Ok((record, next)) => {
                records.push(record);
                at = next;
            }
            Err(bad) => {
                return Scanned {
                    records,
                    valid_len: at as u64,
                    bad: Some((at as u64, bad)),
                    good_after_bad: resync && good_follows(buf, at, kind),
                };
            }
        }
    }
    Scanned {
        records,
        valid_len: at as u64,
        bad: None,
        good_after_bad: false,
    }
}

/// Whether a good record starts anywhere after the bad record at `at`. Its own length field
/// may be the damaged part, so every offset is tried. Most candidates fail at once (a length
/// running past the end); a chance match needs a 32-bit checksum to agree.
fn good_follows(buf: &[u8], at: usize, kind: RecordKind) -> bool {
    (at + 1..buf.len()).any(|next| decode_at(buf, next, kind).is_ok())
}

/// The payload of a WAL's header record: the WAL before it (0 if none) and that WAL's length.
pub(crate) fn encode_header(prev_number: u64, prev_len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&prev_number.to_le_bytes());
    out.extend_from_slice(&prev_len.to_le_bytes());
    out
}

/// Decodes a header payload: `(previous WAL number, its length)`.
pub(crate) fn decode_header(payload: &[u8]) -> Option<(u64, u64)> {
    let mut r = Reader::new(payload);
    let h = (r.u64()?, r.u64()?);
    r.is_empty().then_some(h)
}

/// A decoded WAL batch: the sequence number of its first operation, how much of the WAL was
/// known durable when it was written, and the operations.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WalBatch {
    pub(crate) first_seq: SeqNo,
    pub(crate) synced: u64,
    pub(crate) ops: Vec<BatchOp>,
}

/// Encodes a batch payload: `first_seq (u64 LE) | synced (u64 LE) | count (u32 LE) | ops`, each
/// op `kind (u8) | key (varint len, bytes) | [value (varint len, bytes)]`.
pub(crate) fn encode_batch(first_seq: SeqNo, synced: u64, ops: &[BatchOp]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|op| op.key().len() + op.value().map_or(0, <[u8]>::len) + 12)
        .sum();
    let mut out = Vec::with_capacity(20 + size);
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&synced.to_le_bytes());
    out.extend_from_slice(&u32_of(ops.len()).to_le_bytes());
    for op in ops {
        match op {
            BatchOp::Put { key, value } => {
                out.push(Kind::Put as u8);
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            BatchOp::Delete { key } => {
                out.push(Kind::Delete as u8);
                put_bytes(&mut out, key);
            }
        }
    }
    out
}

/// Decodes a batch payload; `Err` says what is malformed. The checksum only proves the bytes
/// are the ones written, so every number is checked too: the sequence numbers must fit an
/// internal key (`1..=MAX_SEQ`), keys and values the engine's limits.
pub(crate) fn decode_batch(payload: &[u8]) -> Result<WalBatch, &'static str> {
    let mut r = Reader::new(payload);
    let first_seq = r.u64().ok_or("a batch header")?;
    let synced = r.u64().ok_or("a batch header")?;
    let count = r.u32().ok_or("a batch header")?;
    let mut ops = Vec::new();
    for _ in 0..count {
        ops.push(decode_op(&mut r).ok_or("as many well-formed operations as the count says")?);
    }
    if !r.is_empty() || ops.is_empty() {
        return Err("a batch of at least one operation and no trailing bytes");
    }
    let batch = WalBatch {
        first_seq,
        synced,
        ops,
    };
    batch.check()?;
    Ok(batch)
}

fn decode_op(r: &mut Reader<'_>) -> Option<BatchOp> {
    let kind = Kind::from_u8(r.u8()?)?;
    let key = r.bytes()?.to_vec();
    Some(match kind {
        Kind::Put => BatchOp::Put {
            key,
            value: r.bytes()?.to_vec(),
        },
        Kind::Delete => BatchOp::Delete { key },
    })
}

impl WalBatch {
    /// The sequence number of the last operation (the batch was checked at decode).
    pub(crate) fn last_seq(&self) -> SeqNo {
        self.first_seq
            .saturating_add(self.ops.len() as u64)
            .saturating_sub(1)
    }

    fn check(&self) -> Result<(), &'static str> {
        let fits = self
            .first_seq
            .checked_sub(1)
            .and_then(|last| key::seq_range(last, self.ops.len()));
        if fits.is_none() {
            return Err("sequence numbers between 1 and the internal key's maximum");
        }
        let sizes_ok = self.ops.iter().all(|op| {
            check_key(op.key()).is_ok() && op.value().is_none_or(|v| v.len() <= MAX_VALUE_LEN)
        });
        if !sizes_ok {
            return Err("keys and values within the engine's limits");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<BatchOp> {
        vec![
            BatchOp::Put {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            },
            BatchOp::Delete { key: b"d".to_vec() },
        ]
    }

    #[test]
    fn records_round_trip_and_stop_at_damage() {
        let mut log = encode_record(RecordKind::Batch, &encode_batch(9, 0, &ops()));
        log.extend(encode_record(
            RecordKind::Batch,
            &encode_batch(11, 0, &ops()),
        ));
        let s = scan(&log, RecordKind::Batch, true);
        assert_eq!(s.records.len(), 2);
        assert!(s.bad.is_none());
        let b = decode_batch(s.records[1].payload).unwrap();
        assert_eq!((b.first_seq, b.ops), (11, ops()));

        let first_len = encode_record(RecordKind::Batch, &encode_batch(9, 0, &ops())).len();
        let mut damaged = log.clone();
        damaged[12] ^= 1;
        let s = scan(&damaged, RecordKind::Batch, true);
        assert_eq!(s.records.len(), 0);
        assert_eq!(s.bad, Some((0, BadRecord::Checksum)));
        assert!(s.good_after_bad, "the second record is intact");

        let torn = &log[..log.len() - 1];
        let s = scan(torn, RecordKind::Batch, true);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.valid_len, first_len as u64);
        assert_eq!(s.bad, Some((first_len as u64, BadRecord::Truncated)));
        assert!(!s.good_after_bad);

        assert_eq!(
            scan(&log, RecordKind::Edit, false).bad,
            Some((0, BadRecord::WrongKind))
        );
    }
}
