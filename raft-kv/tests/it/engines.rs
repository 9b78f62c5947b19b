//! The engines under test, each opened on a `SimStorage`.

use std::path::Path;
use std::sync::Arc;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::testing::RefEngine;
use engine_api::{CommonOptions, Engine, SimStorage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};
use raft_kv::Durability;

/// Which engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bitcask,
    Lsm,
    Reference,
}

/// How the engine is opened and how the stores make steps durable: the two supported pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `SyncPolicy::Always`, no extra syncs.
    Always,
    /// `SyncPolicy::Never`, a sync after every step.
    NeverWithSyncs,
}

impl Mode {
    pub fn durability(self) -> Durability {
        match self {
            Mode::Always => Durability::EngineSyncsEveryWrite,
            Mode::NeverWithSyncs => Durability::SyncEachStep,
        }
    }

    fn policy(self) -> SyncPolicy {
        match self {
            Mode::Always => SyncPolicy::Always,
            Mode::NeverWithSyncs => SyncPolicy::Never,
        }
    }
}

/// Opens (or reopens) `kind` in `/db` of `sim`.
pub fn open(kind: Kind, mode: Mode, sim: &SimStorage) -> Arc<dyn Engine> {
    let common = CommonOptions {
        sync: mode.policy(),
        storage: Arc::new(sim.clone()),
        ..CommonOptions::default()
    };
    let dir = Path::new("/db");
    match kind {
        Kind::Bitcask => {
            let options = BitcaskOptions {
                common,
                // Small files, so a test's few hundred entries rotate files and merge.
                max_file_size: 16 << 10,
                ..BitcaskOptions::default()
            };
            Arc::new(BitcaskEngine::open(dir, options).expect("open bitcask"))
        }
        Kind::Lsm => {
            let options = LsmOptions {
                common,
                // Small memtables, so a test's entries reach tables and compactions.
                memtable_bytes: 16 << 10,
                ..LsmOptions::default()
            };
            Arc::new(LsmEngine::open(dir, options).expect("open lsm"))
        }
        Kind::Reference => Arc::new(RefEngine::open(dir, common).expect("open reference")),
    }
}

/// Defines one `#[test]` per engine that calls `$body(Kind)`.
#[macro_export]
macro_rules! per_engine {
    ($($name:ident => $body:path;)*) => {
        $(
            mod $name {
                use $crate::engines::Kind;
                #[test]
                fn bitcask() {
                    $body(Kind::Bitcask);
                }
                #[test]
                fn lsm() {
                    $body(Kind::Lsm);
                }
                #[test]
                fn reference() {
                    $body(Kind::Reference);
                }
            }
        )*
    };
}
