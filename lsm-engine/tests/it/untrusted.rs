//! Records whose checksum holds but whose numbers cannot be right (crafted with the crate's own
//! encoders, `lsm_engine::fuzzing::craft`): recovery reports them as corruption, never a panic,
//! an overflow, a huge allocation or a silently truncated internal key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine_api::{BatchOp, Engine, Error, IoClass, SimStorage, Storage, SyncPolicy};
use lsm_engine::fuzzing::craft::{self, Edit, MAX_SEQ, Table};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::{files_with, key, tiny_options, value};

fn options(sim: &SimStorage) -> LsmOptions {
    LsmOptions {
        memtable_bytes: 1 << 20,
        ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
    }
}

fn read_only(sim: &SimStorage) -> LsmOptions {
    let mut o = options(sim);
    o.common.read_only = true;
    o
}

/// A cleanly closed engine with ten keys in its WAL.
fn base() -> SimStorage {
    let sim = SimStorage::new();
    let e = LsmEngine::open("/db", options(&sim)).unwrap();
    for i in 0..10 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    drop(e);
    sim
}

fn manifest(sim: &SimStorage) -> PathBuf {
    sim.all_files()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("MANIFEST-"))
        .unwrap()
}

/// `base()` with `record` (framed for the file's nonce) appended to `file` (the newest WAL or
/// the manifest).
fn with_appended(
    file: impl Fn(&SimStorage) -> PathBuf,
    record: impl Fn(u32) -> Vec<u8>,
) -> (SimStorage, PathBuf) {
    let sim = base();
    let path = file(&sim);
    let mut bytes = sim.read_file(&path).unwrap();
    let nonce = craft::nonce_of(&bytes).unwrap();
    bytes.extend_from_slice(&record(nonce));
    sim.overwrite_file(&path, bytes);
    (sim, path)
}

fn newest_wal(sim: &SimStorage) -> PathBuf {
    files_with(sim, ".log").pop().unwrap()
}

/// Opening `sim` read-only and writable both fail with a corruption error naming `path`.
fn assert_corrupt(sim: &SimStorage, path: &Path, case: &str) {
    for opts in [read_only(sim), options(sim)] {
        match LsmEngine::open("/db", opts) {
            Err(Error::Corruption { path: p, .. }) if p == path => {}
            Err(e) => panic!("{case}: open failed with the wrong error: {e}"),
            Ok(_) => panic!("{case}: open accepted it"),
        }
    }
}

fn put(k: &[u8], v: &[u8]) -> BatchOp {
    BatchOp::Put {
        key: k.to_vec(),
        value: v.to_vec(),
    }
}

#[test]
fn wal_batches_with_impossible_sequence_numbers_are_corruption() {
    let two = [put(b"a", b"1"), put(b"b", b"2")];
    let cases = [
        ("first_seq + len - 1 overflows u64", u64::MAX, &two[..]),
        (
            "last sequence number one past the maximum",
            MAX_SEQ,
            &two[..],
        ),
        (
            "first sequence number past the maximum",
            MAX_SEQ + 1,
            &two[..1],
        ),
        ("sequence number zero", 0, &two[..1]),
    ];
    for (case, first_seq, ops) in cases {
        let (sim, wal) = with_appended(newest_wal, |n| craft::wal_batch(n, first_seq, 0, ops));
        assert_corrupt(&sim, &wal, case);
    }
}

#[test]
fn wal_batches_with_impossible_keys_or_counts_are_corruption() {
    let long_key = vec![b'k'; engine_api::MAX_KEY_LEN + 1];
    let mut absurd_count = Vec::new();
    absurd_count.extend_from_slice(&20u64.to_le_bytes());
    absurd_count.extend_from_slice(&0u64.to_le_bytes());
    absurd_count.extend_from_slice(&u32::MAX.to_le_bytes());
    absurd_count.extend_from_slice(&[1, 1, b'k', 1, b'v']);
    let cases = [
        (
            "an empty key",
            craft::encode_batch_payload(20, &[put(b"", b"v")]),
        ),
        (
            "a key over the limit",
            craft::encode_batch_payload(20, &[put(&long_key, b"v")]),
        ),
        ("a count of u32::MAX", absurd_count),
    ];
    for (case, payload) in cases {
        let (sim, wal) = with_appended(newest_wal, |n| craft::wal_record(n, &payload));
        assert_corrupt(&sim, &wal, case);
    }
}

#[test]
fn manifest_edits_with_impossible_numbers_are_corruption() {
    let table = |max_seq: u64| Table {
        number: 9,
        size: 100,
        smallest: craft::internal_key(b"a", 1),
        largest: craft::internal_key(b"b", 1),
        min_seq: 1,
        max_seq,
        entries: 2,
        tombstones: 0,
    };
    let cases = [
        (
            "last_sequence u64::MAX",
            Edit {
                last_sequence: Some(u64::MAX),
                ..Edit::default()
            },
        ),
        (
            "last_sequence past the internal key's maximum",
            Edit {
                last_sequence: Some(MAX_SEQ + 1),
                ..Edit::default()
            },
        ),
        (
            "next_file_number u64::MAX",
            Edit {
                next_file_number: Some(u64::MAX),
                ..Edit::default()
            },
        ),
        (
            "a deleted file number past the counter's range",
            Edit {
                deleted: vec![(0, u64::MAX)],
                ..Edit::default()
            },
        ),
        (
            "a table with max_seq past the maximum",
            Edit {
                added: vec![(1, table(u64::MAX))],
                ..Edit::default()
            },
        ),
        (
            "a table at level 4 billion",
            Edit {
                added: vec![(u32::MAX, table(5))],
                ..Edit::default()
            },
        ),
    ];
    for (case, edit) in cases {
        let (sim, path) = with_appended(manifest, |n| craft::manifest_record(n, &edit));
        assert_corrupt(&sim, &path, case);
    }
}

#[test]
fn a_file_number_the_counter_cannot_reach_is_corruption() {
    let sim = base();
    let huge = PathBuf::from(format!("/db/{}.log", u64::MAX));
    let f = sim.create(&huge, IoClass::Other).unwrap();
    f.sync().unwrap();
    sim.sync_dir(Path::new("/db")).unwrap();
    assert_corrupt(&sim, &huge, "a WAL numbered u64::MAX");
}

/// A WAL holding the largest sequence number but one: the next write takes the last one, and
/// the one after must be refused rather than wrap its sequence number to zero (which would make
/// it older than every other version of its key).
#[test]
fn writes_past_the_largest_sequence_number_are_refused() {
    let (sim, _) = with_appended(newest_wal, |n| {
        craft::wal_batch(n, MAX_SEQ - 1, 0, &[put(b"k", b"v0")])
    });
    let e = LsmEngine::open("/db", options(&sim)).unwrap();
    assert_eq!(e.get(b"k").unwrap().as_deref(), Some(&b"v0"[..]));
    e.put(b"k", b"v1").unwrap();
    assert_eq!(e.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
    let refused = e.put(b"k", b"v2");
    let got = e.get(b"k").unwrap();
    match refused {
        Err(Error::InvalidArgument(_)) => assert_eq!(got.as_deref(), Some(&b"v1"[..])),
        Err(e) => panic!("the write failed with the wrong error: {e}"),
        Ok(()) => assert_eq!(
            got.as_deref(),
            Some(&b"v2"[..]),
            "an acknowledged write is older than the one before it"
        ),
    }
    drop(e);
    let e = LsmEngine::open("/db", options(&sim)).unwrap();
    assert_eq!(e.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
}
