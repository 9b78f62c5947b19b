//! Tables of a suite's results, rendered as aligned text for the terminal or as Markdown: the
//! same rows either way, so the two never disagree.

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
            for run in &result.runs {
                match phase_of(run, &phase.label) {
                    Some(p) if p.counts.ops > 0 => {
                        row.push(num(p.ops_per_sec / 1000.0));
                        row.push(headline_latency(p).map_or("-".to_string(), |l| num(l.p99_us)));
                    }
                    Some(p) => {
                        row.push(format!("{} s", num(p.seconds)));
                        row.push("-".to_string());
                    }
                    None => row.extend(["-".to_string(), "-".to_string()]),
                }
            }
            row
        })
        .collect();
    Table { header, rows }
}

/// Per engine, one latency table: p50, p99, p99.9 and max of every phase.
pub fn latency_table(run: &EngineRun) -> Table {
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
    let rows = run
        .phases
        .iter()
        .filter(|p| p.counts.ops > 0)
        .map(|p| {
            let l = p.latency.unwrap_or_default();
            vec![
                p.phase.clone(),
                p.counts.ops.to_string(),
                num(p.ops_per_sec / 1000.0),
                num(p.mb_per_sec),
                num(l.p50_us),
                num(l.p99_us),
                num(l.p999_us),
                num(l.max_us),
            ]
        })
        .collect();
    Table {
        header: header.iter().map(ToString::to_string).collect(),
        rows,
    }
}

/// A metric row: a name and one cell per engine.
fn row(name: &str, runs: &[EngineRun], cell: impl Fn(&EngineRun) -> String) -> Vec<String> {
    let mut row = vec![name.to_string()];
    row.extend(runs.iter().map(cell));
    row
}

fn has_flushes(run: &EngineRun) -> bool {
    run.totals.write_amp.flush_compaction_per_flush.is_some()
}

/// Whole-run figures, engines side by side: amplification, compaction, memory.
pub fn totals_table(result: &SuiteResult) -> Table {
    let runs = &result.runs;
    let mut header = vec!["whole run".to_string()];
    header.extend(runs.iter().map(|r| r.engine.clone()));
    let na = || "n/a".to_string();
    let seam = |f: fn(&EngineRun) -> f64| {
        move |r: &EngineRun| {
            if r.seam_accounting { num(f(r)) } else { na() }
        }
    };
    let lsm = |f: fn(&EngineRun) -> f64| {
        move |r: &EngineRun| {
            if has_flushes(r) { num(f(r)) } else { na() }
        }
    };
    let log_only = |f: fn(&EngineRun) -> f64| {
        move |r: &EngineRun| {
            if r.seam_accounting && !has_flushes(r) {
                num(f(r))
            } else {
                na()
            }
        }
    };
    // Figures only our engines report about themselves; peers would show zeros.
    let own = |f: fn(&EngineRun) -> String| {
        move |r: &EngineRun| {
            if r.seam_accounting { f(r) } else { na() }
        }
    };
    let rows = vec![
        row("user MB written", runs, |r| {
            mb(r.totals.write_amp.user_bytes)
        }),
        row(
            "WA: all seam writes / user",
            runs,
            seam(|r| r.totals.write_amp.seam_total),
        ),
        row(
            "WA: log / user (appends only)",
            runs,
            log_only(|r| r.totals.write_amp.log),
        ),
        row(
            "WA: (log+merge+hint) / user",
            runs,
            log_only(|r| r.totals.write_amp.log_merge_hint),
        ),
        row(
            "WA: (flush+compaction) / flushed",
            runs,
            lsm(|r| {
                r.totals
                    .write_amp
                    .flush_compaction_per_flush
                    .unwrap_or(f64::NAN)
            }),
        ),
        row(
            "WA: (flush+compaction) / user",
            runs,
            lsm(|r| r.totals.write_amp.flush_compaction),
        ),
        row(
            "WA: (WAL+flush+compaction) / user",
            runs,
            lsm(|r| r.totals.write_amp.wal_flush_compaction),
        ),
        row("WA: /proc wchar / user", runs, |r| {
            num(r.totals.write_amp.proc_wchar)
        }),
        row("WA: /proc write_bytes / user", runs, |r| {
            num(r.totals.write_amp.proc_device)
        }),
        row("SA: end (disk / live data)", runs, |r| {
            num(r.totals.space_amp)
        }),
        row("SA: peak", runs, |r| num(r.totals.peak_space_amp)),
        row("disk MB: end / peak", runs, |r| {
            format!(
                "{} / {}",
                mb(r.totals.disk_bytes),
                mb(r.totals.peak_disk_bytes)
            )
        }),
        row(
            "compactions or merges",
            runs,
            own(|r| r.totals.compaction.count.to_string()),
        ),
        row(
            "compaction MB read / written",
            runs,
            own(|r| {
                let c = &r.totals.compaction;
                format!("{} / {}", mb(c.bytes_read), mb(c.bytes_written))
            }),
        ),
        row(
            "compaction wall s / CPU s",
            runs,
            own(|r| {
                let c = &r.totals.compaction;
                format!("{} / {}", num(c.wall_s), num(c.cpu_s))
            }),
        ),
        row(
            "stall s (count)",
            runs,
            own(|r| {
                let s = &r.totals.stalls;
                format!("{} ({})", num(s.seconds), s.count)
            }),
        ),
        row("peak RSS MB (growth since open)", runs, |r| {
            let t = &r.totals;
            let growth = t.peak_rss_bytes.saturating_sub(t.rss_at_open_bytes);
            format!("{} ({})", mb(t.peak_rss_bytes), mb(growth))
        }),
        row(
            "index memory MB",
            runs,
            own(|r| mb(r.totals.index_memory_bytes)),
        ),
        row("process CPU s (user+sys)", runs, |r| {
            num(r.totals.cpu.user_s + r.totals.cpu.system_s)
        }),
    ];
    Table { header, rows }
}

/// Read amplification of every get-only phase, engines side by side: seam reads per get.
pub fn read_amp_table(result: &SuiteResult) -> Table {
    let mut header = vec!["reads per get (seam)".to_string()];
    header.extend(result.runs.iter().map(|r| r.engine.clone()));
    let rows = result
        .phases
        .iter()
        .filter(|phase| {
            result
                .runs
                .iter()
                .any(|r| phase_of(r, &phase.label).is_some_and(|p| p.read_amp.is_some()))
        })
        .map(|phase| {
            row(&phase.label, &result.runs, |r| {
                match phase_of(r, &phase.label).and_then(|p| p.read_amp) {
                    Some(ra) if r.seam_accounting => format!(
                        "{} ({} B)",
                        num(ra.seam_reads_per_get),
                        num(ra.seam_bytes_per_get)
                    ),
                    _ => "n/a".to_string(),
                }
            })
        })
        .collect();
    Table { header, rows }
}

/// The first phase of a run that ran `workload`.
fn first_of<'a>(run: &'a EngineRun, workload: &str) -> Option<&'a PhaseSummary> {
    run.phases.iter().find(|p| p.workload == workload)
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
        "write amp",
        "space amp end / peak",
        "reads per get",
        "RSS growth MB",
    ];
    let kops = |run: &EngineRun, w: &str| {
        first_of(run, w).map_or("-".to_string(), |p| num(p.ops_per_sec / 1000.0))
    };
    let rows = result
        .runs
        .iter()
        .map(|run| {
            let load = run
                .phases
                .first()
                .map_or("-".to_string(), |p| num(p.ops_per_sec / 1000.0));
            let wa = &run.totals.write_amp;
            let write_amp = if run.seam_accounting {
                num(wa.seam_total)
            } else {
                format!("{} (wchar)", num(wa.proc_wchar))
            };
            let reads = first_of(run, "readrandom")
                .and_then(|p| p.read_amp)
                .filter(|_| run.seam_accounting)
                .map_or("n/a".to_string(), |ra| num(ra.seam_reads_per_get));
            vec![
                run.engine.clone(),
                load,
                kops(run, "overwrite"),
                kops(run, "readrandom"),
                first_of(run, "readrandom")
                    .and_then(|p| p.latency)
                    .map_or("-".to_string(), |l| num(l.p99_us)),
                kops(run, "seekrandom"),
                write_amp,
                format!(
                    "{} / {}",
                    num(run.totals.space_amp),
                    num(run.totals.peak_space_amp)
                ),
                reads,
                mb(run
                    .totals
                    .peak_rss_bytes
                    .saturating_sub(run.totals.rss_at_open_bytes)),
            ]
        })
        .collect();
    Table {
        header: header.iter().map(ToString::to_string).collect(),
        rows,
    }
}
