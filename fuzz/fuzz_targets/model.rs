#![no_main]

//! Random operations, reopens, compactions and simulated crashes against a `BTreeMap`; the
//! first byte picks the engine, the rest is decoded by `engine_api::testing::fuzz::model`.

use std::path::Path;
use std::sync::Arc;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{CommonOptions, Engine, Result, Storage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

fn common(storage: Arc<dyn Storage>, sync: SyncPolicy) -> CommonOptions {
    CommonOptions {
        sync,
        storage,
        ..CommonOptions::default()
    }
}

fn bitcask(storage: Arc<dyn Storage>, dir: &Path, sync: SyncPolicy) -> Result<Box<dyn Engine>> {
    let mut options = BitcaskOptions {
        common: common(storage, sync),
        max_file_size: 1024,
        ..BitcaskOptions::default()
    };
    options.merge.auto = false;
    Ok(Box::new(BitcaskEngine::open(dir, options)?))
}

fn lsm(storage: Arc<dyn Storage>, dir: &Path, sync: SyncPolicy) -> Result<Box<dyn Engine>> {
    let options = LsmOptions {
        common: common(storage, sync),
        memtable_bytes: 512,
        block_bytes: 96,
        target_file_bytes: 1024,
        auto_compaction: false,
        ..LsmOptions::default()
    };
    Ok(Box::new(LsmEngine::open(dir, options)?))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(&engine) = data.first() else {
        return;
    };
    if engine % 2 == 0 {
        engine_api::testing::fuzz::model(&bitcask, data);
    } else {
        engine_api::testing::fuzz::model(&lsm, data);
    }
});
