//! `bench-harness`: runs the comparison suite against the workspace's engines and writes a
//! report. `bench-harness compare --help` lists the options; with no arguments it runs the
//! default suite against the default engines and writes into `target/bench-report/`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bench_harness::isolation::{self, Isolation, PageCache};
use bench_harness::report::{self, table};
use bench_harness::suite::{self, Event, SuiteOptions, SuiteResult};
use bench_harness::workload::WORKLOAD_NAMES;
use bench_harness::{HarnessError, engines};
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
#[expect(clippy::large_enum_variant, reason = "parsed once per process")]
enum Command {
    /// Run the suite against every engine and write a report (the default command).
    Compare(CompareArgs),
    /// List the engines and workloads this build knows.
    List,
    /// Drive the engines' real compaction and merge policies over a synthetic write stream
    /// (no I/O) and print write and space amplification; `--sweep KNOB` charts them against
    /// one knob.
    Simulate(Box<bench_harness::simulate::SimulateArgs>),
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
    })
}

/// The child side of an isolated run: the suite against its one engine, the run written back.
fn child(args: &CompareArgs, result_file: &Path) -> Result<(), HarnessError> {
    let config = options(args)?.build()?;
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
    let mut config = options(args)?.build()?;
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
    let dir = absolute(&args.out);
    println!(
        "\nreport: {} ({} files)",
        dir.join("report.md").display(),
        written.len()
    );
    Ok(())
}

fn print_event(event: Event<'_>) {
    match event {
        Event::EngineOpened { engine, dir } => {
            eprintln!("{engine}: opened in {}", dir.display());
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
