//! Tables of a suite's results, rendered as aligned text for the terminal or as Markdown: the
//! same rows either way, so the two never disagree. With repeated runs every figure is the
//! median with its minimum and maximum beside it ([`spread`]).

use super::spread;
use crate::metrics::latency::LatencySummary;
use crate::metrics::{EngineRun, PhaseSummary};
use crate::suite::SuiteResult;

/// A table of strings with a header row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Column headers.
    pub header: Vec<String>,
    /// Rows; each as long as the header.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        widths
    }

    /// Aligned text: the first column left-aligned, the others right-aligned.
    pub fn to_text(&self) -> String {
        let widths = self.widths();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.header);
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("  "));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    /// A Markdown table, numbers right-aligned.
    pub fn to_markdown(&self) -> String {
        let escape = |s: &String| s.replace('|', "\\|");
        let mut out = format!(
            "| {} |\n",
            self.header
                .iter()
                .map(escape)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let align: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { ":---" } else { "---:" })
            .collect();
        out.push_str(&format!("|{}|\n", align.join("|")));
        for row in &self.rows {
            out.push_str(&format!(
                "| {} |\n",
                row.iter().map(escape).collect::<Vec<_>>().join(" | ")
            ));
        }
        out
    }
}

/// A number with three significant figures or so, without exponent noise.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// Bytes as MB (10^6).
#[expect(clippy::cast_precision_loss, reason = "display")]
pub fn mb(bytes: u64) -> String {
    num(bytes as f64 / 1e6)
}

fn phase_of<'a>(run: &'a EngineRun, label: &str) -> Option<&'a PhaseSummary> {
    run.phase(label)
}

/// The latency a phase is judged by: the readers' under `readwhilewriting` (the writer is
/// there to disturb them), every operation's otherwise.
pub fn headline_latency(p: &PhaseSummary) -> Option<LatencySummary> {
    if p.workload == "readwhilewriting" {
        p.latency_by_class.get("read").copied()
    } else {
        p.latency
    }
}

/// A phase's figure in a run, if the phase ran and issued operations.
fn in_phase(
    label: &str,
    figure: impl Fn(&PhaseSummary) -> Option<f64>,
) -> impl Fn(&EngineRun) -> Option<f64> {
    move |run: &EngineRun| {
        phase_of(run, label)
            .filter(|p| p.counts.ops > 0)
            .and_then(&figure)
    }
}

fn kops(p: &PhaseSummary) -> Option<f64> {
    Some(p.ops_per_sec / 1000.0)
}

fn p99(p: &PhaseSummary) -> Option<f64> {
    headline_latency(p).map(|l| l.p99_us)
}

/// Per phase and engine: throughput and tail latency, engines side by side.
pub fn phase_table(result: &SuiteResult) -> Table {
    let mut header = vec!["phase".to_string()];
    for run in &result.runs {
        header.push(format!("{} kops/s", run.engine));
        header.push(format!("{} p99 µs", run.engine));
    }
    let rows = result
        .phases
        .iter()
        .map(|phase| {
            let mut row = vec![phase.label.clone()];
            for repeats in result.engine_repeats() {
                let ran = repeats.iter().any(|r| phase_of(r, &phase.label).is_some());
                if ran && in_phase(&phase.label, kops)(&repeats[0]).is_none() {
                    // A phase of no operations (a compaction): its duration says what it cost.
                    row.push(
                        spread::cell(repeats, |r| phase_of(r, &phase.label).map(|p| p.seconds))
                            + " s",
                    );
                    row.push("-".to_string());
                } else {
                    row.push(spread::cell(repeats, in_phase(&phase.label, kops)));
                    row.push(spread::cell(repeats, in_phase(&phase.label, p99)));
                }
            }
            row
        })
        .collect();
    Table { header, rows }
}

/// Per engine (all its repeats), one latency table: p50, p99, p99.9 and max of every phase.
pub fn latency_table(repeats: &[EngineRun]) -> Table {
    let header = [
        "phase",
        "ops",
        "kops/s",
        "MB/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
    ];
    let Some(first) = repeats.first() else {
        return Table::default();
    };
    type Pick = fn(&PhaseSummary) -> Option<f64>;
    let columns: [Pick; 6] = [
        kops,
        |p| Some(p.mb_per_sec),
        |p| headline_latency(p).map(|l| l.p50_us),
        p99,
        |p| headline_latency(p).map(|l| l.p999_us),
        |p| headline_latency(p).map(|l| l.max_us),
    ];
    let rows = first
        .phases
        .iter()
        .filter(|p| p.counts.ops > 0)
        .map(|p| {
            let mut row = vec![p.phase.clone(), p.counts.ops.to_string()];
            row.extend(
                columns
                    .iter()
                    .map(|f| spread::cell(repeats, in_phase(&p.phase, f))),
            );
            row
        })
        .collect();
    Table {
        header: header.iter().map(ToString::to_string).collect(),
        rows,
    }
}

/// A metric row: a name and one cell per engine, each the figure's spread over its repeats.
fn row(
    name: &str,
    result: &SuiteResult,
    figure: impl Fn(&EngineRun) -> Option<f64> + Copy,
) -> Vec<String> {
    let mut row = vec![name.to_string()];
    row.extend(
        result
            .engine_repeats()
            .map(|repeats| spread::cell(repeats, figure)),
    );
    row
}

fn has_flushes(run: &EngineRun) -> bool {
    run.totals.write_amp.flush_compaction_per_flush.is_some()
}

type Figure = fn(&EngineRun) -> f64;

/// Figures from the counting seam: our engines only (peers do not write through it).
fn seam(f: Figure) -> impl Fn(&EngineRun) -> Option<f64> + Copy {
    move |r: &EngineRun| r.seam_accounting.then(|| f(r))
}

/// Figures of an LSM's flushes and compactions, from the seam.
fn lsm(f: Figure) -> impl Fn(&EngineRun) -> Option<f64> + Copy {
    move |r: &EngineRun| has_flushes(r).then(|| f(r))
}

/// Figures of a log-structured engine without flushes (the Bitcask), from the seam.
fn log_only(f: Figure) -> impl Fn(&EngineRun) -> Option<f64> + Copy {
    move |r: &EngineRun| (r.seam_accounting && !has_flushes(r)).then(|| f(r))
}

fn any(f: Figure) -> impl Fn(&EngineRun) -> Option<f64> + Copy {
    move |r: &EngineRun| Some(f(r))
}

#[expect(clippy::cast_precision_loss, reason = "display")]
fn mb_of(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Whole-run figures, engines side by side: amplification, compaction, memory.
pub fn totals_table(result: &SuiteResult) -> Table {
    let mut header = vec!["whole run".to_string()];
    header.extend(result.runs.iter().map(|r| r.engine.clone()));
    #[expect(clippy::cast_precision_loss, reason = "display")]
    let rows = vec![
        row(
            "user MB written",
            result,
            any(|r| mb_of(r.totals.write_amp.user_bytes)),
        ),
        row(
            "WA: all seam writes / user",
            result,
            seam(|r| r.totals.write_amp.seam_total),
        ),
        row(
            "WA: log / user (appends only)",
            result,
            log_only(|r| r.totals.write_amp.log),
        ),
        row(
            "WA: (log+merge+hint) / user",
            result,
            log_only(|r| r.totals.write_amp.log_merge_hint),
        ),
        row("WA: (flush+compaction) / flushed", result, |r| {
            r.totals
                .write_amp
                .flush_compaction_per_flush
                .filter(|_| has_flushes(r))
        }),
        row(
            "WA: (flush+compaction) / user",
            result,
            lsm(|r| r.totals.write_amp.flush_compaction),
        ),
        row(
            "WA: (WAL+flush+compaction) / user",
            result,
            lsm(|r| r.totals.write_amp.wal_flush_compaction),
        ),
        row(
            "WA: /proc wchar / user",
            result,
            any(|r| r.totals.write_amp.proc_wchar),
        ),
        row(
            "WA: /proc write_bytes / user",
            result,
            any(|r| r.totals.write_amp.proc_device),
        ),
        row(
            "SA: end (disk / live data)",
            result,
            any(|r| r.totals.space_amp),
        ),
        row("SA: peak", result, any(|r| r.totals.peak_space_amp)),
        row("disk MB: end", result, any(|r| mb_of(r.totals.disk_bytes))),
        row(
            "disk MB: peak",
            result,
            any(|r| mb_of(r.totals.peak_disk_bytes)),
        ),
        row(
            "compactions or merges",
            result,
            seam(|r| r.totals.compaction.count as f64),
        ),
        row(
            "compaction MB read",
            result,
            seam(|r| mb_of(r.totals.compaction.bytes_read)),
        ),
        row(
            "compaction MB written",
            result,
            seam(|r| mb_of(r.totals.compaction.bytes_written)),
        ),
        row(
            "compaction wall s",
            result,
            seam(|r| r.totals.compaction.wall_s),
        ),
        row(
            "compaction CPU s",
            result,
            seam(|r| r.totals.compaction.cpu_s),
        ),
        row("stall s", result, seam(|r| r.totals.stalls.seconds)),
        row("stalls", result, seam(|r| r.totals.stalls.count as f64)),
        row(
            "peak RSS MB",
            result,
            any(|r| mb_of(r.totals.peak_rss_bytes)),
        ),
        row("RSS growth since open MB", result, any(rss_growth_mb)),
        row(
            "index memory MB",
            result,
            seam(|r| mb_of(r.totals.index_memory_bytes)),
        ),
        row(
            "process CPU s (user+sys)",
            result,
            any(|r| r.totals.cpu.user_s + r.totals.cpu.system_s),
        ),
    ];
    Table { header, rows }
}

fn rss_growth_mb(r: &EngineRun) -> f64 {
    mb_of(
        r.totals
            .peak_rss_bytes
            .saturating_sub(r.totals.rss_at_open_bytes),
    )
}

/// Read amplification of every get-only phase, engines side by side: seam reads and bytes per
/// get.
pub fn read_amp_table(result: &SuiteResult) -> Table {
    let mut header = vec!["per get".to_string()];
    header.extend(result.runs.iter().map(|r| r.engine.clone()));
    let get_phases = result.phases.iter().filter(|phase| {
        result
            .runs
            .iter()
            .any(|r| phase_of(r, &phase.label).is_some_and(|p| p.read_amp.is_some()))
    });
    let mut rows = Vec::new();
    for phase in get_phases {
        let label = phase.label.as_str();
        let amp = move |r: &EngineRun| {
            phase_of(r, label)
                .and_then(|p| p.read_amp)
                .filter(|_| r.seam_accounting)
        };
        rows.push(row(&format!("{label}: reads"), result, move |r| {
            amp(r).map(|ra| ra.seam_reads_per_get)
        }));
        rows.push(row(&format!("{label}: bytes"), result, move |r| {
            amp(r).map(|ra| ra.seam_bytes_per_get)
        }));
        // Every engine, peers included: what the process fetched from the device.
        rows.push(row(
            &format!("{label}: device bytes (/proc)"),
            result,
            move |r| {
                phase_of(r, label)
                    .and_then(|p| p.read_amp)
                    .map(|ra| ra.device_bytes_per_get)
            },
        ));
    }
    Table { header, rows }
}

/// The first phase of a run that ran `workload`.
fn first_of<'a>(run: &'a EngineRun, workload: &str) -> Option<&'a PhaseSummary> {
    run.phases.iter().find(|p| p.workload == workload)
}

fn first_kops(workload: &'static str) -> impl Fn(&EngineRun) -> Option<f64> + Copy {
    move |r: &EngineRun| first_of(r, workload).and_then(kops)
}

/// Write amplification as the headline shows it: from the seam for our engines, `wchar` for
/// peers (the header says which).
fn headline_write_amp(r: &EngineRun) -> Option<f64> {
    let wa = &r.totals.write_amp;
    Some(if r.seam_accounting {
        wa.seam_total
    } else {
        wa.proc_wchar
    })
}

/// One row per engine with the figures a reader looks at first.
pub fn headline_table(result: &SuiteResult) -> Table {
    let header = [
        "engine",
        "load kops/s",
        "overwrite kops/s",
        "readrandom kops/s",
        "readrandom p99 µs",
        "seekrandom kops/s",
        "write amp (peers: wchar)",
        "space amp end",
        "space amp peak",
        "reads per get",
        "RSS growth MB",
        "index B/key (load)",
        "RSS B/key (load)",
    ];
    type Pick = Box<dyn Fn(&EngineRun) -> Option<f64>>;
    let columns: Vec<Pick> = vec![
        Box::new(|r| r.phases.first().and_then(kops)),
        Box::new(first_kops("overwrite")),
        Box::new(first_kops("readrandom")),
        Box::new(|r| first_of(r, "readrandom").and_then(p99)),
        Box::new(first_kops("seekrandom")),
        Box::new(headline_write_amp),
        Box::new(|r| Some(r.totals.space_amp)),
        Box::new(|r| Some(r.totals.peak_space_amp)),
        Box::new(|r| {
            let ra = first_of(r, "readrandom").and_then(|p| p.read_amp);
            ra.filter(|_| r.seam_accounting)
                .map(|ra| ra.seam_reads_per_get)
        }),
        Box::new(|r| Some(rss_growth_mb(r))),
        Box::new(index_per_key),
        Box::new(rss_per_key),
    ];
    let rows = result
        .runs
        .iter()
        .zip(result.engine_repeats())
        .map(|(run, repeats)| {
            let mut row = vec![run.engine.clone()];
            row.extend(columns.iter().map(|f| spread::cell(repeats, f)));
            row
        })
        .collect();
    Table {
        header: header.iter().map(ToString::to_string).collect(),
        rows,
    }
}

/// The load: the run's first phase, where the memory per key is read.
fn load(r: &EngineRun) -> Option<&PhaseSummary> {
    r.phases.first().filter(|p| p.live_keys > 0)
}

/// Index memory per live key at the end of the load, as the engine's own report gives it (the
/// keydir; an LSM's index blocks, filters and memtables); `None` for a peer that reports none.
#[expect(clippy::cast_precision_loss, reason = "display")]
pub fn index_per_key(r: &EngineRun) -> Option<f64> {
    let p = load(r)?;
    (p.index_memory_bytes > 0).then(|| p.index_memory_bytes as f64 / p.live_keys as f64)
}

/// Resident memory gained since the engine was opened, per live key, at the end of the load:
/// for every engine, peers included.
#[expect(clippy::cast_precision_loss, reason = "display")]
pub fn rss_per_key(r: &EngineRun) -> Option<f64> {
    let p = load(r)?;
    let grown = p.rss_bytes.saturating_sub(r.totals.rss_at_open_bytes);
    Some(grown as f64 / p.live_keys as f64)
}

/// Crash recovery per engine: one row per crash (after which phase) and image opened, with
/// the open time, keys recovered per second, the index memory and bytes read by the open.
pub fn recovery_table(result: &SuiteResult) -> Table {
    let header = [
        "engine",
        "crashed after",
        "image",
        "open (s)",
        "keys/s (M)",
        "index memory (MB)",
        "open read (MB)",
    ];
    let mut rows = Vec::new();
    for (run, repeats) in result.runs.iter().zip(result.engine_repeats()) {
        for r in &run.recovery {
            let figure = |f: fn(&crate::runner::RecoverySummary) -> f64| {
                let (after, image) = (r.after.clone(), r.image.clone());
                spread::cell(repeats, move |run| {
                    run.recovery
                        .iter()
                        .find(|x| x.after == after && x.image == image)
                        .map(f)
                })
            };
            #[expect(clippy::cast_precision_loss, reason = "display")]
            let cells = [
                figure(|x| x.open_s),
                figure(|x| x.keys_per_sec / 1e6),
                figure(|x| x.index_memory_bytes as f64 / 1e6),
                figure(|x| x.bytes_read as f64 / 1e6),
            ];
            let mut row = vec![run.engine.clone(), r.after.clone(), r.image.clone()];
            row.extend(cells);
            rows.push(row);
        }
    }
    Table {
        header: header.iter().map(ToString::to_string).collect(),
        rows,
    }
}

/// Sequential-write bandwidth per engine: its 4 KiB `fillseq` beside the device's buffered and
/// direct writes on the same directory.
pub fn bandwidth_table(result: &SuiteResult) -> Table {
    let header = [
        "engine",
        "fillseq 4 KiB (MB/s)",
        "device buffered + fsync (MB/s)",
        "device O_DIRECT (MB/s)",
        "engine / device",
    ];
    let mut rows = Vec::new();
    for (run, repeats) in result.runs.iter().zip(result.engine_repeats()) {
        if run.bandwidth.is_none() {
            continue;
        }
        let figure = |f: fn(&crate::bandwidth::Bandwidth) -> Option<f64>| {
            spread::cell(repeats, move |r| r.bandwidth.as_ref().and_then(f))
        };
        rows.push(vec![
            run.engine.clone(),
            figure(|b| Some(b.engine_mb_s)),
            figure(|b| Some(b.buffered_mb_s)),
            figure(|b| b.direct_mb_s),
            figure(|b| Some(b.engine_mb_s / b.buffered_mb_s.max(1e-9))),
        ]);
    }
    Table {
        header: header.iter().map(ToString::to_string).collect(),
        rows,
    }
}

/// Per phase and engine: how long the measured phase lasted and how many operations it ran
/// (more than planned when `--min-phase-secs` kept it going), and the warm-up before it.
pub fn phase_duration_table(result: &SuiteResult) -> Table {
    let mut header = vec!["phase".to_string()];
    for run in &result.runs {
        header.push(format!("{} s", run.engine));
        header.push(format!("{} ops", run.engine));
        header.push(format!("{} warm-up s", run.engine));
    }
    let rows = result
        .phases
        .iter()
        .map(|phase| {
            let mut row = vec![phase.label.clone()];
            for repeats in result.engine_repeats() {
                let of = |f: fn(&PhaseSummary) -> f64| {
                    let label = phase.label.clone();
                    spread::cell(repeats, move |r| phase_of(r, &label).map(f))
                };
                #[expect(clippy::cast_precision_loss, reason = "display")]
                let ops = of(|p| p.counts.ops as f64);
                row.extend([of(|p| p.seconds), ops, of(|p| p.warmup_s)]);
            }
            row
        })
        .collect();
    Table { header, rows }
}

/// Synced writes (`--sync always`) per engine and phase that wrote: writes per second, the log
/// syncs each write cost (below 1 when writers share syncs), and the device's own synced
/// appends per second measured in the same directory right after the phase, with the ratio.
pub fn synced_writes_table(result: &SuiteResult) -> Table {
    let header = [
        "engine",
        "phase",
        "threads",
        "writes (kops/s)",
        "log syncs per write",
        "device synced appends (k/s)",
        "engine / device",
    ];
    let mut rows = Vec::new();
    for (run, repeats) in result.runs.iter().zip(result.engine_repeats()) {
        for phase in run.phases.iter().filter(|p| p.synced_device.is_some()) {
            let label = phase.phase.clone();
            let of = |f: fn(&PhaseSummary) -> Option<f64>| {
                let label = label.clone();
                spread::cell(repeats, move |r| phase_of(r, &label).and_then(f))
            };
            rows.push(vec![
                run.engine.clone(),
                label.clone(),
                phase.threads.to_string(),
                of(|p| Some(synced_writes_per_sec(p) / 1e3)),
                of(PhaseSummary::syncs_per_write),
                of(|p| p.synced_device.as_ref().map(|d| d.per_sec / 1e3)),
                of(|p| {
                    let device = p.synced_device.as_ref()?.per_sec;
                    Some(synced_writes_per_sec(p) / device.max(1e-9))
                }),
            ]);
        }
    }
    Table {
        header: header.iter().map(ToString::to_string).collect(),
        rows,
    }
}

#[expect(clippy::cast_precision_loss, reason = "a rate")]
fn synced_writes_per_sec(p: &PhaseSummary) -> f64 {
    p.writes() as f64 / p.seconds.max(1e-9)
}
