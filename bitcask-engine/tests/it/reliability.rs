//! The engine-api reliability harnesses against the Bitcask: SIGKILLs of a child process
//! during writes and merges, injected I/O faults and full disks, damaged files, and
//! linearizability of concurrent calls while merges run. Each prints its counts
//! (`-- --nocapture`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::testing::damage::{self, DamageConfig};
use engine_api::testing::faults::{self, FaultConfig};
use engine_api::testing::kill::KillConfig;
use engine_api::testing::linearizability::{self, LinConfig};
use engine_api::{Engine, Result, Storage, SyncPolicy};

use crate::common::{default_factory, options, tiny_factory, tiny_manual_factory};

/// Files small enough that the kill workload (values up to 16 KiB) rotates and merges all the
/// time, with background merges on.
fn kill_factory(
    storage: Arc<dyn Storage>,
    dir: &Path,
    sync: SyncPolicy,
) -> Result<Box<dyn Engine>> {
    let mut o: BitcaskOptions = options(storage, sync);
    o.max_file_size = 64 << 10;
    o.merge.check_interval = Duration::from_millis(5);
    o.merge.max_sealed_files = 6;
    o.merge.frag_trigger = 0.4;
    o.merge.small_file_threshold = 32 << 10;
    Ok(Box::new(BitcaskEngine::open(dir, o)?))
}

engine_api::kill_test!(
    kill_always,
    kill_factory,
    KillConfig {
        kills: 130,
        seed: 0xb17c_a5c0,
        ..KillConfig::default()
    }
);

engine_api::kill_test!(
    kill_never,
    kill_factory,
    KillConfig {
        policy: SyncPolicy::Never,
        kills: 90,
        seed: 0xb17c_a5c1,
        ..KillConfig::default()
    }
);

engine_api::kill_test!(
    kill_periodic,
    kill_factory,
    KillConfig {
        policy: SyncPolicy::Periodic(Duration::from_millis(5)),
        kills: 30,
        seed: 0xb17c_a5c2,
        ..KillConfig::default()
    }
);

#[test]
fn faults_with_default_files() {
    let report =
        faults::sweep(&default_factory, &FaultConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("bitcask {report}");
}

#[test]
fn faults_with_tiny_files() {
    let report = faults::sweep(&tiny_manual_factory, &FaultConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("bitcask {report}");
}

#[test]
fn damaged_files_default() {
    let report =
        damage::check(&default_factory, &DamageConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("bitcask {report}");
}

#[test]
fn damaged_files_tiny() {
    let report = damage::check(&tiny_manual_factory, &DamageConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("bitcask {report}");
}

#[test]
fn linearizable_during_merges() {
    let report = linearizability::check(&tiny_factory, &LinConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("bitcask {report}");
}

/// Issue 11, item 2: a failed sync, a reopen on the same storage (the failed bytes still in
/// the page cache), then a power loss.
#[test]
fn reopen_after_a_failed_sync_then_power_loss() {
    use engine_api::testing::failed_sync::{self, FailedSyncConfig};
    for factory in [
        &default_factory as &dyn engine_api::testing::EngineFactory,
        &tiny_manual_factory,
    ] {
        let report = failed_sync::check(factory, &FailedSyncConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("bitcask {report}");
    }
}
