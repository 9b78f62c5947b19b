//! redb (a copy-on-write B-tree, pure Rust) behind [`Engine`]: the third design DDIA sets
//! beside the hash index and the LSM. One table, one write transaction per write.
//!
//! Durability cannot be matched exactly, and the report says so: redb has no "handed to the OS,
//! not synced" level. `always` commits with `Durability::Immediate` (an fsync per write, as
//! ours); `never` commits with `Durability::None`, which a *process* crash may also lose (ours
//! lose only to a power loss); `periodic` commits with `None` and a background task makes an
//! `Immediate` commit, which persists every earlier one, each period.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_api::{
    Bytes, CompactionSummary, Engine, KeyRange, PeriodicTask, Result, Scan, Stats, SyncPolicy,
    Value, WriteBatch, check_key, check_value,
};
use parking_lot::RwLock;
use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use super::common::{UserCounters, one_job, peer_error, peer_stats, setting};
use crate::engines::{EngineConfig, EngineEntry, Tuning};
use crate::metrics::process::disk_usage;

/// redb's version, from the lock file of this build.
pub const VERSION: &str = env!("PEER_VERSION_REDB");

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");
const FILE: &str = "redb.db";

/// The registry entry.
pub fn entry() -> EngineEntry {
    EngineEntry {
        name: "redb",
        description: "redb (peer, pure-Rust copy-on-write B-tree), one transaction per write",
        in_default_suite: true,
        seam_accounting: false,
        open,
        settings,
    }
}

fn durability(sync: SyncPolicy) -> Durability {
    match sync {
        SyncPolicy::Always => Durability::Immediate,
        _ => Durability::None,
    }
}

fn settings(config: &EngineConfig) -> Vec<(String, String)> {
    vec![
        setting("version", format!("redb {VERSION}")),
        setting("sync", config.sync.label()),
        setting(
            "design",
            "copy-on-write B-tree, one file, one write transaction per write",
        ),
        if config.tuning == Tuning::Defaults {
            setting("cache_size", "redb's default")
        } else {
            setting("cache_size", config.lsm.block_cache_bytes)
        },
        setting(
            "commit durability",
            format!("{:?}", durability(config.sync)),
        ),
        setting(
            "not aligned",
            "no OS-buffered level: under `never` a process crash may lose recent commits",
        ),
        setting("compression", "none (redb has none)"),
    ]
}

fn open(dir: &Path, config: &EngineConfig) -> Result<Arc<dyn Engine>> {
    let err = |e: &dyn std::fmt::Display| peer_error("open", dir, e.to_string());
    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    let mut builder = Database::builder();
    if config.tuning != Tuning::Defaults {
        builder.set_cache_size(config.lsm.block_cache_bytes);
    }
    let db = builder.create(dir.join(FILE)).map_err(|e| err(&e))?;
    let db = Arc::new(RwLock::new(db));
    let engine = RedbEngine {
        dir: dir.to_path_buf(),
        db: Arc::clone(&db),
        durability: durability(config.sync),
        counters: UserCounters::default(),
        _periodic: None,
    };
    engine.commit("open", Durability::Immediate, |_| Ok(()))?;
    let periodic = match config.sync {
        SyncPolicy::Periodic(every) => Some(periodic_commit(db, every)?),
        _ => None,
    };
    Ok(Arc::new(RedbEngine {
        _periodic: periodic,
        ..engine
    }))
}

/// An empty `Immediate` commit each period persists every `None` commit before it.
fn periodic_commit(db: Arc<RwLock<Database>>, every: Duration) -> Result<PeriodicTask> {
    PeriodicTask::start("redb-durable-commit", every, move || {
        let db = db.read();
        db.begin_write()
            .ok()
            .and_then(|mut txn| txn.set_durability(Durability::Immediate).ok().map(|_| txn))
            .is_some_and(|txn| txn.commit().is_ok())
    })
}

type Table<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// redb as an [`Engine`].
pub struct RedbEngine {
    dir: PathBuf,
    db: Arc<RwLock<Database>>,
    durability: Durability,
    counters: UserCounters,
    _periodic: Option<PeriodicTask>,
}

impl RedbEngine {
    /// Runs `change` in one write transaction committed with `durability`.
    fn commit(
        &self,
        op: &'static str,
        durability: Durability,
        change: impl FnOnce(&mut Table<'_>) -> std::result::Result<(), redb::StorageError>,
    ) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| peer_error(op, &self.dir, e.to_string());
        let db = self.db.read();
        let mut txn = db.begin_write().map_err(|e| err(&e))?;
        txn.set_durability(durability).map_err(|e| err(&e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| err(&e))?;
            change(&mut table).map_err(|e| err(&e))?;
        }
        txn.commit().map_err(|e| err(&e))
    }

    fn read_table(
        &self,
        op: &'static str,
    ) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>> {
        let err = |e: &dyn std::fmt::Display| peer_error(op, &self.dir, e.to_string());
        let txn = self.db.read().begin_read().map_err(|e| err(&e))?;
        txn.open_table(TABLE).map_err(|e| err(&e))
    }
}

impl Engine for RedbEngine {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.commit("put", self.durability, |t| t.insert(key, value).map(drop))?;
        self.counters.add(1, key.len() + value.len());
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        check_key(key)?;
        let table = self.read_table("get")?;
        let value = table
            .get(key)
            .map_err(|e| peer_error("get", &self.dir, e))?;
        Ok(value.map(|v| Bytes::copy_from_slice(v.value())))
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.commit("delete", self.durability, |t| t.remove(key).map(drop))?;
        self.counters.add(1, key.len());
        Ok(())
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        batch.validate()?;
        self.commit("write", self.durability, |t| {
            for op in batch.ops() {
                match op.value() {
                    Some(v) => drop(t.insert(op.key(), v)?),
                    None => drop(t.remove(op.key())?),
                }
            }
            Ok(())
        })?;
        self.counters.add(batch.len() as u64, batch.user_bytes());
        Ok(())
    }

    /// One read transaction and one range for the whole scan: a consistent view.
    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        range.validate()?;
        let table = self.read_table("scan")?;
        let bounds = (
            range.start.as_ref().map(Vec::as_slice),
            range.end.as_ref().map(Vec::as_slice),
        );
        let iter = table
            .range::<&[u8]>(bounds)
            .map_err(|e| peer_error("scan", &self.dir, e))?;
        let dir = &self.dir;
        Ok(Box::new(iter.map(move |item| {
            let (k, v) = item.map_err(|e| peer_error("scan", dir, e))?;
            Ok((
                Bytes::copy_from_slice(k.value()),
                Bytes::copy_from_slice(v.value()),
            ))
        })))
    }

    fn sync(&self) -> Result<()> {
        self.commit("sync", Durability::Immediate, |_| Ok(()))
    }

    /// Persist, then compact the file (redb's only whole-store reorganisation).
    fn compact(&self) -> Result<CompactionSummary> {
        let started = Instant::now();
        self.sync()?;
        self.db
            .write()
            .compact()
            .map_err(|e| peer_error("compact", &self.dir, e))?;
        Ok(one_job(started))
    }

    fn stats(&self) -> Stats {
        let mut stats = peer_stats("redb", &self.counters);
        stats.live_keys = self
            .read_table("stats")
            .and_then(|t| t.len().map_err(|e| peer_error("stats", &self.dir, e)))
            .unwrap_or(0);
        stats.disk_bytes = disk_usage(&self.dir);
        stats.file_count = 1;
        stats
    }
}
