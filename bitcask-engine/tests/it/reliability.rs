//! The engine-api reliability harnesses against Bitcask: SIGKILLs of a child process during
//! writes and merges, injected I/O faults and full disks, damaged files, and linearizability
//! of concurrent calls while merges run. Each prints its counts (`-- --nocapture`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bitcask_engine::{BitcaskEngine, BitcaskOptions, MergeOptions};
use engine_api::testing::damage::{self, DamageConfig};
use engine_api::testing::faults::{self, FaultConfig};
use engine_api::testing::kill::KillConfig;
use engine_api::testing::linearizability::{self, LinConfig};
use engine_api::{CommonOptions, Engine, Result, Storage, SyncPolicy};

use crate::common::{tiny_factory, tiny_manual_factory};

/// Small files (the kill workload's values reach 16 KiB) and an eager background merge, so
/// kills land in rotations and merges.
fn kill_factory(
    storage: Arc<dyn Storage>,
    dir: &Path,
    sync: SyncPolicy,
) -> Result<Box<dyn Engine>> {
    let options = BitcaskOptions {
        common: CommonOptions {
            sync,
            storage,
            ..CommonOptions::default()
        },
        max_file_size: 8 << 10,
        merge: MergeOptions {
            check_interval: Duration::from_millis(5),
            max_sealed_files: 4,
            frag_trigger: 0.3,
            frag_threshold: 0.2,
            small_file_threshold: 4 << 10,
            ..MergeOptions::default()
        },
        ..BitcaskOptions::default()
    };
    Ok(Box::new(BitcaskEngine::open(dir, options)?))
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
        seed: 0xb17c_0002,
        ..KillConfig::default()
    }
);

#[test]
fn faults_with_tiny_files() {
    let report = faults::sweep(&tiny_manual_factory, &FaultConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("bitcask {report}");
}

#[test]
fn damaged_files() {
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
