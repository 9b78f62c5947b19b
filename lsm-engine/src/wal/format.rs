//! Record framing shared by the WAL and the manifest, and the WAL's batch payload.
//! Spec: `docs/formats/wal.md`.
//!
//! ```text
//! record  = crc32 (u32 LE) | len (u32 LE) | kind (u8) | payload (len bytes)
//! crc32   = CRC-32 (ISO-HDLC) over len, kind and payload, seeded with the file's nonce
//! header  = the file's first record, seeded with HEADER_SEED:
//!           version (u32 LE) | nonce (u32 LE) | body
//! ```
//!
//! The nonce is random per file and written only in its header, so a record framed inside a
//! user's value (the user does not know the nonce) does not verify as a record of the file:
//! readers that resynchronise after damage, trying every offset, cannot land on one.

use std::path::Path;

use engine_api::{BatchOp, Error, MAX_VALUE_LEN, check_key};

use crate::coding::{Reader, put_bytes, u32_at, u32_of};
use crate::key::{self, Kind, SeqNo};
use crate::op::AsOp;

/// Bytes before a record's payload.
pub(crate) const HEADER_LEN: usize = 9;

/// The format version of WALs and manifests this engine reads and writes. Version 1 had no
/// header nonce (every record's CRC was unseeded).
pub(crate) const FORMAT_VERSION: u32 = 2;

/// The CRC seed of a file's header record (which carries the nonce, so cannot be seeded by it).
pub(crate) const HEADER_SEED: u32 = 0x4c53_4d68;

/// No seed: a plain CRC-32, as version-1 files used for every record.
pub(crate) const PLAIN: u32 = 0;

/// What a record holds. DO NOT CHANGE the values: they are on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// A WAL write batch.
    Batch = 1,
    /// A manifest version edit.
    Edit = 2,
    /// A compaction-log record.
    CompactionLog = 3,
    /// The first record of a WAL: its nonce, which WAL came before it and how long that one is.
    WalHeader = 4,
    /// The first record of a manifest: its nonce.
    ManifestHeader = 5,
    /// The first record of a compaction log: its nonce.
    CompactionLogHeader = 6,
}

/// The CRC of a record's covered bytes in a file whose records are seeded with `seed`.
fn crc(seed: u32, covered: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(covered);
    h.finalize()
}

/// Frames `payload` as one record of a file whose records are seeded with `seed`.
pub(crate) fn encode_record(seed: u32, kind: RecordKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&u32_of(payload.len()).to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
    let crc = crc(seed, out.get(4..).unwrap_or_default());
    if let Some(head) = out.get_mut(..4) {
        head.copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// A fresh random nonce for a new file. `RandomState` is seeded from the OS per process and
/// differs per call; the nonce needs to be unpredictable to users, not cryptographic.
pub(crate) fn new_nonce() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6c73_6d2d_6e6f_6e63);
    let x = h.finish();
    #[expect(clippy::cast_possible_truncation, reason = "folding a hash")]
    let folded = (x ^ (x >> 32)) as u32;
    folded
}

/// The header record of a file with `nonce`: the format version, the nonce, then `body`.
pub(crate) fn encode_file_header(kind: RecordKind, nonce: u32, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + body.len());
    payload.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    payload.extend_from_slice(&nonce.to_le_bytes());
    payload.extend_from_slice(body);
    encode_record(HEADER_SEED, kind, &payload)
}

/// A verified header record.
pub(crate) struct FileHeader<'a> {
    /// The seed of every later record of the file.
    pub(crate) nonce: u32,
    /// The header's payload after the version and the nonce.
    pub(crate) body: &'a [u8],
    /// Where the file's records start.
    pub(crate) end: usize,
}

/// What a file's first record says.
pub(crate) enum Head<'a> {
    Good(FileHeader<'a>),
    /// A whole header of another format version (1: a version-1 file's plain first record).
    Version(u32),
    /// A verified header record too short to hold a version and a nonce.
    Malformed,
    /// No verifiable header: torn or damaged.
    Bad(BadRecord),
}

/// Reads the header record (`kind`) at the start of `buf`. `v1_first` is the kind of the first
/// record of a version-1 file of this sort, to tell an old file from a damaged one.
pub(crate) fn read_file_header(buf: &[u8], kind: RecordKind, v1_first: RecordKind) -> Head<'_> {
    let (record, end) = match decode_at(buf, 0, HEADER_SEED, kind) {
        Ok(found) => found,
        Err(_) if decode_at(buf, 0, PLAIN, v1_first).is_ok() => return Head::Version(1),
        Err(bad) => return Head::Bad(bad),
    };
    let mut r = Reader::new(record.payload);
    match (r.u32(), r.u32()) {
        (Some(FORMAT_VERSION), Some(nonce)) => Head::Good(FileHeader {
            nonce,
            body: record.payload.get(8..).unwrap_or_default(),
            end,
        }),
        (Some(version), _) if version != FORMAT_VERSION => Head::Version(version),
        _ => Head::Malformed,
    }
}

/// What the nonce field of an unverifiable header holds, if the file reaches it: a guess at
/// the nonce, which later records verify or not (damage confined to the header is then still
/// told from a torn header by the records after it).
pub(crate) fn unverified_nonce(buf: &[u8]) -> Option<u32> {
    u32_at(buf, HEADER_LEN + 4)
}

/// The error for a whole file of another format version: this engine does not read it, and
/// must not take it for damage.
pub(crate) fn other_version(path: &Path, what: &str, version: u32) -> Error {
    Error::invalid(format!(
        "{} is an LSM {what} of format version {version}; this engine reads version \
         {FORMAT_VERSION} only",
        path.display()
    ))
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
    pub(crate) payload: &'a [u8],
}

/// Decodes the record at `at` in a file whose records are seeded with `seed`: the record and
/// the offset just past it.
pub(crate) fn decode_at(
    buf: &[u8],
    at: usize,
    seed: u32,
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
    if self::crc(seed, covered) != crc {
        return Err(BadRecord::Checksum);
    }
    let found = covered.get(4).copied().unwrap_or(0);
    if found != kind as u8 {
        return Err(BadRecord::WrongKind);
    }
    let payload = covered.get(5..).unwrap_or_default();
    Ok((
        Record {
            offset: at as u64,
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

/// Reads every record of `buf` from `from` until the end or the first bad record. With
/// `resync`, a bad record is followed by a search for any good record after it, at every offset.
pub(crate) fn scan(
    buf: &[u8],
    from: usize,
    seed: u32,
    kind: RecordKind,
    resync: bool,
) -> Scanned<'_> {
    let mut records = Vec::new();
    let mut at = from;
    while at < buf.len() {
        match decode_at(buf, at, seed, kind) {
            Ok((record, next)) => {
                records.push(record);
                at = next;
            }
            Err(bad) => {
                return Scanned {
                    records,
                    valid_len: at as u64,
                    bad: Some((at as u64, bad)),
                    good_after_bad: resync && good_follows(buf, at, seed, kind),
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
/// running past the end); a chance match needs a 32-bit checksum to agree, and a record framed
/// inside a user's value does not verify (it was not seeded with this file's nonce).
fn good_follows(buf: &[u8], at: usize, seed: u32, kind: RecordKind) -> bool {
    (at + 1..buf.len()).any(|next| decode_at(buf, next, seed, kind).is_ok())
}

/// The body of a WAL's header record (after the version and nonce): the WAL before it (0 if none) and that WAL's length.
pub(crate) fn encode_header(prev_number: u64, prev_len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&prev_number.to_le_bytes());
    out.extend_from_slice(&prev_len.to_le_bytes());
    out
}

/// Decodes a WAL header's body: `(previous WAL number, its length)`.
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
pub(crate) fn encode_batch<T: AsOp>(first_seq: SeqNo, synced: u64, ops: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch_size(ops));
    append_batch(&mut out, first_seq, synced, ops);
    out
}

/// A batch as one WAL record: the bytes of `encode_record(seed, Batch, &encode_batch(..))`,
/// built in one buffer (the write path's profile showed the second buffer and its copy).
#[cfg(test)]
pub(crate) fn encode_batch_record<T: AsOp>(
    seed: u32,
    first_seq: SeqNo,
    synced: u64,
    ops: &[T],
) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch_record_into(&mut out, seed, first_seq, synced, ops);
    out
}

/// [`encode_batch_record`] into `out` (cleared first): the writer reuses one buffer.
pub(crate) fn encode_batch_record_into<T: AsOp>(
    out: &mut Vec<u8>,
    seed: u32,
    first_seq: SeqNo,
    synced: u64,
    ops: &[T],
) {
    out.clear();
    out.reserve(HEADER_LEN + batch_size(ops));
    out.extend_from_slice(&[0; 8]);
    out.push(RecordKind::Batch as u8);
    append_batch(out, first_seq, synced, ops);
    let len = u32_of(out.len() - HEADER_LEN).to_le_bytes();
    if let Some(at) = out.get_mut(4..8) {
        at.copy_from_slice(&len);
    }
    let crc = crc(seed, out.get(4..).unwrap_or_default());
    if let Some(head) = out.get_mut(..4) {
        head.copy_from_slice(&crc.to_le_bytes());
    }
}

/// An upper bound of a batch payload's size (varint lengths counted at their widest).
fn batch_size<T: AsOp>(ops: &[T]) -> usize {
    let size: usize = ops.iter().map(|op| op.as_op().user_bytes() + 12).sum();
    20 + size
}

fn append_batch<T: AsOp>(out: &mut Vec<u8>, first_seq: SeqNo, synced: u64, ops: &[T]) {
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&synced.to_le_bytes());
    out.extend_from_slice(&u32_of(ops.len()).to_le_bytes());
    for op in ops {
        let op = op.as_op();
        out.push(op.kind as u8);
        put_bytes(out, op.key);
        if op.kind == Kind::Put {
            put_bytes(out, op.value);
        }
    }
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

    const N: u32 = 0x5eed;

    #[test]
    fn a_batch_record_built_in_one_buffer_has_the_bytes_of_the_two_step_encoding() {
        let big = vec![BatchOp::Put {
            key: vec![7; 300],
            value: vec![9; 70_000],
        }];
        for ops in [ops(), big, Vec::new()] {
            assert_eq!(
                encode_batch_record(N, 12, 34, &ops),
                encode_record(N, RecordKind::Batch, &encode_batch(12, 34, &ops))
            );
        }
    }

    #[test]
    fn records_round_trip_and_stop_at_damage() {
        let mut log = encode_record(N, RecordKind::Batch, &encode_batch(9, 0, &ops()));
        log.extend(encode_record(
            N,
            RecordKind::Batch,
            &encode_batch(11, 0, &ops()),
        ));
        let s = scan(&log, 0, N, RecordKind::Batch, true);
        assert_eq!(s.records.len(), 2);
        assert!(s.bad.is_none());
        let b = decode_batch(s.records[1].payload).unwrap();
        assert_eq!((b.first_seq, b.ops), (11, ops()));

        let first_len = encode_record(N, RecordKind::Batch, &encode_batch(9, 0, &ops())).len();
        let mut damaged = log.clone();
        damaged[12] ^= 1;
        let s = scan(&damaged, 0, N, RecordKind::Batch, true);
        assert_eq!(s.records.len(), 0);
        assert_eq!(s.bad, Some((0, BadRecord::Checksum)));
        assert!(s.good_after_bad, "the second record is intact");

        let torn = &log[..log.len() - 1];
        let s = scan(torn, 0, N, RecordKind::Batch, true);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.valid_len, first_len as u64);
        assert_eq!(s.bad, Some((first_len as u64, BadRecord::Truncated)));
        assert!(!s.good_after_bad);

        assert_eq!(
            scan(&log, 0, N, RecordKind::Edit, false).bad,
            Some((0, BadRecord::WrongKind))
        );
    }

    #[test]
    fn a_record_verifies_only_under_its_files_nonce() {
        let record = encode_record(N, RecordKind::Batch, &encode_batch(9, 0, &ops()));
        assert!(decode_at(&record, 0, N, RecordKind::Batch).is_ok());
        for other in [N ^ 1, PLAIN, HEADER_SEED] {
            assert_eq!(
                decode_at(&record, 0, other, RecordKind::Batch).unwrap_err(),
                BadRecord::Checksum
            );
        }
    }

    #[test]
    fn headers_carry_the_nonce_and_tell_an_old_version_from_damage() {
        let mut file = encode_file_header(RecordKind::WalHeader, N, &encode_header(3, 40));
        let Head::Good(h) = read_file_header(&file, RecordKind::WalHeader, RecordKind::WalHeader)
        else {
            panic!("a fresh header does not verify");
        };
        assert_eq!((h.nonce, decode_header(h.body)), (N, Some((3, 40))));
        assert_eq!(h.end, file.len());
        assert_eq!(unverified_nonce(&file), Some(N));

        let v1 = encode_record(PLAIN, RecordKind::WalHeader, &encode_header(3, 40));
        let head = read_file_header(&v1, RecordKind::WalHeader, RecordKind::WalHeader);
        assert!(matches!(head, Head::Version(1)));

        file[HEADER_LEN + 9] ^= 1;
        let head = read_file_header(&file, RecordKind::WalHeader, RecordKind::WalHeader);
        assert!(matches!(head, Head::Bad(BadRecord::Checksum)));
    }
}
