//! `bench-harness`: runs the comparison suite against the workspace's engines and writes a
//! report. `bench-harness compare --help` lists the options; with no arguments it runs the
//! default suite against the default engines and writes into `target/bench-report/`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bench_harness::HarnessError;
use bench_harness::engines::{self, Tuning};
use bench_harness::isolation::{self, Isolation, PageCache};
use bench_harness::report::{self, table};
use bench_harness::suite::{self, Event, SuiteOptions, SuiteResult};
use bench_harness::workload::WORKLOAD_NAMES;
use clap::{Args, Parser, Subcommand};
use engine_api::SyncPolicy;

/// Compares the workspace's storage engines on identical, seeded workloads.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; whether the lint fires depends on the variants' sizes"
)]
enum Command {
    /// Run the suite against every engine and write a report (the default command).
    Compare(CompareArgs),
    /// List the engines and workloads this build knows.
    List,
    /// Compare two runs: every figure both `summary.json` files carry, side by side with the
    /// ratio new/old, marked where the change is larger than the runs' spread.
    Diff(DiffArgs),
    /// Drive the engines' real compaction and merge policies over a synthetic write stream
    /// (no I/O) and print write and space amplification; `--sweep KNOB` charts them against
    /// one knob.
    Simulate(Box<bench_harness::simulate::SimulateArgs>),
}

#[derive(Args, Debug)]
struct DiffArgs {
    /// The old run's `summary.json` (or its report directory).
    old: PathBuf,
    /// The new run's `summary.json` (or its report directory).
    new: PathBuf,
    /// Also write the comparison as `diff.csv` beside the new run's `summary.json`.
    #[arg(long)]
    csv: bool,
    /// Only the figures whose name contains this text (e.g. `ops_per_sec`, `readrandom.`).
    #[arg(long)]
    only: Option<String>,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// The quick suite: 50,000 keys unless --keys says otherwise; well under a minute.
    #[arg(long)]
    quick: bool,
    /// Engines to compare, comma-separated (default: the default suite's; see `list`).
    #[arg(long, value_delimiter = ',')]
    engines: Option<Vec<String>>,
    /// Workloads to run instead of the default suite, comma-separated, in order; a fillrandom
    /// load is added first unless the list starts with a fill (see `list`).
    #[arg(long, value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Keys to load (default 1,000,000; 50,000 with --quick).
    #[arg(long)]
    keys: Option<u64>,
    /// Key size in bytes.
    #[arg(long, default_value_t = 16)]
    key_size: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: u64,
    /// Operations per phase, over all threads (default: per workload, relative to --keys).
    #[arg(long)]
    ops: Option<u64>,
    /// Worker threads per phase.
    #[arg(long, default_value_t = 1)]
    threads: u64,
    /// Durability policy of every engine: never, always, or periodic:<milliseconds>.
    #[arg(long, default_value = "never", value_parser = parse_sync)]
    sync: SyncPolicy,
    /// Seed of every op stream.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
    /// Directory for the report.
    #[arg(long, default_value = "target/bench-report")]
    out: PathBuf,
    /// Directory under which each engine gets a temporary data directory (default: the system's
    /// temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Bitcask data file size in bytes (default: an eighth of the data set, 1 to 128 MiB).
    #[arg(long)]
    bitcask_file_size: Option<u64>,
    /// Run the whole suite this many times, rotating the engine order; every figure is then
    /// reported as the median with its minimum and maximum.
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// Open loop: issue every phase's operations at this many per second in total, on a fixed
    /// schedule, and measure each latency from the operation's intended start (so a stall
    /// counts against every request that would have queued behind it). Default: the closed
    /// loop, each thread issuing its next operation when the last is answered.
    #[arg(long)]
    rate: Option<u64>,
    /// Drop the OS page cache before every read-only phase (readrandom, readmissing, readseq,
    /// seekrandom, ycsb-c), so their reads come from the device (Linux, as root).
    #[arg(long)]
    cold: bool,
    /// Run every engine in this process, one after another (default: each engine run in a
    /// child process of its own, so none inherits another's allocator, memory or cache).
    #[arg(long)]
    in_process: bool,
    /// Leave the OS page cache alone (default: drop it before each engine run where the OS
    /// allows it: Linux, as root; the report says whether it could).
    #[arg(long)]
    keep_page_cache: bool,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
    /// Internal: run as the child process of an isolated run, writing the one engine's run here.
    #[arg(long, hide = true)]
    child_result: Option<PathBuf>,
    /// Also write every table of the report as CSV beside `summary.json` (`headline.csv`,
    /// `phases.csv`, `totals.csv`, `read-amplification.csv`, `latency-<engine>.csv`).
    #[arg(long)]
    csv: bool,
    /// Keep each engine's data directory after its run and print its path (for `kv inspect`).
    #[arg(long)]
    keep_data: bool,
    /// Stop each scan-heavy phase (readseq, seekrandom, YCSB E) after this many seconds, done
    /// or not: a hash index walks its whole keydir for every scan, so an `--ops` multiple would
    /// otherwise run for hours. 0: no limit.
    #[arg(long, default_value_t = 30.0)]
    scan_phase_secs: f64,
    /// The shortest a phase lasts, in seconds: a phase of reads, scans or updates that finishes
    /// its operations sooner keeps drawing from the same stream until then (its report shows
    /// the operations it ran). Fills, inserts, deletes and compact run exactly their count.
    /// Default 2 (0 with --quick); 0 runs every phase to its count.
    #[arg(long)]
    min_phase_secs: Option<f64>,
    /// Seconds of uncounted warm-up before each phase of reads, scans or updates, drawn from a
    /// stream seeded apart from the measured one. Default 1 (0 with --quick).
    #[arg(long)]
    warmup_secs: Option<f64>,
    /// Skip the crash-recovery measurements (by default each of our engines is crashed after
    /// the load and after the overwrites, as a process kill would leave its files, and the
    /// copy reopened and timed).
    #[arg(long)]
    no_recovery: bool,
    /// Skip the sequential-write bandwidth measurements (by default each engine runs a fillseq
    /// of 4 KiB values under --sync never, 256 MiB (8 MiB with --quick), shown beside the
    /// device's own sequential-write bandwidth on the same directory).
    #[arg(long)]
    no_bandwidth: bool,
    /// A data set that outgrows memory: `large` (20,000,000 keys, about 2.3 GB) or `huge`
    /// (100,000,000 keys, for bigger machines), with operation counts scaled to match (see
    /// the README). --keys still overrides the key count.
    #[arg(long)]
    preset: Option<String>,
    /// Open every engine with its own default options, as a user would (RocksDB's
    /// `Options::default()`, fjall's and redb's defaults, our engines' `Options::default()`
    /// including Bitcask's 128 MiB files). Default: the peers copy our LSM's tree shape, caches
    /// and block size, and Bitcask files are sized to the data set, so that write amplification
    /// compares algorithms rather than shapes.
    #[arg(long)]
    defaults: bool,
}

/// The options a child process needs to run the same suite against one engine.
fn child_args(args: &CompareArgs) -> Vec<String> {
    let mut out: Vec<String> = vec!["compare".into()];
    let mut push = |flag: &str, value: String| out.extend([flag.to_string(), value]);
    if let Some(keys) = args.keys {
        push("--keys", keys.to_string());
    }
    if let Some(workloads) = &args.workloads {
        push("--workloads", workloads.join(","));
    }
    if let Some(ops) = args.ops {
        push("--ops", ops.to_string());
    }
    if let Some(rate) = args.rate {
        push("--rate", rate.to_string());
    }
    if let Some(dir) = &args.data_dir {
        push("--data-dir", dir.display().to_string());
    }
    if let Some(bytes) = args.bitcask_file_size {
        push("--bitcask-file-size", bytes.to_string());
    }
    push("--key-size", args.key_size.to_string());
    push("--value-size", args.value_size.to_string());
    push("--threads", args.threads.to_string());
    push("--sync", args.sync.label());
    push("--seed", args.seed.to_string());
    push("--scan-phase-secs", args.scan_phase_secs.to_string());
    if let Some(preset) = &args.preset {
        push("--preset", preset.clone());
    }
    if let Some(secs) = args.min_phase_secs {
        push("--min-phase-secs", secs.to_string());
    }
    if let Some(secs) = args.warmup_secs {
        push("--warmup-secs", secs.to_string());
    }
    out.extend(args.defaults.then(|| "--defaults".to_string()));
    out.extend(args.keep_data.then(|| "--keep-data".to_string()));
    out.extend(args.no_recovery.then(|| "--no-recovery".to_string()));
    out.extend(args.no_bandwidth.then(|| "--no-bandwidth".to_string()));
    out.extend(args.quick.then(|| "--quick".to_string()));
    out.extend(args.cold.then(|| "--cold".to_string()));
    out.extend(args.no_progress.then(|| "--no-progress".to_string()));
    out
}

fn parse_sync(text: &str) -> Result<SyncPolicy, String> {
    let lower = text.trim().to_ascii_lowercase();
    let millis = match lower.as_str() {
        "never" => return Ok(SyncPolicy::Never),
        "always" => return Ok(SyncPolicy::Always),
        "periodic" => "100",
        other => other
            .strip_prefix("periodic:")
            .or_else(|| other.strip_prefix("periodic-")?.strip_suffix("ms"))
            .ok_or_else(|| {
                format!("'{text}' is not a sync policy: use never, always or periodic:<ms>")
            })?,
    };
    match millis.parse::<u64>() {
        Ok(ms) if (1..=60_000).contains(&ms) => Ok(SyncPolicy::Periodic(Duration::from_millis(ms))),
        _ => Err(format!(
            "'{text}': the period must be a whole number of milliseconds from 1 to 60000"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::List) => {
            list();
            Ok(())
        }
        Some(Command::Compare(args)) => compare(&args),
        Some(Command::Diff(args)) => diff(&args),
        Some(Command::Simulate(args)) => bench_harness::simulate::main(&args),
        None => match Cli::try_parse_from(["bench-harness", "compare"]) {
            Ok(Cli {
                command: Some(Command::Compare(args)),
            }) => compare(&args),
            Ok(_) => Err(HarnessError::invalid("no command")),
            Err(e) => Err(HarnessError::invalid(e.to_string())),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_input_error() { 2 } else { 1 })
        }
    }
}

fn list() {
    println!("engines (* = in the default suite):");
    for e in engines::all() {
        let mark = if e.in_default_suite { "*" } else { " " };
        println!("  {mark} {:<10} {}", e.name, e.description);
    }
    println!("workloads: {}", WORKLOAD_NAMES.join(", "));
}

fn to_usize(option: &str, value: u64) -> Result<usize, HarnessError> {
    usize::try_from(value)
        .map_err(|_| HarnessError::invalid(format!("{option} {value} is too large")))
}

fn options(args: &CompareArgs) -> Result<SuiteOptions, HarnessError> {
    Ok(SuiteOptions {
        engines: args.engines.clone(),
        workloads: args.workloads.clone(),
        quick: args.quick,
        key_count: args.keys,
        key_size: to_usize("--key-size", args.key_size)?,
        value_size: to_usize("--value-size", args.value_size)?,
        ops: args.ops,
        threads: to_usize("--threads", args.threads)?,
        sync: args.sync,
        seed: args.seed,
        data_dir: args.data_dir.clone(),
        progress: !args.no_progress && std::io::stderr().is_terminal(),
        bitcask_file_size: args.bitcask_file_size,
        repeat: to_usize("--repeat", args.repeat)?,
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        rate: args.rate.map(|r| r as f64),
        cold: args.cold,
        min_phase_secs: args.min_phase_secs,
        warmup_secs: args.warmup_secs,
        recovery: !args.no_recovery,
        bandwidth: !args.no_bandwidth,
        preset: args
            .preset
            .as_deref()
            .map(suite::Preset::named)
            .transpose()?,
        tuning: if args.defaults {
            Tuning::Defaults
        } else {
            Tuning::Aligned
        },
    })
}

/// The suite as the options describe it, with this binary's additions: scan-heavy phases
/// capped by time, data directories kept on request.
fn suite_config(args: &CompareArgs) -> Result<suite::SuiteConfig, HarnessError> {
    let secs = args.scan_phase_secs;
    if !(secs.is_finite() && (0.0..=1e6).contains(&secs)) {
        return Err(HarnessError::invalid(format!(
            "--scan-phase-secs {secs}: use a number of seconds from 0 (no limit) to 1000000"
        )));
    }
    let mut config = options(args)?.build()?;
    for phase in &mut config.phases {
        if phase.is_scan_heavy() {
            *phase = phase.clone().time_limited(Some(secs));
        }
    }
    config.keep_data = args.keep_data;
    Ok(config)
}

/// The child side of an isolated run: the suite against its one engine, the run written back.
fn child(args: &CompareArgs, result_file: &Path) -> Result<(), HarnessError> {
    let config = suite_config(args)?;
    let result = suite::run_suite(&config, &mut print_event)?;
    let run = result
        .runs
        .first()
        .ok_or_else(|| HarnessError::invalid("no engine to run"))?;
    isolation::write_result(run, result_file)
}

fn compare(args: &CompareArgs) -> Result<(), HarnessError> {
    if let Some(file) = &args.child_result {
        return child(args, file);
    }
    let mut config = suite_config(args)?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if let Some(warning) = bench_harness::machine::memory_backed(&config.data_dir, &mounts) {
        eprintln!("warning: {warning}");
    }
    if !args.in_process {
        let program = std::env::current_exe()
            .map_err(|e| HarnessError::io("find the harness binary", "current_exe", e))?;
        config.isolation = Isolation::Child {
            program,
            args: child_args(args),
        };
    }
    if !args.keep_page_cache {
        config.page_cache = PageCache::Dropped;
    }
    report::check_output_dir(&args.out)?;
    let names: Vec<&str> = config.engines.iter().map(|e| e.name).collect();
    eprintln!(
        "comparing {} on {} keys ({} + {} bytes), {} phases, sync {}, {} thread(s)",
        names.join(", "),
        config.dataset.key_count,
        config.dataset.key_size,
        config.dataset.value_size,
        config.phases.len(),
        config.engine_config.sync.label(),
        config.phases.first().map_or(1, |p| p.threads),
    );
    let mut result = suite::run_suite(&config, &mut print_event)?;
    let features: Vec<&str> = [
        ("fjall", cfg!(feature = "fjall")),
        ("rocksdb", cfg!(feature = "rocksdb")),
        ("redb", cfg!(feature = "redb")),
    ]
    .iter()
    .filter_map(|(name, on)| on.then_some(*name))
    .collect();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    result.command = Some(format!(
        "bench-harness {}{}",
        argv.join(" "),
        if features.is_empty() {
            String::new()
        } else {
            format!(" (built with --features {})", features.join(","))
        }
    ));
    print_tables(&result);
    let written = report::write_report(&result, &args.out)?;
    let csv = if args.csv {
        report::write_files(&args.out, &report::csv::report_tables(&result))?.len()
    } else {
        0
    };
    let dir = absolute(&args.out);
    println!(
        "\nreport: {} ({} files)",
        dir.join("report.md").display(),
        written.len() + csv
    );
    Ok(())
}

/// A `summary.json` named directly or through its report directory, parsed.
fn read_summary(path: &Path) -> Result<(PathBuf, serde_json::Value), HarnessError> {
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| HarnessError::invalid(format!("cannot read {}: {e}", file.display())))?;
    let value = serde_json::from_str(&text).map_err(|e| {
        HarnessError::invalid(format!("{} is not a summary.json: {e}", file.display()))
    })?;
    Ok((file, value))
}

fn run_line(label: &str, summary: &serde_json::Value) -> String {
    let m = &summary["machine"];
    format!(
        "{label}: {} at revision {}, load average {}, {} keys, sync {}: {}",
        m["date"].as_str().unwrap_or("?"),
        m["revision"].as_str().unwrap_or("?"),
        m["load_average"],
        summary["dataset"]["key_count"],
        summary["sync"].as_str().unwrap_or("?"),
        summary["command"].as_str().unwrap_or("?"),
    )
}

fn diff(args: &DiffArgs) -> Result<(), HarnessError> {
    let (_, old) = read_summary(&args.old)?;
    let (new_file, new) = read_summary(&args.new)?;
    let mut diff = report::diff::diff(&old, &new);
    if diff.engines.is_empty() {
        return Err(HarnessError::invalid("the two runs share no engine"));
    }
    if let Some(only) = &args.only {
        for (_, rows) in &mut diff.engines {
            rows.retain(|r| r.figure.contains(only.as_str()));
        }
    }
    // A reader piping into `head` closes stdout early: that ends the listing, not in a panic.
    let _ = print_diff(&diff, &old, &new);
    if args.csv {
        let dir = new_file.parent().unwrap_or(Path::new("."));
        let written = report::write_files(dir, &[("diff.csv", diff.to_csv())])?;
        for path in written {
            eprintln!("csv: {}", absolute(&path).display());
        }
    }
    Ok(())
}

fn print_diff(
    diff: &report::diff::Diff,
    old: &serde_json::Value,
    new: &serde_json::Value,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}\n{}\n", run_line("old", old), run_line("new", new))?;
    for ((engine, table), (_, rows)) in diff.tables().into_iter().zip(&diff.engines) {
        let marked = rows.iter().filter(|r| r.change.mark() != "").count();
        writeln!(
            out,
            "## {engine}: {} shared figures, {marked} beyond the spread\n\n{}",
            rows.len(),
            table.to_text()
        )?;
    }
    writeln!(
        out,
        "▲/▼: the new run's min–max range lies wholly above/below the old one's (a single \
         run's range is its value; nothing is marked when neither side was repeated)."
    )?;
    for note in &diff.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

fn print_event(event: Event<'_>) {
    match event {
        Event::EngineOpened { engine, dir } => {
            eprintln!("{engine}: opened in {}", dir.display());
        }
        Event::DataKept { engine, dir } => {
            println!("{engine}: data kept in {}", absolute(dir).display());
        }
        Event::PhaseDone { engine, summary: s } => {
            let p99 = s.latency.map_or("-".to_string(), |l| table::num(l.p99_us));
            eprintln!(
                "{engine:>10} {:<26} {:>10} ops {:>8} s {:>10} kops/s  p99 {:>8} µs  WA {}",
                s.phase,
                s.counts.ops,
                table::num(s.seconds),
                table::num(s.ops_per_sec / 1000.0),
                p99,
                // Peers have no seam: their writes show in `wchar` only.
                table::num(if s.io.total().bytes_written > 0 {
                    s.write_amp.seam_total
                } else {
                    s.write_amp.proc_wchar
                }),
            );
        }
    }
}

fn print_tables(result: &SuiteResult) {
    println!();
    println!("{}", table::headline_table(result).to_text());
    println!("{}", table::phase_table(result).to_text());
    println!("{}", table::totals_table(result).to_text());
    println!("{}", table::read_amp_table(result).to_text());
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
