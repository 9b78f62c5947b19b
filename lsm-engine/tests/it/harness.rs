//! The engine-api fault and damage sweeps against the LSM engine: an I/O error at every Nth
//! call of each kind (once and for good), full disks and faults during recovery, each followed
//! by crashes and reopens; and every file of a clean shutdown damaged at many offsets (flips,
//! zeroes, cuts), then opened and read. Each prints its counts (`-- --nocapture`).

use std::path::Path;
use std::sync::Arc;

use engine_api::testing::damage::{self, DamageConfig};
use engine_api::testing::faults::{self, FaultConfig};
use engine_api::{Engine, Result, Storage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::{tiny_factory, tiny_options};

/// Tiny everything, compaction only on `compact()`: the same files on every run.
fn tiny_manual_factory(
    storage: Arc<dyn Storage>,
    dir: &Path,
    sync: SyncPolicy,
) -> Result<Box<dyn Engine>> {
    let options = LsmOptions {
        auto_compaction: false,
        ..tiny_options(storage, sync)
    };
    Ok(Box::new(LsmEngine::open(dir, options)?))
}

#[test]
fn fault_sweeps_with_background_compactions() {
    let report =
        faults::sweep(&tiny_factory(), &FaultConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lsm {report}");
}

#[test]
fn every_file_damaged_at_many_offsets() {
    let report = damage::check(&tiny_manual_factory, &DamageConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lsm {report}");
}
