//! What a run measures: per-phase summaries, per-second intervals, and run totals, plus the
//! formulas ([`amplification`]), the histograms ([`latency`]) and the operating-system figures
//! ([`process`]) they are built from.

pub mod amplification;
pub mod latency;
pub mod process;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use engine_api::{CompactionSummary, Engine, IoClass, IoCounters, IoStats, Stats};
use serde::{Deserialize, Serialize};

use self::amplification::{ReadAmplification, WriteAmplification};
use self::latency::LatencySummary;
use self::process::{CpuTime, Memory, ProcIo};

/// Operation counts of a stretch of a phase, kept by the worker threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// Operations issued (a read-modify-write counts one).
    pub ops: u64,
    /// Gets issued, including the get of each read-modify-write.
    pub gets: u64,
    /// Gets that found a value.
    pub found: u64,
    /// Puts issued, including the put of each read-modify-write.
    pub puts: u64,
    /// Deletes issued.
    pub deletes: u64,
    /// Scans issued.
    pub scans: u64,
    /// Entries the scans returned.
    pub scan_entries: u64,
    /// Key and value bytes written (a delete counts its key).
    pub user_bytes_written: u64,
    /// Key and value bytes returned by gets and scans.
    pub user_bytes_read: u64,
}

impl OpCounts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &OpCounts) {
        self.ops += other.ops;
        self.gets += other.gets;
        self.found += other.found;
        self.puts += other.puts;
        self.deletes += other.deletes;
        self.scans += other.scans;
        self.scan_entries += other.scan_entries;
        self.user_bytes_written += other.user_bytes_written;
        self.user_bytes_read += other.user_bytes_read;
    }
}

/// One reading of an engine and the process, taken between or during phases.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When it was taken.
    pub at: Instant,
    /// The engine's own report.
    pub stats: Stats,
    /// `/proc/self/io`.
    pub proc_io: ProcIo,
    /// CPU time of the process.
    pub cpu: CpuTime,
    /// Resident memory.
    pub memory: Memory,
    /// `du` of the engine's directory.
    pub disk_bytes: u64,
}

impl Snapshot {
    /// Reads everything now.
    pub fn take(engine: &dyn Engine, dir: &Path) -> Self {
        Snapshot {
            at: Instant::now(),
            stats: engine.stats(),
            proc_io: ProcIo::read().unwrap_or_default(),
            cpu: CpuTime::read(),
            memory: Memory::read(),
            disk_bytes: process::disk_usage(dir),
        }
    }

    /// Reads everything now, taking the seam I/O from the harness's own `counters` (see
    /// [`crate::engines::EngineConfig::counted`]) rather than from the engine's report, when
    /// there are some.
    pub fn take_counted(engine: &dyn Engine, dir: &Path, counters: Option<&IoCounters>) -> Self {
        let mut snapshot = Self::take(engine, dir);
        if let Some(counters) = counters {
            snapshot.stats.io = counters.snapshot();
        }
        snapshot
    }
}

/// Compaction or merge work over a stretch of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompactionCost {
    /// Compactions or merges completed.
    pub count: u64,
    /// Their wall-clock seconds.
    pub wall_s: f64,
    /// Their CPU seconds (threads that ran them).
    pub cpu_s: f64,
    /// Bytes they read (seam, `Compaction` class).
    pub bytes_read: u64,
    /// Bytes they wrote (seam, `Compaction` class).
    pub bytes_written: u64,
    /// Bytes memtable flushes wrote (seam, `Flush` class).
    pub flush_bytes: u64,
}

impl CompactionCost {
    /// The cost between two engine reports.
    pub fn between(earlier: &Stats, later: &Stats) -> Self {
        let io = later.io.since(&earlier.io);
        let compaction = io.class(IoClass::Compaction);
        CompactionCost {
            count: later.compactions.saturating_sub(earlier.compactions),
            wall_s: later
                .compaction_wall
                .saturating_sub(earlier.compaction_wall)
                .as_secs_f64(),
            cpu_s: later
                .compaction_cpu
                .saturating_sub(earlier.compaction_cpu)
                .as_secs_f64(),
            bytes_read: compaction.bytes_read,
            bytes_written: compaction.bytes_written,
            flush_bytes: io.class(IoClass::Flush).bytes_written,
        }
    }
}

/// Writer stalls over a stretch of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StallCost {
    /// Writes delayed or stopped.
    pub count: u64,
    /// Seconds writers waited.
    pub seconds: f64,
}

impl StallCost {
    /// The stalls between two engine reports.
    pub fn between(earlier: &Stats, later: &Stats) -> Self {
        StallCost {
            count: later.stalls.count.saturating_sub(earlier.stalls.count),
            seconds: later
                .stalls
                .time
                .saturating_sub(earlier.stalls.time)
                .as_secs_f64(),
        }
    }
}

/// Everything measured in one phase of one engine's run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseSummary {
    /// The phase's label (unique within a run).
    pub phase: String,
    /// The workload's name.
    pub workload: String,
    /// Worker threads.
    pub threads: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Operation counts.
    pub counts: OpCounts,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// User bytes written and read per second, in MB (10^6 bytes).
    pub mb_per_sec: f64,
    /// Latency over every operation.
    pub latency: Option<LatencySummary>,
    /// Latency per class of operation.
    pub latency_by_class: BTreeMap<String, LatencySummary>,
    /// Write amplification of the phase's writes.
    pub write_amp: WriteAmplification,
    /// Read amplification, for phases whose reads are all gets.
    pub read_amp: Option<ReadAmplification>,
    /// Compaction and merge work during the phase.
    pub compaction: CompactionCost,
    /// Writer stalls during the phase.
    pub stalls: StallCost,
    /// What `compact` reported, for a compaction phase.
    pub compact_summary: Option<CompactionSummary>,
    /// Seam I/O during the phase, per class.
    pub io: IoStats,
    /// `/proc/self/io` during the phase.
    pub proc_io: ProcIo,
    /// Process CPU time during the phase.
    pub cpu: CpuTime,
    /// `du` of the engine's directory at the end.
    pub disk_bytes: u64,
    /// The engine's own figure for its files' size at the end.
    pub engine_disk_bytes: u64,
    /// Live keys at the end, as the harness counts them.
    pub live_keys: u64,
    /// Live keys at the end, as the engine counts (or estimates) them.
    pub engine_live_keys: u64,
    /// Space amplification at the end: `disk_bytes` over live logical bytes.
    pub space_amp: f64,
    /// The largest space amplification sampled during the phase.
    pub peak_space_amp: f64,
    /// Resident memory at the end.
    pub rss_bytes: u64,
    /// Peak resident memory since the engine was opened.
    pub peak_rss_bytes: u64,
    /// Memory the engine says its index holds.
    pub index_memory_bytes: u64,
    /// The phase's operation count as planned: `counts.ops` is larger when `--min-phase-secs`
    /// kept the phase going.
    #[serde(default)]
    pub planned_ops: u64,
    /// Operations of the uncounted warm-up before the phase (`--warmup-secs`).
    #[serde(default)]
    pub warmup_ops: u64,
    /// Seconds of that warm-up.
    #[serde(default)]
    pub warmup_s: f64,
    /// Under `--sync always`, for a phase that wrote: the device's synced appends measured in
    /// the same directory right after the phase ([`crate::bandwidth::synced_appends`]).
    #[serde(default)]
    pub synced_device: Option<crate::bandwidth::SyncedAppends>,
}

impl PhaseSummary {
    /// Puts and deletes issued (a batch counts its operations).
    pub fn writes(&self) -> u64 {
        self.counts.puts + self.counts.deletes
    }

    /// Log syncs (seam class `log`) per write; `None` for a phase without writes or without
    /// seam counts.
    pub fn syncs_per_write(&self) -> Option<f64> {
        let syncs = self.io.class(engine_api::IoClass::Log).syncs;
        #[expect(clippy::cast_precision_loss, reason = "a ratio")]
        (self.writes() > 0 && self.io != engine_api::IoStats::default())
            .then(|| syncs as f64 / self.writes() as f64)
    }
}

/// One second (or the last, shorter stretch) of a phase.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntervalRecord {
    /// The engine.
    pub engine: String,
    /// The phase.
    pub phase: String,
    /// Seconds since the engine was opened, at the end of the interval.
    pub t: f64,
    /// Length of the interval in seconds.
    pub seconds: f64,
    /// Operations completed in the interval.
    pub ops: u64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// User MB written and read per second.
    pub mb_per_sec: f64,
    /// Latency of the interval's operations.
    pub latency: Option<LatencySummary>,
    /// User bytes written since the engine was opened.
    pub user_bytes_total: u64,
    /// Seam bytes written since the engine was opened.
    pub seam_bytes_written_total: u64,
    /// Write amplification since the engine was opened (seam total, or `wchar` for engines
    /// without a seam).
    pub write_amp: f64,
    /// `du` of the engine's directory.
    pub disk_bytes: u64,
    /// Live keys (harness count).
    pub live_keys: u64,
    /// Space amplification.
    pub space_amp: f64,
    /// Resident memory.
    pub rss_bytes: u64,
    /// Compactions or merges since open.
    pub compactions: u64,
    /// Stall seconds since open.
    pub stall_s: f64,
}

/// Whole-run figures for one engine: from open to the end of the last phase.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunTotals {
    /// Seconds of phases.
    pub seconds: f64,
    /// Write amplification over the whole run.
    pub write_amp: WriteAmplification,
    /// Compaction and merge work over the whole run.
    pub compaction: CompactionCost,
    /// Stalls over the whole run.
    pub stalls: StallCost,
    /// Process CPU time over the whole run.
    pub cpu: CpuTime,
    /// `du` at the end.
    pub disk_bytes: u64,
    /// Largest `du` sampled.
    pub peak_disk_bytes: u64,
    /// Space amplification at the end.
    pub space_amp: f64,
    /// Largest space amplification sampled.
    pub peak_space_amp: f64,
    /// Peak resident memory of the run (VmHWM, reset at open when the kernel allows).
    pub peak_rss_bytes: u64,
    /// Resident memory when the engine was opened: what earlier engines of the same process
    /// left behind (the allocator keeps freed memory), so `peak_rss_bytes` minus this is the
    /// run's own growth.
    pub rss_at_open_bytes: u64,
    /// Index memory at the end, as the engine reports it.
    pub index_memory_bytes: u64,
    /// Live keys at the end (harness count).
    pub live_keys: u64,
}

/// One engine's whole run: its settings, every phase, every interval, the totals.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineRun {
    /// The engine's name.
    pub engine: String,
    /// The settings it ran with, as `(name, value)` pairs.
    pub settings: Vec<(String, String)>,
    /// Whether its I/O passes through the counting seam (our engines) or only `/proc` sees it
    /// (peers).
    pub seam_accounting: bool,
    /// Whether VmHWM could be reset at open, so its peak RSS is its own.
    pub peak_rss_is_own: bool,
    /// The phases, in order.
    pub phases: Vec<PhaseSummary>,
    /// The per-second intervals, in order.
    pub intervals: Vec<IntervalRecord>,
    /// Whole-run figures.
    pub totals: RunTotals,
    /// Crash recoveries measured during the run, in order.
    #[serde(default)]
    pub recovery: Vec<crate::runner::RecoverySummary>,
    /// The sequential-write bandwidth fill beside the device's figures, if it ran.
    #[serde(default)]
    pub bandwidth: Option<crate::bandwidth::Bandwidth>,
}

impl EngineRun {
    /// The phase with this label, if it ran.
    pub fn phase(&self, label: &str) -> Option<&PhaseSummary> {
        self.phases.iter().find(|p| p.phase == label)
    }
}

/// Seconds of a duration as a float (for JSON).
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
