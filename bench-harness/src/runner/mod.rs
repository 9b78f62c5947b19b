//! [`Runner`]: runs phases against one engine and measures them.
//!
//! A phase is a [`Phase`]: a workload, an operation count and a thread count. The runner derives
//! the phase's seed from the data set's seed and the phase's position, so the same list of
//! phases gives every engine the same traffic. Worker threads issue the operations; the
//! runner's own thread samples once a second.

mod live;
mod recovery;
mod sampler;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine_api::{Engine, IoCounters};
use serde::Serialize;

pub use live::LiveSet;
pub use recovery::{Freezer, RecoverySummary, Reopen};

use self::sampler::{IntervalContext, PhaseTally, Sampling, progress_bar};
use self::worker::{Pace, Readers, Role, Shared, Slot, Until, lock, run_compact, run_stream};
use crate::error::{HarnessError, Result};
use crate::metrics::amplification::{read_amplification, space_amplification, write_amplification};
use crate::metrics::process::{CpuTime, Memory, ProcIo, reset_peak_rss};
use crate::metrics::{
    CompactionCost, EngineRun, IntervalRecord, PhaseSummary, RunTotals, Snapshot, StallCost,
};
use crate::workload::zipf::derive_seed;
use crate::workload::{Dataset, KeyCodec, OpStream, Pattern, StreamPlan, ValuePool, Workload};

/// One phase of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// The label shown in reports; unique within a run.
    pub label: String,
    /// What to run.
    pub workload: Workload,
    /// Operations over all threads (passes and `compact` ignore it).
    pub ops: u64,
    /// Worker threads.
    pub threads: usize,
    /// Operations per second over all threads, issued on a fixed schedule (open loop), with
    /// latency measured from each operation's intended start; `None` for the closed loop (each
    /// thread issues its next operation when the last is answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Whether the OS page cache is dropped just before the phase, so its reads come from the
    /// device (`--cold`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cold: bool,
    /// Seconds after which the phase stops issuing operations, done or not (`--scan-phase-secs`
    /// on scan-heavy phases, whose cost on a hash index grows with the key count); `None` runs
    /// every operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<f64>,
    /// The shortest the measured phase may last, in seconds: a phase whose workload
    /// [`Workload::extends`] and that finishes its operations sooner keeps drawing from the
    /// same stream until then (`--min-phase-secs`); 0 runs exactly `ops`.
    #[serde(skip_serializing_if = "is_zero")]
    pub min_secs: f64,
    /// Seconds of uncounted warm-up before the measured phase (`--warmup-secs`), for workloads
    /// that [`Workload::extends`]; 0 for none.
    #[serde(skip_serializing_if = "is_zero")]
    pub warmup_secs: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The label a warm-up's stream seed is derived with, apart from every measured stream's.
const WARMUP_SEED: u64 = 0x5741_524D;

/// One run of a phase's workers: the measured phase, or its warm-up.
#[derive(Clone, Copy, Debug)]
struct Stretch {
    /// Whether the streams go on past their counts (see [`crate::workload::OpStream::extended`]).
    extend: bool,
    /// Whether the streams' counts must be reached before `secs` can end them.
    count: bool,
    /// How long extended streams run at least.
    secs: f64,
}

impl Phase {
    /// A phase labelled with the workload's name.
    pub fn new(workload: Workload, ops: u64, threads: usize) -> Self {
        Phase {
            label: workload.name.clone(),
            workload,
            ops,
            threads,
            rate: None,
            cold: false,
            min_secs: 0.0,
            warmup_secs: 0.0,
            time_limit_s: None,
        }
    }

    /// The same phase stopped after `seconds` (see [`Phase::time_limit_s`]).
    pub fn time_limited(mut self, seconds: Option<f64>) -> Self {
        self.time_limit_s = seconds.filter(|s| *s > 0.0);
        self
    }

    /// Whether the phase is mostly scans (`readseq`, `seekrandom`, YCSB E): a hash-indexed
    /// engine walks its whole keydir for each, so such a phase is the one to cap by time.
    pub fn is_scan_heavy(&self) -> bool {
        match &self.workload.pattern {
            Pattern::ReadSeq => true,
            Pattern::Mix(mix) => mix.scan >= 0.5,
            _ => false,
        }
    }

    /// The same phase, lasting at least `secs` seconds if its workload allows it (see
    /// [`Phase::min_secs`]).
    #[must_use]
    pub fn lasting(mut self, secs: f64) -> Self {
        self.min_secs = secs.max(0.0);
        self
    }

    /// The same phase, started with `secs` seconds of uncounted warm-up if its workload allows
    /// it (see [`Phase::warmup_secs`]).
    #[must_use]
    pub fn warmed(mut self, secs: f64) -> Self {
        self.warmup_secs = secs.max(0.0);
        self
    }

    fn measured(&self) -> Stretch {
        Stretch {
            extend: self.min_secs > 0.0 && self.workload.extends(),
            count: true,
            secs: self.min_secs,
        }
    }

    fn warmup(&self) -> Option<Stretch> {
        (self.warmup_secs > 0.0 && self.workload.extends()).then_some(Stretch {
            extend: true,
            count: false,
            secs: self.warmup_secs,
        })
    }

    /// The same phase started with a cold page cache (see [`Phase::cold`]).
    pub fn cold(mut self, cold: bool) -> Self {
        self.cold = cold;
        self
    }

    /// The same phase in the open loop at `rate` operations per second (see [`Phase::rate`]).
    pub fn at_rate(mut self, rate: Option<f64>) -> Self {
        self.rate = rate;
        self
    }

    /// The same phase under another label.
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
}

/// Runs phases against one engine, keeping what is needed to measure each against the state at
/// open: see the crate documentation for an example.
pub struct Runner {
    name: String,
    engine: Arc<dyn Engine>,
    dir: PathBuf,
    dataset: Dataset,
    codec: KeyCodec,
    pool: ValuePool,
    live: LiveSet,
    seam_accounting: bool,
    progress: bool,
    next_insert: u64,
    phases_run: u64,
    user_bytes: u64,
    opened: Snapshot,
    peak_rss_is_own: bool,
    phases: Vec<PhaseSummary>,
    intervals: Vec<IntervalRecord>,
    peak_space_amp: f64,
    peak_disk_bytes: u64,
    counters: Option<Arc<IoCounters>>,
    recoveries: Vec<RecoverySummary>,
    /// Crash images taken, not yet opened.
    pending: Vec<recovery::PendingImage>,
    /// What taking them cost the process: left out of the run's totals.
    excluded_io: ProcIo,
    excluded_cpu: CpuTime,
}

impl Runner {
    /// A runner for `engine`, whose files live in `dir`, over `dataset`. Resets the process's
    /// peak-RSS mark so the run's peak is its own.
    ///
    /// # Errors
    /// [`HarnessError::InvalidInput`] for a data set with no keys.
    pub fn new(engine: Arc<dyn Engine>, dir: impl Into<PathBuf>, dataset: Dataset) -> Result<Self> {
        if dataset.key_count == 0 {
            return Err(HarnessError::invalid("the data set needs at least one key"));
        }
        let dir = dir.into();
        let peak_rss_is_own = reset_peak_rss();
        let opened = Snapshot::take(engine.as_ref(), &dir);
        Ok(Runner {
            name: engine.name().to_string(),
            codec: KeyCodec::new(dataset.key_size),
            pool: ValuePool::new(dataset.value_size, derive_seed(dataset.seed, u64::MAX)),
            live: LiveSet::new(dataset.key_count),
            seam_accounting: true,
            progress: false,
            next_insert: dataset.key_count,
            phases_run: 0,
            user_bytes: 0,
            opened,
            peak_rss_is_own,
            phases: Vec::new(),
            intervals: Vec::new(),
            peak_space_amp: 0.0,
            peak_disk_bytes: 0,
            counters: None,
            recoveries: Vec::new(),
            pending: Vec::new(),
            excluded_io: ProcIo::default(),
            excluded_cpu: CpuTime::default(),
            engine,
            dir,
            dataset,
        })
    }

    /// Reports the engine under `name` rather than the name it gives itself.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Shows a progress bar on stderr for each phase.
    #[must_use]
    pub fn with_progress(mut self, visible: bool) -> Self {
        self.progress = visible;
        self
    }

    /// Measures the engine's seam I/O with the harness's own `counters`, which the engine's
    /// storage counts into (see [`crate::engines::EngineConfig::counted`]), instead of the
    /// engine's report. The figure at open is read again from them.
    #[must_use]
    pub fn with_io_counters(mut self, counters: Arc<IoCounters>) -> Self {
        self.opened.stats.io = counters.snapshot();
        self.counters = Some(counters);
        self
    }

    /// The harness's own I/O counters, if the runner has them.
    pub fn io_counters(&self) -> Option<&Arc<IoCounters>> {
        self.counters.as_ref()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::take_counted(self.engine.as_ref(), &self.dir, self.counters.as_deref())
    }

    /// Declares that the engine's I/O bypasses the counting seam (a peer engine), so write
    /// amplification over time uses `/proc/self/io` instead.
    #[must_use]
    pub fn without_seam(mut self) -> Self {
        self.seam_accounting = false;
        self
    }

    /// The stream plan the next phase would run: the same on every engine for the same phases.
    pub fn plan(&self, phase: &Phase) -> StreamPlan {
        StreamPlan {
            workload: phase.workload.clone(),
            ops: phase.ops,
            threads: phase.threads.max(1),
            key_count: self.dataset.key_count,
            insert_base: self.next_insert,
            seed: derive_seed(self.dataset.seed, self.phases_run),
            value_offsets: self.pool.offsets(),
        }
    }

    /// Runs one phase to completion and returns its summary (also kept for [`Runner::finish`]).
    ///
    /// # Errors
    /// [`HarnessError::InvalidInput`] if the phase's keys do not fit the key size or its mix is
    /// invalid; an engine
    /// error or a wrong answer stops the phase and is returned.
    pub fn run_phase(&mut self, phase: &Phase) -> Result<PhaseSummary> {
        if let Pattern::Mix(mix) = &phase.workload.pattern {
            mix.validate()?;
        }
        let plan = self.plan(phase);
        let capacity = plan.insert_base + plan.insert_capacity();
        if !self.codec.fits(capacity.saturating_sub(1)) {
            return Err(HarnessError::invalid(format!(
                "key ids up to {} need {} digits, more than the key size of {} bytes",
                capacity - 1,
                KeyCodec::digits(capacity - 1),
                self.codec.size()
            )));
        }
        self.live.grow(capacity);
        self.next_insert = capacity;
        self.phases_run += 1;
        let warmup = self.warm_up(phase, &plan)?;
        if phase.cold {
            crate::isolation::drop_page_cache().map_err(|why| {
                HarnessError::invalid(format!("cannot start '{}' cold: {why}", phase.label))
            })?;
        }
        let before = self.snapshot();
        let (tally, compact_summary, intervals) = self.drive(phase, &plan, phase.measured())?;
        self.absorb_intervals(intervals, &tally);
        let after = self.snapshot();
        let mut summary = self.summarise(phase, &before, &after, tally, compact_summary);
        (summary.warmup_ops, summary.warmup_s) = warmup;
        summary.planned_ops = planned_ops(phase, &plan);
        self.user_bytes += summary.counts.user_bytes_written;
        self.phases.push(summary.clone());
        Ok(summary)
    }

    /// Runs the phase's warm-up, if it has one: its workload from streams seeded apart from the
    /// measured ones (so the measured operations are the same on every engine, however many
    /// the warm-up issued), for its time, counted nowhere but in the user bytes written (the
    /// seam sees its writes). Returns its operations and seconds.
    fn warm_up(&mut self, phase: &Phase, plan: &StreamPlan) -> Result<(u64, f64)> {
        let Some(stretch) = phase.warmup() else {
            return Ok((0, 0.0));
        };
        let warm = StreamPlan {
            seed: derive_seed(plan.seed, WARMUP_SEED),
            ..plan.clone()
        };
        let (tally, _, _) = self.drive(phase, &warm, stretch)?;
        self.user_bytes += tally.counts.user_bytes_written;
        Ok((tally.counts.ops, tally.seconds))
    }

    /// Runs the workers and samples until they finish.
    fn drive(
        &self,
        phase: &Phase,
        plan: &StreamPlan,
        stretch: Stretch,
    ) -> Result<(
        PhaseTally,
        Option<engine_api::CompactionSummary>,
        Vec<IntervalRecord>,
    )> {
        let compact = phase.workload.pattern == Pattern::Compact;
        let mut streams = if compact { Vec::new() } else { plan.streams() };
        if stretch.extend {
            streams = streams.into_iter().map(OpStream::extended).collect();
        }
        let roles = roles(phase, streams.len());
        let readers = Readers::default();
        let reader_count = roles.iter().filter(|r| **r == Role::Reader).count();
        readers.left.store(reader_count, Ordering::Relaxed);
        // The writer of readwhilewriting runs until the readers end: the bar counts the reads.
        let total: u64 = streams
            .iter()
            .zip(&roles)
            .filter(|(_, r)| **r != Role::Writer)
            .map(|(s, _)| s.total())
            .sum();
        let slots: Vec<Slot> = (0..streams.len().max(1)).map(|_| Slot::default()).collect();
        let stop = AtomicBool::new(false);
        let has_deletes = matches!(&phase.workload.pattern, Pattern::Mix(m) if m.delete > 0.0);
        let shared = Shared {
            engine: self.engine.as_ref(),
            phase: &phase.label,
            codec: self.codec,
            pool: &self.pool,
            live: &self.live,
            stop: &stop,
            check_hits: !(has_deletes && streams.len() > 1),
            pace: Pace::for_rate(phase.rate, phase.threads, Instant::now()),
            readers: &readers,
            deadline: phase
                .time_limit_s
                .map(|s| Instant::now() + std::time::Duration::from_secs_f64(s)),
            until: if stretch.extend {
                Until {
                    count: stretch.count,
                    at: Some(Instant::now() + Duration::from_secs_f64(stretch.secs)),
                }
            } else {
                Until::COUNT
            },
        };
        let bar = progress_bar(self.progress, &self.name, &phase.label, total);
        let ctx = IntervalContext {
            engine: self.engine.as_ref(),
            name: &self.name,
            dir: &self.dir,
            phase: &phase.label,
            opened: &self.opened,
            record_bytes: self.dataset.record_bytes(),
            live: &self.live,
            seam_accounting: self.seam_accounting,
            user_bytes_before: self.user_bytes,
            pattern: &phase.workload.pattern,
            counters: self.counters.as_deref(),
        };
        let mut tally = PhaseTally::default();
        let workers = if compact { 1 } else { streams.len() };
        let (done_tx, done_rx) = mpsc::channel::<Instant>();
        let started = Instant::now();
        let (outcome, intervals, ended) = std::thread::scope(|scope| {
            let handles: Vec<_> = if compact {
                let (shared, slot) = (&shared, &slots[..1]);
                vec![spawn_job(scope, &done_tx, move || {
                    run_compact(shared, &slot[0])
                })]
            } else {
                streams
                    .into_iter()
                    .zip(&slots)
                    .zip(roles)
                    .map(|((stream, slot), role)| {
                        let shared = &shared;
                        spawn_job(scope, &done_tx, move || {
                            run_stream(shared, stream, slot, role)
                        })
                    })
                    .collect()
            };
            let sampling = Sampling {
                ctx: &ctx,
                slots: &slots,
                bar: &bar,
                done: &done_rx,
                workers,
            };
            let (intervals, ended) = sampling.until_done(started, &mut tally);
            let outcome = handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(panicked(&shared))))
                .collect::<Result<Vec<()>>>();
            (outcome, intervals, ended)
        });
        bar.finish_and_clear();
        outcome?;
        tally.seconds = ended.duration_since(started).as_secs_f64();
        let summary = lock(&slots[0].compact_summary).take();
        Ok((tally, summary, intervals))
    }

    fn absorb_intervals(&mut self, intervals: Vec<IntervalRecord>, tally: &PhaseTally) {
        self.peak_space_amp = self.peak_space_amp.max(tally.peak_space_amp);
        self.peak_disk_bytes = self.peak_disk_bytes.max(tally.peak_disk_bytes);
        self.intervals.extend(intervals);
    }

    fn summarise(
        &self,
        phase: &Phase,
        before: &Snapshot,
        after: &Snapshot,
        tally: PhaseTally,
        compact_summary: Option<engine_api::CompactionSummary>,
    ) -> PhaseSummary {
        let seconds = tally.seconds.max(1e-9);
        let counts = tally.counts;
        let io = after.stats.io.since(&before.stats.io);
        let proc_io = after.proc_io.since(&before.proc_io);
        let live_keys = self.live.count();
        let space_amp =
            space_amplification(after.disk_bytes, live_keys, self.dataset.record_bytes());
        let only_gets = counts.gets > 0 && counts.scans == 0;
        #[expect(clippy::cast_precision_loss, reason = "rates")]
        let (ops_per_sec, mb_per_sec) = (
            headline_ops(&phase.workload.pattern, &counts) as f64 / seconds,
            (counts.user_bytes_written + counts.user_bytes_read) as f64 / seconds / 1e6,
        );
        PhaseSummary {
            phase: phase.label.clone(),
            workload: phase.workload.name.clone(),
            threads: phase.threads.max(1),
            seconds,
            counts,
            ops_per_sec,
            mb_per_sec,
            latency: tally.latencies.overall(),
            latency_by_class: tally
                .latencies
                .by_class()
                .into_iter()
                .map(|(c, s)| (c.name().to_string(), s))
                .collect(),
            write_amp: write_amplification(&io, &proc_io, counts.user_bytes_written),
            read_amp: only_gets.then(|| read_amplification(&io, &proc_io, counts.gets)),
            compaction: CompactionCost::between(&before.stats, &after.stats),
            stalls: StallCost::between(&before.stats, &after.stats),
            compact_summary,
            io,
            proc_io,
            cpu: after.cpu.since(&before.cpu),
            disk_bytes: after.disk_bytes,
            engine_disk_bytes: after.stats.disk_bytes,
            live_keys,
            engine_live_keys: after.stats.live_keys,
            space_amp,
            peak_space_amp: tally.peak_space_amp.max(space_amp),
            rss_bytes: after.memory.rss_bytes,
            peak_rss_bytes: after.memory.peak_rss_bytes.max(tally.peak_rss_bytes),
            index_memory_bytes: after.stats.index_memory_bytes,
            planned_ops: phase.ops,
            warmup_ops: 0,
            warmup_s: 0.0,
            synced_device: None,
        }
    }

    /// Measures crash recovery now (see the `recovery` module): copies the engine's files as a
    /// process kill would leave them, while `freezer` (the storage the engine runs on) holds
    /// every change, opens the copy with `reopen` and times it, reads back live keys to check
    /// it, and removes it. A copy with hint files is opened a second time without them. With
    /// `cold`, the page cache is dropped before each open. The engine goes on untouched. (The
    /// suite uses [`Runner::take_crash_image`] and [`Runner::finish_and_recover`] instead, so
    /// that the open does not run beside the measured engine.)
    ///
    /// # Errors
    /// The copy failed; the open failed; a live key was not found after it.
    pub fn measure_recovery(
        &mut self,
        after: &str,
        freezer: &Freezer,
        reopen: &Reopen<'_>,
        cold: bool,
    ) -> Result<Vec<RecoverySummary>> {
        self.take_crash_image(after, freezer)?;
        let Some(pending) = self.pending.pop() else {
            return Ok(Vec::new());
        };
        let out = pending.reopen(&self.name, reopen, cold)?;
        self.recoveries.extend(out.iter().cloned());
        Ok(out)
    }

    /// Takes the crash image of the engine's files now, as [`Runner::measure_recovery`] does,
    /// and keeps it for [`Runner::finish_and_recover`]. What the copy costs the process (bytes
    /// through `/proc/self/io`, CPU time) is left out of the run's totals.
    ///
    /// # Errors
    /// The copy failed.
    pub fn take_crash_image(&mut self, after: &str, freezer: &Freezer) -> Result<()> {
        let (io_before, cpu_before) = (ProcIo::read().unwrap_or_default(), CpuTime::read());
        let base = recovery::image_dir(&self.dir);
        let image = PathBuf::from(format!("{}-{}", base.display(), self.pending.len()));
        let mut pending = recovery::PendingImage::take(freezer, &self.dir, &image)?;
        pending.after = after.to_string();
        pending.keys = self.live.count();
        pending.sample = self.sample_live_keys();
        let io = ProcIo::read().unwrap_or_default().since(&io_before);
        self.excluded_io = self.excluded_io.plus(&io);
        let cpu = CpuTime::read().since(&cpu_before);
        self.excluded_cpu.user_s += cpu.user_s;
        self.excluded_cpu.system_s += cpu.system_s;
        self.pending.push(pending);
        Ok(())
    }

    /// Ends the run as [`Runner::finish`] does, then, with the engine closed, opens every crash
    /// image [`Runner::take_crash_image`] kept, and adds what each open measured to the run.
    ///
    /// # Errors
    /// An open failed, or a live key was not found after it.
    pub fn finish_and_recover(
        mut self,
        settings: Vec<(String, String)>,
        reopen: &Reopen<'_>,
        cold: bool,
    ) -> Result<EngineRun> {
        let pending = std::mem::take(&mut self.pending);
        let name = self.name.clone();
        let mut run = self.finish(settings);
        for image in pending {
            run.recovery.extend(image.reopen(&name, reopen, cold)?);
        }
        Ok(run)
    }

    /// Up to 1,000 live keys spread over the id space, encoded.
    fn sample_live_keys(&self) -> Vec<Vec<u8>> {
        let ids = self.next_insert;
        let step = usize::try_from((ids / 1_000).max(1)).unwrap_or(usize::MAX);
        (0..ids)
            .step_by(step)
            .filter(|id| self.live.contains(*id))
            .map(|id| {
                let mut key = Vec::new();
                self.codec.encode(id, &mut key);
                key
            })
            .collect()
    }

    /// Crash recoveries measured so far.
    pub fn recoveries(&self) -> &[RecoverySummary] {
        &self.recoveries
    }

    /// The phases run so far.
    pub fn phases(&self) -> &[PhaseSummary] {
        &self.phases
    }

    /// The engine being measured.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Ends the run: reads the engine once more and returns everything measured, with whole-run
    /// totals. `settings` are recorded as given, for the report.
    pub fn finish(self, settings: Vec<(String, String)>) -> EngineRun {
        let end = self.snapshot();
        let io = end.stats.io.since(&self.opened.stats.io);
        let proc_io = end
            .proc_io
            .since(&self.opened.proc_io)
            .since(&self.excluded_io);
        let live_keys = self.live.count();
        let space_amp = space_amplification(end.disk_bytes, live_keys, self.dataset.record_bytes());
        let totals = RunTotals {
            seconds: self.phases.iter().map(|p| p.seconds).sum(),
            write_amp: write_amplification(&io, &proc_io, self.user_bytes),
            compaction: CompactionCost::between(&self.opened.stats, &end.stats),
            stalls: StallCost::between(&self.opened.stats, &end.stats),
            cpu: end.cpu.since(&self.opened.cpu).since(&self.excluded_cpu),
            disk_bytes: end.disk_bytes,
            peak_disk_bytes: self.peak_disk_bytes.max(end.disk_bytes),
            space_amp,
            peak_space_amp: self.peak_space_amp.max(space_amp),
            peak_rss_bytes: Memory::read().peak_rss_bytes,
            rss_at_open_bytes: self.opened.memory.rss_bytes,
            index_memory_bytes: end.stats.index_memory_bytes,
            live_keys,
        };
        EngineRun {
            engine: self.name,
            settings,
            seam_accounting: self.seam_accounting,
            peak_rss_is_own: self.peak_rss_is_own,
            phases: self.phases,
            intervals: self.intervals,
            totals,
            recovery: self.recoveries,
            bandwidth: None,
        }
    }

    /// The directory the engine's files live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The operations a phase issues before any extension: a pass's length (its `ops` is ignored),
/// none for `compact`, else its count.
fn planned_ops(phase: &Phase, plan: &StreamPlan) -> u64 {
    match phase.workload.pattern {
        Pattern::Compact => 0,
        _ if phase.workload.is_pass() => plan.streams().iter().map(OpStream::total).sum(),
        _ => phase.ops,
    }
}

/// Spawns a worker that reports the moment it ends on `done`, whatever its result.
fn spawn_job<'scope, F>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    done: &mpsc::Sender<Instant>,
    job: F,
) -> std::thread::ScopedJoinHandle<'scope, Result<()>>
where
    F: FnOnce() -> Result<()> + Send + 'scope,
{
    let done = done.clone();
    scope.spawn(move || {
        let result = job();
        let _ = done.send(Instant::now());
        result
    })
}

fn panicked(shared: &Shared<'_>) -> HarnessError {
    HarnessError::WrongAnswer {
        engine: shared.engine.name().to_string(),
        phase: shared.phase.to_string(),
        detail: "a worker thread panicked inside the engine".to_string(),
    }
}

/// Each stream's part: under `readwhilewriting` the last stream is the writer.
fn roles(phase: &Phase, streams: usize) -> Vec<Role> {
    let rww = phase.workload.pattern == Pattern::ReadWhileWriting;
    (0..streams)
        .map(|i| match (rww, i + 1 == streams) {
            (true, true) => Role::Writer,
            (true, false) => Role::Reader,
            (false, _) => Role::Plain,
        })
        .collect()
}

/// The operations a phase's throughput counts: the readers' gets under `readwhilewriting` (as
/// db_bench reports it; the writer is there to disturb them), every operation otherwise.
pub(crate) fn headline_ops(pattern: &Pattern, counts: &crate::metrics::OpCounts) -> u64 {
    if *pattern == Pattern::ReadWhileWriting {
        counts.gets
    } else {
        counts.ops
    }
}
