//! Data files: their names, their 8-byte header, the seal that makes them immutable, and the
//! positional read that serves a `get`.
//!
//! Layout (spec: `docs/formats/bitcask-record.md`): a 24-byte header, then records, and for a sealed
//! file a final seal record. A file is *sealed* exactly when a forward scan of its records from
//! the header reaches a valid seal record that names its own position and ends the file (or a
//! valid hint, built by such a scan, says so): bytes inside a value are never parsed as a record,
//! so no value can pass for a seal. Only the active file (or a file left active by a crash) is
//! unsealed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use engine_api::{Error, FileStats, ReadableFile, Result};
use parking_lot::RwLock;

use crate::keydir::Loc;
use crate::record::{self, SEAL_LEN, Seal};

/// First bytes of every data file, without the version byte.
const MAGIC_PREFIX: &[u8; 7] = b"BCDATA\x00";

/// The data-file format version this engine reads and writes (the eighth magic byte).
pub(crate) const FORMAT_VERSION: u8 = 2;

/// Length of the file header (magic, base sequence number, CRC, reserved): the offset of the
/// first record.
pub(crate) const DATA_START: u64 = 24;

/// The kinds of file a Bitcask directory holds, told apart by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileName {
    /// `<id>.data`: a data file.
    Data(u32),
    /// `<id>.merging`: a merge output, live only once a commit record names it.
    Merging(u32),
    /// `<id>.hint`: the hint file of data file `<id>`.
    Hint(u32),
    /// `MERGE-<id>`: a merge commit record.
    Manifest(u32),
    /// `<id>.data.tmp`: a data file being created (the active file, or the rewrite of the
    /// previous run's active file at open).
    DataTemp(u32),
    /// `MERGE-<id>.tmp`: a merge commit record being written.
    ManifestTemp(u32),
}

impl FileName {
    /// Classifies a directory entry; `None` for files this engine does not own (a `*.tmp`
    /// file is ours only if it is the temporary name of a file we write). A name is ours only
    /// if it is exactly the name we would write (ten-digit ids): `7.data.tmp` or `007.data`
    /// is foreign, never loaded or removed, since [`FileName::path`] would name another file.
    pub(crate) fn parse(name: &str) -> Option<FileName> {
        FileName::parse_loose(name).filter(|parsed| parsed.name() == name)
    }

    /// [`FileName::parse`] without the round-trip check: any number of digits.
    fn parse_loose(name: &str) -> Option<FileName> {
        if let Some(stem) = name.strip_suffix(".tmp") {
            return match FileName::parse_loose(stem)? {
                FileName::Data(id) => Some(FileName::DataTemp(id)),
                FileName::Manifest(id) => Some(FileName::ManifestTemp(id)),
                _ => None,
            };
        }
        if let Some(id) = name.strip_prefix("MERGE-") {
            return parse_id(id).map(FileName::Manifest);
        }
        let (stem, ext) = name.split_once('.')?;
        let id = parse_id(stem)?;
        match ext {
            "data" => Some(FileName::Data(id)),
            "merging" => Some(FileName::Merging(id)),
            "hint" => Some(FileName::Hint(id)),
            _ => None,
        }
    }

    /// The file's name in the directory.
    pub(crate) fn name(self) -> String {
        match self {
            FileName::Data(id) => format!("{id:010}.data"),
            FileName::Merging(id) => format!("{id:010}.merging"),
            FileName::Hint(id) => format!("{id:010}.hint"),
            FileName::Manifest(id) => format!("MERGE-{id:010}"),
            FileName::DataTemp(id) => format!("{id:010}.data.tmp"),
            FileName::ManifestTemp(id) => format!("MERGE-{id:010}.tmp"),
        }
    }

    /// The id in the name.
    pub(crate) fn id(self) -> Option<u32> {
        match self {
            FileName::Data(id)
            | FileName::Merging(id)
            | FileName::Hint(id)
            | FileName::Manifest(id)
            | FileName::DataTemp(id)
            | FileName::ManifestTemp(id) => Some(id),
        }
    }

    /// Whether this is the temporary name of a file being written.
    pub(crate) fn is_temp(self) -> bool {
        matches!(self, FileName::DataTemp(_) | FileName::ManifestTemp(_))
    }

    /// Full path inside `dir`.
    pub(crate) fn path(self, dir: &Path) -> PathBuf {
        dir.join(self.name())
    }
}

fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One data file as the engine holds it: a shared read handle (readers, scans and merges keep
/// the file readable through their `Arc` even after a merge retires it) and live counters.
pub(crate) struct DataFile {
    id: u32,
    base_seq: u64,
    nonce: u32,
    /// Length known durable (synced by the writer, or the whole file once sealed).
    synced: AtomicU64,
    path: RwLock<PathBuf>,
    reader: Box<dyn ReadableFile>,
    len: AtomicU64,
    records: AtomicU64,
    min_seq: AtomicU64,
    max_seq: AtomicU64,
    live_bytes: AtomicU64,
    live_keys: AtomicU64,
    sealed: AtomicBool,
}

/// What is known of a file's contents when it is added to the engine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileShape {
    /// The header's base sequence number: every record written into the file by the writer
    /// has a sequence number at least this (0 for merge outputs, which hold old records).
    pub(crate) base_seq: u64,
    /// The header's nonce, which seeds every record's CRC.
    pub(crate) nonce: u32,
    pub(crate) len: u64,
    pub(crate) records: u64,
    pub(crate) min_seq: u64,
    pub(crate) max_seq: u64,
    pub(crate) sealed: bool,
}

impl FileShape {
    /// A fresh file: only the header.
    pub(crate) fn empty(base_seq: u64, nonce: u32) -> Self {
        FileShape {
            base_seq,
            nonce,
            len: DATA_START,
            records: 0,
            min_seq: u64::MAX,
            max_seq: 0,
            sealed: false,
        }
    }

    /// The shape a seal record states.
    pub(crate) fn sealed(base_seq: u64, nonce: u32, seal: &Seal) -> Self {
        FileShape {
            base_seq,
            nonce,
            len: seal.offset + SEAL_LEN as u64,
            records: seal.records,
            min_seq: seal.min_seq,
            max_seq: seal.max_seq,
            sealed: true,
        }
    }
}

impl DataFile {
    /// Wraps an open read handle.
    pub(crate) fn new(id: u32, reader: Box<dyn ReadableFile>, shape: FileShape) -> Arc<Self> {
        let synced = if shape.sealed { shape.len } else { DATA_START };
        Arc::new(DataFile {
            id,
            base_seq: shape.base_seq,
            nonce: shape.nonce,
            synced: AtomicU64::new(synced),
            path: RwLock::new(reader.path().to_path_buf()),
            reader,
            len: AtomicU64::new(shape.len),
            records: AtomicU64::new(shape.records),
            min_seq: AtomicU64::new(shape.min_seq),
            max_seq: AtomicU64::new(shape.max_seq),
            live_bytes: AtomicU64::new(0),
            live_keys: AtomicU64::new(0),
            sealed: AtomicBool::new(shape.sealed),
        })
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// The header's base sequence number.
    pub(crate) fn base_seq(&self) -> u64 {
        self.base_seq
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.path.read().clone()
    }

    /// The header's nonce.
    pub(crate) fn nonce(&self) -> u32 {
        self.nonce
    }

    /// What a record appended now says about the file: its nonce and synced length.
    pub(crate) fn frame(&self) -> record::Frame {
        record::Frame {
            nonce: self.nonce,
            synced: self.synced.load(Ordering::Acquire),
        }
    }

    /// Notes that a sync made the first `len` bytes durable.
    pub(crate) fn mark_synced(&self, len: u64) {
        self.synced.fetch_max(len, Ordering::AcqRel);
    }

    /// Records a rename (a merge output moving from `.merging` to `.data`).
    pub(crate) fn set_path(&self, path: PathBuf) {
        *self.path.write() = path;
    }

    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Smallest sequence number in the file, `u64::MAX` when it holds no record.
    pub(crate) fn min_seq(&self) -> u64 {
        self.min_seq.load(Ordering::Acquire)
    }

    /// Largest sequence number in the file, 0 when it holds no record.
    pub(crate) fn max_seq(&self) -> u64 {
        self.max_seq.load(Ordering::Acquire)
    }

    pub(crate) fn live_bytes(&self) -> u64 {
        self.live_bytes.load(Ordering::Relaxed)
    }

    /// Keys whose newest record is here.
    pub(crate) fn live_keys(&self) -> u64 {
        self.live_keys.load(Ordering::Relaxed)
    }

    /// Notes records appended by the writer (the active file grows). Plain stores: only the
    /// writer, under its mutex, changes the active file's shape.
    pub(crate) fn grew(&self, len: u64, records: u64, min_seq: u64, max_seq: u64) {
        self.len.store(len, Ordering::Release);
        self.records.store(records, Ordering::Relaxed);
        self.min_seq.store(min_seq, Ordering::Release);
        self.max_seq.store(max_seq, Ordering::Release);
    }

    /// Notes that the file now ends in its seal.
    pub(crate) fn seal(&self, len: u64) {
        self.len.store(len, Ordering::Release);
        self.mark_synced(len);
        self.sealed.store(true, Ordering::Release);
    }

    /// The seal record describing the file as it is now.
    pub(crate) fn seal_record(&self) -> Seal {
        Seal {
            records: self.records.load(Ordering::Relaxed),
            min_seq: self.min_seq.load(Ordering::Acquire),
            max_seq: self.max_seq.load(Ordering::Acquire),
            offset: self.len(),
        }
    }

    /// A key whose record lives here was added (`+`) or moved away (`-`).
    pub(crate) fn add_live(&self, bytes: u64) {
        self.live_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.live_keys.fetch_add(1, Ordering::Relaxed);
    }

    /// `keys` keys of `bytes` bytes in all live here (open's accounting).
    pub(crate) fn add_live_many(&self, bytes: u64, keys: u64) {
        self.live_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.live_keys.fetch_add(keys, Ordering::Relaxed);
    }

    /// Bytes that count as live without a keydir entry (tombstones a merge had to keep).
    pub(crate) fn add_pinned(&self, bytes: u64) {
        self.live_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn remove_live(&self, bytes: u64) {
        // Saturating: counters are statistics, and an underflow must not wrap.
        let _ = self
            .live_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(bytes))
            });
        let _ = self
            .live_keys
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
    }

    /// Reads the record at `loc` with one positional read, verifies it and returns its value.
    pub(crate) fn read_value(&self, loc: &Loc, key: &[u8]) -> Result<Bytes> {
        let mut buf = vec![0u8; loc.len as usize];
        self.reader.read_exact_at(&mut buf, u64::from(loc.offset))?;
        let (start, end) = {
            let rec = record::decode(&buf, self.nonce)
                .map_err(|bad| self.corrupt(loc, &bad.expected()))?;
            if !rec.kind.is_put() || rec.key != key || rec.seq != loc.seq {
                return Err(self.corrupt(loc, "the put record the keydir points at"));
            }
            let start = record::HEADER_LEN + rec.key.len();
            (start, start + rec.value.len())
        };
        // The value moved to the front of the buffer it was read into: `Bytes::slice` of a
        // `Vec`-backed `Bytes` would allocate a shared header per get instead.
        buf.truncate(end);
        buf.drain(..start);
        Ok(Bytes::from(buf))
    }

    fn corrupt(&self, loc: &Loc, expected: &str) -> Error {
        Error::corruption(self.path(), u64::from(loc.offset), expected)
    }

    /// Per-file statistics for [`engine_api::Stats::files`].
    pub(crate) fn stats(&self) -> FileStats {
        let name = self
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        FileStats {
            name,
            level: None,
            bytes: self.len(),
            live_bytes: Some(self.live_bytes()),
            entries: self.records.load(Ordering::Relaxed),
            smallest_key: None,
            largest_key: None,
        }
    }
}

/// A fresh random nonce for a new data file. `RandomState` is seeded from the OS per process
/// and differs per call; the nonce needs to be unpredictable to users, not cryptographic.
pub(crate) fn new_nonce() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6269_7463_6173_6b21);
    let x = h.finish();
    // Folding 64 bits into 32: truncation is the point.
    #[expect(clippy::cast_possible_truncation, reason = "folding a hash")]
    let folded = (x ^ (x >> 32)) as u32;
    folded
}

/// The header of a data file whose records start at or after `base_seq`, with `nonce`:
/// magic (7) | version (1) | base_seq (8) | nonce (4) | crc32 of bytes 0..20 (4).
pub(crate) fn encode_header(base_seq: u64, nonce: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(MAGIC_PREFIX);
    h.push(FORMAT_VERSION);
    h.extend_from_slice(&base_seq.to_le_bytes());
    h.extend_from_slice(&nonce.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// What a data file's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderInfo {
    pub(crate) base_seq: u64,
    pub(crate) nonce: u32,
}

/// The header of a file of `len` bytes: `None` if it is damaged.
///
/// # Errors
/// A whole, valid header of another format version is [`Error::InvalidArgument`] naming the
/// file and both versions: this engine does not read it, and must not take it for damage.
pub(crate) fn read_header(file: &dyn ReadableFile, len: u64) -> Result<Option<HeaderInfo>> {
    if len < DATA_START {
        return Ok(None);
    }
    let mut h = [0u8; 24];
    file.read_exact_at(&mut h, 0)?;
    if &h[..7] != MAGIC_PREFIX {
        return Ok(None);
    }
    if h[7] != FORMAT_VERSION {
        // Damage to the version byte is damage: only a whole version-1 header (its CRC over
        // bytes 0..16 at 16) is another format.
        let v1_crc = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
        if h[7] != 1 || crc32fast::hash(&h[..16]) != v1_crc {
            return Ok(None);
        }
        return Err(Error::invalid(format!(
            "{} is a Bitcask data file of format version {}; this engine reads version \
             {FORMAT_VERSION} only",
            file.path().display(),
            h[7]
        )));
    }
    let crc = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
    if crc32fast::hash(&h[..20]) != crc {
        return Ok(None);
    }
    let base_seq = record::array(&h, 8).map(u64::from_le_bytes);
    let nonce = record::array(&h, 16).map(u32::from_le_bytes);
    Ok(match (base_seq, nonce) {
        (Ok(base_seq), Ok(nonce)) => Some(HeaderInfo { base_seq, nonce }),
        _ => None,
    })
}

/// The seal of a file already known to be sealed (by a forward scan or a valid hint), `len`
/// bytes long. Never used to decide *whether* a file is sealed: a value can end in bytes that
/// parse as a seal.
pub(crate) fn read_seal(file: &dyn ReadableFile, nonce: u32, len: u64) -> Result<Option<Seal>> {
    let seal_len = SEAL_LEN as u64;
    if len < DATA_START + seal_len {
        return Ok(None);
    }
    let at = len - seal_len;
    let mut buf = [0u8; SEAL_LEN];
    file.read_exact_at(&mut buf, at)?;
    let seal = record::decode(&buf, nonce).ok().and_then(|r| r.seal());
    Ok(seal.filter(|s| s.offset == at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            FileName::Data(7),
            FileName::Merging(12),
            FileName::Hint(0),
            FileName::Manifest(4_000_000_000),
        ] {
            assert_eq!(FileName::parse(&name.name()), Some(name));
        }
        assert_eq!(FileName::parse("LOCK"), None);
        assert_eq!(FileName::parse("x.data"), None);
        assert_eq!(FileName::parse("+1.data"), None);
        assert_eq!(
            FileName::parse("0000000001.data.tmp"),
            Some(FileName::DataTemp(1))
        );
        assert_eq!(
            FileName::parse("MERGE-0000000007.tmp"),
            Some(FileName::ManifestTemp(7))
        );
        assert_eq!(
            FileName::parse("0001.hint.tmp"),
            None,
            "not a name we write"
        );
        assert_eq!(FileName::parse("notes.tmp"), None);
        assert_eq!(FileName::parse("0000000001.data.tmp.tmp"), None);
        assert_eq!(FileName::parse("99999999999.data"), None, "id beyond u32");
        for foreign in [
            "7.data",
            "7.data.tmp",
            "7.merging",
            "7.hint",
            "MERGE-7",
            "MERGE-7.tmp",
        ] {
            assert_eq!(
                FileName::parse(foreign),
                None,
                "{foreign}: not a name we write"
            );
        }
    }
}
