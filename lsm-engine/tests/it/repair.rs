//! The salvage open (`LsmOptions::salvage`, `docs/lsm.md` "Repair"): with `CURRENT`, the
//! manifest, a table or a WAL damaged, the table set is rebuilt from the files on disk, every
//! intact record kept, the damage skipped and reported, the new manifest made durable before
//! anything old goes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine_api::{
    CrashMode, Engine, Error, FaultOp, IoClass, KeyRange, Result, SimStorage, Storage, SyncPolicy,
};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::{files_with, key, tiny_options, value};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn options(sim: &SimStorage, salvage: bool) -> LsmOptions {
    LsmOptions {
        salvage,
        auto_compaction: false,
        ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
    }
}

fn open(sim: &SimStorage, salvage: bool) -> Result<LsmEngine> {
    LsmEngine::open("/db", options(sim, salvage))
}

/// Three rounds of overwrites and deletes, one compaction, then more writes: tables in L0 and
/// deeper levels, several WALs, values still in the memtable. Cleanly closed.
fn populate(sim: &SimStorage) -> Model {
    let e = open(sim, false).unwrap();
    let mut model = Model::new();
    for round in 0..3 {
        for i in 0..60 {
            if (i + round) % 7 == 0 {
                e.delete(&key(i)).unwrap();
                model.remove(&key(i));
            } else {
                e.put(&key(i), &value(i, round)).unwrap();
                model.insert(key(i), value(i, round));
            }
        }
        if round == 1 {
            e.compact().unwrap();
        }
    }
    model
}

fn manifest(sim: &SimStorage) -> PathBuf {
    sim.all_files()
        .into_iter()
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("MANIFEST-") && !name.contains('.')
        })
        .unwrap()
}

/// Every key reads as the model says, by get and by scan.
fn assert_holds(e: &LsmEngine, model: &Model) {
    for i in 0..60 {
        assert_eq!(
            e.get(&key(i)).unwrap().as_deref(),
            model.get(&key(i)).map(Vec::as_slice),
            "key {i}"
        );
    }
    let scanned: Model = e
        .scan(KeyRange::all())
        .unwrap()
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(&scanned, model);
}

type Damager = fn(&SimStorage);

fn damaged_current(sim: &SimStorage) {
    sim.overwrite_file(Path::new("/db/CURRENT"), b"MANIFEST-00x\n".to_vec());
}

fn damaged_manifest(sim: &SimStorage) {
    let path = manifest(sim);
    let mut bytes = sim.read_file(&path).unwrap();
    bytes[12] ^= 0x10;
    sim.overwrite_file(&path, bytes);
}

fn missing_current(sim: &SimStorage) {
    sim.remove(Path::new("/db/CURRENT")).unwrap();
}

#[test]
fn a_salvage_open_rebuilds_the_table_set_when_current_or_the_manifest_is_unusable() {
    let cases: [(&str, Damager); 3] = [
        ("damaged CURRENT", damaged_current),
        ("damaged manifest", damaged_manifest),
        ("missing CURRENT", missing_current),
    ];
    for (case, damage) in cases {
        let sim = SimStorage::new();
        let model = populate(&sim);
        damage(&sim);
        let refused = open(&sim, false).err();
        assert!(
            refused.as_ref().is_some_and(Error::is_corruption),
            "{case}: the normal open must refuse: {refused:?}"
        );
        let e = open(&sim, true).unwrap_or_else(|e| panic!("{case}: salvage open: {e}"));
        let report = e.recovery_report().clone();
        assert!(report.rebuilt_after.is_some(), "{case}: {report:?}");
        assert!(
            report.skipped.is_empty(),
            "{case}: nothing was damaged but {report:?}"
        );
        assert_eq!(report.entries_kept, model.len() as u64, "{case}");
        assert_holds(&e, &model);
        e.put(b"after", b"repair").unwrap();
        drop(e);
        // The rebuilt directory opens without salvage, and the old manifest was kept aside.
        let e = open(&sim, false).unwrap_or_else(|e| panic!("{case}: reopen: {e}"));
        assert!(e.recovery_report().rebuilt_after.is_none());
        assert_eq!(e.get(b"after").unwrap().as_deref(), Some(&b"repair"[..]));
        let mut with_after = model.clone();
        with_after.insert(b"after".to_vec(), b"repair".to_vec());
        assert_holds_with(&e, &with_after);
        if case == "damaged manifest" {
            assert!(
                report
                    .moved_aside
                    .iter()
                    .any(|p| p.to_string_lossy().contains("MANIFEST-")),
                "{report:?}"
            );
            assert!(!files_with(&sim, ".salvaged").is_empty());
        }
    }
}

fn assert_holds_with(e: &LsmEngine, model: &Model) {
    for (k, v) in model {
        assert_eq!(e.get(k).unwrap().as_deref(), Some(v.as_slice()));
    }
}

/// A damaged data block is skipped and reported (its table kept aside); every other record is
/// kept. A key whose newest version was in the block reads as an older version (a salvage
/// cannot know better), never as a value that was never written.
#[test]
fn a_damaged_table_block_is_skipped_and_reported() {
    let sim = SimStorage::new();
    let model = populate(&sim);
    let table = files_with(&sim, ".sst").pop().unwrap();
    let mut t = sim.read_file(&table).unwrap();
    t[3] ^= 0x01; // inside the first data block
    sim.overwrite_file(&table, t);
    damaged_manifest(&sim);
    let e = open(&sim, true).unwrap();
    let report = e.recovery_report().clone();
    assert!(
        report.skipped.iter().any(|d| d.path == table),
        "the damaged block is reported: {report:?}"
    );
    let aside = format!("{}.salvaged", table.display());
    assert!(
        report
            .moved_aside
            .iter()
            .any(|p| p.to_string_lossy() == aside)
    );
    let mut older = 0;
    for i in 0..60 {
        let got = e.get(&key(i)).unwrap();
        if got.as_deref() == model.get(&key(i)).map(Vec::as_slice) {
            continue;
        }
        older += 1;
        let written = (0..3).any(|r| got.as_deref() == Some(value(i, r).as_slice()));
        assert!(got.is_none() || written, "key {i}: a value never written");
    }
    assert!(
        older < 30,
        "{older} keys differ: more than one block's worth"
    );
    eprintln!("{older} of 60 keys read an older version");
}

#[test]
fn a_damaged_older_wal_record_is_skipped_and_the_rest_kept() {
    let sim = SimStorage::new();
    let e = LsmEngine::open(
        "/db",
        LsmOptions {
            memtable_bytes: 1 << 20,
            ..options(&sim, false)
        },
    )
    .unwrap();
    for i in 0..20 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    drop(e);
    let wal = files_with(&sim, ".log").pop().unwrap();
    // A newer WAL after it makes it an older, complete one: damage in it is corruption.
    let bytes = sim.read_file(&wal).unwrap();
    let newer = sim
        .create(&wal.with_file_name("999999.log"), IoClass::Other)
        .unwrap();
    newer.sync().unwrap();
    sim.sync_dir(Path::new("/db")).unwrap();
    let mut bad = bytes;
    bad[40] ^= 0x10; // inside the first batch
    sim.overwrite_file(&wal, bad);
    assert!(open(&sim, false).err().is_some_and(|e| e.is_corruption()));
    let e = open(&sim, true).unwrap();
    let report = e.recovery_report().clone();
    assert!(report.skipped.iter().any(|d| d.path == wal), "{report:?}");
    assert_eq!(e.get(&key(0)).unwrap(), None, "the damaged record");
    for i in 1..20 {
        assert_eq!(
            e.get(&key(i)).unwrap().as_deref(),
            Some(value(i, 0).as_slice()),
            "key {i}"
        );
    }
}

/// The repair protocol at every durability point: a power loss anywhere in the salvage open
/// leaves a directory that a second salvage open repairs with every key (the old manifest is
/// never removed before the new one is durable).
#[test]
fn a_crash_at_every_step_of_a_repair_loses_nothing() {
    let pristine = SimStorage::new();
    let model = populate(&pristine);
    damaged_manifest(&pristine);
    let points = [
        FaultOp::Sync,
        FaultOp::SyncDir,
        FaultOp::Rename,
        FaultOp::Remove,
    ];
    let mut n = 1;
    loop {
        let sim = pristine.crash(CrashMode::KeepAll, 0);
        sim.freeze_after(&points, n);
        let finished = open(&sim, true).is_ok() && !sim.is_frozen();
        for (i, mode) in CrashMode::ALL.into_iter().enumerate() {
            let image = sim.crash(mode, n * 7 + i as u64);
            let e = open(&image, true)
                .unwrap_or_else(|e| panic!("crash after point {n} ({mode:?}): reopen: {e}"));
            assert_holds(&e, &model);
        }
        if finished {
            break;
        }
        n += 1;
    }
    eprintln!("repair: {n} durability points");
}

/// A crash leaves the newest WAL with its preallocated tail of zeros (`docs/formats/wal.md`,
/// "Preallocation"): the unwritten end of the file, which a salvage open must not report as
/// damage.
#[test]
fn a_salvage_open_does_not_report_a_preallocated_zero_tail_as_damage() {
    let running = SimStorage::new();
    let e = LsmEngine::open(
        "/db",
        LsmOptions {
            memtable_bytes: 1 << 20,
            ..options(&running, false)
        },
    )
    .unwrap();
    for i in 0..20 {
        e.put(&key(i), &value(i, 0)).unwrap();
    }
    let sim = running.crash(CrashMode::DropUnsynced, 1);
    drop(e);
    let wal = files_with(&sim, ".log").pop().unwrap();
    assert_eq!(
        sim.read_file(&wal).unwrap().last(),
        Some(&0),
        "no zero tail to test"
    );
    damaged_current(&sim);
    let e = open(&sim, true).unwrap();
    let report = e.recovery_report().clone();
    assert!(report.skipped.is_empty(), "{report:?}");
    for i in 0..20 {
        assert_eq!(
            e.get(&key(i)).unwrap().as_deref(),
            Some(value(i, 0).as_slice())
        );
    }
}
