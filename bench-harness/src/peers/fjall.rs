//! fjall (a pure-Rust LSM) behind [`Engine`], configured like our LSM: the same memtable size,
//! block size, bloom bits per key and cache size, no compression, leveled compaction (fjall's
//! default), one partition.
//!
//! Durability is matched to our contract: under every policy our engines hand each write to the
//! OS before acknowledging it (it survives a process crash), so the adapter persists fjall's
//! journal with `PersistMode::Buffer` after every write; under `always` with
//! `PersistMode::SyncData`; under `periodic` fjall's own `fsync_ms` syncs in the background.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use engine_api::{
    Bytes, CompactionSummary, Engine, KeyRange, Result, Scan, Stats, SyncPolicy, Value, WriteBatch,
    check_key, check_value,
};
use fjall::{
    CompressionType, Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode,
};

use super::common::{ChunkReader, ChunkedScan, UserCounters, peer_error};
use crate::engines::{EngineConfig, EngineEntry};

/// The registry entry.
pub fn entry() -> EngineEntry {
    EngineEntry {
        name: "fjall",
        description: "fjall 2 (peer, pure-Rust leveled LSM), tuned like our LSM",
        in_default_suite: true,
        seam_accounting: false,
        open,
        settings,
    }
}

fn bloom_bits(config: &EngineConfig) -> u8 {
    // fjall accepts at most 20 bits per key.
    u8::try_from(config.lsm.bloom_bits_per_key.min(20)).unwrap_or(20)
}

fn block_bytes(config: &EngineConfig) -> u32 {
    // fjall accepts blocks of 1 KiB to 512 KiB.
    u32::try_from(config.lsm.block_bytes.clamp(1024, 512 * 1024)).unwrap_or(4096)
}

fn memtable_bytes(config: &EngineConfig) -> u32 {
    u32::try_from(config.lsm.memtable_bytes).unwrap_or(u32::MAX)
}

fn per_write_persist(sync: SyncPolicy) -> PersistMode {
    match sync {
        SyncPolicy::Always => PersistMode::SyncData,
        _ => PersistMode::Buffer,
    }
}

fn settings(config: &EngineConfig) -> Vec<(String, String)> {
    let fsync_ms = match config.sync {
        SyncPolicy::Periodic(d) => d.as_millis().to_string(),
        _ => "off".to_string(),
    };
    vec![
        ("version".into(), "fjall 2.11".into()),
        (
            "max_memtable_size".into(),
            memtable_bytes(config).to_string(),
        ),
        ("block_size".into(), block_bytes(config).to_string()),
        ("bloom_filter_bits".into(), bloom_bits(config).to_string()),
        (
            "cache_size".into(),
            config.lsm.block_cache_bytes.to_string(),
        ),
        ("compression".into(), "none".into()),
        ("compaction".into(), "leveled (fjall default)".into()),
        (
            "persist after each write".into(),
            format!("{:?}", per_write_persist(config.sync)),
        ),
        ("fsync_ms".into(), fsync_ms),
    ]
}

fn open(dir: &Path, config: &EngineConfig) -> Result<Arc<dyn Engine>> {
    let fsync_ms = match config.sync {
        SyncPolicy::Periodic(d) => Some(u16::try_from(d.as_millis()).unwrap_or(u16::MAX)),
        _ => None,
    };
    let keyspace = Config::new(dir)
        .cache_size(config.lsm.block_cache_bytes as u64)
        .fsync_ms(fsync_ms)
        .open()
        .map_err(|e| peer_error("open", dir, e))?;
    let options = PartitionCreateOptions::default()
        .max_memtable_size(memtable_bytes(config))
        .block_size(block_bytes(config))
        .bloom_filter_bits(Some(bloom_bits(config)))
        .compression(CompressionType::None);
    let partition = keyspace
        .open_partition("bench", options)
        .map_err(|e| peer_error("open", dir, e))?;
    Ok(Arc::new(FjallEngine {
        dir: dir.to_path_buf(),
        keyspace,
        partition,
        persist: per_write_persist(config.sync),
        counters: UserCounters::default(),
    }))
}

/// fjall as an [`Engine`].
pub struct FjallEngine {
    dir: PathBuf,
    keyspace: Keyspace,
    partition: PartitionHandle,
    persist: PersistMode,
    counters: UserCounters,
}

impl FjallEngine {
    fn persist(&self) -> Result<()> {
        self.keyspace
            .persist(self.persist)
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
        self.partition
            .insert(key, value)
            .map_err(|e| peer_error("put", &self.dir, e))?;
        self.persist()?;
        self.counters.add(1, key.len() + value.len());
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        check_key(key)?;
        let value = self
            .partition
            .get(key)
            .map_err(|e| peer_error("get", &self.dir, e))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.partition
            .remove(key)
            .map_err(|e| peer_error("delete", &self.dir, e))?;
        self.persist()?;
        self.counters.add(1, key.len());
        Ok(())
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        batch.validate()?;
        let mut fb = self.keyspace.batch().durability(Some(self.persist));
        for op in batch.ops() {
            match op.value() {
                Some(v) => fb.insert(&self.partition, op.key(), v),
                None => fb.remove(&self.partition, op.key()),
            }
        }
        fb.commit().map_err(|e| peer_error("write", &self.dir, e))?;
        self.counters.add(batch.len() as u64, batch.user_bytes());
        Ok(())
    }

    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        range.validate()?;
        let (partition, dir) = (self.partition.clone(), self.dir.clone());
        let read: ChunkReader = Box::new(move |start, end, limit| {
            partition
                .range::<Vec<u8>, _>((start.clone(), end.clone()))
                .take(limit)
                .map(|item| {
                    item.map(|(k, v)| (Bytes::copy_from_slice(&k), Bytes::copy_from_slice(&v)))
                        .map_err(|e| peer_error("scan", &dir, e))
                })
                .collect()
        });
        Ok(Box::new(ChunkedScan::new(range, read)))
    }

    fn sync(&self) -> Result<()> {
        self.keyspace
            .persist(PersistMode::SyncAll)
            .map_err(|e| peer_error("sync", &self.dir, e))
    }

    fn compact(&self) -> Result<CompactionSummary> {
        let started = Instant::now();
        self.partition
            .major_compact()
            .map_err(|e| peer_error("compact", &self.dir, e))?;
        let mut summary = CompactionSummary::default();
        summary.jobs = 1;
        summary.duration = started.elapsed();
        Ok(summary)
    }

    fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        stats.engine = "fjall".to_string();
        self.counters.fill(&mut stats);
        stats.live_keys = self.partition.approximate_len() as u64;
        stats.disk_bytes = self.keyspace.disk_space();
        stats.file_count = self.partition.segment_count() as u64;
        stats
    }
}
