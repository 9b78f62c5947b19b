//! Fuzz bodies: plain functions that feed arbitrary bytes to the engine's decoders and must
//! never panic, whatever the bytes. The cargo-fuzz targets in `fuzz/` call them, and so does an
//! ordinary test that replays the checked-in corpus (`fuzz/corpus/<target>/`), so CI needs only
//! the stable toolchain. Not part of the engine's API.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use engine_api::{IoClass, SimStorage, Storage};

use crate::compaction::read_log;
use crate::filename;
use crate::sstable::block::{Block, BlockIter};
use crate::sstable::bloom::{BloomFilter, key_hash};
use crate::sstable::footer::{BlockHandle, Footer, Props};
use crate::version::VersionEdit;
use crate::version::manifest::read_manifest;
use crate::wal::read_wal;

/// A WAL file, read as recovery reads it: its header, then every record framed and checked
/// under the header's nonce, every batch payload decoded, and after a bad record the search
/// for a later record that vouches for it.
pub fn wal_record(data: &[u8]) {
    let Some((sim, _)) = file_with(data, |dir| filename::wal(dir, 7)) else {
        return;
    };
    if let Ok(contents) = read_wal(&sim, Path::new(DIR), 7, true) {
        assert!(contents.valid_len <= data.len() as u64);
    }
}

/// A manifest version edit: one that decodes must survive an encode-decode round trip.
pub fn manifest_edit(data: &[u8]) {
    if let Ok(edit) = VersionEdit::decode(data) {
        let again = VersionEdit::decode(&edit.encode());
        assert_eq!(
            again.as_ref(),
            Ok(&edit),
            "a version edit did not round-trip"
        );
    }
    // The same bytes as a manifest file (header, then edit records).
    if let Some((sim, _)) = file_with(data, |dir| filename::manifest(dir, 7)) {
        let _ = read_manifest(&sim, Path::new(DIR), 7);
    }
}

/// A data block: parsed, walked from the first entry to the end, and searched.
pub fn data_block(data: &[u8]) {
    if let Some(block) = block(data) {
        walk(&block, |_| {});
    }
}

/// An index block: a block whose values are block handles.
pub fn index_block(data: &[u8]) {
    if let Some(block) = block(data) {
        walk(&block, |value| {
            let _ = BlockHandle::decode_varint(value);
        });
    }
}

/// A bloom filter block, then probes for a few keys.
pub fn filter(data: &[u8]) {
    if let Ok(Some(filter)) = BloomFilter::parse(Bytes::copy_from_slice(data)) {
        for key in [&b"a"[..], b"key", data.get(..8).unwrap_or_default()] {
            let _ = filter.may_contain(key_hash(key));
        }
    }
}

/// A table footer, the properties block and a block handle.
pub fn footer(data: &[u8]) {
    if let Ok(footer) = Footer::decode(data) {
        assert_eq!(
            footer.encode().get(..52),
            data.get(..52),
            "a footer did not round-trip"
        );
    }
    let _ = Props::decode(data);
    let _ = BlockHandle::decode_varint(data);
}

/// A whole table file, opened through the public reader, read in full and probed.
pub fn table(data: &[u8]) {
    let Some((sim, path)) = file_with(data, |dir| filename::table(dir, 7)) else {
        return;
    };
    let Ok(reader) = crate::SstFileReader::open(&sim, &path) else {
        return;
    };
    let keys: Vec<Bytes> = reader
        .entries()
        .take(data.len() + 1)
        .filter_map(Result::ok)
        .map(|e| e.key)
        .collect();
    for key in keys.iter().take(64) {
        let _ = reader.get(key, u64::MAX);
        let _ = reader.may_contain(key);
    }
}

/// A compaction log (intent and finished-output records).
pub fn compaction_log(data: &[u8]) {
    if let Some((sim, _)) = file_with(data, |dir| filename::compaction_log(dir, 3)) {
        let _ = read_log(&sim, Path::new(DIR), 3);
    }
}

const DIR: &str = "/db";

fn file_with(
    data: &[u8],
    name: impl FnOnce(&Path) -> std::path::PathBuf,
) -> Option<(SimStorage, std::path::PathBuf)> {
    let sim = SimStorage::new();
    let dir = Path::new(DIR);
    sim.create_dir_all(dir).ok()?;
    let path = name(dir);
    let file = sim.create(&path, IoClass::Other).ok()?;
    file.append(data).ok()?;
    Some((sim, path))
}

fn block(data: &[u8]) -> Option<Block> {
    Block::parse(
        Bytes::copy_from_slice(data),
        Arc::from(Path::new("/fuzz")),
        0,
    )
    .ok()
}

/// Walks every entry (a block of `n` bytes holds fewer than `n` entries, so more steps mean
/// the iterator is looping), then seeks to a key made from the input.
fn walk(block: &Block, mut each_value: impl FnMut(&[u8])) {
    let mut it: BlockIter = block.iter();
    if it.seek_to_first().is_err() {
        return;
    }
    let mut steps = 0usize;
    while it.valid() {
        each_value(it.value_slice());
        steps += 1;
        assert!(steps <= block.size(), "a block iterator did not advance");
        if it.next().is_err() {
            break;
        }
    }
    let mut it = block.iter();
    let _ = it.seek(b"key");
    let _ = it.seek(&[]);
}

/// A table's footer, index block, filter block and first data block, each as its own input
/// for the targets above: how a corpus is built from real files. Empty if the footer or a
/// handle does not check out.
pub fn table_parts(table: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut parts = Vec::new();
    let Some(tail) = table.len().checked_sub(64).and_then(|at| table.get(at..)) else {
        return parts;
    };
    parts.push(("footer", tail.to_vec()));
    let Ok(footer) = Footer::decode(tail) else {
        return parts;
    };
    let slice = |h: BlockHandle| {
        let start = usize::try_from(h.offset).ok()?;
        let end = start.checked_add(usize::try_from(h.size).ok()?)?;
        table.get(start..end).map(<[u8]>::to_vec)
    };
    if let Some(filter) = slice(footer.filter) {
        parts.push(("filter", filter));
    }
    let Some(index) = slice(footer.index) else {
        return parts;
    };
    let first = block(&index).and_then(|b| {
        let mut it = b.iter();
        it.seek_to_first().ok()?;
        it.valid()
            .then(|| BlockHandle::decode_varint(it.value_slice()))?
    });
    parts.push(("index", index));
    if let Some(data) = first.and_then(slice) {
        parts.push(("data", data));
    }
    parts
}

/// Test support: records framed and checksummed by the crate's own encoders, carrying whatever
/// numbers the caller picks (absurd ones included), to test how recovery treats a record whose
/// checksum holds but whose fields cannot be right. Each record is seeded with the `nonce` of
/// the file it is meant for ([`craft::nonce_of`] reads a file's).
pub mod craft {
    use engine_api::BatchOp;

    use crate::key::{self, Kind};
    use crate::version::{FileMeta, VersionEdit};
    use crate::wal::format::{
        Head, RecordKind, encode_batch, encode_file_header, encode_header, encode_record,
        read_file_header,
    };

    /// The largest sequence number an internal key holds.
    pub const MAX_SEQ: u64 = key::MAX_SEQ;

    /// The nonce in the verified header of a WAL, manifest or compaction log, if it has one.
    pub fn nonce_of(file: &[u8]) -> Option<u32> {
        [
            RecordKind::WalHeader,
            RecordKind::ManifestHeader,
            RecordKind::CompactionLogHeader,
        ]
        .into_iter()
        .find_map(|kind| match read_file_header(file, kind, kind) {
            Head::Good(head) => Some(head.nonce),
            _ => None,
        })
    }

    /// The header record of a WAL with `nonce` that follows no other WAL.
    pub fn wal_header(nonce: u32) -> Vec<u8> {
        encode_file_header(RecordKind::WalHeader, nonce, &encode_header(0, 0))
    }

    /// The header record of a manifest with `nonce`.
    pub fn manifest_header(nonce: u32) -> Vec<u8> {
        encode_file_header(RecordKind::ManifestHeader, nonce, &[])
    }

    /// A WAL batch record for a file with `nonce`.
    pub fn wal_batch(nonce: u32, first_seq: u64, synced: u64, ops: &[BatchOp]) -> Vec<u8> {
        wal_record(nonce, &encode_batch(first_seq, synced, ops))
    }

    /// A WAL batch payload (`synced` 0), to frame with [`wal_record`].
    pub fn encode_batch_payload(first_seq: u64, ops: &[BatchOp]) -> Vec<u8> {
        encode_batch(first_seq, 0, ops)
    }

    /// A WAL batch record around an arbitrary payload, for a file with `nonce`.
    pub fn wal_record(nonce: u32, payload: &[u8]) -> Vec<u8> {
        encode_record(nonce, RecordKind::Batch, payload)
    }

    /// An internal key (a put) of `user` at `seq`.
    pub fn internal_key(user: &[u8], seq: u64) -> Vec<u8> {
        key::encode(user, seq, Kind::Put)
    }

    /// A table as a manifest records it.
    #[derive(Clone, Debug, Default)]
    pub struct Table {
        pub number: u64,
        pub size: u64,
        pub smallest: Vec<u8>,
        pub largest: Vec<u8>,
        pub min_seq: u64,
        pub max_seq: u64,
        pub entries: u64,
        pub tombstones: u64,
    }

    /// A manifest version edit.
    #[derive(Clone, Debug, Default)]
    pub struct Edit {
        pub log_number: Option<u64>,
        pub next_file_number: Option<u64>,
        pub last_sequence: Option<u64>,
        pub deleted: Vec<(u32, u64)>,
        pub added: Vec<(u32, Table)>,
    }

    /// A manifest record holding `edit`, for a file with `nonce`.
    pub fn manifest_record(nonce: u32, edit: &Edit) -> Vec<u8> {
        let added = edit
            .added
            .iter()
            .map(|(level, t)| (*level, meta(t)))
            .collect();
        let edit = VersionEdit {
            log_number: edit.log_number,
            next_file_number: edit.next_file_number,
            last_sequence: edit.last_sequence,
            deleted: edit.deleted.clone(),
            added,
            ..VersionEdit::default()
        };
        encode_record(nonce, RecordKind::Edit, &edit.encode())
    }

    fn meta(t: &Table) -> FileMeta {
        FileMeta {
            number: t.number,
            size: t.size,
            smallest: t.smallest.clone(),
            largest: t.largest.clone(),
            min_seq: t.min_seq,
            max_seq: t.max_seq,
            entries: t.entries,
            tombstones: t.tombstones,
        }
    }
}
