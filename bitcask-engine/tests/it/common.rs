//! Factories and helpers shared by the tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bitcask_engine::{BitcaskEngine, BitcaskOptions, MergeOptions};
use engine_api::{CommonOptions, Engine, Result, SimStorage, Storage, SyncPolicy};

/// Options with the given storage and policy, otherwise defaults.
pub fn options(storage: Arc<dyn Storage>, sync: SyncPolicy) -> BitcaskOptions {
    BitcaskOptions {
        common: CommonOptions {
            sync,
            storage,
            ..CommonOptions::default()
        },
        ..BitcaskOptions::default()
    }
}

/// Tiny files and an eager background merge: rotation and merges happen all the time.
pub fn tiny(storage: Arc<dyn Storage>, sync: SyncPolicy) -> BitcaskOptions {
    BitcaskOptions {
        max_file_size: 1024,
        merge: MergeOptions {
            check_interval: Duration::from_millis(1),
            max_sealed_files: 3,
            frag_trigger: 0.3,
            frag_threshold: 0.2,
            small_file_threshold: 512,
            ..MergeOptions::default()
        },
        ..options(storage, sync)
    }
}

/// Tiny files, merges only on demand (deterministic crash tests).
pub fn tiny_manual(storage: Arc<dyn Storage>, sync: SyncPolicy) -> BitcaskOptions {
    let mut o = tiny(storage, sync);
    o.merge.auto = false;
    o
}

pub fn default_factory(
    storage: Arc<dyn Storage>,
    dir: &Path,
    sync: SyncPolicy,
) -> Result<Box<dyn Engine>> {
    Ok(Box::new(BitcaskEngine::open(dir, options(storage, sync))?))
}

pub fn tiny_factory(
    storage: Arc<dyn Storage>,
    dir: &Path,
    sync: SyncPolicy,
) -> Result<Box<dyn Engine>> {
    Ok(Box::new(BitcaskEngine::open(dir, tiny(storage, sync))?))
}

pub fn tiny_manual_factory(
    storage: Arc<dyn Storage>,
    dir: &Path,
    sync: SyncPolicy,
) -> Result<Box<dyn Engine>> {
    Ok(Box::new(BitcaskEngine::open(
        dir,
        tiny_manual(storage, sync),
    )?))
}

/// A read-only factory for the conformance kit: `options` with `read_only` set.
pub fn read_only_factory(
    options: fn(Arc<dyn Storage>, SyncPolicy) -> BitcaskOptions,
) -> impl Fn(Arc<dyn Storage>, &Path) -> Result<Box<dyn Engine>> + Send + Sync {
    move |storage, dir| {
        let mut o = options(storage, SyncPolicy::Never);
        o.common.read_only = true;
        Ok(Box::new(BitcaskEngine::open(dir, o)?) as Box<dyn Engine>)
    }
}

/// Opens a tiny-file engine on `sim` in `/db`.
pub fn open_tiny(sim: &SimStorage, sync: SyncPolicy, auto_merge: bool) -> BitcaskEngine {
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let mut o = tiny(storage, sync);
    o.merge.auto = auto_merge;
    BitcaskEngine::open("/db", o).unwrap()
}

/// Every pair in the engine, by a full scan.
pub fn contents(e: &dyn Engine) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    engine_api::testing::conformance::contents(e)
}

/// The data files in the simulated directory, in name (that is, file-id) order.
pub fn data_files(sim: &SimStorage) -> Vec<PathBuf> {
    let mut v: Vec<_> = sim
        .all_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    v.sort();
    v
}

/// The `i`th key of a numbered workload: `key00042`.
pub fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

/// The `i`th value of a numbered workload. It never ends in a zero byte, so the last non-zero
/// byte of a file of puts ends its records.
pub fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "v".repeat(40)).into_bytes()
}

/// Whether a hooked operation is on a data file, under its own name or the temporary one a
/// merge output or open's rewrite is created under.
pub fn on_data(op: &engine_api::testing::hooked::Op<'_>) -> bool {
    op.on(".data") || op.on(".data.tmp")
}
