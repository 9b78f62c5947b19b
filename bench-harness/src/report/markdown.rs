//! The Markdown report: what ran, on what, the side-by-side tables, the charts, and how every
//! figure is measured.

use std::fmt::Write as _;

use super::table::{self, mb, num};
use crate::metrics::EngineRun;
use crate::suite::SuiteResult;

/// The whole report.
pub fn report(result: &SuiteResult) -> String {
    let mut md = String::new();
    header(&mut md, result);
    md.push_str("## Headline\n\n");
    md.push_str(&table::headline_table(result).to_markdown());
    md.push_str(
        "\nLoad is the first phase; write amplification is over the whole run (every byte \
         written through the storage seam, or `/proc/self/io` `wchar` for peers, over user \
         bytes); reads per get are storage reads in the first `readrandom`; RSS growth is the peak \
         resident memory above what the process held when the engine was opened. Memory per \
         key is read at the end of the load and divided by the live keys: the index as the \
         engine reports it (Bitcask's keydir; the LSM's index blocks, bloom filters and \
         memtables, without the block cache; RocksDB's table readers and memtables; n/a for a \
         peer that reports none), and the resident memory gained since the engine was \
         opened.\n\n",
    );
    memory_note(&mut md, result);
    md.push_str("## Throughput and tail latency per phase\n\n");
    md.push_str(&table::phase_table(result).to_markdown());
    md.push_str("\n![Throughput per phase](comparison.svg)\n\n");
    md.push_str("## Amplification, compaction and memory over the whole run\n\n");
    md.push_str(&table::totals_table(result).to_markdown());
    md.push('\n');
    md.push_str(&table::read_amp_table(result).to_markdown());
    md.push_str("\n![Amplification](amplification.svg)\n\n");
    md.push_str("## Over time\n\n");
    md.push_str(
        "One panel per engine, each on its own clock (the engines ran one after another); every \
         shaded band is a phase, named at its top, so a dip shows which phase it belongs to.\n\n",
    );
    md.push_str("![Throughput over time](throughput.svg)\n\n");
    md.push_str("![p99 latency over time](latency.svg)\n\n");
    md.push_str("![Write amplification over time](write-amplification.svg)\n\n");
    md.push_str("![Space amplification over time](space-amplification.svg)\n\n");
    md.push_str("![Disk usage over time](disk-size.svg)\n\n");
    md.push_str("## Latency per engine\n\n");
    for (run, repeats) in result.runs.iter().zip(result.engine_repeats()) {
        let _ = writeln!(md, "### {}\n", run.engine);
        md.push_str(&table::latency_table(repeats).to_markdown());
        md.push('\n');
    }
    md.push_str(&recovery_section(result));
    md.push_str(&bandwidth_section(result));
    md.push_str(&synced_writes_section(result));
    md.push_str(&phase_duration_section(result));
    settings(&mut md, result);
    phases(&mut md, result);
    method(&mut md, result);
    md
}

/// How long each measured phase lasted, the operations it ran and its warm-up.
pub fn phase_duration_section(result: &SuiteResult) -> String {
    let longest =
        |f: fn(&crate::runner::Phase) -> f64| result.phases.iter().map(f).fold(0.0, f64::max);
    let (min_secs, warmup) = (longest(|p| p.min_secs), longest(|p| p.warmup_secs));
    let mut md = String::from(
        "## Phase durations

",
    );
    md.push_str(&table::phase_duration_table(result).to_markdown());
    let _ = write!(
        md,
        "
A phase of reads, scans or updates that finished its operations in under {} s kept drawing from the same stream until then (`--min-phase-secs`), so its operations can exceed the planned count; each such phase began with {} s of uncounted warm-up (`--warmup-secs`). Fills, inserts, deletes and compactions ran exactly their count.

",
        num(min_secs),
        num(warmup)
    );
    md
}

/// Each engine's sequential-write bandwidth beside the device's; empty when it was not measured.
pub fn bandwidth_section(result: &SuiteResult) -> String {
    let table = table::bandwidth_table(result);
    if table.rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "## Sequential-write bandwidth

",
    );
    md.push_str(&table.to_markdown());
    md.push_str(
        "
Each engine runs a `fillseq` of 4 KiB values under `--sync never` in a fresh directory, then one `sync`; MB/s is its user bytes over both. In the same directory the harness then measures the device: the same number of bytes written in 1 MiB calls through the page cache and synced once, and again with `O_DIRECT` (the page cache bypassed) where the file system allows it. The last column is the engine's share of the buffered figure.

",
    );
    md
}

/// Synced writes beside the device's synced appends; empty unless the run was under
/// `--sync always`.
pub fn synced_writes_section(result: &SuiteResult) -> String {
    let table = table::synced_writes_table(result);
    if table.rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "## Synced writes

",
    );
    md.push_str(&table.to_markdown());
    md.push_str(
        "
Under `--sync always` every write is synced before it is acknowledged. After each phase that wrote, the harness measures the device in the same directory: one writer appending a record of the run's key plus value size to one file, then `fdatasync`, in a loop for about a second. One writer at 1.0 in the last column keeps up with the device; below 1 log sync per write, concurrent writers share syncs (group commit), and the last column can pass 1. Both depend on what else uses the disk at the time, which is why the device is measured right after each phase.

",
    );
    md
}

/// The crash recoveries of every engine's median run, with their spread over the repeats; empty
/// when none was measured.
pub fn recovery_section(result: &SuiteResult) -> String {
    let table = table::recovery_table(result);
    if table.rows.is_empty() {
        return String::new();
    }
    let mut md = String::from("## Recovery after a crash\n\n");
    md.push_str(&table.to_markdown());
    md.push_str(
        "\nAfter the load and after the overwrites, each engine's files are copied while every \
         change to them is held still: exactly what a process kill at that instant leaves (no \
         clean close: Bitcask's active file unsealed, the LSM's WAL and memtable unflushed). \
         The copy is opened by a fresh engine and timed; keys/s is the live keys over the open \
         time, index memory what the reopened engine reports, read the bytes the open read; up \
         to 1,000 live keys are then read back and must all be found. A copy holding hint \
         files (Bitcask) is opened again with them removed, so every data file is scanned. \
         Peers are not crashed: their files do not pass through the harness's storage.\n\n",
    );
    md
}

fn header(md: &mut String, result: &SuiteResult) {
    let m = &result.machine;
    let d = &result.dataset;
    let engines: Vec<&str> = result.runs.iter().map(|r| r.engine.as_str()).collect();
    let suite = if result.quick { "quick suite" } else { "suite" };
    let _ = write!(
        md,
        "# Engine comparison: {}\n\n\
         Measured {} on {} cores ({}), {:.1} GiB of memory, Linux {}, data on {}; \
         workspace revision {}.\n\n\
         The {suite}: {} keys of {} bytes with {}-byte values ({} MB loaded), sync policy \
         `{}`, seed {}; {} s in all. Every engine got the same seeded operations, one engine \
         at a time, each in a fresh directory.\n\n",
        engines.join(" vs "),
        m.date,
        m.cores,
        m.cpu,
        m.memory_bytes as f64 / f64::from(1u32 << 30),
        m.kernel,
        m.filesystem,
        m.revision,
        d.key_count,
        d.key_size,
        d.value_size,
        mb(d.bytes()),
        result.sync,
        d.seed,
        num(result.seconds),
    );
    let _ = write!(
        md,
        "The 1-minute load average was {:.1} when the suite started and {:.1} when it ended, on \
         {} cores{}. Compare engines **within** this report: absolute figures depend on the \
         machine and on whatever else it was running; ratios measured side by side in one run \
         are what carry over.\n\n",
        m.load_average,
        result.load_average_end,
        m.cores,
        if m.load_average.max(result.load_average_end) > m.cores as f64 {
            " (other work competed with the benchmark, so absolute figures are pessimistic)"
        } else {
            ""
        },
    );
    if let Some(warning) = &m.memory_backed {
        let _ = writeln!(md, "> **Warning**: {warning}.\n");
    }
    let _ = writeln!(md, "{}\n", repeats_line(result.repeat_count()));
    let _ = writeln!(md, "{}\n", isolation_line(result));
    if let Some(command) = &result.command {
        let _ = writeln!(md, "Command: `{command}`.\n");
    }
    let _ = writeln!(md, "Traffic check: {}\n", traffic_check(result));
}

/// What a figure in the tables is: one run's value, or the median of several with the range.
fn repeats_line(repeats: usize) -> String {
    if repeats < 2 {
        "Each engine ran once: a figure is one run's, and nothing here says how much it moves \
         between runs (`--repeat N` measures that)."
            .to_string()
    } else {
        format!(
            "The suite ran {repeats} times, the engine order rotated each time. Every figure in \
             the tables is the **median (min–max)** of the {repeats} runs; the charts draw each \
             engine's median run (by total phase time)."
        )
    }
}

/// Where each engine ran, and whether it started with a cold page cache.
fn isolation_line(result: &SuiteResult) -> String {
    let process = if result.isolated {
        "Each engine run had a **process of its own** (no shared allocator, resident memory or \
         warmed state)"
    } else {
        "The engines ran **in one process**, one after another (`--in-process`): a later \
         engine inherits the allocator's retained memory and the page cache the earlier ones \
         warmed"
    };
    let cache = match &result.page_cache {
        Some(Ok(())) => "; the OS page cache was **dropped** before each engine run.".to_string(),
        Some(Err(why)) => format!("; the page cache could **not** be dropped ({why})."),
        None => "; the page cache was left as it was (`--keep-page-cache`).".to_string(),
    };
    format!("{process}{cache}")
}

/// Whether every engine saw the same operation counts, phase by phase (and, single-threaded,
/// the same hits).
pub fn traffic_check(result: &SuiteResult) -> String {
    let Some(first) = result.runs.first() else {
        return "no engines ran".to_string();
    };
    let same = |other: &EngineRun| {
        first.phases.iter().zip(&other.phases).all(|(a, b)| {
            let (x, y) = (a.counts, b.counts);
            if time_limited(result, &a.phase) {
                // A phase stopped by its time limit ran as many operations as each engine
                // managed in that time.
                return true;
            }
            if extended(result, &a.phase) {
                // Kept going to its minimum duration on the same stream: each engine ran its
                // own count, and every engine at least the planned operations.
                return x.ops >= a.planned_ops && y.ops >= b.planned_ops;
            }
            if a.workload == "readwhilewriting" {
                // The writer runs until the readers end: its count is each engine's own.
                return x.gets == y.gets;
            }
            x.ops == y.ops
                && x.puts == y.puts
                && x.gets == y.gets
                && x.deletes == y.deletes
                && x.scans == y.scans
                && x.user_bytes_written == y.user_bytes_written
                && (a.threads > 1 || (x.found == y.found && x.scan_entries == y.scan_entries))
        })
    };
    if result.runs.iter().all(same) {
        "every engine issued identical operations and, where one thread ran, saw identical hits \
         and scan results (a phase kept going to its minimum duration continued the same \
         stream: there, every engine ran at least the planned operations)."
            .to_string()
    } else {
        "**engines differ** in operation or hit counts; see `summary.json`.".to_string()
    }
}

fn settings(md: &mut String, result: &SuiteResult) {
    md.push_str("## Engine settings\n\n");
    for run in &result.runs {
        let list: Vec<String> = run
            .settings
            .iter()
            .map(|(k, v)| format!("`{k}` = {v}"))
            .collect();
        let io = if run.seam_accounting {
            "I/O counted at the storage seam"
        } else {
            "no storage seam: I/O from `/proc/self/io` only"
        };
        let _ = writeln!(md, "- **{}** ({io}): {}", run.engine, list.join(", "));
    }
    md.push('\n');
}

fn phases(md: &mut String, result: &SuiteResult) {
    md.push_str(
        "## Phases\n\n| phase | workload | operations | threads |\n|:---|:---|---:|---:|\n",
    );
    for p in &result.phases {
        let ops = match p.workload.pattern {
            crate::workload::Pattern::Compact => "full compaction / merge".to_string(),
            _ if p.workload.is_pass() => "one pass over the keys".to_string(),
            crate::workload::Pattern::ReadWhileWriting => {
                format!(
                    "{} reads, one writer overwriting beside them until they end",
                    p.ops
                )
            }
            _ => p.ops.to_string(),
        };
        let cold = if p.cold {
            ", page cache dropped first"
        } else {
            ""
        };
        let rate = p.rate.map_or(String::new(), |r| {
            format!(", open loop at {} ops/s", num(r))
        });
        let cap = p
            .time_limit_s
            .map_or(String::new(), |s| format!(", stopped after {s} s"));
        let rate = rate + &cap;
        let _ = writeln!(
            md,
            "| {} | {}{cold}{rate} | {ops} | {} |",
            p.label, p.workload.name, p.threads
        );
    }
    md.push('\n');
    cut_short(md, result);
}

/// Whether the phase labelled `label` was kept going to a minimum duration.
fn extended(result: &SuiteResult, label: &str) -> bool {
    result
        .phases
        .iter()
        .any(|p| p.label == label && p.min_secs > 0.0 && p.workload.extends())
}

/// Whether the phase labelled `label` had a time limit.
fn time_limited(result: &SuiteResult, label: &str) -> bool {
    result
        .phases
        .iter()
        .any(|p| p.label == label && p.time_limit_s.is_some())
}

/// Says which scan-heavy phases the time limit stopped early, engine by engine.
fn cut_short(md: &mut String, result: &SuiteResult) {
    let Some(limit) = result.phases.iter().find_map(|p| p.time_limit_s) else {
        return;
    };
    let _ = writeln!(
        md,
        "Scan-heavy phases (`readseq`, `seekrandom`, YCSB E) stop after {limit} s \
         (`--scan-phase-secs`): a hash index walks its whole keydir for every scan, so their \
         cost grows with the key count times the operation count. A phase that stops early \
         ran fewer operations than planned; its throughput and latency are over the operations \
         it ran.\n"
    );
    for run in &result.runs {
        let cut: Vec<String> = result
            .phases
            .iter()
            .filter(|p| p.time_limit_s.is_some())
            .filter_map(|p| {
                let summary = run.phase(&p.label)?;
                // A pass plans one visit of every live key; a mix, its operation count.
                let (ran, planned, what) = if p.workload.is_pass() {
                    (summary.counts.scan_entries, summary.live_keys, "keys")
                } else {
                    (summary.counts.ops, p.ops, "operations")
                };
                (ran < planned).then(|| format!("{} ({ran} of {planned} {what})", p.label))
            })
            .collect();
        if !cut.is_empty() {
            let _ = writeln!(
                md,
                "- **{}** stopped early in {}.",
                run.engine,
                cut.join(", ")
            );
        }
    }
    md.push('\n');
}

fn method(md: &mut String, result: &SuiteResult) {
    md.push_str(METHOD);
    let not_own: Vec<&str> = result
        .runs
        .iter()
        .filter(|r| !r.peak_rss_is_own)
        .map(|r| r.engine.as_str())
        .collect();
    if !not_own.is_empty() {
        let _ = writeln!(
            md,
            "- The kernel refused to reset the peak-RSS mark, so the peak RSS of {} includes \
             earlier engines' peaks.",
            not_own.join(", ")
        );
    }
}

const METHOD: &str = "## How the figures are measured\n\n\
- **Workloads** come from one seeded generator: db_bench's fill, overwrite, read, seek and \
delete workloads and YCSB A to F (zipfian constant 0.99, scrambled with FNV-64 as YCSB does; \
`latest` for D; scans of uniform length 1 to 100 for E). Keys are zero-padded decimal ids; \
values are slices of one seeded random pool (incompressible). A YCSB update rewrites the \
whole value.\n\
- **Throughput** is operations over the phase's wall time (under `readwhilewriting`, the \
readers' gets: the writer runs until they end, as in db_bench); **MB/s** counts user key and \
value bytes written and read. **Latency** is per operation (a scan until its last entry, a \
read-modify-write for both halves), in HdrHistogram with 3 significant digits. In the default \
**closed loop** each thread issues its next operation when the last is answered, and only the \
engine's own calls are timed (key building, answer checks and bookkeeping are not; each thread \
keeps its own histogram and hands it over every 10 ms): a stall then counts as one slow \
sample, not as the requests that would have queued behind it. With `--rate OPS` (the **open \
loop**) operations are issued on a fixed schedule and each latency runs from its intended \
start, so a stall counts against every operation it delays.\n\
- **Write amplification** divides bytes written by the user's key and value bytes (a delete \
counts its key). Our engines write through `engine_api::CountingStorage`, which counts every \
byte per I/O class below the engine, so the seam views mean the same for both: for the LSM, \
(flush + compaction) / flushed (RocksDB's `Sum` W-Amp), (flush + compaction) / user and \
(WAL + flush + compaction) / user; for Bitcask, log / user (appends only) and \
(log + merge + hints) / user. The `/proc/self/io` rows cross-check them: `wchar` counts every \
byte handed to `write`, `write_bytes − cancelled_write_bytes` what the process sent toward \
the device. Peers have no seam, so only the `/proc` rows apply to them.\n\
- **Space amplification** is `du` of the engine's directory (allocated blocks) over live \
logical bytes: the live keys the harness counts from acknowledged writes, times key + value \
size. The peak is the largest value sampled once a second.\n\
- **Read amplification** is storage reads through the seam (`UserRead` class) per get, in \
phases whose reads are all gets; these are `pread` calls, and the OS page cache may serve \
them. The device row, for every engine, is `/proc/self/io` `read_bytes` per get: what really \
came from the device. With `--cold` the page cache is dropped before each read-only phase, so \
those reads and their latency measure the device.\n\
- **Bitcask's data files** are sized to an eighth of the data set (between 1 and 128 MiB, \
its default) unless `--bitcask-file-size` says otherwise: with 128 MiB files a data set of \
this size would sit in one or two files and never merge.\n\
- **Compaction cost** is the engine's count, wall and CPU time of compactions or merges and \
the seam's `Compaction` bytes read and written; **stalls** are the engine's own count.\n\
- **Peak RSS** is VmHWM from `/proc/self/status` of the process the engine ran in, reset when \
the engine is opened. With each engine in a process of its own (the default) it is that \
engine's alone; with `--in-process` the allocator keeps memory that earlier engines freed, so \
a later engine's peak and growth are rough. The engine's own **index memory** (keydir, or \
bloom filters, indexes and memtables) is exact either way.\n\
- Intervals (`intervals.jsonl`) are cut once a second; `summary.json` holds every figure \
above per phase.\n";

/// Names the engines whose resident memory per key exceeds their index per key by more than
/// half at the end of the load: memory the index figure does not explain.
fn memory_note(md: &mut String, result: &SuiteResult) {
    let over: Vec<String> = result
        .runs
        .iter()
        .filter_map(|r| {
            let (index, rss) = (table::index_per_key(r)?, table::rss_per_key(r)?);
            (rss > 1.5 * index).then(|| {
                format!(
                    "{} ({} B/key resident, {} B/key index)",
                    r.engine,
                    num(rss),
                    num(index)
                )
            })
        })
        .collect();
    if !over.is_empty() {
        let _ = writeln!(
            md,
            "Resident memory exceeds the index by more than half for {}: the rest is memory \
             the engine's index figure does not count (memtables being flushed, merge or \
             compaction buffers, the block cache), memory the allocator kept after it was freed, \
             and, on small data sets, the process's fixed costs (thread stacks, the harness's \
             value pool and histograms: a few MB).\n",
            over.join(", ")
        );
    }
}
