//! The engines the harness can run, by name: the one place to add an engine.
//!
//! Each [`EngineEntry`] opens its engine in a directory with the shared [`EngineConfig`] and
//! lists the settings it ran with, for the report. Peers (fjall, RocksDB) are entries too, behind
//! their cargo features, configured from the same [`LsmTuning`] as our LSM so the comparison is
//! fair.

use std::path::Path;
use std::sync::Arc;

use engine_api::testing::RefEngine;
use engine_api::{CommonOptions, Engine, SyncPolicy};

use crate::error::{HarnessError, Result};

/// The LSM knobs every LSM in a comparison shares (ours and the peers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsmTuning {
    /// Memtable (write buffer) size in bytes.
    pub memtable_bytes: usize,
    /// Data block size in bytes.
    pub block_bytes: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: u32,
    /// Block cache size in bytes.
    pub block_cache_bytes: usize,
}

impl Default for LsmTuning {
    /// Until `lsm-engine` exports its options, the values it is being written with.
    fn default() -> Self {
        LsmTuning {
            memtable_bytes: 4 << 20,
            block_bytes: 4 << 10,
            bloom_bits_per_key: 10,
            block_cache_bytes: 8 << 20,
        }
    }
}

/// What every engine of a comparison is opened with.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The durability policy, the same for every engine.
    pub sync: SyncPolicy,
    /// The LSM knobs shared by every LSM.
    pub lsm: LsmTuning,
}

impl EngineConfig {
    /// The configuration for `sync`, with our LSM's default knobs.
    pub fn new(sync: SyncPolicy) -> Self {
        EngineConfig {
            sync,
            lsm: LsmTuning::default(),
        }
    }

    /// The options every engine of this workspace shares.
    pub fn common(&self) -> CommonOptions {
        CommonOptions {
            sync: self.sync,
            ..CommonOptions::default()
        }
    }
}

/// Opens an engine in a directory.
pub type Opener = fn(&Path, &EngineConfig) -> engine_api::Result<Arc<dyn Engine>>;

/// Lists an engine's settings for the report.
pub type SettingsFn = fn(&EngineConfig) -> Vec<(String, String)>;

/// One engine the harness can run.
#[derive(Clone, Copy, Debug)]
pub struct EngineEntry {
    /// The name used on the command line and in reports.
    pub name: &'static str,
    /// One line about it.
    pub description: &'static str,
    /// Whether `compare` runs it when no engines are named.
    pub in_default_suite: bool,
    /// Whether its I/O passes through the counting seam ([`engine_api::CountingStorage`]).
    pub seam_accounting: bool,
    /// Opens it.
    pub open: Opener,
    /// Its settings.
    pub settings: SettingsFn,
}

fn setting(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

fn open_reference(dir: &Path, config: &EngineConfig) -> engine_api::Result<Arc<dyn Engine>> {
    Ok(Arc::new(RefEngine::open(dir, config.common())?))
}

fn reference_settings(config: &EngineConfig) -> Vec<(String, String)> {
    vec![
        setting("sync", config.sync.label()),
        setting("design", "BTreeMap in memory + one append-only log"),
    ]
}

/// Every engine built into this binary, default-suite engines first.
pub fn all() -> Vec<EngineEntry> {
    let mut entries = vec![EngineEntry {
        name: "reference",
        description: "engine-api's reference engine: a BTreeMap and one log (a test double)",
        in_default_suite: true,
        seam_accounting: true,
        open: open_reference,
        settings: reference_settings,
    }];
    entries.extend(crate::peers::entries());
    entries
}

/// Names of every engine built in.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|e| e.name).collect()
}

/// The engine called `name`.
///
/// # Errors
/// [`HarnessError::InvalidInput`] for an unknown name, listing the known ones (and the cargo
/// feature a known peer needs).
pub fn find(name: &str) -> Result<EngineEntry> {
    let wanted = name.trim().to_ascii_lowercase();
    if let Some(entry) = all().into_iter().find(|e| e.name == wanted) {
        return Ok(entry);
    }
    let hint = match wanted.as_str() {
        "fjall" | "rocksdb" => format!(
            " ({wanted} is a peer behind a cargo feature: build with `--features {wanted}`)"
        ),
        _ => String::new(),
    };
    Err(HarnessError::invalid(format!(
        "unknown engine '{name}'{hint}; engines in this build: {}",
        names().join(", ")
    )))
}

/// The engines `compare` runs when none are named.
pub fn default_suite() -> Vec<EngineEntry> {
    all().into_iter().filter(|e| e.in_default_suite).collect()
}
