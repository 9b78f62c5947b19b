//! Counters the engine keeps, and [`collect`], which turns them and the current shape of the
//! tree into [`Stats`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use engine_api::{CompactionSummary, FileStats, LevelStats, StallCause, StallStats, Stats};
use parking_lot::Mutex;

use std::collections::HashSet;

use crate::compaction::picker::{self, LevelConfig};
use crate::db::Inner;
use crate::filename;
use crate::options::LsmOptions;
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
    pub(crate) fn record_write(&self, ops: usize, user_bytes: usize) {
        self.user_bytes
            .fetch_add(user_bytes as u64, Ordering::Relaxed);
        self.user_writes.fetch_add(ops as u64, Ordering::Relaxed);
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

    pub(crate) fn record_move(&self, level: usize, bytes: u64) {
        self.with_level(level, |l| l.bytes_moved += bytes);
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
    let shape = picker::shape(
        &picker::summarize(&sv.version),
        &HashSet::new(),
        &level_config(&inner.opts),
    );
    for (n, level) in sv.version.levels().iter().enumerate() {
        let counters = c.level(n);
        levels.push(LevelStats {
            level: u32::try_from(n).unwrap_or(u32::MAX),
            files: level.len() as u64,
            bytes: sv.version.level_bytes(n),
            score: shape.scores.get(n).copied().unwrap_or(0.0),
            target_bytes: shape.targets.get(n).copied().unwrap_or(0),
            bytes_read_from_level: counters.bytes_read_from_level,
            bytes_read_from_next: counters.bytes_read_from_next,
            bytes_written: counters.bytes_written,
            bytes_moved: counters.bytes_moved,
            compactions: counters.compactions,
            compaction_time: counters.compaction_time,
            keys_in: counters.keys_in,
            keys_dropped: counters.keys_dropped,
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
    stats.background_error = inner.compactions.halted();
    stats
}

/// The picker's view of the options.
pub(crate) fn level_config(o: &LsmOptions) -> LevelConfig {
    LevelConfig {
        l0_trigger: o.l0_compaction_trigger,
        base_bytes: o.max_bytes_for_level_base,
        multiplier: o.level_size_multiplier,
    }
}

/// RocksDB's "Compaction Stats" table: one row per level and a sum.
pub fn compaction_table(stats: &Stats) -> String {
    use std::fmt::Write as _;
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Level Files  Size(MiB) Score  Target(MiB) Read(MiB) Rn(MiB) Rnp1(MiB) Write(MiB) Moved(MiB) W-Amp  Comp(cnt) Comp(sec) KeyIn    KeyDrop"
    );
    let mut sum = LevelStats::default();
    for l in &stats.levels {
        let _ = writeln!(
            out,
            "L{:<4} {:>5} {:>10.2} {:>5.2} {:>12.2} {:>9.2} {:>7.2} {:>9.2} {:>10.2} {:>10.2} {:>6.2} {:>9} {:>9.3} {:>8} {:>8}",
            l.level,
            l.files,
            mib(l.bytes),
            l.score,
            mib(l.target_bytes),
            mib(l.bytes_read_from_level + l.bytes_read_from_next),
            mib(l.bytes_read_from_level),
            mib(l.bytes_read_from_next),
            mib(l.bytes_written),
            mib(l.bytes_moved),
            l.write_amplification(),
            l.compactions,
            l.compaction_time.as_secs_f64(),
            l.keys_in,
            l.keys_dropped,
        );
        sum.files += l.files;
        sum.bytes += l.bytes;
        sum.bytes_read_from_level += l.bytes_read_from_level;
        sum.bytes_read_from_next += l.bytes_read_from_next;
        sum.bytes_written += l.bytes_written;
        sum.bytes_moved += l.bytes_moved;
        sum.compactions += l.compactions;
        sum.compaction_time += l.compaction_time;
        sum.keys_in += l.keys_in;
        sum.keys_dropped += l.keys_dropped;
    }
    let user = stats.user_bytes_written.max(1);
    let _ = writeln!(
        out,
        "Sum   {:>5} {:>10.2} {:>5} {:>12} {:>9.2} {:>7.2} {:>9.2} {:>10.2} {:>10.2} {:>6.2} {:>9} {:>9.3} {:>8} {:>8}",
        sum.files,
        mib(sum.bytes),
        "",
        "",
        mib(sum.bytes_read_from_level + sum.bytes_read_from_next),
        mib(sum.bytes_read_from_level),
        mib(sum.bytes_read_from_next),
        mib(sum.bytes_written),
        mib(sum.bytes_moved),
        engine_api::ratio(sum.bytes_written, user),
        sum.compactions,
        sum.compaction_time.as_secs_f64(),
        sum.keys_in,
        sum.keys_dropped,
    );
    let _ = writeln!(
        out,
        "Stalls: {} writes, {:.3} s ({})",
        stats.stalls.count,
        stats.stalls.time.as_secs_f64(),
        stats
            .stalls
            .by_cause
            .iter()
            .map(|c| format!("{} {}x {:.3}s", c.cause, c.count, c.time.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}

/// The live WAL counts at its logical end: the zeros preallocated after it are a sparse
/// extension that occupies no blocks (`docs/formats/wal.md`, "Preallocation").
fn disk_usage(inner: &Inner) -> (u64, u64) {
    let live = inner.wal_tail.lock().wal.clone();
    let live = live.map(|w| (filename::wal(&inner.dir, w.number()), w.len()));
    let Ok(names) = inner.storage.list(&inner.dir) else {
        return (0, 0);
    };
    let len = |path: PathBuf| match &live {
        Some((wal, len)) if *wal == path => Some(*len),
        _ => inner.storage.file_len(&path).ok(),
    };
    let bytes = names.iter().filter_map(|n| len(inner.dir.join(n))).sum();
    (bytes, names.len() as u64)
}
