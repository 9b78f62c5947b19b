//! Engine behaviour beyond the shared contract: snapshots, flush and compaction effects, the
//! read path as `explain_get` reports it, stats, read-only opens.

use std::sync::Arc;

use engine_api::{CommonOptions, Engine, Error, KeyRange, SimStorage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::{
    default_options, files_with, key, open_tiny, open_tiny_manual, tiny_options, value,
};

fn scan_all(e: &LsmEngine, snap: Option<&lsm_engine::Snapshot>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let scan = match snap {
        Some(s) => e.scan_at(s, KeyRange::all()),
        None => e.scan(KeyRange::all()),
    };
    scan.unwrap()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

#[test]
fn snapshots_are_isolated_from_later_writes_flushes_and_compactions() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim);
    for i in 0..200 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    let snap = e.snapshot();
    let before = scan_all(&e, Some(&snap));
    assert_eq!(before.len(), 200);
    for i in 0..200 {
        if i % 3 == 0 {
            e.delete(&key(i)).unwrap();
        } else {
            e.put(&key(i), &value(i, 1)).unwrap();
        }
    }
    e.put(b"zz-new", b"after").unwrap();
    e.flush().unwrap();
    e.compact().unwrap();
    for i in (0..200).step_by(7) {
        assert_eq!(
            e.get_at(&snap, &key(i)).unwrap().as_deref(),
            Some(value(i, 0).as_slice()),
            "snapshot read of key {i}"
        );
    }
    assert_eq!(e.get_at(&snap, b"zz-new").unwrap(), None);
    assert_eq!(scan_all(&e, Some(&snap)), before, "snapshot scan changed");
    let now = scan_all(&e, None);
    assert_eq!(now.len(), 200 - 67 + 1);
    drop(snap);
    // With the snapshot gone, a compaction may drop the versions it kept.
    let summary = e.compact().unwrap();
    assert!(summary.stale_dropped > 0, "{summary:?}");
    assert_eq!(scan_all(&e, None), now);
}

#[test]
fn a_snapshot_of_another_engine_is_refused() {
    let (a, b) = (SimStorage::new(), SimStorage::new());
    let (ea, eb) = (open_tiny(&a), open_tiny(&b));
    let snap = ea.snapshot();
    assert!(matches!(
        eb.get_at(&snap, b"k"),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn compaction_merges_everything_into_the_last_level_and_returns_space() {
    let sim = SimStorage::new();
    let e = open_tiny_manual(&sim);
    for round in 0..3 {
        for i in 0..300 {
            e.put(&key(i), &value(i, round)).unwrap();
        }
    }
    e.flush().unwrap();
    let before = e.stats();
    assert!(before.levels[0].files > 3, "{:?}", before.levels[0]);
    for i in 0..300 {
        e.delete(&key(i)).unwrap();
    }
    let summary = e.compact().unwrap();
    assert_eq!(summary.records_out, 0, "{summary:?}");
    assert!(summary.tombstones_dropped >= 300, "{summary:?}");
    let after = e.stats();
    assert_eq!(after.files.len(), 0, "{:?}", after.files);
    assert!(
        files_with(&sim, ".sst").is_empty(),
        "input files not removed: {:?}",
        files_with(&sim, ".sst")
    );
    assert!(
        after.disk_bytes < before.disk_bytes / 4,
        "{} -> {}",
        before.disk_bytes,
        after.disk_bytes
    );
    assert_eq!(after.compactions, 1);
    assert_eq!(e.scan(KeyRange::all()).unwrap().count(), 0);
}

#[test]
fn stats_report_levels_files_and_index_memory() {
    let sim = SimStorage::new();
    let e = open_tiny_manual(&sim);
    for i in 0..500 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    e.compact().unwrap();
    let s = e.stats();
    assert_eq!(s.engine, "lsm");
    assert_eq!(s.levels.len(), 7);
    let last = &s.levels[6];
    assert!(
        last.files > 1,
        "tiny target size should split outputs: {last:?}"
    );
    assert_eq!(last.files as usize, s.files.len());
    assert_eq!(last.bytes, s.files.iter().map(|f| f.bytes).sum::<u64>());
    assert_eq!(last.compactions, 1);
    assert!(last.bytes_written > 0 && last.keys_in >= 500);
    assert!(s.levels[0].bytes_written > 0, "flush bytes into L0");
    let mut prev: Option<Vec<u8>> = None;
    for f in &s.files {
        assert_eq!(f.level, Some(6));
        let (lo, hi) = (
            f.smallest_key.clone().unwrap(),
            f.largest_key.clone().unwrap(),
        );
        assert!(lo <= hi);
        if let Some(p) = &prev {
            assert!(p < &lo, "files overlap in the last level");
        }
        prev = Some(hi);
    }
    assert!(s.index_memory_bytes > 0);
    assert_eq!(s.live_keys, 500);
    assert!(s.io.total().bytes_written > 0);
}

#[test]
fn a_memtables_memory_is_released_after_its_flush() {
    let sim = SimStorage::new();
    let options = LsmOptions {
        memtable_bytes: 1 << 20,
        ..default_options(Arc::new(sim.clone()), SyncPolicy::Never)
    };
    let e = LsmEngine::open("/db", options).unwrap();
    for i in 0..2000 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    // Range iterations over the memtable: what leaks with crossbeam-skiplist 0.1.3.
    for _ in 0..3 {
        assert_eq!(e.scan(KeyRange::all()).unwrap().count(), 2000);
    }
    let full = e.stats().index_memory_bytes;
    e.flush().unwrap();
    let flushed = e.stats().index_memory_bytes;
    // 2000 entries of some 80 charged bytes each (24 of them the tree slot): the memtable is
    // counted before its flush.
    assert!(full > 120_000, "{full}");
    assert!(
        flushed * 10 < full,
        "memtable memory still accounted after its flush: {full} -> {flushed}"
    );
    assert_eq!(
        e.get(&key(7)).unwrap().as_deref(),
        Some(value(7, 0).as_slice())
    );
}

#[test]
fn explain_get_walks_memtable_filters_and_blocks() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim);
    for i in 0..300 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    e.flush().unwrap();
    let first = e.explain_get(&key(42)).unwrap();
    assert_eq!(first.value.as_deref(), Some(value(42, 0).as_slice()));
    let text: Vec<&str> = first.steps.iter().map(|s| s.what.as_str()).collect();
    assert!(text[0].starts_with("memtable: miss"), "{text:#?}");
    let hit = first.steps.last().unwrap();
    assert!(
        hit.what.contains("from storage") && hit.what.contains("hit (value)"),
        "{text:#?}"
    );
    assert_eq!((hit.reads, hit.cached), (1, false));
    assert!(hit.bytes > 0);
    let again = e.explain_get(&key(42)).unwrap();
    let hit = again.steps.last().unwrap();
    assert!(
        hit.cached && hit.what.contains("block cache"),
        "{:#?}",
        again.steps
    );
    assert_eq!(again.reads(), 0);
    let missing = e.explain_get(b"key000042-absent").unwrap();
    assert_eq!(missing.value, None);
    e.put(b"fresh", b"v").unwrap();
    let mem = e.explain_get(b"fresh").unwrap();
    assert_eq!(mem.steps.len(), 1, "{:#?}", mem.steps);
    assert!(mem.steps[0].what.contains("hit (value)"));
}

#[test]
fn bloom_filters_spare_block_reads_for_absent_keys() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim);
    for i in 0..400 {
        e.put(&key(i * 2), &value(i, 0)).unwrap();
    }
    e.compact().unwrap();
    let (mut reads, mut filtered, mut passed) = (0, 0, 0);
    for i in 0..400 {
        let trace = e.explain_get(&key(i * 2 + 1)).unwrap();
        assert_eq!(trace.value, None);
        reads += trace.reads();
        for s in &trace.steps {
            filtered += usize::from(s.what.contains("bloom filter says absent"));
            passed += usize::from(s.what.contains("bloom filter says maybe"));
        }
    }
    // Keys between two tables' ranges consult no table at all; the rest meet a filter.
    assert!(
        filtered > 300,
        "the filter ruled out only {filtered} lookups"
    );
    assert!(
        passed <= 20,
        "{passed} false positives of {}",
        filtered + passed
    );
    assert!(reads <= 20, "{reads} block reads for absent keys");
}

#[test]
fn reopen_recovers_tables_and_wal_and_removes_orphans() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim);
    for i in 0..300 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    e.compact().unwrap();
    for i in 0..50 {
        e.put(&key(i), &value(i, 1)).unwrap();
    }
    drop(e);
    // A leftover of a flush that never committed.
    let orphan = std::path::Path::new("/db/999999.sst");
    engine_api::Storage::create(&sim, orphan, engine_api::IoClass::Other).unwrap();
    let e = open_tiny(&sim);
    assert!(
        !engine_api::Storage::exists(&sim, orphan).unwrap(),
        "orphan kept"
    );
    for i in 0..300 {
        let round = u32::from(i < 50);
        assert_eq!(
            e.get(&key(i)).unwrap().as_deref(),
            Some(value(i, round).as_slice())
        );
    }
    assert_eq!(files_with(&sim, "CURRENT").len(), 1);
    assert_eq!(files_with(&sim, ".tmp").len(), 0);
    let manifests = sim
        .all_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("MANIFEST-"))
        .count();
    assert_eq!(manifests, 1, "old manifests not removed");
}

#[test]
fn read_only_open_reads_and_refuses_writes() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim);
    for i in 0..100 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    drop(e);
    let files = sim.all_files();
    let options = LsmOptions {
        common: CommonOptions {
            read_only: true,
            ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always).common
        },
        ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
    };
    let ro = LsmEngine::open("/db", options).unwrap();
    assert_eq!(
        ro.get(&key(5)).unwrap().as_deref(),
        Some(value(5, 0).as_slice())
    );
    assert!(matches!(ro.put(b"k", b"v"), Err(Error::ReadOnly)));
    assert!(matches!(ro.compact(), Err(Error::ReadOnly)));
    drop(ro);
    assert_eq!(
        sim.all_files(),
        files,
        "a read-only open changed the directory"
    );
}

#[test]
fn bad_options_are_invalid_arguments() {
    let sim = SimStorage::new();
    let options = LsmOptions {
        block_bytes: 0,
        ..default_options(Arc::new(sim), SyncPolicy::Always)
    };
    assert!(matches!(
        LsmEngine::open("/db", options),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn replaced_tables_stay_readable_until_their_last_reader_lets_go() {
    let sim = SimStorage::new();
    let e = open_tiny_manual(&sim);
    for i in 0..300 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    e.flush().unwrap();
    let before = files_with(&sim, ".sst");
    assert!(before.len() > 2);
    let mut scan = e.scan(KeyRange::all()).unwrap();
    let first = scan.next().unwrap().unwrap();
    assert_eq!(first.0.as_ref(), key(0).as_slice());
    e.compact().unwrap();
    let live = files_with(&sim, ".sst");
    assert!(
        before.iter().all(|p| live.contains(p)),
        "a table a scan still reads was removed"
    );
    let rest: Vec<_> = scan.map(|r| r.unwrap()).collect();
    assert_eq!(rest.len(), 299, "the scan of the old version goes on");
    e.put(b"more", b"x").unwrap();
    e.flush().unwrap(); // drains the queue of obsolete files
    let after = files_with(&sim, ".sst");
    assert!(
        before.iter().all(|p| !after.contains(p)),
        "replaced tables were not removed once unread: {after:?}"
    );
}
