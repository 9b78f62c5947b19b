//! The conformance checks. Each takes a factory and panics with a message naming what broke.
//! Run them all with [`crate::conformance_tests!`].
//!
//! Every check runs on a fresh [`SimStorage`], so checks are independent, fast, and able to
//! simulate power loss.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::EngineFactory;
use crate::{
    CrashMode, Engine, Error, FaultOp, KeyRange, MAX_KEY_LEN, MAX_VALUE_LEN, SimStorage, Storage,
    SyncPolicy, WriteBatch,
};

/// The directory every check uses inside its simulated storage.
pub const DIR: &str = "/db";

/// A map of a whole engine's contents.
pub type Contents = BTreeMap<Vec<u8>, Vec<u8>>;

/// Opens the engine on `sim` in [`DIR`], panicking with the error if it fails.
pub fn open(f: &dyn EngineFactory, sim: &SimStorage, sync: SyncPolicy) -> Box<dyn Engine> {
    match f.open(Arc::new(sim.clone()), Path::new(DIR), sync) {
        Ok(engine) => engine,
        Err(e) => panic!("open failed: {e}"),
    }
}

/// Everything in the engine, read by a full scan (checked to be in ascending key order).
pub fn contents(engine: &dyn Engine) -> Contents {
    let mut out = Contents::new();
    let scan = engine
        .scan(KeyRange::all())
        .unwrap_or_else(|e| panic!("scan failed: {e}"));
    let mut last: Option<Vec<u8>> = None;
    for item in scan {
        let (k, v) = item.unwrap_or_else(|e| panic!("scan item failed: {e}"));
        if let Some(prev) = &last {
            assert!(
                prev.as_slice() < k.as_ref(),
                "scan out of order: {prev:?} then {k:?}"
            );
        }
        last = Some(k.to_vec());
        out.insert(k.to_vec(), v.to_vec());
    }
    out
}

fn get(engine: &dyn Engine, key: &[u8]) -> Option<Vec<u8>> {
    engine
        .get(key)
        .unwrap_or_else(|e| panic!("get {key:?} failed: {e}"))
        .map(|v| v.to_vec())
}

fn put(engine: &dyn Engine, key: &[u8], value: &[u8]) {
    engine
        .put(key, value)
        .unwrap_or_else(|e| panic!("put {key:?} failed: {e}"));
}

fn del(engine: &dyn Engine, key: &[u8]) {
    engine
        .delete(key)
        .unwrap_or_else(|e| panic!("delete {key:?} failed: {e}"));
}

fn scan_keys(engine: &dyn Engine, range: KeyRange) -> Vec<Vec<u8>> {
    engine
        .scan(range)
        .unwrap_or_else(|e| panic!("scan failed: {e}"))
        .map(|r| {
            r.unwrap_or_else(|e| panic!("scan item failed: {e}"))
                .0
                .to_vec()
        })
        .collect()
}

/// Put, get, overwrite, delete, missing keys, empty values, binary keys.
pub fn basic_semantics(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Always);
    assert_eq!(get(&*e, b"missing"), None, "missing key must read as None");
    put(&*e, b"k", b"v1");
    assert_eq!(get(&*e, b"k").as_deref(), Some(&b"v1"[..]));
    put(&*e, b"k", b"v2");
    assert_eq!(
        get(&*e, b"k").as_deref(),
        Some(&b"v2"[..]),
        "overwrite lost"
    );
    del(&*e, b"k");
    assert_eq!(get(&*e, b"k"), None, "delete not visible");
    del(&*e, b"never-written");
    put(&*e, b"empty", b"");
    assert_eq!(get(&*e, b"empty").as_deref(), Some(&b""[..]), "empty value");
    let binary = [0u8, 255, 0, 10, 13];
    put(&*e, &binary, &binary);
    assert_eq!(get(&*e, &binary).as_deref(), Some(&binary[..]));
    put(&*e, b"k", b"v3");
    assert_eq!(
        get(&*e, b"k").as_deref(),
        Some(&b"v3"[..]),
        "put after delete"
    );
}

/// Empty and oversized keys, oversized values: invalid arguments, nothing written.
pub fn limits_are_enforced(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Always);
    let invalid = |r: crate::Result<()>, what: &str| match r {
        Err(Error::InvalidArgument(_)) => {}
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    };
    invalid(e.put(b"", b"v"), "empty key");
    invalid(e.delete(b""), "empty key delete");
    assert!(
        matches!(e.get(b""), Err(Error::InvalidArgument(_))),
        "empty key get"
    );
    let long_key = vec![b'k'; MAX_KEY_LEN + 1];
    invalid(e.put(&long_key, b"v"), "oversized key");
    let long_value = vec![0u8; MAX_VALUE_LEN + 1];
    invalid(e.put(b"k", &long_value), "oversized value");
    let max_key = vec![b'm'; MAX_KEY_LEN];
    put(&*e, &max_key, b"fits");
    assert_eq!(get(&*e, &max_key).as_deref(), Some(&b"fits"[..]));
    let mut batch = WriteBatch::new();
    batch.put(b"good", b"1").put(b"", b"bad");
    invalid(e.write(&batch), "batch with an empty key");
    assert_eq!(
        get(&*e, b"good"),
        None,
        "a rejected batch applied part of itself"
    );
    let got = contents(&*e);
    assert_eq!(
        got.len(),
        1,
        "rejected writes left data behind: {:?}",
        got.keys()
    );
}

/// Batches apply all their operations, later ones winning, and survive reopen together.
pub fn batches_are_atomic_and_ordered(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Always);
    put(&*e, b"a", b"old");
    put(&*e, b"b", b"old");
    let mut batch = WriteBatch::new();
    batch
        .put(b"a", b"new")
        .delete(b"b")
        .put(b"c", b"first")
        .put(b"c", b"second")
        .put(b"d", b"x")
        .delete(b"d");
    e.write(&batch)
        .unwrap_or_else(|err| panic!("batch failed: {err}"));
    e.write(&WriteBatch::new())
        .unwrap_or_else(|err| panic!("empty batch failed: {err}"));
    let expect: Contents = [
        (b"a".to_vec(), b"new".to_vec()),
        (b"c".to_vec(), b"second".to_vec()),
    ]
    .into_iter()
    .collect();
    assert_eq!(contents(&*e), expect, "batch applied wrongly");
    drop(e);
    let e = open(f, &sim, SyncPolicy::Always);
    assert_eq!(contents(&*e), expect, "batch changed by reopen");
}

/// Scans over empty engines, unbounded, inclusive and exclusive ends, single keys, empty and
/// reversed ranges.
pub fn scans_at_the_edges(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Never);
    assert!(
        scan_keys(&*e, KeyRange::all()).is_empty(),
        "scan of an empty engine"
    );
    for k in [&b"a"[..], b"b", b"c", b"d", b"\x00", b"\xff\xff"] {
        put(&*e, k, k);
    }
    del(&*e, b"c");
    let keys = |r: KeyRange| scan_keys(&*e, r);
    let v = |ks: &[&[u8]]| ks.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        keys(KeyRange::all()),
        v(&[b"\x00", b"a", b"b", b"d", b"\xff\xff"])
    );
    assert_eq!(keys(KeyRange::new(&b"a"[..]..&b"d"[..])), v(&[b"a", b"b"]));
    assert_eq!(
        keys(KeyRange::new(&b"a"[..]..=&b"d"[..])),
        v(&[b"a", b"b", b"d"])
    );
    assert_eq!(
        keys(KeyRange::new(&b"b"[..]..)),
        v(&[b"b", b"d", b"\xff\xff"])
    );
    assert_eq!(keys(KeyRange::new(..&b"b"[..])), v(&[b"\x00", b"a"]));
    assert_eq!(
        keys(KeyRange::new(&b"b"[..]..=&b"b"[..])),
        v(&[b"b"]),
        "single key"
    );
    assert_eq!(
        keys(KeyRange::new(&b"c"[..]..=&b"c"[..])),
        v(&[]),
        "deleted single key"
    );
    assert_eq!(
        keys(KeyRange::new(&b"b"[..]..&b"b"[..])),
        v(&[]),
        "empty range"
    );
    let excluded = KeyRange {
        start: std::ops::Bound::Excluded(b"a".to_vec()),
        end: std::ops::Bound::Excluded(b"d".to_vec()),
    };
    assert_eq!(keys(excluded), v(&[b"b"]), "exclusive start");
    let reversed = e.scan(KeyRange::new(&b"d"[..]..&b"a"[..]));
    assert!(
        matches!(reversed, Err(Error::InvalidArgument(_))),
        "a reversed range must be an invalid argument"
    );
}

/// A scan reads one consistent view: writes made while it is open do not show up in it.
pub fn scan_sees_a_consistent_view(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Never);
    for i in 0..200u32 {
        put(&*e, format!("key{i:04}").as_bytes(), b"before");
    }
    let mut scan = e
        .scan(KeyRange::all())
        .unwrap_or_else(|err| panic!("scan: {err}"));
    let first = scan.next();
    assert!(first.is_some(), "scan yielded nothing");
    for i in 0..200u32 {
        put(&*e, format!("key{i:04}").as_bytes(), b"after");
    }
    put(&*e, b"key9999", b"after");
    del(&*e, b"key0100");
    let mut n = 1;
    for item in scan {
        let (k, v) = item.unwrap_or_else(|err| panic!("scan item: {err}"));
        assert_eq!(v.as_ref(), b"before", "scan saw a later write to {k:?}");
        n += 1;
    }
    assert_eq!(n, 200, "scan saw keys added or removed after it began");
}

/// Many rounds of overwrites and deletes over a small key space, compared with a map, with
/// compactions in between.
pub fn overwrite_and_delete_churn(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Never);
    let mut model = Contents::new();
    let mut x: u64 = 1;
    for round in 0..6 {
        for i in 0..400u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let key = format!("k{:03}", (x >> 33) % 64).into_bytes();
            if (x >> 20).is_multiple_of(4) {
                del(&*e, &key);
                model.remove(&key);
            } else {
                let value = format!("r{round}-i{i}-{}", "v".repeat(((x >> 40) % 300) as usize));
                put(&*e, &key, value.as_bytes());
                model.insert(key, value.into_bytes());
            }
        }
        if round % 2 == 1 {
            e.compact()
                .unwrap_or_else(|err| panic!("compact failed: {err}"));
        }
        assert_eq!(contents(&*e), model, "contents differ after round {round}");
        for (k, v) in &model {
            assert_eq!(
                get(&*e, k).as_ref(),
                Some(v),
                "get {k:?} after round {round}"
            );
        }
    }
    drop(e);
    let e = open(f, &sim, SyncPolicy::Never);
    assert_eq!(contents(&*e), model, "contents differ after reopen");
}

/// Dropping the engine is a clean shutdown under every policy: reopen finds everything.
pub fn reopen_keeps_everything(f: &dyn EngineFactory) {
    let policies = [
        SyncPolicy::Always,
        SyncPolicy::Periodic(Duration::from_millis(5)),
        SyncPolicy::Never,
    ];
    for policy in policies {
        let sim = SimStorage::new();
        let e = open(f, &sim, policy);
        let mut model = Contents::new();
        for i in 0..300u32 {
            let key = format!("key{:03}", i % 120).into_bytes();
            let value = format!("value-{i}").into_bytes();
            put(&*e, &key, &value);
            model.insert(key, value);
        }
        del(&*e, b"key007");
        model.remove(&b"key007"[..]);
        drop(e);
        // A power loss right after a clean shutdown must lose nothing either.
        let after = sim.crash(CrashMode::DropUnsynced, 1);
        let e = open(f, &after, policy);
        assert_eq!(
            contents(&*e),
            model,
            "{policy:?}: data lost across a clean shutdown"
        );
        put(&*e, b"after-reopen", b"ok");
        assert_eq!(get(&*e, b"after-reopen").as_deref(), Some(&b"ok"[..]));
    }
}

/// A second open of a directory that is open fails with `Error::Locked`.
pub fn second_open_is_locked(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Always);
    put(&*e, b"k", b"v");
    match f.open(Arc::new(sim.clone()), Path::new(DIR), SyncPolicy::Always) {
        Err(Error::Locked { .. }) => {}
        Err(other) => panic!("second open: expected Locked, got {other}"),
        Ok(_) => panic!("second open of a locked directory succeeded"),
    }
    drop(e);
    let e = open(f, &sim, SyncPolicy::Always);
    assert_eq!(get(&*e, b"k").as_deref(), Some(&b"v"[..]));
}

/// A failed sync poisons the engine: the write fails, later writes are refused without another
/// sync, reads go on, and a reopen recovers every write acknowledged before the failure.
pub fn failed_sync_poisons(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Always);
    put(&*e, b"before", b"durable");
    sim.inject_fault(FaultOp::Sync, 0, false);
    let failed = e.put(b"during", b"x");
    assert!(failed.is_err(), "a put whose sync failed was acknowledged");
    assert!(
        sim.fault_fired(),
        "the put did not sync under SyncPolicy::Always"
    );
    let syncs = sim.calls(FaultOp::Sync);
    for attempt in [e.put(b"after", b"x"), e.delete(b"before")] {
        assert!(
            matches!(attempt, Err(Error::Poisoned { .. })),
            "write after a failed sync: expected Poisoned, got {attempt:?}"
        );
    }
    let mut batch = WriteBatch::new();
    batch.put(b"batch", b"x");
    assert!(
        matches!(e.write(&batch), Err(Error::Poisoned { .. })),
        "batch after poison"
    );
    assert!(
        e.sync().is_err(),
        "sync after a failed sync reported success"
    );
    assert_eq!(
        sim.calls(FaultOp::Sync),
        syncs,
        "the engine retried a failed sync"
    );
    assert_eq!(
        get(&*e, b"before").as_deref(),
        Some(&b"durable"[..]),
        "reads must go on"
    );
    drop(e);
    let after = sim.crash(CrashMode::DropUnsynced, 3);
    let e = open(f, &after, SyncPolicy::Always);
    assert_eq!(
        get(&*e, b"before").as_deref(),
        Some(&b"durable"[..]),
        "acknowledged write lost"
    );
    assert_eq!(get(&*e, b"after"), None, "a refused write appeared");
    put(&*e, b"after-reopen", b"ok");
}

/// Under `Always`, every acknowledged write survives every kind of power loss.
pub fn always_policy_survives_power_loss(f: &dyn EngineFactory) {
    for (seed, mode) in CrashMode::ALL.into_iter().enumerate() {
        let sim = SimStorage::new();
        let e = open(f, &sim, SyncPolicy::Always);
        let mut model = Contents::new();
        for i in 0..150u32 {
            let key = format!("key{:03}", i % 50).into_bytes();
            if i % 7 == 3 {
                del(&*e, &key);
                model.remove(&key);
            } else {
                let value = format!("v{i}-{}", "x".repeat((i % 40) as usize)).into_bytes();
                put(&*e, &key, &value);
                model.insert(key, value);
            }
        }
        let after = sim.crash(mode, seed as u64);
        drop(e);
        let e = open(f, &after, SyncPolicy::Always);
        assert_eq!(
            contents(&*e),
            model,
            "{mode:?}: acknowledged writes lost or invented"
        );
    }
}

/// Under `Never`, `sync()` makes everything before it durable.
pub fn sync_makes_never_policy_durable(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Never);
    for i in 0..100u32 {
        put(&*e, format!("key{i:03}").as_bytes(), b"synced");
    }
    e.sync().unwrap_or_else(|err| panic!("sync failed: {err}"));
    let after = sim.crash(CrashMode::DropUnsynced, 9);
    drop(e);
    let e = open(f, &after, SyncPolicy::Never);
    let got = contents(&*e);
    assert_eq!(got.len(), 100, "writes before sync() were lost");
    assert!(got.values().all(|v| v == b"synced"));
}

/// Writers on disjoint keys and readers run at once; every write is visible afterwards and
/// readers only ever see values that were written.
pub fn concurrent_writers_and_readers(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e: Arc<dyn Engine> = Arc::from(open(f, &sim, SyncPolicy::Always));
    let writers: Vec<_> = (0..4u32)
        .map(|t| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                for i in 0..100u32 {
                    let key = format!("t{t}-k{:02}", i % 30);
                    e.put(key.as_bytes(), format!("t{t}-v{i}").as_bytes())
                        .unwrap_or_else(|err| panic!("concurrent put: {err}"));
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2u32)
        .map(|_| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                for i in 0..300u32 {
                    let t = i % 4;
                    let key = format!("t{t}-k{:02}", i % 30);
                    if let Some(v) = e.get(key.as_bytes()).unwrap_or_else(|err| panic!("{err}")) {
                        let prefix = format!("t{t}-v");
                        assert!(v.starts_with(prefix.as_bytes()), "read another key's value");
                    }
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(readers) {
        t.join().unwrap_or_else(|_| panic!("a thread panicked"));
    }
    for t in 0..4u32 {
        for k in 0..30u32 {
            let last = (70..100).find(|i| i % 30 == k).unwrap_or(k);
            let key = format!("t{t}-k{k:02}");
            assert_eq!(
                get(&*e, key.as_bytes()),
                Some(format!("t{t}-v{last}").into_bytes()),
                "last write to {key} lost"
            );
        }
    }
}

/// `Stats` counts user bytes and sees log I/O at the seam.
pub fn stats_count_user_bytes(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Always);
    put(&*e, b"abc", b"12345");
    del(&*e, b"abc");
    let mut batch = WriteBatch::new();
    batch.put(b"xy", b"z");
    e.write(&batch).unwrap_or_else(|err| panic!("{err}"));
    let stats = e.stats();
    assert_eq!(
        stats.user_bytes_written,
        8 + 3 + 3,
        "user bytes = keys + values"
    );
    assert_eq!(stats.user_writes, 3);
    let written = stats.io.total().bytes_written;
    assert!(
        written >= 14,
        "storage saw {written} bytes, less than the user wrote"
    );
    assert!(
        stats.io.total().syncs >= 3,
        "Always must sync each acknowledged write"
    );
    assert!(
        stats.disk_bytes > 0 && stats.file_count > 0,
        "disk usage not reported"
    );
}

/// The model test under `Always`: see [`super::model`].
pub fn model_always(f: &dyn EngineFactory) {
    super::model::run(f, SyncPolicy::Always);
}

/// The model test under `Never`: see [`super::model`].
pub fn model_never(f: &dyn EngineFactory) {
    super::model::run(f, SyncPolicy::Never);
}

/// A crash at every durability point of [`super::crash_points::default_workload`], in every
/// power-loss mode, under `Always` and `Never`.
pub fn crash_at_every_durability_point(f: &dyn EngineFactory) {
    let steps = super::crash_points::default_workload();
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let report = super::crash_points::run(f, policy, &steps);
        assert!(report.states_checked > 0, "no crash state was checked");
        eprintln!(
            "{policy:?}: {} durability points, {} crash states checked",
            report.points, report.states_checked
        );
    }
}

/// Under `Always`, a write becomes visible to other readers only once it is durable: while its
/// sync is held, readers see the old value; if that sync fails, they never see the new one.
pub fn writes_visible_only_once_durable(f: &dyn EngineFactory) {
    for fail in [false, true] {
        let storage = super::gate::GatedStorage::default();
        let e: Arc<dyn Engine> = Arc::from(
            f.open(
                Arc::new(storage.clone()),
                Path::new(DIR),
                SyncPolicy::Always,
            )
            .unwrap_or_else(|err| panic!("open failed: {err}")),
        );
        put(&*e, b"k", b"old");
        storage.hook.arm();
        if fail {
            storage.sim.inject_fault(FaultOp::Sync, 0, false);
        }
        let writer = {
            let e = Arc::clone(&e);
            std::thread::spawn(move || e.put(b"k", b"new"))
        };
        storage.hook.wait_holding();
        for _ in 0..10 {
            assert_eq!(
                get(&*e, b"k").as_deref(),
                Some(&b"old"[..]),
                "a write was visible before it was durable"
            );
            assert_eq!(
                contents(&*e).get(&b"k"[..]).map(Vec::as_slice),
                Some(&b"old"[..])
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        storage.hook.open();
        let result = writer
            .join()
            .unwrap_or_else(|_| panic!("the writer thread panicked"));
        // Another sync (a flush, a rotation) may have met the gate or the fault first, so judge
        // by the write's own outcome: acknowledged means visible, refused means never visible.
        let want: &[u8] = if result.is_ok() { b"new" } else { b"old" };
        assert_eq!(
            get(&*e, b"k").as_deref(),
            Some(want),
            "fail={fail}: the put returned {result:?}"
        );
    }
}

/// Opens read-only through the factory, panicking if it cannot.
fn open_read_only(f: &dyn EngineFactory, sim: &SimStorage) -> crate::Result<Box<dyn Engine>> {
    f.open_read_only(Arc::new(sim.clone()), Path::new(DIR))
        .unwrap_or_else(|| {
            panic!("the factory has no read-only open: wrap it with testing::with_read_only")
        })
}

/// Every live file with its contents.
fn files_and_contents(sim: &SimStorage) -> BTreeMap<std::path::PathBuf, Option<Vec<u8>>> {
    sim.all_files()
        .into_iter()
        .map(|p| {
            let data = sim.read_file(&p);
            (p, data)
        })
        .collect()
}

/// A read-only open works on a read-only file system (a read-only mount, a directory the user
/// cannot write) and writes nothing: no file created, not even the lock file when it is
/// missing, nothing appended, synced, renamed or removed, by the open, by reads, by refused
/// writes, by `sync` and `compact`, or by the close. Readers share the directory; a writer is
/// excluded while one reads, whether or not the lock file exists.
pub fn read_only_open_writes_nothing(f: &dyn EngineFactory) {
    let sim = SimStorage::new();
    let e = open(f, &sim, SyncPolicy::Always);
    let mut model = Contents::new();
    for i in 0..60u32 {
        let key = format!("key{:02}", i % 40).into_bytes();
        let value = format!("v{i}").into_bytes();
        put(&*e, &key, &value);
        model.insert(key, value);
    }
    del(&*e, b"key03");
    model.remove(&b"key03"[..]);
    drop(e);
    for lock_file in [true, false] {
        if !lock_file {
            // A directory copied without its lock file, or one whose lock file was cleaned up.
            for p in sim.all_files() {
                if p.file_name().is_some_and(|n| n == "LOCK") {
                    Storage::remove(&sim, &p).unwrap_or_else(|err| panic!("remove LOCK: {err}"));
                }
            }
        }
        let before = files_and_contents(&sim);
        sim.set_read_only(true);
        let ro = open_read_only(f, &sim).unwrap_or_else(|err| {
            panic!(
                "lock file present: {lock_file}: read-only open failed on a read-only file \
                 system: {err}; refused writes: {:?}",
                sim.refused_writes()
            )
        });
        assert_eq!(contents(&*ro), model, "read-only open sees other contents");
        assert_eq!(get(&*ro, b"key01").as_deref(), Some(&b"v41"[..]));
        let second = open_read_only(f, &sim)
            .unwrap_or_else(|err| panic!("a second reader was refused: {err}"));
        assert_eq!(get(&*second, b"key39").as_deref(), Some(&b"v39"[..]));
        let refused = |r: crate::Result<()>, what: &str| match r {
            Err(Error::ReadOnly) => {}
            other => panic!("{what} on a read-only engine: expected ReadOnly, got {other:?}"),
        };
        refused(ro.put(b"new", b"x"), "put");
        refused(ro.delete(b"key01"), "delete");
        let mut batch = WriteBatch::new();
        batch.put(b"batch", b"x");
        refused(ro.write(&batch), "write");
        let _ = ro.compact();
        let _ = ro.sync();
        sim.set_read_only(false);
        match f.open(Arc::new(sim.clone()), Path::new(DIR), SyncPolicy::Always) {
            Err(Error::Locked { .. }) => {}
            Err(other) => panic!("writer while a reader holds the directory: {other}"),
            Ok(_) => panic!("a writer opened a directory held by a reader"),
        }
        sim.set_read_only(true);
        drop(second);
        drop(ro);
        assert_eq!(
            sim.refused_writes(),
            Vec::<String>::new(),
            "lock file present: {lock_file}: a read-only engine tried to write"
        );
        assert!(
            files_and_contents(&sim) == before,
            "lock file present: {lock_file}: a read-only engine changed the files"
        );
        sim.set_read_only(false);
    }
    let missing = f.open_read_only(Arc::new(sim.clone()), Path::new("/missing"));
    assert!(
        missing.is_some_and(|r| r.is_err()),
        "read-only open of a missing directory"
    );
    assert!(
        !Storage::exists(&sim, Path::new("/missing")).unwrap_or(true),
        "read-only open created the directory"
    );
}

/// Waits (putting more keys meanwhile, so that the periodic task always has something to sync)
/// until the periodic task has completed `target` syncs. A hang guard, not a timing check.
fn write_until_periodic_syncs(e: &dyn Engine, sim: &SimStorage, target: u64, acked: &mut Vec<u64>) {
    let started = std::time::Instant::now();
    while sim.periodic_syncs() < target {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the periodic task completed no sync in a minute"
        );
        let i = acked.len();
        put(e, &periodic_key(i), &periodic_value(i));
        acked.push(sim.periodic_syncs());
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn periodic_key(i: usize) -> Vec<u8> {
    format!("p{i:06}").into_bytes()
}

fn periodic_value(i: usize) -> Vec<u8> {
    format!("v{i}-{}", "x".repeat(i % 50)).into_bytes()
}

/// Under `Periodic(d)`, a power loss loses at most the last `d` plus one sync of acknowledged
/// writes, and what survives is a prefix of them (no holes). "At most `d` plus one sync" is
/// judged by observed syncs, not by wall time, so a loaded machine cannot make the check flaky:
/// once the periodic task has completed two syncs since a write was acknowledged (so one of its
/// runs began after the acknowledgement), that write must survive. Every power-loss mode.
pub fn periodic_policy_loses_at_most_one_period(f: &dyn EngineFactory) {
    let policy = SyncPolicy::Periodic(Duration::from_millis(2));
    for (seed, mode) in CrashMode::POWER_LOSS.into_iter().enumerate() {
        let sim = SimStorage::new();
        let e = open(f, &sim, policy);
        // Per acknowledged write, in order: the periodic syncs completed when it was acked.
        let mut acked: Vec<u64> = Vec::new();
        for round in 0..4 {
            for _ in 0..25 {
                let i = acked.len();
                put(&*e, &periodic_key(i), &periodic_value(i));
                acked.push(sim.periodic_syncs());
            }
            if round < 3 {
                let target = sim.periodic_syncs() + 2;
                write_until_periodic_syncs(&*e, &sim, target, &mut acked);
            }
        }
        let synced = sim.periodic_syncs();
        let after = sim.crash(mode, seed as u64);
        drop(e);
        let e = open(f, &after, policy);
        let got = contents(&*e);
        let survived = (0..acked.len())
            .take_while(|&i| got.get(&periodic_key(i)) == Some(&periodic_value(i)))
            .count();
        assert_eq!(
            got.len(),
            survived,
            "{mode:?}: what survived is not a prefix of the acknowledged writes (first {survived} \
             intact, {} keys in all)",
            got.len()
        );
        let covered = acked.iter().filter(|&&at| synced >= at + 2).count();
        assert!(
            survived >= covered,
            "{mode:?}: {covered} writes were acknowledged before a whole periodic sync ran, only \
             {survived} survived ({} acknowledged)",
            acked.len()
        );
    }
}

/// The engine's own directory, created by the open, survives a power loss right after it:
/// its name is durable once its parent is synced, which nothing but the open can do.
pub fn new_directory_survives_power_loss(f: &dyn EngineFactory) {
    for (seed, mode) in CrashMode::POWER_LOSS.into_iter().enumerate() {
        let sim = SimStorage::new();
        let e = open(f, &sim, SyncPolicy::Always);
        put(&*e, b"k", b"v");
        let after = sim.crash(mode, seed as u64);
        drop(e);
        assert!(
            Storage::exists(&after, Path::new(DIR)).unwrap_or(false),
            "{mode:?}: the directory the open created vanished"
        );
        let e = open(f, &after, SyncPolicy::Always);
        assert_eq!(
            get(&*e, b"k").as_deref(),
            Some(&b"v"[..]),
            "{mode:?}: acknowledged write lost"
        );
    }
    // An open cut off after creating the directory but before syncing its parent (here: that
    // sync fails), then a successful open that finds the directory: the name must still be
    // made durable before writes are acknowledged in it.
    let sim = SimStorage::new();
    sim.inject_fault(FaultOp::SyncDir, 0, false);
    if let Ok(e) = f.open(Arc::new(sim.clone()), Path::new(DIR), SyncPolicy::Always) {
        drop(e);
    }
    let e = open(f, &sim, SyncPolicy::Always);
    put(&*e, b"k", b"v");
    let after = sim.crash(CrashMode::UndoDirOps, 7);
    drop(e);
    let e = open(f, &after, SyncPolicy::Always);
    assert_eq!(
        get(&*e, b"k").as_deref(),
        Some(&b"v"[..]),
        "after an open whose directory sync failed, a later open left the directory's name \
         unsynced: acknowledged write lost"
    );
}

/// Puts and deletes with a compaction in the middle; with `freeze`, the storage freezes at
/// that durability point from the compaction on, and the workload stops at the first error.
fn crash_workload(e: &dyn Engine, sim: &SimStorage, freeze: Option<u64>) {
    let ok = |r: crate::Result<()>| match r {
        Ok(()) => true,
        Err(_) if sim.is_frozen() => false,
        Err(err) => panic!("workload failed: {err}"),
    };
    for i in 0..300u32 {
        let key = format!("key{:03}", i % 90).into_bytes();
        let value = format!("v{i}-{}", "y".repeat((i % 60) as usize)).into_bytes();
        let r = if i % 11 == 5 {
            e.delete(&key)
        } else {
            e.put(&key, &value)
        };
        if !ok(r) {
            return;
        }
        if i == 150 {
            if let Some(n) = freeze {
                sim.freeze_after(&FaultOp::DURABILITY_POINTS, n);
            }
            if !ok(e.compact().map(drop)) || !ok(e.sync()) {
                return;
            }
        }
    }
}

/// A read-only open of what a crash left (torn tails, unsynced files, leftovers of an
/// interrupted compaction) writes nothing either, repairs nothing, and reads what a read-write
/// open reads after its repairs.
pub fn read_only_open_after_a_crash_writes_nothing(f: &dyn EngineFactory) {
    let cases = [
        (CrashMode::KeepPrefix, None),
        (CrashMode::GarbleTail, None),
        (CrashMode::UndoDirOps, None),
        (CrashMode::KeepAll, Some(2)),
        (CrashMode::KeepAll, Some(5)),
        (CrashMode::DropUnsynced, Some(3)),
    ];
    for (seed, (mode, freeze)) in cases.into_iter().enumerate() {
        let sim = SimStorage::new();
        let e = open(f, &sim, SyncPolicy::Never);
        crash_workload(&*e, &sim, freeze);
        let after = sim.crash(mode, seed as u64);
        drop(e);
        let case = format!("{mode:?}, frozen at durability point {freeze:?} of the compaction");
        let before = files_and_contents(&after);
        after.set_read_only(true);
        let ro = open_read_only(f, &after).unwrap_or_else(|err| {
            panic!(
                "{case}: read-only open after a crash failed: {err}; refused writes: {:?}",
                after.refused_writes()
            )
        });
        let seen = contents(&*ro);
        drop(ro);
        assert_eq!(
            after.refused_writes(),
            Vec::<String>::new(),
            "{case}: a read-only open after a crash tried to write"
        );
        assert!(
            files_and_contents(&after) == before,
            "{case}: a read-only open after a crash changed the files"
        );
        after.set_read_only(false);
        let rw = open(f, &after, SyncPolicy::Never);
        assert_eq!(
            contents(&*rw),
            seen,
            "{case}: the read-only open read other contents than the read-write open"
        );
    }
}
