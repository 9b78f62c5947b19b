//! fjall 3 (a pure-Rust LSM) behind [`Engine`], configured from the shared [`LsmTuning`]: the
//! same memtable, block size, bloom bits, cache, compaction trigger, table size, level ratio
//! and background threads, no compression, one keyspace. What fjall cannot match is said in
//! [`settings`]: its base level is `target size × L0 trigger` rather than a knob of its own,
//! and it has no L0 slowdown or stop triggers. Under [`Tuning::Defaults`] it is opened with
//! fjall's own defaults instead, as a user would.
//!
//! Durability is matched to our contract: under every policy our engines hand each write to the
//! OS before acknowledging it (it survives a process crash), which is fjall 3's default
//! (journal writes reach the OS at once); under `always` each write is followed by
//! `PersistMode::SyncData`; under `periodic` a background task persists the journal.
//!
//! [`LsmTuning`]: crate::engines::LsmTuning

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use engine_api::{
    Bytes, CompactionSummary, Engine, KeyRange, PeriodicTask, Result, Scan, Stats, SyncPolicy,
    Value, WriteBatch, check_key, check_value,
};
use fjall::compaction::Leveled;
use fjall::config::{
    BlockSizePolicy, BloomConstructionPolicy, CompressionPolicy, FilterPolicy, FilterPolicyEntry,
};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use super::common::{UserCounters, one_job, peer_error, peer_stats, setting};
use crate::engines::{EngineConfig, EngineEntry, Tuning};

/// fjall's version, from the lock file of this build.
pub const VERSION: &str = env!("PEER_VERSION_FJALL");

/// The registry entry.
pub fn entry() -> EngineEntry {
    EngineEntry {
        name: "fjall",
        description: "fjall 3 (peer, pure-Rust leveled LSM), tree shaped like our LSM",
        in_default_suite: true,
        seam_accounting: false,
        open,
        settings,
    }
}

fn block_bytes(config: &EngineConfig) -> u32 {
    // fjall accepts blocks of 1 KiB to 1 MiB.
    u32::try_from(config.lsm.block_bytes.clamp(1024, 1024 * 1024)).unwrap_or(4096)
}

fn l0_threshold(config: &EngineConfig) -> u8 {
    u8::try_from(config.lsm.l0_compaction_trigger).unwrap_or(u8::MAX)
}

fn worker_threads(config: &EngineConfig) -> usize {
    config.lsm.max_background_compactions.max(1)
}

fn settings(config: &EngineConfig) -> Vec<(String, String)> {
    let mut out = vec![
        setting("version", format!("fjall {VERSION}")),
        setting("sync", config.sync.label()),
    ];
    if config.tuning == Tuning::Defaults {
        out.push(setting(
            "options",
            "Database::builder(dir).open() and KeyspaceCreateOptions::default(): nothing else set",
        ));
    } else {
        out.extend(aligned_settings(config));
    }
    out
}

fn aligned_settings(config: &EngineConfig) -> Vec<(String, String)> {
    let t = &config.lsm;
    let base = t.target_file_bytes * u64::from(l0_threshold(config));
    vec![
        setting("max_memtable_size", t.memtable_bytes),
        setting(
            "sealed memtables",
            format!(
                "not bounded by count (ours: {}); fjall bounds its journal at 512 MiB",
                t.max_immutable_memtables
            ),
        ),
        setting("data_block_size", block_bytes(config)),
        setting(
            "filter",
            format!("bloom, {} bits/key", t.bloom_bits_per_key),
        ),
        setting("cache_size", t.block_cache_bytes),
        setting("compression", "none"),
        setting("compaction", "leveled"),
        setting("l0_threshold", l0_threshold(config)),
        setting("table_target_size", t.target_file_bytes),
        setting("level_ratio", t.level_size_multiplier),
        setting(
            "level base (derived)",
            format!(
                "{base} (target size × L0 trigger; not settable, ours is {})",
                t.max_bytes_for_level_base
            ),
        ),
        setting("L0 slowdown/stop", "not available in fjall"),
        setting(
            "worker_threads (flush + compaction)",
            worker_threads(config),
        ),
    ]
}

fn keyspace_options(config: &EngineConfig) -> KeyspaceCreateOptions {
    let t = &config.lsm;
    let bloom = BloomConstructionPolicy::BitsPerKey(t.bloom_bits_per_key as f32);
    let strategy = Leveled::default()
        .with_l0_threshold(l0_threshold(config))
        .with_table_target_size(t.target_file_bytes)
        .with_level_ratio_policy(vec![t.level_size_multiplier as f32]);
    KeyspaceCreateOptions::default()
        .max_memtable_size(t.memtable_bytes as u64)
        .data_block_size_policy(BlockSizePolicy::all(block_bytes(config)))
        .filter_policy(FilterPolicy::all(FilterPolicyEntry::Bloom(bloom)))
        .data_block_compression_policy(CompressionPolicy::all(CompressionType::None))
        .index_block_compression_policy(CompressionPolicy::all(CompressionType::None))
        .compaction_strategy(Arc::new(strategy))
}

fn open(dir: &Path, config: &EngineConfig) -> Result<Arc<dyn Engine>> {
    let err = |e| peer_error("open", dir, e);
    let defaults = config.tuning == Tuning::Defaults;
    let builder = Database::builder(dir);
    let builder = if defaults {
        builder
    } else {
        builder
            .cache_size(config.lsm.block_cache_bytes as u64)
            .worker_threads(worker_threads(config))
    };
    let db = builder.open().map_err(err)?;
    let keyspace = if defaults {
        db.keyspace("bench", KeyspaceCreateOptions::default)
    } else {
        db.keyspace("bench", || keyspace_options(config))
    }
    .map_err(err)?;
    let periodic = match config.sync {
        SyncPolicy::Periodic(every) => Some(periodic_persist(&db, every)?),
        _ => None,
    };
    Ok(Arc::new(FjallEngine {
        dir: dir.to_path_buf(),
        db,
        keyspace,
        sync_each_write: config.sync == SyncPolicy::Always,
        counters: UserCounters::default(),
        _periodic: periodic,
    }))
}

fn periodic_persist(db: &Database, every: std::time::Duration) -> Result<PeriodicTask> {
    let db = db.clone();
    PeriodicTask::start("fjall-journal-sync", every, move || {
        db.persist(PersistMode::SyncData).is_ok()
    })
}

/// fjall as an [`Engine`].
pub struct FjallEngine {
    dir: PathBuf,
    db: Database,
    keyspace: Keyspace,
    sync_each_write: bool,
    counters: UserCounters,
    _periodic: Option<PeriodicTask>,
}

impl FjallEngine {
    fn acknowledge(&self) -> Result<()> {
        if !self.sync_each_write {
            return Ok(());
        }
        self.db
            .persist(PersistMode::SyncData)
            .map_err(|e| peer_error("persist", &self.dir, e))
    }
}

impl Engine for FjallEngine {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.keyspace
            .insert(key, value)
            .map_err(|e| peer_error("put", &self.dir, e))?;
        self.acknowledge()?;
        self.counters.add(1, key.len() + value.len());
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        check_key(key)?;
        let value = self
            .keyspace
            .get(key)
            .map_err(|e| peer_error("get", &self.dir, e))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.keyspace
            .remove(key)
            .map_err(|e| peer_error("delete", &self.dir, e))?;
        self.acknowledge()?;
        self.counters.add(1, key.len());
        Ok(())
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        batch.validate()?;
        let persist = self.sync_each_write.then_some(PersistMode::SyncData);
        let mut fb = self.db.batch().durability(persist);
        for op in batch.ops() {
            match op.value() {
                Some(v) => fb.insert(&self.keyspace, op.key(), v),
                None => fb.remove(&self.keyspace, op.key()),
            }
        }
        fb.commit().map_err(|e| peer_error("write", &self.dir, e))?;
        self.counters.add(batch.len() as u64, batch.user_bytes());
        Ok(())
    }

    /// One fjall iterator for the whole scan, read from a snapshot so the scan sees one
    /// consistent view, as ours do (`Keyspace::range` alone reads the latest data as it goes).
    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        range.validate()?;
        let dir = self.dir.clone();
        let snapshot = self.db.snapshot();
        let iter = snapshot.range::<Vec<u8>, _>(&self.keyspace, (range.start, range.end));
        Ok(Box::new(iter.map(move |guard| {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| peer_error("scan", &dir, e))?;
            Ok((Bytes::copy_from_slice(&k), Bytes::copy_from_slice(&v)))
        })))
    }

    fn sync(&self) -> Result<()> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| peer_error("sync", &self.dir, e))
    }

    /// Flush, then compact everything, as every engine's `compact` does.
    fn compact(&self) -> Result<CompactionSummary> {
        let started = Instant::now();
        let err = |e| peer_error("compact", &self.dir, e);
        self.keyspace.rotate_memtable_and_wait().map_err(err)?;
        self.keyspace.major_compact().map_err(err)?;
        Ok(one_job(started))
    }

    fn stats(&self) -> Stats {
        let mut stats = peer_stats("fjall", &self.counters);
        stats.live_keys = self.keyspace.approximate_len() as u64;
        stats.disk_bytes = self.db.disk_space().unwrap_or(0);
        stats.file_count = self.keyspace.table_count() as u64;
        stats
    }
}
