//! The engines the harness can run, by name: the one place to add an engine.
//!
//! Each [`EngineEntry`] opens its engine in a directory with the shared [`EngineConfig`] and
//! lists the settings it ran with, for the report. Peers (fjall, RocksDB) are entries too, behind
//! their cargo features, configured from the same [`LsmTuning`] as our LSM so the comparison is
//! fair.

use std::path::Path;
use std::sync::Arc;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::testing::RefEngine;
use engine_api::{CommonOptions, Engine, IoCounters, Storage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::error::{HarnessError, Result};

/// The LSM knobs every LSM in a comparison shares (ours and the peers): the caches and blocks,
/// and the tree's shape, so that write amplification compares algorithms rather than shapes.
/// Each peer adapter maps every knob it has and says in its settings which it cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsmTuning {
    /// Memtable (write buffer) size in bytes.
    pub memtable_bytes: usize,
    /// Sealed memtables that may wait for flush before writes stop.
    pub max_immutable_memtables: usize,
    /// Data block size in bytes.
    pub block_bytes: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: u32,
    /// Block cache size in bytes.
    pub block_cache_bytes: usize,
    /// Target size of one table file written by compaction.
    pub target_file_bytes: u64,
    /// Target size of the base level (the first level below L0).
    pub max_bytes_for_level_base: u64,
    /// Size ratio between adjacent levels.
    pub level_size_multiplier: u64,
    /// L0 table count that triggers an L0 compaction.
    pub l0_compaction_trigger: usize,
    /// L0 table count at which writes slow down.
    pub l0_slowdown_trigger: usize,
    /// L0 table count at which writes stop.
    pub l0_stop_trigger: usize,
    /// Compactions that may run at once.
    pub max_background_compactions: usize,
}

impl Default for LsmTuning {
    /// Our LSM's defaults, which the peers then copy.
    fn default() -> Self {
        let ours = LsmOptions::default();
        LsmTuning {
            memtable_bytes: ours.memtable_bytes,
            max_immutable_memtables: ours.max_immutable_memtables,
            block_bytes: ours.block_bytes,
            bloom_bits_per_key: ours.bloom_bits_per_key,
            block_cache_bytes: ours.block_cache_bytes,
            target_file_bytes: ours.target_file_bytes,
            max_bytes_for_level_base: ours.max_bytes_for_level_base,
            level_size_multiplier: ours.level_size_multiplier,
            l0_compaction_trigger: ours.l0_compaction_trigger,
            l0_slowdown_trigger: ours.l0_slowdown_trigger,
            l0_stop_trigger: ours.l0_stop_trigger,
            max_background_compactions: ours.max_background_compactions,
        }
    }
}

/// How the engines of a comparison are tuned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tuning {
    /// The peers copy our LSM's tree shape, caches and block size ([`LsmTuning`]), and
    /// Bitcask files are sized to the data set: write amplification then compares algorithms
    /// rather than shapes.
    #[default]
    Aligned,
    /// Every engine as a user opens it, with its own default options (RocksDB's
    /// `Options::default()`, fjall's and redb's defaults, our engines' `Options::default()`,
    /// Bitcask's file size included): what each engine delivers out of the box.
    Defaults,
}

impl Tuning {
    /// One phrase for reports.
    pub fn label(self) -> &'static str {
        match self {
            Tuning::Aligned => "peers shaped like our LSM",
            Tuning::Defaults => "every engine at its own defaults",
        }
    }
}

/// What every engine of a comparison is opened with.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Aligned shapes or each engine's own defaults.
    pub tuning: Tuning,
    /// The durability policy, the same for every engine.
    pub sync: SyncPolicy,
    /// The LSM knobs shared by every LSM.
    pub lsm: LsmTuning,
    /// Bitcask's data file size (files are sealed and become mergeable at this size).
    pub bitcask_max_file_size: u64,
    /// The storage every engine of this workspace is opened on; `None` for the real file
    /// system. [`EngineConfig::counted`] puts the harness's own counting storage here.
    pub storage: Option<Arc<dyn Storage>>,
}

impl EngineConfig {
    /// The configuration for `sync`, with every engine's default knobs.
    pub fn new(sync: SyncPolicy) -> Self {
        EngineConfig {
            tuning: Tuning::Aligned,
            sync,
            lsm: LsmTuning::default(),
            bitcask_max_file_size: BitcaskOptions::default().max_file_size,
            storage: None,
        }
    }

    /// The same configuration on a storage that counts every byte and sync into counters the
    /// harness holds, and those counters: the harness measures the engine's I/O itself, under
    /// the class of the work that caused it, rather than reading the engine's own report.
    /// (Peers bypass the seam; for them the counters stay at zero.)
    #[must_use]
    pub fn counted(&self) -> (EngineConfig, Arc<IoCounters>) {
        let (common, counters) = self.common().counted();
        let config = EngineConfig {
            storage: Some(common.storage),
            ..self.clone()
        };
        (config, counters)
    }

    /// Bitcask files sized for a data set of `bytes`: an eighth of it, between 1 and 128 MiB.
    /// With the default 128 MiB a small data set would sit in one or two files and never
    /// merge, which would measure nothing of what merging costs.
    pub fn bitcask_file_size_for(bytes: u64) -> u64 {
        (bytes / 8).clamp(1 << 20, 128 << 20)
    }

    /// The options every engine of this workspace shares.
    pub fn common(&self) -> CommonOptions {
        let mut common = CommonOptions {
            sync: self.sync,
            ..CommonOptions::default()
        };
        if let Some(storage) = &self.storage {
            common.storage = Arc::clone(storage);
        }
        common
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

fn open_bitcask(dir: &Path, config: &EngineConfig) -> engine_api::Result<Arc<dyn Engine>> {
    let options = BitcaskOptions {
        common: config.common(),
        max_file_size: config.bitcask_max_file_size,
        ..BitcaskOptions::default()
    };
    Ok(Arc::new(BitcaskEngine::open(dir, options)?))
}

fn bitcask_settings(config: &EngineConfig) -> Vec<(String, String)> {
    let merge = BitcaskOptions::default().merge;
    vec![
        setting("sync", config.sync.label()),
        setting("max_file_size", config.bitcask_max_file_size),
        setting("merge.auto", merge.auto),
        setting("merge.frag_trigger", merge.frag_trigger),
        setting("merge.frag_threshold", merge.frag_threshold),
        setting("merge.dead_bytes_trigger", merge.dead_bytes_trigger),
        setting("merge.dead_bytes_threshold", merge.dead_bytes_threshold),
        setting("merge.small_file_threshold", merge.small_file_threshold),
    ]
}

fn lsm_options(config: &EngineConfig) -> LsmOptions {
    let t = &config.lsm;
    LsmOptions {
        common: config.common(),
        memtable_bytes: t.memtable_bytes,
        max_immutable_memtables: t.max_immutable_memtables,
        block_bytes: t.block_bytes,
        bloom_bits_per_key: t.bloom_bits_per_key,
        block_cache_bytes: t.block_cache_bytes,
        target_file_bytes: t.target_file_bytes,
        max_bytes_for_level_base: t.max_bytes_for_level_base,
        level_size_multiplier: t.level_size_multiplier,
        l0_compaction_trigger: t.l0_compaction_trigger,
        l0_slowdown_trigger: t.l0_slowdown_trigger,
        l0_stop_trigger: t.l0_stop_trigger,
        max_background_compactions: t.max_background_compactions,
        ..LsmOptions::default()
    }
}

fn open_lsm(dir: &Path, config: &EngineConfig) -> engine_api::Result<Arc<dyn Engine>> {
    Ok(Arc::new(LsmEngine::open(dir, lsm_options(config))?))
}

fn lsm_settings(config: &EngineConfig) -> Vec<(String, String)> {
    let o = lsm_options(config);
    vec![
        setting("sync", config.sync.label()),
        setting("memtable_bytes", o.memtable_bytes),
        setting("block_bytes", o.block_bytes),
        setting("bloom_bits_per_key", o.bloom_bits_per_key),
        setting("block_cache_bytes", o.block_cache_bytes),
        setting("target_file_bytes", o.target_file_bytes),
        setting("max_bytes_for_level_base", o.max_bytes_for_level_base),
        setting("level_size_multiplier", o.level_size_multiplier),
        setting(
            "l0 triggers (compact/slowdown/stop)",
            format!(
                "{}/{}/{}",
                o.l0_compaction_trigger, o.l0_slowdown_trigger, o.l0_stop_trigger
            ),
        ),
        setting("max_immutable_memtables", o.max_immutable_memtables),
        setting("max_background_compactions", o.max_background_compactions),
        setting("max_subcompactions", o.max_subcompactions),
        setting("compression", "none"),
    ]
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
    let mut entries = vec![
        EngineEntry {
            name: "bitcask",
            description: "bitcask-engine: hash keydir in memory, append-only data files, merge",
            in_default_suite: true,
            seam_accounting: true,
            open: open_bitcask,
            settings: bitcask_settings,
        },
        EngineEntry {
            name: "lsm",
            description: "lsm-engine: leveled LSM tree, WAL, memtable, SSTables, bloom filters",
            in_default_suite: true,
            seam_accounting: true,
            open: open_lsm,
            settings: lsm_settings,
        },
        EngineEntry {
            name: "reference",
            description: "engine-api's reference engine: a BTreeMap and one log (a test double)",
            in_default_suite: false,
            seam_accounting: true,
            open: open_reference,
            settings: reference_settings,
        },
    ];
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
        "fjall" | "rocksdb" | "redb" => format!(
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
