//! Factories and helpers shared by the test modules.

use std::path::Path;
use std::sync::Arc;

use engine_api::testing::EngineFactory;
use engine_api::{CommonOptions, Engine, Result, SimStorage, Storage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

/// Options on `storage` under `sync`, otherwise the defaults.
pub fn default_options(storage: Arc<dyn Storage>, sync: SyncPolicy) -> LsmOptions {
    LsmOptions {
        common: CommonOptions {
            sync,
            storage,
            ..CommonOptions::default()
        },
        ..LsmOptions::default()
    }
}

/// Tiny memtables, blocks, outputs and manifest: every few writes rotate the memtable, flush a
/// table and commit an edit, and the manifest rolls over often.
pub fn tiny_options(storage: Arc<dyn Storage>, sync: SyncPolicy) -> LsmOptions {
    LsmOptions {
        memtable_bytes: 512,
        max_immutable_memtables: 2,
        block_bytes: 96,
        block_restart_interval: 2,
        block_cache_bytes: 16 * 1024,
        target_file_bytes: 1024,
        manifest_rollover_bytes: 2048,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 6,
        l0_stop_trigger: 10,
        max_bytes_for_level_base: 4096,
        level_size_multiplier: 4,
        ..default_options(storage, sync)
    }
}

pub fn default_factory() -> impl EngineFactory {
    |storage: Arc<dyn Storage>, dir: &Path, sync: SyncPolicy| -> Result<Box<dyn Engine>> {
        Ok(Box::new(LsmEngine::open(
            dir,
            default_options(storage, sync),
        )?))
    }
}

pub fn tiny_factory() -> impl EngineFactory {
    |storage: Arc<dyn Storage>, dir: &Path, sync: SyncPolicy| -> Result<Box<dyn Engine>> {
        Ok(Box::new(LsmEngine::open(dir, tiny_options(storage, sync))?))
    }
}

/// `factory` joined with read-only opens under `options` (the conformance kit opens both).
pub fn with_read_only(
    factory: impl EngineFactory,
    options: fn(Arc<dyn Storage>, SyncPolicy) -> LsmOptions,
) -> impl EngineFactory {
    engine_api::testing::with_read_only(factory, move |storage: Arc<dyn Storage>, dir: &Path| {
        let mut o = options(storage, SyncPolicy::Never);
        o.common.read_only = true;
        Ok(Box::new(LsmEngine::open(dir, o)?) as Box<dyn Engine>)
    })
}

/// Opens an engine with tiny options on `sim` in `/db`.
pub fn open_tiny(sim: &SimStorage) -> LsmEngine {
    LsmEngine::open(
        "/db",
        tiny_options(Arc::new(sim.clone()), SyncPolicy::Always),
    )
    .unwrap_or_else(|e| panic!("open: {e}"))
}

/// As [`open_tiny`], without background compactions: only `compact()` compacts.
pub fn open_tiny_manual(sim: &SimStorage) -> LsmEngine {
    let options = LsmOptions {
        auto_compaction: false,
        ..tiny_options(Arc::new(sim.clone()), SyncPolicy::Always)
    };
    LsmEngine::open("/db", options).unwrap_or_else(|e| panic!("open: {e}"))
}

/// Files of `sim` under `/db` whose names end with `suffix`, sorted.
pub fn files_with(sim: &SimStorage, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = sim
        .all_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

pub fn key(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

pub fn value(i: u32, round: u32) -> Vec<u8> {
    format!("value-{i}-{round}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}
