//! The clean-close protocol (`docs/lsm.md`, "Close"): after a clean close, the end of the newest
//! WAL is provable (the manifest records its synced length), so damage to any file of the
//! directory is either harmless or [`Error::Corruption`]; never a silent loss. After a crash the
//! last record of the newest WAL stays a torn tail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine_api::testing::damage::{self, DamageConfig};
use engine_api::{CrashMode, Engine, Error, Result, SimStorage, Storage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::{files_with, key, tiny_options, value};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Tiny tables, but a memtable big enough to keep the last writes in the WAL.
fn options(sim: &SimStorage) -> LsmOptions {
    LsmOptions {
        memtable_bytes: 1 << 20,
        auto_compaction: false,
        ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
    }
}

fn open(sim: &SimStorage) -> Result<LsmEngine> {
    LsmEngine::open("/db", options(sim))
}

/// 500 synced puts, all still in the newest WAL; returns the model and that WAL.
fn fill(sim: &SimStorage) -> (Model, LsmEngine) {
    let e = open(sim).unwrap();
    let mut model = Model::new();
    for i in 0..500 {
        e.put(&key(i), &value(i, 0)).unwrap();
        model.insert(key(i), value(i, 0));
    }
    (model, e)
}

fn newest_wal(sim: &SimStorage) -> PathBuf {
    files_with(sim, ".log").pop().unwrap()
}

/// Every key of `model` is there, or the open failed with a corruption error naming `path`.
fn kept_or_corrupt(
    sim: &SimStorage,
    model: &Model,
    path: &Path,
) -> std::result::Result<(), String> {
    let e = match open(sim) {
        Err(Error::Corruption { path: p, .. }) if p == path => return Ok(()),
        Err(e) => return Err(format!("open: {e}")),
        Ok(e) => e,
    };
    let lost = model
        .iter()
        .filter(|(k, v)| e.get(k).ok().flatten().as_deref() != Some(v.as_slice()))
        .count();
    if lost == 0 {
        Ok(())
    } else {
        Err(format!(
            "reopened without an error and {lost} acknowledged keys are gone"
        ))
    }
}

#[test]
fn a_truncated_wal_after_a_clean_close_is_corruption() {
    let sim = SimStorage::new();
    let (model, e) = fill(&sim);
    drop(e);
    let wal = newest_wal(&sim);
    let bytes = sim.read_file(&wal).unwrap();
    for cut in [bytes.len() - 1, bytes.len() - 3, bytes.len() / 2, 20] {
        let image = sim.crash(CrashMode::KeepAll, 0);
        image.overwrite_file(&wal, bytes[..cut].to_vec());
        kept_or_corrupt(&image, &model, &wal).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
    }
}

#[test]
fn a_flipped_byte_in_the_last_wal_record_after_a_clean_close_is_corruption() {
    let sim = SimStorage::new();
    let (model, e) = fill(&sim);
    drop(e);
    let wal = newest_wal(&sim);
    let bytes = sim.read_file(&wal).unwrap();
    for at in [bytes.len() - 1, bytes.len() - 10, bytes.len() - 30] {
        let image = sim.crash(CrashMode::KeepAll, 0);
        let mut bad = bytes.clone();
        bad[at] ^= 0x04;
        image.overwrite_file(&wal, bad);
        kept_or_corrupt(&image, &model, &wal).unwrap_or_else(|e| panic!("flip at {at}: {e}"));
    }
}

#[test]
fn a_deleted_newest_wal_after_a_clean_close_is_corruption() {
    let sim = SimStorage::new();
    let (model, e) = fill(&sim);
    drop(e);
    let wal = newest_wal(&sim);
    sim.remove(&wal).unwrap();
    sim.sync_dir(Path::new("/db")).unwrap();
    kept_or_corrupt(&sim, &model, &wal).unwrap();
}

/// The guarantee survives a writable reopen that writes nothing and then crashes: the recorded
/// synced length stays in every manifest while its WAL is live.
#[test]
fn the_recorded_wal_length_survives_a_reopen() {
    let sim = SimStorage::new();
    let (model, e) = fill(&sim);
    drop(e);
    let e = open(&sim).unwrap();
    let image = sim.crash(CrashMode::DropUnsynced, 0);
    drop(e);
    let wal = newest_wal(&image);
    let bytes = image.read_file(&wal).unwrap();
    image.overwrite_file(&wal, bytes[..bytes.len() - 2].to_vec());
    kept_or_corrupt(&image, &model, &wal).unwrap();
}

/// What a crash leaves stays a torn tail: the last record, never synced to anyone's knowledge,
/// is cut and the open succeeds with the records before it.
#[test]
fn after_a_crash_a_torn_last_record_is_still_cut() {
    let sim = SimStorage::new();
    let (model, e) = fill(&sim);
    let image = sim.crash(CrashMode::KeepAll, 0);
    drop(e);
    let wal = newest_wal(&image);
    let bytes = image.read_file(&wal).unwrap();
    // The last record ends before the WAL's preallocated zero tail (values never end in 0).
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    image.overwrite_file(&wal, bytes[..end - 3].to_vec());
    let e = open(&image).unwrap();
    let found = model
        .iter()
        .filter(|(k, v)| e.get(k).unwrap().as_deref() == Some(v.as_slice()))
        .count();
    assert_eq!(found, model.len() - 1, "exactly the torn record is gone");
    assert_eq!(e.get(&key(499)).unwrap(), None);
}

/// As the shared damage sweep, but with no torn-tail allowance: after a clean close, every
/// damaged image of every file (WALs, tables, manifest, `CURRENT`) keeps every key or is
/// refused as corrupt, under `Always` and `Never`. `LSM_DAMAGE_OFFSETS` widens the sweep
/// (default 24 offsets a file).
#[test]
fn every_file_of_a_clean_close_damaged_keeps_every_key_or_is_corruption() {
    let offsets = std::env::var("LSM_DAMAGE_OFFSETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let config = DamageConfig {
            policy,
            offsets_per_file: offsets,
            writes: 120,
            torn_tail_allowance: false,
            ..DamageConfig::default()
        };
        sweep(&config);
    }
}

fn sweep(config: &DamageConfig) {
    let factory = |storage: Arc<dyn Storage>, dir: &Path, sync: SyncPolicy| {
        let options = LsmOptions {
            auto_compaction: false,
            ..tiny_options(storage, sync)
        };
        Ok(Box::new(LsmEngine::open(dir, options)?) as Box<dyn Engine>)
    };
    let report = damage::check(&factory, config).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lsm clean close, {:?}: {report}", config.policy);
}
