//! Counters the engine keeps, and [`collect`], which turns them and the current shape of the
//! tree into [`Stats`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use engine_api::{
    CompactionSummary, FileStats, LevelStats, StallCause, StallStats, Stats, WriteBatch,
};
use parking_lot::Mutex;

use crate::db::Inner;
use crate::filename;
use crate::version::{largest_user, smallest_user};

/// Per-level compaction counters (RocksDB's compaction-stats columns).
#[derive(Clone, Debug, Default)]
pub(crate) struct LevelCounters {
    pub(crate) bytes_read_from_level: u64,
    pub(crate) bytes_read_from_next: u64,
    pub(crate) bytes_written: u64,
    pub(crate) bytes_moved: u64,
    pub(crate) compactions: u64,
    pub(crate) compaction_time: Duration,
    pub(crate) keys_in: u64,
    pub(crate) keys_dropped: u64,
}

#[derive(Debug, Default)]
struct Compactions {
    count: u64,
    wall: Duration,
    cpu: Duration,
    levels: Vec<LevelCounters>,
}

/// The engine's counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    user_bytes: AtomicU64,
    user_writes: AtomicU64,
    flushes: AtomicU64,
    compactions: Mutex<Compactions>,
    stalls: Mutex<StallStats>,
}

impl Counters {
    pub(crate) fn record_write(&self, batch: &WriteBatch) {
        self.user_bytes
            .fetch_add(batch.user_bytes() as u64, Ordering::Relaxed);
        self.user_writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_stall(&self, cause: &str, waited: Duration) {
        let mut s = self.stalls.lock();
        s.count += 1;
        s.time += waited;
        match s.by_cause.iter_mut().find(|c| c.cause == cause) {
            Some(c) => {
                c.count += 1;
                c.time += waited;
            }
            None => s.by_cause.push(StallCause {
                cause: cause.to_string(),
                count: 1,
                time: waited,
            }),
        }
    }

    pub(crate) fn record_flush(&self, bytes: u64, _took: Duration) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.with_level(0, |l| l.bytes_written += bytes);
    }

    fn with_level(&self, level: usize, f: impl FnOnce(&mut LevelCounters)) {
        let mut c = self.compactions.lock();
        if c.levels.len() <= level {
            c.levels.resize(level + 1, LevelCounters::default());
        }
        if let Some(l) = c.levels.get_mut(level) {
            f(l);
        }
    }

    /// Records one compaction job: `from` holds the bytes read per input level.
    pub(crate) fn record_compaction(
        &self,
        summary: &CompactionSummary,
        from: &[(usize, u64)],
        output_level: usize,
        cpu: Duration,
    ) {
        {
            let mut c = self.compactions.lock();
            c.count += 1;
            c.wall += summary.duration;
            c.cpu += cpu;
        }
        for &(level, bytes) in from {
            if level == output_level {
                self.with_level(output_level, |l| l.bytes_read_from_next += bytes);
            } else {
                self.with_level(level, |l| l.bytes_read_from_level += bytes);
            }
        }
        self.with_level(output_level, |l| {
            l.bytes_written += summary.bytes_written;
            l.compactions += 1;
            l.compaction_time += summary.duration;
            l.keys_in += summary.records_in;
            l.keys_dropped += summary.stale_dropped + summary.tombstones_dropped;
        });
    }

    fn level(&self, level: usize) -> LevelCounters {
        self.compactions
            .lock()
            .levels
            .get(level)
            .cloned()
            .unwrap_or_default()
    }
}

/// Builds [`Stats`] from the counters and the current super-version.
pub(crate) fn collect(inner: &Inner) -> Stats {
    let sv = inner.current();
    let c = &inner.counters;
    let mut memtable_bytes = sv.mem.approximate_bytes() as u64;
    let mut live_keys = sv.mem.len() as u64;
    for s in &sv.imms {
        memtable_bytes += s.mem.approximate_bytes() as u64;
        live_keys += s.mem.len() as u64;
    }
    let mut table_memory = 0u64;
    let mut files = Vec::new();
    let mut levels = Vec::new();
    for (n, level) in sv.version.levels().iter().enumerate() {
        let counters = c.level(n);
        levels.push(LevelStats {
            level: u32::try_from(n).unwrap_or(u32::MAX),
            files: level.len() as u64,
            bytes: sv.version.level_bytes(n),
            bytes_read_from_level: counters.bytes_read_from_level,
            bytes_read_from_next: counters.bytes_read_from_next,
            bytes_written: counters.bytes_written,
            bytes_moved: counters.bytes_moved,
            compactions: counters.compactions,
            compaction_time: counters.compaction_time,
            keys_in: counters.keys_in,
            keys_dropped: counters.keys_dropped,
            ..LevelStats::default()
        });
        for t in level {
            table_memory += t.memory_bytes() as u64;
            let p = t.props();
            live_keys += p.entries - p.tombstones;
            files.push(FileStats {
                name: filename::table_name(t.number()),
                level: Some(u32::try_from(n).unwrap_or(u32::MAX)),
                bytes: t.size(),
                live_bytes: None,
                entries: p.entries,
                smallest_key: Some(smallest_user(t).to_vec()),
                largest_key: Some(largest_user(t).to_vec()),
            });
        }
    }
    let (disk_bytes, file_count) = disk_usage(inner);
    let compactions = c.compactions.lock();
    let mut stats = Stats::default();
    stats.engine = "lsm".to_string();
    stats.user_bytes_written = c.user_bytes.load(Ordering::Relaxed);
    stats.user_writes = c.user_writes.load(Ordering::Relaxed);
    stats.io = inner.io.snapshot();
    stats.compactions = compactions.count;
    stats.compaction_wall = compactions.wall;
    stats.compaction_cpu = compactions.cpu;
    stats.stalls = c.stalls.lock().clone();
    stats.live_keys = live_keys;
    stats.disk_bytes = disk_bytes;
    stats.file_count = file_count;
    stats.index_memory_bytes = memtable_bytes + table_memory;
    stats.levels = levels;
    stats.files = files;
    stats
}

fn disk_usage(inner: &Inner) -> (u64, u64) {
    let Ok(names) = inner.storage.list(&inner.dir) else {
        return (0, 0);
    };
    let bytes = names
        .iter()
        .filter_map(|n| inner.storage.file_len(&inner.dir.join(n)).ok())
        .sum();
    (bytes, names.len() as u64)
}
