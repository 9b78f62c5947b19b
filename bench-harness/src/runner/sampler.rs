//! The sampling side of a phase: while the workers run, the runner's own thread updates the
//! progress bar ten times a second and, once a second, drains the workers and reads the engine
//! and the process into an [`IntervalRecord`].

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use engine_api::{Engine, ratio};
use indicatif::{ProgressBar, ProgressStyle};

use super::live::LiveSet;
use super::worker::Slot;
use crate::metrics::amplification::space_amplification;
use crate::metrics::latency::Latencies;
use crate::metrics::{IntervalRecord, OpCounts, Snapshot};

/// How often intervals are cut.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);
/// How often the progress bar moves.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Everything the phase has recorded so far, and the interval being filled.
#[derive(Default)]
pub(crate) struct PhaseTally {
    pub latencies: Latencies,
    pub counts: OpCounts,
    pub peak_space_amp: f64,
    pub peak_disk_bytes: u64,
    pub peak_rss_bytes: u64,
    /// Wall time from the first worker's start to the last one's end.
    pub seconds: f64,
}

/// What an interval is measured against.
pub(crate) struct IntervalContext<'a> {
    pub engine: &'a dyn Engine,
    pub name: &'a str,
    pub dir: &'a Path,
    pub phase: &'a str,
    pub opened: &'a Snapshot,
    pub record_bytes: u64,
    pub live: &'a LiveSet,
    pub seam_accounting: bool,
    /// User bytes written from open to the start of this phase.
    pub user_bytes_before: u64,
    /// The phase's pattern: its throughput counts the readers' gets under `readwhilewriting`.
    pub pattern: &'a crate::workload::Pattern,
    /// The harness's own I/O counters, if the engine was opened on them.
    pub counters: Option<&'a engine_api::IoCounters>,
}

/// Drains the workers, reads the engine and the process, and returns the interval that ended
/// now; `last` is when the previous one ended.
fn cut_interval(
    ctx: &IntervalContext<'_>,
    slots: &[Slot],
    tally: &mut PhaseTally,
    last: Instant,
) -> (IntervalRecord, Instant) {
    let mut latencies = Latencies::default();
    let mut counts = OpCounts::default();
    for slot in slots {
        slot.drain_into(&mut latencies, &mut counts);
    }
    tally.latencies.add(&latencies);
    tally.counts.add(&counts);
    let now = Snapshot::take_counted(ctx.engine, ctx.dir, ctx.counters);
    let seconds = now.at.duration_since(last).as_secs_f64().max(1e-9);
    let user_bytes_total = ctx.user_bytes_before + tally.counts.user_bytes_written;
    let seam_written = now
        .stats
        .io
        .since(&ctx.opened.stats.io)
        .total()
        .bytes_written;
    let wchar = now.proc_io.since(&ctx.opened.proc_io).wchar;
    let written = if ctx.seam_accounting {
        seam_written
    } else {
        wchar
    };
    let live_keys = ctx.live.count();
    let space_amp = space_amplification(now.disk_bytes, live_keys, ctx.record_bytes);
    tally.peak_space_amp = tally.peak_space_amp.max(space_amp);
    tally.peak_disk_bytes = tally.peak_disk_bytes.max(now.disk_bytes);
    tally.peak_rss_bytes = tally.peak_rss_bytes.max(now.memory.rss_bytes);
    #[expect(clippy::cast_precision_loss, reason = "rates")]
    let (ops_per_sec, mb_per_sec) = (
        super::headline_ops(ctx.pattern, &counts) as f64 / seconds,
        (counts.user_bytes_written + counts.user_bytes_read) as f64 / seconds / 1e6,
    );
    let record = IntervalRecord {
        engine: ctx.name.to_string(),
        phase: ctx.phase.to_string(),
        t: now.at.duration_since(ctx.opened.at).as_secs_f64(),
        seconds,
        ops: counts.ops,
        ops_per_sec,
        mb_per_sec,
        latency: latencies.overall(),
        user_bytes_total,
        seam_bytes_written_total: seam_written,
        write_amp: ratio(written, user_bytes_total),
        disk_bytes: now.disk_bytes,
        live_keys,
        space_amp,
        rss_bytes: now.memory.rss_bytes,
        compactions: now
            .stats
            .compactions
            .saturating_sub(ctx.opened.stats.compactions),
        stall_s: now
            .stats
            .stalls
            .time
            .saturating_sub(ctx.opened.stats.stalls.time)
            .as_secs_f64(),
    };
    (record, now.at)
}

/// The runner's side of a running phase.
pub(crate) struct Sampling<'a> {
    pub ctx: &'a IntervalContext<'a>,
    pub slots: &'a [Slot],
    pub bar: &'a ProgressBar,
    /// Each worker sends the moment it ended, whatever its result.
    pub done: &'a Receiver<Instant>,
    pub workers: usize,
}

impl Sampling<'_> {
    /// Moves the progress bar and cuts intervals until every worker has ended; returns the
    /// intervals and when the last worker ended.
    pub fn until_done(
        &self,
        started: Instant,
        tally: &mut PhaseTally,
    ) -> (Vec<IntervalRecord>, Instant) {
        let mut intervals = Vec::new();
        let (mut finished, mut ended, mut last) = (0, started, started);
        loop {
            let wait = TICK.min(INTERVAL.saturating_sub(last.elapsed()));
            match self.done.recv_timeout(wait) {
                Ok(at) => {
                    finished += 1;
                    ended = ended.max(at);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => finished = self.workers,
            }
            let all_done = finished >= self.workers;
            let position = self
                .slots
                .iter()
                .map(|s| s.done.load(Ordering::Relaxed))
                .sum();
            self.bar.set_position(position);
            if all_done || last.elapsed() >= INTERVAL {
                let (record, at) = cut_interval(self.ctx, self.slots, tally, last);
                last = at;
                intervals.push(record);
            }
            if all_done {
                return (intervals, ended);
            }
        }
    }
}

/// A progress bar on stderr for a phase of `total` operations (a spinner when `total` is 0),
/// or a hidden one.
pub(crate) fn progress_bar(visible: bool, engine: &str, phase: &str, total: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let (bar, template) = if total == 0 {
        (
            ProgressBar::new_spinner(),
            "{prefix:>28} {spinner} {elapsed}",
        )
    } else {
        (
            ProgressBar::new(total),
            "{prefix:>28} [{bar:32}] {human_pos:>11}/{human_len} ops, {elapsed} (eta {eta})",
        )
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("{engine} {phase}"));
    bar.enable_steady_tick(TICK);
    bar
}
