//! RocksDB (through the `rocksdb` crate) behind [`Engine`], configured from the shared
//! [`LsmTuning`](crate::engines::LsmTuning): the same write buffers, block size, bloom bits per
//! key (full filters), LRU block cache, no compression, leveled compaction with dynamic level
//! sizing (as ours), and the same tree shape (target file size, level base and multiplier, L0
//! triggers) and background jobs (our compactions plus one flush).
//!
//! Durability is matched to our contract: every write goes to RocksDB's WAL through `write(2)`
//! before it is acknowledged (RocksDB's default), `always` sets `WriteOptions::sync`, and
//! `periodic` syncs the WAL from a background task.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use engine_api::{
    Bytes, CompactionSummary, Engine, KeyRange, PeriodicTask, Result, Scan, Stats, SyncPolicy,
    Value, WriteBatch, check_key, check_value,
};
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, Cache, CompactOptions, DB, DBCompressionType,
    Direction, IteratorMode, Options, ReadOptions, WriteOptions,
};

use super::common::{UserCounters, one_job, peer_error, peer_stats, setting};
use crate::engines::{EngineConfig, EngineEntry, Tuning};
use crate::metrics::process::disk_usage;

/// The `rocksdb` crate's version, from the lock file of this build.
pub const VERSION: &str = env!("PEER_VERSION_ROCKSDB");
/// `librocksdb-sys`'s version: `<crate>+<RocksDB release>`.
const SYS_VERSION: &str = env!("PEER_VERSION_LIBROCKSDB_SYS");

/// The registry entry.
pub fn entry() -> EngineEntry {
    EngineEntry {
        name: "rocksdb",
        description: "RocksDB (peer, C++ leveled LSM via the rocksdb crate), tree shaped like our LSM",
        in_default_suite: true,
        seam_accounting: false,
        open,
        settings,
    }
}

fn settings(config: &EngineConfig) -> Vec<(String, String)> {
    let mut out = vec![
        setting(
            "version",
            format!("rocksdb crate {VERSION}, RocksDB {}", rocksdb_release()),
        ),
        setting("sync", config.sync.label()),
    ];
    if config.tuning == Tuning::Defaults {
        out.push(setting(
            "options",
            "Options::default() with create_if_missing, BlockBasedOptions::default(): nothing else set",
        ));
    } else {
        out.extend(aligned_settings(config));
    }
    out.extend(durability_settings(config));
    out
}

fn aligned_settings(config: &EngineConfig) -> Vec<(String, String)> {
    let t = &config.lsm;
    vec![
        setting("write_buffer_size", t.memtable_bytes),
        setting("max_write_buffer_number", 1 + t.max_immutable_memtables),
        setting("block_size", t.block_bytes),
        setting(
            "bloom_filter",
            format!("{} bits/key, full filter", t.bloom_bits_per_key),
        ),
        setting("block_cache (LRU)", t.block_cache_bytes),
        setting("compression", "none"),
        setting("compaction", "leveled, dynamic level bytes"),
        setting("target_file_size_base", t.target_file_bytes),
        setting("max_bytes_for_level_base", t.max_bytes_for_level_base),
        setting("max_bytes_for_level_multiplier", t.level_size_multiplier),
        setting(
            "level0 triggers (compaction/slowdown/stop)",
            format!(
                "{}/{}/{}",
                t.l0_compaction_trigger, t.l0_slowdown_trigger, t.l0_stop_trigger
            ),
        ),
        setting(
            "max_background_jobs (flush + compaction)",
            t.max_background_compactions + 1,
        ),
    ]
}

fn durability_settings(config: &EngineConfig) -> Vec<(String, String)> {
    vec![
        setting("WriteOptions::sync", config.sync == SyncPolicy::Always),
        setting(
            "WAL sync",
            match config.sync {
                SyncPolicy::Periodic(d) => format!("every {} ms (flush_wal)", d.as_millis()),
                SyncPolicy::Always => "every write".into(),
                _ => "never (OS decides)".into(),
            },
        ),
    ]
}

/// RocksDB's own release, the part of `librocksdb-sys`'s version after the `+`.
fn rocksdb_release() -> &'static str {
    SYS_VERSION
        .split_once('+')
        .map_or(SYS_VERSION, |(_, release)| release)
}

fn int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn options(config: &EngineConfig) -> Options {
    if config.tuning == Tuning::Defaults {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        return opts;
    }
    aligned_options(config)
}

fn aligned_options(config: &EngineConfig) -> Options {
    let t = &config.lsm;
    let mut table = BlockBasedOptions::default();
    table.set_block_size(t.block_bytes);
    table.set_bloom_filter(f64::from(t.bloom_bits_per_key), false);
    table.set_block_cache(&Cache::new_lru_cache(t.block_cache_bytes));
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.set_write_buffer_size(t.memtable_bytes);
    opts.set_max_write_buffer_number(int(1 + t.max_immutable_memtables));
    opts.set_compression_type(DBCompressionType::None);
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts.set_target_file_size_base(t.target_file_bytes);
    opts.set_max_bytes_for_level_base(t.max_bytes_for_level_base);
    opts.set_max_bytes_for_level_multiplier(t.level_size_multiplier as f64);
    opts.set_level_zero_file_num_compaction_trigger(int(t.l0_compaction_trigger));
    opts.set_level_zero_slowdown_writes_trigger(int(t.l0_slowdown_trigger));
    opts.set_level_zero_stop_writes_trigger(int(t.l0_stop_trigger));
    opts.set_max_background_jobs(int(t.max_background_compactions + 1));
    opts.set_block_based_table_factory(&table);
    opts
}

fn open(dir: &Path, config: &EngineConfig) -> Result<Arc<dyn Engine>> {
    let db = Arc::new(DB::open(&options(config), dir).map_err(|e| peer_error("open", dir, e))?);
    let periodic = match config.sync {
        SyncPolicy::Periodic(every) => {
            let weak = Arc::downgrade(&db);
            Some(PeriodicTask::start("rocksdb-wal-sync", every, move || {
                weak.upgrade().is_some_and(|db| db.flush_wal(true).is_ok())
            })?)
        }
        _ => None,
    };
    let mut write = WriteOptions::default();
    write.set_sync(config.sync == SyncPolicy::Always);
    Ok(Arc::new(RocksEngine {
        dir: dir.to_path_buf(),
        db,
        write,
        counters: UserCounters::default(),
        _periodic: periodic,
    }))
}

/// RocksDB as an [`Engine`].
pub struct RocksEngine {
    dir: PathBuf,
    db: Arc<DB>,
    write: WriteOptions,
    counters: UserCounters,
    _periodic: Option<PeriodicTask>,
}

/// Where a scan over `range` starts, and the read options that bound its end.
fn scan_plan(range: &KeyRange) -> (IteratorMode<'_>, ReadOptions) {
    let mode = match &range.start {
        Bound::Included(k) | Bound::Excluded(k) => IteratorMode::From(k, Direction::Forward),
        Bound::Unbounded => IteratorMode::Start,
    };
    let mut read = ReadOptions::default();
    if let Bound::Excluded(end) = &range.end {
        read.set_iterate_upper_bound(end.clone());
    }
    (mode, read)
}

impl Engine for RocksEngine {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.db
            .put_opt(key, value, &self.write)
            .map_err(|e| peer_error("put", &self.dir, e))?;
        self.counters.add(1, key.len() + value.len());
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        check_key(key)?;
        let value = self
            .db
            .get(key)
            .map_err(|e| peer_error("get", &self.dir, e))?;
        Ok(value.map(Bytes::from))
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.db
            .delete_opt(key, &self.write)
            .map_err(|e| peer_error("delete", &self.dir, e))?;
        self.counters.add(1, key.len());
        Ok(())
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        batch.validate()?;
        let mut rb = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op.value() {
                Some(v) => rb.put(op.key(), v),
                None => rb.delete(op.key()),
            }
        }
        self.db
            .write_opt(rb, &self.write)
            .map_err(|e| peer_error("write", &self.dir, e))?;
        self.counters.add(batch.len() as u64, batch.user_bytes());
        Ok(())
    }

    /// One RocksDB iterator for the whole scan: it holds an implicit snapshot, so the scan sees
    /// one consistent view, as ours do.
    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        range.validate()?;
        let (mode, read) = scan_plan(&range);
        let iter = self.db.iterator_opt(mode, read);
        let dir = &self.dir;
        let after = range.clone();
        let pairs = iter
            .map(move |item| item.map_err(|e| peer_error("scan", dir, e)))
            .skip_while(move |item| item.as_ref().is_ok_and(|(k, _)| !after.after_start(k)))
            .take_while(move |item| item.as_ref().map_or(true, |(k, _)| range.before_end(k)))
            .map(|item| item.map(|(k, v)| (Bytes::from(k.into_vec()), Bytes::from(v.into_vec()))));
        Ok(Box::new(pairs))
    }

    fn sync(&self) -> Result<()> {
        self.db
            .flush_wal(true)
            .map_err(|e| peer_error("sync", &self.dir, e))
    }

    fn compact(&self) -> Result<CompactionSummary> {
        let started = Instant::now();
        self.db
            .flush()
            .map_err(|e| peer_error("compact", &self.dir, e))?;
        let mut how = CompactOptions::default();
        // Like ours, rewrite the bottom level too, so tombstones and overwrites go everywhere.
        how.set_bottommost_level_compaction(BottommostLevelCompaction::ForceOptimized);
        self.db.compact_range_opt::<&[u8], &[u8]>(None, None, &how);
        Ok(one_job(started))
    }

    fn stats(&self) -> Stats {
        let mut stats = peer_stats("rocksdb", &self.counters);
        let property = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        stats.live_keys = property("rocksdb.estimate-num-keys");
        stats.index_memory_bytes = property("rocksdb.estimate-table-readers-mem")
            + property("rocksdb.cur-size-all-mem-tables");
        stats.disk_bytes = disk_usage(&self.dir);
        stats.file_count = table_files(&self.dir);
        stats
    }
}

/// The table (`.sst`) files in `dir`.
fn table_files(dir: &Path) -> u64 {
    let tables = std::fs::read_dir(dir).into_iter().flatten().flatten();
    tables
        .filter(|e| e.path().extension().is_some_and(|x| x == "sst"))
        .count() as u64
}
