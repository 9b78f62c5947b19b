//! Bitcask-specific behaviour: partial merges and tombstones, read-only opens, hints, stats,
//! traces, leftovers, and the real file system.

use std::path::Path;
use std::sync::Arc;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{
    CrashMode, Engine, Error, IoClass, OsStorage, SimStorage, Storage, SyncPolicy, WriteBatch,
};

use crate::common::{contents, open_tiny, options, tiny, tiny_manual};

fn data_files(sim: &SimStorage) -> Vec<String> {
    sim.all_files()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".data"))
        .collect()
}

/// basho #82: merging the file with a tombstone but not the older file holding the put must
/// not bring the key back.
#[test]
fn partial_merge_never_resurrects_a_delete() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    // Old, fully live files: the put of "victim" and plenty of live neighbours.
    e.put(b"victim", &[7; 100]).unwrap();
    for i in 0..24u32 {
        e.put(format!("live{i:02}").as_bytes(), &[1; 100]).unwrap();
    }
    // Newer files that are mostly garbage, one of which holds the tombstone.
    e.delete(b"victim").unwrap();
    for round in 0..6u32 {
        for i in 0..8u32 {
            e.put(
                format!("junk{i}").as_bytes(),
                &[u8::try_from(round).unwrap(); 100],
            )
            .unwrap();
        }
    }
    let sealed = e.stats().files.len() - 1;
    let summary = e
        .merge_if_needed()
        .unwrap()
        .expect("fragmented files trigger a merge");
    assert!(summary.files_in >= 1);
    assert!(
        (summary.files_in as usize) < sealed,
        "the test needs a partial merge"
    );
    assert_eq!(e.get(b"victim").unwrap(), None);
    drop(e);
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    assert_eq!(
        e.get(b"victim").unwrap(),
        None,
        "a partial merge resurrected a delete"
    );
    // Once everything is merged the tombstone is no longer needed.
    let all = e.compact().unwrap();
    assert!(all.tombstones_dropped >= 1);
    drop(e);
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    assert_eq!(e.get(b"victim").unwrap(), None);
    assert_eq!(e.get(b"live07").unwrap().as_deref(), Some(&[1u8; 100][..]));
}

#[test]
fn read_only_open_shares_the_directory_and_never_writes() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Always, false);
    for i in 0..50u32 {
        e.put(format!("k{i:02}").as_bytes(), format!("v{i}").as_bytes())
            .unwrap();
    }
    e.delete(b"k03").unwrap();
    // Leave the active file with a torn tail: a crash keeping a garbled unsynced append.
    let mut batch = WriteBatch::new();
    batch.put(b"torn", b"x");
    let image = {
        let before = sim.crash(CrashMode::KeepAll, 0);
        drop(e);
        before
    };
    let active = data_files(&image).into_iter().max().unwrap();
    let path = Path::new("/db").join(&active);
    let mut bytes = image.read_file(&path).unwrap();
    bytes.extend_from_slice(&[0xAB; 37]);
    image.overwrite_file(&path, bytes.clone());
    let files_before = image.all_files();

    let ro = |sim: &SimStorage| {
        let mut o = tiny(Arc::new(sim.clone()), SyncPolicy::Always);
        o.common.read_only = true;
        BitcaskEngine::open("/db", o).unwrap()
    };
    let a = ro(&image);
    let b = ro(&image);
    assert_eq!(a.get(b"k10").unwrap().as_deref(), Some(&b"v10"[..]));
    assert_eq!(b.get(b"k03").unwrap(), None);
    assert_eq!(contents(&a).len(), 49);
    assert!(
        !a.recovery_report().torn_tails.is_empty(),
        "torn tail not reported"
    );
    assert!(matches!(a.put(b"x", b"y"), Err(Error::ReadOnly)));
    assert!(matches!(a.delete(b"x"), Err(Error::ReadOnly)));
    assert!(matches!(a.write(&batch), Err(Error::ReadOnly)));
    assert!(matches!(a.compact(), Err(Error::ReadOnly)));
    let rw = BitcaskEngine::open("/db", tiny(Arc::new(image.clone()), SyncPolicy::Always));
    assert!(
        matches!(rw, Err(Error::Locked { .. })),
        "a writer opened beside readers"
    );
    drop((a, b));
    assert_eq!(
        image.all_files(),
        files_before,
        "a read-only open changed the directory"
    );
    assert_eq!(
        image.read_file(&path).unwrap(),
        bytes,
        "a read-only open repaired a file"
    );
}

#[test]
fn reopen_after_clean_close_reads_only_hints() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    for i in 0..200u32 {
        e.put(format!("key{:03}", i % 80).as_bytes(), &i.to_le_bytes())
            .unwrap();
        if i % 9 == 0 {
            e.delete(format!("key{:03}", i % 13).as_bytes()).unwrap();
        }
    }
    let before = contents(&e);
    drop(e);
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    let report = e.recovery_report().clone();
    assert!(report.files_from_hints > 3, "{report:?}");
    assert_eq!(report.files_scanned, 0, "{report:?}");
    assert_eq!(contents(&e), before);
    let io = e.stats().io;
    assert!(io.class(IoClass::Recovery).bytes_read > 0);
    // A damaged hint is ignored and its data file scanned instead.
    drop(e);
    let hint = sim
        .all_files()
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "hint"))
        .unwrap();
    let mut bytes = sim.read_file(&hint).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    sim.overwrite_file(&hint, bytes);
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    assert_eq!(e.recovery_report().hints_ignored.len(), 1);
    assert_eq!(e.recovery_report().files_scanned, 1);
    assert_eq!(contents(&e), before);
}

#[test]
fn stats_report_files_live_ratios_and_keydir_memory() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    for i in 0..300u32 {
        e.put(format!("key{:03}", i % 100).as_bytes(), &[0; 50])
            .unwrap();
    }
    let s = e.stats();
    assert_eq!(s.engine, "bitcask");
    assert_eq!(s.live_keys, 100);
    assert!(s.files.len() > 5);
    let live: u64 = s.files.iter().filter_map(|f| f.live_bytes).sum();
    assert_eq!(live, 100 * (23 + 6 + 50), "live bytes = the live records");
    assert!(
        s.files.iter().any(|f| f.live_ratio().unwrap() < 0.5),
        "no dead bytes seen"
    );
    assert!(s.index_memory_bytes > 0);
    let summary = e.compact().unwrap();
    assert_eq!(summary.records_out, 100);
    assert_eq!(summary.stale_dropped, 200);
    let s = e.stats();
    assert_eq!(s.compactions, 1);
    assert!(s.compaction_wall > std::time::Duration::ZERO);
    assert!(s.io.class(IoClass::Compaction).bytes_written > 0);
    for f in s.files.iter().filter(|f| f.bytes > 1000) {
        assert!(
            f.live_ratio().unwrap() > 0.9,
            "merged file {f:?} is not live"
        );
    }
}

#[test]
fn keydir_overhead_is_at_most_40_bytes_per_key() {
    let sim = SimStorage::new();
    let e = BitcaskEngine::open("/db", options(Arc::new(sim), SyncPolicy::Never)).unwrap();
    let empty = e.stats().index_memory_bytes;
    let n = 200_000u64;
    for i in 0..n {
        e.put(format!("{i:016}").as_bytes(), b"v").unwrap();
    }
    let used = e.stats().index_memory_bytes - empty;
    let per_key = (used - 16 * n) as f64 / n as f64;
    assert!(
        per_key <= 40.0,
        "keydir overhead {per_key:.1} bytes per 16-byte key"
    );
}

#[test]
fn explain_get_names_the_keydir_hit_and_the_one_read() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    e.put(b"k", b"value").unwrap();
    let hit = e.explain_get(b"k").unwrap();
    assert_eq!(hit.value.as_deref(), Some(&b"value"[..]));
    assert_eq!(hit.steps.len(), 2);
    assert!(hit.steps[0].what.starts_with("keydir: hit"));
    assert_eq!(hit.reads(), 1, "read amplification must be exactly 1");
    assert_eq!(hit.bytes(), 23 + 1 + 5);
    let miss = e.explain_get(b"nope").unwrap();
    assert_eq!((miss.reads(), miss.value), (0, None));
}

#[test]
fn open_removes_uncommitted_merge_leftovers() {
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Always, false);
    e.put(b"a", b"1").unwrap();
    drop(e);
    for name in [
        "0000000900.merging",
        "0000000900.hint",
        "MERGE-0000000901.tmp",
    ] {
        let f = sim
            .create(&Path::new("/db").join(name), IoClass::Other)
            .unwrap();
        f.append(b"leftover").unwrap();
    }
    let e = open_tiny(&sim, SyncPolicy::Always, false);
    assert_eq!(e.recovery_report().leftovers_removed.len(), 3);
    assert_eq!(e.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    e.put(b"b", b"2").unwrap();
    assert!(
        sim.all_files()
            .iter()
            .all(|p| !p.to_string_lossy().contains("0000000900"))
    );
}

#[test]
fn options_are_validated() {
    let sim: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut o = options(sim.clone(), SyncPolicy::Never);
    o.max_file_size = 10;
    assert!(matches!(
        BitcaskEngine::open("/db", o),
        Err(Error::InvalidArgument(_))
    ));
    let mut o = options(sim, SyncPolicy::Never);
    o.merge.frag_trigger = 1.5;
    assert!(matches!(
        BitcaskEngine::open("/db", o),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn real_file_system_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let o = BitcaskOptions {
        max_file_size: 4096,
        ..options(Arc::new(OsStorage::new()), SyncPolicy::Always)
    };
    let e = BitcaskEngine::open(dir.path(), o.clone()).unwrap();
    for i in 0..500u32 {
        e.put(
            format!("k{:03}", i % 150).as_bytes(),
            &[u8::try_from(i % 200).unwrap(); 40],
        )
        .unwrap();
    }
    e.delete(b"k001").unwrap();
    let summary = e.compact().unwrap();
    assert!(summary.files_removed > 0);
    let before = contents(&e);
    drop(e);
    let e = BitcaskEngine::open(dir.path(), o).unwrap();
    assert_eq!(contents(&e), before);
    assert_eq!(e.get(b"k001").unwrap(), None);
}

/// A merge that crashed right after its commit record was renamed into place: a read-only open
/// serves the committed state without touching the directory, and a read-write open rolls the
/// merge forward.
#[test]
fn committed_merge_is_rolled_forward() {
    use engine_api::FaultOp;
    let sim = SimStorage::new();
    let e = open_tiny(&sim, SyncPolicy::Never, false);
    for i in 0..120u32 {
        e.put(
            format!("k{:02}", i % 30).as_bytes(),
            &[u8::try_from(i).unwrap(); 60],
        )
        .unwrap();
    }
    e.delete(b"k07").unwrap();
    let model = contents(&e);
    // `compact` renames twice: the new active file into place, then the commit record.
    sim.freeze_after(&[FaultOp::Rename], 2);
    assert!(e.compact().is_err(), "the storage froze inside the commit");
    let image = sim.crash(CrashMode::KeepAll, 0);
    drop(e);
    let names = |s: &SimStorage| -> Vec<String> {
        s.all_files()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert!(names(&image).iter().any(|n| n.starts_with("MERGE-")));
    assert!(names(&image).iter().any(|n| n.ends_with(".merging")));
    let before = names(&image);
    {
        let mut o = tiny(Arc::new(image.clone()), SyncPolicy::Never);
        o.common.read_only = true;
        let ro = BitcaskEngine::open("/db", o).unwrap();
        assert_eq!(contents(&ro), model);
    }
    assert_eq!(
        names(&image),
        before,
        "the read-only open changed the directory"
    );
    let e = open_tiny(&image, SyncPolicy::Never, false);
    assert_eq!(e.recovery_report().merges_rolled_forward, 1);
    assert_eq!(contents(&e), model);
    let after = names(&image);
    assert!(
        after
            .iter()
            .all(|n| !n.starts_with("MERGE-") && !n.ends_with(".merging"))
    );
}

#[test]
fn rate_limited_merge_completes_with_the_same_result() {
    let sim = SimStorage::new();
    let mut o = tiny(Arc::new(sim.clone()), SyncPolicy::Never);
    o.merge.auto = false;
    o.merge.rate_limit = Some(4 << 20);
    let e = BitcaskEngine::open("/db", o).unwrap();
    for i in 0..400u32 {
        e.put(
            format!("k{:02}", i % 40).as_bytes(),
            &[u8::try_from(i % 256).unwrap(); 50],
        )
        .unwrap();
    }
    let before = contents(&e);
    let s = e.compact().unwrap();
    assert_eq!((s.records_out, s.stale_dropped), (40, 360));
    assert!(s.bytes_read > 0 && s.bytes_written > 0);
    assert_eq!(contents(&e), before);
}

#[test]
fn smallest_file_size_gives_one_record_per_file() {
    let sim = SimStorage::new();
    // Manual merges: a background merge of the one-record files could run before they are
    // counted (it did, about once in 15 runs).
    let mut o = tiny_manual(Arc::new(sim.clone()), SyncPolicy::Never);
    o.max_file_size = bitcask_engine::MIN_FILE_SIZE;
    let e = BitcaskEngine::open("/db", o.clone()).unwrap();
    for i in 0..20u32 {
        e.put(format!("k{}", i % 7).as_bytes(), &i.to_le_bytes())
            .unwrap();
    }
    let mut batch = WriteBatch::new();
    batch.put(b"b1", &[1; 100]).put(b"b2", &[2; 100]);
    e.write(&batch).unwrap();
    let before = contents(&e);
    assert!(data_files(&sim).len() > 15);
    e.compact().unwrap();
    assert_eq!(contents(&e), before);
    drop(e);
    let e = BitcaskEngine::open("/db", o).unwrap();
    assert_eq!(contents(&e), before);
}
