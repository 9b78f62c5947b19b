//! RocksDB (through the `rocksdb` crate) behind [`Engine`], configured like our LSM: the same
//! write buffer (memtable) size, block size, bloom bits per key (full filters) and LRU block
//! cache size, no compression, and otherwise RocksDB's defaults (leveled compaction with dynamic
//! level sizing, two background jobs).
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
    BlockBasedOptions, Cache, DB, DBCompressionType, Direction, IteratorMode, Options, WriteOptions,
};

use super::common::{ChunkReader, ChunkedScan, UserCounters, peer_error};
use crate::engines::{EngineConfig, EngineEntry};
use crate::metrics::process::disk_usage;

/// The registry entry.
pub fn entry() -> EngineEntry {
    EngineEntry {
        name: "rocksdb",
        description: "RocksDB (peer, C++ leveled LSM via the rocksdb crate), tuned like our LSM",
        in_default_suite: true,
        seam_accounting: false,
        open,
        settings,
    }
}

fn settings(config: &EngineConfig) -> Vec<(String, String)> {
    let lsm = &config.lsm;
    vec![
        ("write_buffer_size".into(), lsm.memtable_bytes.to_string()),
        ("block_size".into(), lsm.block_bytes.to_string()),
        (
            "bloom_filter".into(),
            format!("{} bits/key, full filter", lsm.bloom_bits_per_key),
        ),
        (
            "block_cache (LRU)".into(),
            lsm.block_cache_bytes.to_string(),
        ),
        ("compression".into(), "none".into()),
        (
            "compaction".into(),
            "leveled, dynamic level bytes (RocksDB default)".into(),
        ),
        (
            "WriteOptions::sync".into(),
            (config.sync == SyncPolicy::Always).to_string(),
        ),
        (
            "WAL sync".into(),
            match config.sync {
                SyncPolicy::Periodic(d) => format!("every {} ms (flush_wal)", d.as_millis()),
                SyncPolicy::Always => "every write".into(),
                _ => "never (OS decides)".into(),
            },
        ),
    ]
}

fn options(config: &EngineConfig) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_size(config.lsm.block_bytes);
    table.set_bloom_filter(f64::from(config.lsm.bloom_bits_per_key), false);
    table.set_block_cache(&Cache::new_lru_cache(config.lsm.block_cache_bytes));
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.set_write_buffer_size(config.lsm.memtable_bytes);
    opts.set_compression_type(DBCompressionType::None);
    opts.set_level_compaction_dynamic_level_bytes(true);
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

/// Up to `limit` pairs of `db` from `start` to `end`, in key order.
fn read_chunk(
    db: &DB,
    dir: &Path,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
    limit: usize,
) -> Result<Vec<(Value, Value)>> {
    let mode = match start {
        Bound::Included(k) | Bound::Excluded(k) => IteratorMode::From(k, Direction::Forward),
        Bound::Unbounded => IteratorMode::Start,
    };
    let range = KeyRange {
        start: start.clone(),
        end: end.clone(),
    };
    let mut out = Vec::with_capacity(limit.min(1024));
    for item in db.iterator(mode) {
        let (k, v) = item.map_err(|e| peer_error("scan", dir, e))?;
        if !range.after_start(&k) {
            continue;
        }
        if !range.before_end(&k) || out.len() == limit {
            break;
        }
        out.push((Bytes::from(k.into_vec()), Bytes::from(v.into_vec())));
    }
    Ok(out)
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

    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        range.validate()?;
        let (db, dir) = (Arc::clone(&self.db), self.dir.clone());
        let read: ChunkReader =
            Box::new(move |start, end, limit| read_chunk(&db, &dir, start, end, limit));
        Ok(Box::new(ChunkedScan::new(range, read)))
    }

    fn sync(&self) -> Result<()> {
        self.db
            .flush_wal(true)
            .map_err(|e| peer_error("sync", &self.dir, e))
    }

    fn compact(&self) -> Result<CompactionSummary> {
        let started = Instant::now();
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        let mut summary = CompactionSummary::default();
        summary.jobs = 1;
        summary.duration = started.elapsed();
        Ok(summary)
    }

    fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        stats.engine = "rocksdb".to_string();
        self.counters.fill(&mut stats);
        let property = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        stats.live_keys = property("rocksdb.estimate-num-keys");
        stats.index_memory_bytes = property("rocksdb.estimate-table-readers-mem")
            + property("rocksdb.cur-size-all-mem-tables");
        stats.disk_bytes = disk_usage(&self.dir);
        stats
    }
}
