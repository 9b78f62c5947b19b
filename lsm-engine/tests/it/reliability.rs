//! The engine-api reliability harnesses against the LSM engine: SIGKILLs of a child process
//! during writes, flushes and compactions, and linearizability of concurrent calls while
//! compactions run. Each prints its counts (`-- --nocapture`).

use std::path::Path;
use std::sync::Arc;

use engine_api::testing::kill::KillConfig;
use engine_api::testing::linearizability::{self, LinConfig};
use engine_api::{Engine, Result, Storage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::{default_options, tiny_factory};

/// Memtables and tables small enough that the kill workload (values up to 16 KiB) flushes and
/// compacts all the time, with background compaction on.
fn kill_factory(
    storage: Arc<dyn Storage>,
    dir: &Path,
    sync: SyncPolicy,
) -> Result<Box<dyn Engine>> {
    let options = LsmOptions {
        memtable_bytes: 32 << 10,
        target_file_bytes: 32 << 10,
        max_bytes_for_level_base: 128 << 10,
        level_size_multiplier: 4,
        l0_compaction_trigger: 2,
        manifest_rollover_bytes: 8 << 10,
        ..default_options(storage, sync)
    };
    Ok(Box::new(LsmEngine::open(dir, options)?))
}

engine_api::kill_test!(
    kill_always,
    kill_factory,
    KillConfig {
        kills: 130,
        ..KillConfig::default()
    }
);

engine_api::kill_test!(
    kill_never,
    kill_factory,
    KillConfig {
        policy: SyncPolicy::Never,
        kills: 90,
        seed: 0x15e0_0002,
        ..KillConfig::default()
    }
);

engine_api::kill_test!(
    kill_periodic,
    kill_factory,
    KillConfig {
        policy: SyncPolicy::Periodic(std::time::Duration::from_millis(5)),
        kills: 30,
        seed: 0x15e0_0003,
        ..KillConfig::default()
    }
);

#[test]
fn linearizable_during_compactions() {
    let report = linearizability::check(&tiny_factory(), &LinConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lsm {report}");
}

/// Issue 11, item 2 (shared kit): a failed sync, a reopen on the same storage, a power loss.
#[test]
fn reopen_after_a_failed_sync_then_power_loss() {
    let report = engine_api::testing::failed_sync::check(
        &tiny_factory(),
        &engine_api::testing::failed_sync::FailedSyncConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lsm {report}");
}
