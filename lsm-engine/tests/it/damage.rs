//! Damaged tables, footers, WAL records and manifest records: typed errors, never a panic,
//! never a wrong value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine_api::{
    CommonOptions, Engine, Error, IoClass, KeyRange, SimStorage, Storage, SyncPolicy,
};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::{files_with, key, open_tiny, tiny_options, value};

fn read_only(sim: &SimStorage) -> LsmOptions {
    let base = tiny_options(Arc::new(sim.clone()), SyncPolicy::Always);
    LsmOptions {
        common: CommonOptions {
            read_only: true,
            ..base.common.clone()
        },
        ..base
    }
}

fn is_corruption_of(e: &Error, path: &Path) -> bool {
    matches!(e, Error::Corruption { path: p, .. } if p == path)
}

/// Writes `n` keys and flushes them into tables; returns the model.
fn populate(sim: &SimStorage, n: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let e = open_tiny(sim);
    let mut model = BTreeMap::new();
    for i in 0..n {
        e.put(&key(i), &value(i, 0)).unwrap();
        model.insert(key(i), value(i, 0));
    }
    e.flush().unwrap();
    model
}

/// Every read either returns the right value or a corruption error naming `path`.
fn check_reads(e: &LsmEngine, model: &BTreeMap<Vec<u8>, Vec<u8>>, path: &Path) -> bool {
    let mut saw_corruption = false;
    for (k, v) in model {
        match e.get(k) {
            Ok(got) => assert_eq!(got.as_deref(), Some(v.as_slice()), "wrong value for {k:?}"),
            Err(err) => {
                assert!(is_corruption_of(&err, path), "get: {err}");
                saw_corruption = true;
            }
        }
    }
    let mut scanned = 0;
    for item in e.scan(KeyRange::all()).unwrap() {
        match item {
            Ok((k, v)) => {
                assert_eq!(model.get(k.as_ref()).map(Vec::as_slice), Some(v.as_ref()));
                scanned += 1;
            }
            Err(err) => {
                assert!(is_corruption_of(&err, path), "scan: {err}");
                saw_corruption = true;
            }
        }
    }
    assert!(
        saw_corruption || scanned == model.len(),
        "scan lost keys without an error"
    );
    saw_corruption
}

#[test]
fn every_byte_flip_in_a_table_is_detected() {
    let sim = SimStorage::new();
    let model = populate(&sim, 60);
    let table = files_with(&sim, ".sst").into_iter().next().unwrap();
    let original = sim.read_file(&table).unwrap();
    let mut at_open = 0;
    let mut at_read = 0;
    for i in 0..original.len() {
        let mut bad = original.clone();
        bad[i] ^= 0x41;
        sim.overwrite_file(&table, bad);
        match LsmEngine::open("/db", read_only(&sim)) {
            Err(err) => {
                assert!(
                    is_corruption_of(&err, &table),
                    "open after flip at {i}: {err}"
                );
                at_open += 1;
            }
            Ok(e) => {
                if check_reads(&e, &model, &table) {
                    at_read += 1;
                }
            }
        }
    }
    sim.overwrite_file(&table, original.clone());
    eprintln!(
        "{} flips: {at_open} found at open, {at_read} at read",
        original.len()
    );
    assert_eq!(at_open + at_read, original.len(), "a flip went unnoticed");
    let e = LsmEngine::open("/db", read_only(&sim)).unwrap();
    assert!(!check_reads(&e, &model, &table));
}

#[test]
fn a_damaged_footer_fails_the_open() {
    let sim = SimStorage::new();
    populate(&sim, 50);
    let table = files_with(&sim, ".sst").into_iter().next().unwrap();
    let mut bytes = sim.read_file(&table).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1; // the magic number
    sim.overwrite_file(&table, bytes.clone());
    let err = LsmEngine::open("/db", read_only(&sim)).err().unwrap();
    assert!(is_corruption_of(&err, &table), "{err}");
    sim.overwrite_file(&table, bytes[..n - 10].to_vec());
    let err = LsmEngine::open("/db", read_only(&sim)).err().unwrap();
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
}

/// Makes the newest WAL an older one: copies it under a higher number, so it is no longer the
/// newest at open.
fn add_newer_wal(sim: &SimStorage, wal: &Path) -> PathBuf {
    let name = wal.file_name().unwrap().to_string_lossy().to_string();
    let number: u64 = name.trim_end_matches(".log").parse().unwrap();
    let newer = wal.with_file_name(format!("{:06}.log", number + 1000));
    let f = sim.create(&newer, IoClass::Other).unwrap();
    f.append(&sim.read_file(wal).unwrap()).unwrap();
    f.sync().unwrap();
    sim.sync_dir(Path::new("/db")).unwrap();
    newer
}

fn wal_with_data(sim: &SimStorage) -> PathBuf {
    drop(wal_with_data_open(sim));
    let wals = files_with(sim, ".log");
    assert_eq!(wals.len(), 1);
    wals.into_iter().next().unwrap()
}

/// 20 synced writes in one WAL, engine left open.
fn wal_with_data_open(sim: &SimStorage) -> LsmEngine {
    let e = LsmEngine::open(
        "/db",
        LsmOptions {
            memtable_bytes: 1 << 20,
            ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
        },
    )
    .unwrap();
    for i in 0..20 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    e
}

#[test]
fn damage_in_an_older_wal_is_corruption() {
    let sim = SimStorage::new();
    let wal = wal_with_data(&sim);
    add_newer_wal(&sim, &wal);
    let mut bytes = sim.read_file(&wal).unwrap();
    bytes[30] ^= 0x10;
    sim.overwrite_file(&wal, bytes);
    let err = LsmEngine::open("/db", read_only(&sim)).err().unwrap();
    assert!(is_corruption_of(&err, &wal), "{err}");
    let err = LsmEngine::open(
        "/db",
        tiny_options(Arc::new(sim.clone()), SyncPolicy::Always),
    )
    .err()
    .unwrap();
    assert!(is_corruption_of(&err, &wal), "{err}");
}

#[test]
fn a_torn_tail_of_the_newest_wal_is_cut_and_the_rest_kept() {
    // A crash, not a clean close: a clean close records the WAL's length, and then a cut end is
    // corruption (`clean_close.rs`).
    let running = SimStorage::new();
    let e = wal_with_data_open(&running);
    let sim = running.crash(engine_api::CrashMode::KeepAll, 0);
    drop(e);
    let wal = files_with(&sim, ".log").pop().unwrap();
    let bytes = sim.read_file(&wal).unwrap();
    // The last record ends before the WAL's preallocated zero tail (values never end in 0).
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    sim.overwrite_file(&wal, bytes[..end - 3].to_vec());
    let e = open_tiny(&sim);
    for i in 0..19 {
        assert_eq!(
            e.get(&key(i)).unwrap().as_deref(),
            Some(value(i, 0).as_slice())
        );
    }
    assert_eq!(e.get(&key(19)).unwrap(), None, "the torn record came back");
    e.put(b"after", b"ok").unwrap();
    drop(e);
    let e = open_tiny(&sim);
    assert_eq!(e.get(b"after").unwrap().as_deref(), Some(&b"ok"[..]));
    assert_eq!(
        e.get(&key(18)).unwrap().as_deref(),
        Some(value(18, 0).as_slice())
    );
}

/// A manifest with several records: a snapshot, then one edit per flush.
fn manifest_with_edits(sim: &SimStorage) -> PathBuf {
    let e = open_tiny(sim);
    for round in 0..3 {
        for i in 0..20 {
            e.put(&key(i), &value(i, round)).unwrap();
        }
        e.flush().unwrap();
    }
    drop(e);
    sim.all_files()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("MANIFEST-"))
        .unwrap()
}

#[test]
fn damage_before_the_last_manifest_record_is_corruption() {
    let sim = SimStorage::new();
    let manifest = manifest_with_edits(&sim);
    let bytes = sim.read_file(&manifest).unwrap();
    for at in [2usize, 6, 12, 20] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x08;
        sim.overwrite_file(&manifest, bad);
        let err = LsmEngine::open("/db", read_only(&sim)).err().unwrap();
        assert!(is_corruption_of(&err, &manifest), "flip at {at}: {err}");
    }
    sim.overwrite_file(&manifest, bytes);
    assert!(LsmEngine::open("/db", read_only(&sim)).is_ok());
}

#[test]
fn a_damaged_current_file_is_corruption() {
    let sim = SimStorage::new();
    manifest_with_edits(&sim);
    let current = Path::new("/db/CURRENT");
    sim.overwrite_file(current, b"MANIFEST-00x\n".to_vec());
    let err = LsmEngine::open("/db", read_only(&sim)).err().unwrap();
    assert!(is_corruption_of(&err, current), "{err}");
}

#[test]
fn a_missing_table_is_corruption() {
    let sim = SimStorage::new();
    populate(&sim, 50);
    let table = files_with(&sim, ".sst").into_iter().next().unwrap();
    sim.remove(&table).unwrap();
    sim.sync_dir(Path::new("/db")).unwrap();
    let err = LsmEngine::open("/db", read_only(&sim)).err().unwrap();
    assert!(is_corruption_of(&err, &table), "{err}");
}

/// Start offsets of the records of a manifest (WAL framing: crc, len, kind, payload).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 9 + len;
    }
    offsets
}

#[test]
fn damage_to_the_last_manifest_record_loses_nothing() {
    let sim = SimStorage::new();
    let options = LsmOptions {
        manifest_rollover_bytes: 1 << 20,
        ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
    };
    let e = LsmEngine::open("/db", options).unwrap();
    let mut model = BTreeMap::new();
    for round in 0..3 {
        for i in 0..40 {
            e.put(&key(i), &value(i, round)).unwrap();
            model.insert(key(i), value(i, round));
        }
        e.flush().unwrap();
    }
    drop(e);
    let manifest = sim
        .all_files()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("MANIFEST-"))
        .unwrap();
    let mut bytes = sim.read_file(&manifest).unwrap();
    let last = *record_offsets(&bytes).last().unwrap();
    assert!(last > 0, "the manifest holds more than its snapshot");
    bytes[last + 10] ^= 0x20;
    sim.overwrite_file(&manifest, bytes);
    // The damaged record reads as a torn write and is undone; what it made obsolete is still
    // there, so nothing is lost.
    let e = open_tiny(&sim);
    for (k, v) in &model {
        assert_eq!(
            e.get(k).unwrap().as_deref(),
            Some(v.as_slice()),
            "{k:?} lost"
        );
    }
}
