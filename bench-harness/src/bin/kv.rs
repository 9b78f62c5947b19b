//! `kv`: inspect, query and explain a database directory of either engine.
//!
//! ```text
//! kv inspect DIR                 files with live ratios (Bitcask) or levels and tables (LSM)
//! kv get DIR KEY                 print a value
//! kv put DIR KEY VALUE           write a value (creates DIR with --engine)
//! kv delete DIR KEY              delete a key
//! kv scan DIR [--from K] [--to K] [--limit N]
//! kv compact DIR                 run a full merge or compaction and print what it did
//! kv explain get DIR KEY         the read path of one get, step by step, with its I/O
//! kv explain put DIR KEY VALUE   what one write costs now (log, sync) and later (merge, flush,
//!                                compaction), as the engine's policy expects
//! kv explain scan DIR FROM TO    the sources a scan merges and the I/O each did
//! kv repair DIR                  salvage open: skip damage, keep every intact record, report
//! ```
//!
//! The engine is recognised from the directory (an LSM has a `CURRENT` file, a Bitcask has
//! `*.data` files); `--engine` picks one for a new directory. Read-only commands open the
//! directory read-only, so they never change it. Keys and values are taken as UTF-8 text, or as
//! hex with `--hex`; output escapes non-printable bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use bench_harness::explain::{self, TallyStorage};
use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use clap::{Parser, Subcommand, ValueEnum};
use engine_api::{CommonOptions, Engine, KeyRange, OsStorage, Stats, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

#[derive(Parser)]
#[command(
    name = "kv",
    about = "Inspect, query and explain a Bitcask or LSM database directory"
)]
struct Cli {
    /// Which engine, for a directory that does not exist yet (otherwise it is recognised).
    #[arg(long, global = true, value_enum)]
    engine: Option<Kind>,
    /// Keys and values on the command line are hex, not text.
    #[arg(long, global = true)]
    hex: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the engine's files: live ratios (Bitcask) or levels and tables (LSM).
    Inspect { dir: PathBuf },
    /// Print the value of a key.
    Get { dir: PathBuf, key: String },
    /// Set a key to a value.
    Put {
        dir: PathBuf,
        key: String,
        value: String,
    },
    /// Delete a key.
    Delete { dir: PathBuf, key: String },
    /// Print the pairs in a key range, in order.
    Scan {
        dir: PathBuf,
        /// First key (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Last key (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// At most this many pairs.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Run a full merge (Bitcask) or compaction (LSM) and print what it did.
    Compact { dir: PathBuf },
    /// Open with salvage: rebuild around damaged files (LSM: the table set from every intact
    /// table block and WAL record; Bitcask: skip damaged records and merge them away) and
    /// report what was kept and skipped.
    Repair { dir: PathBuf },
    /// Explain an operation's read path.
    Explain {
        #[command(subcommand)]
        op: ExplainOp,
    },
}

#[derive(Subcommand)]
enum ExplainOp {
    /// Explain a get: where the engine looked and the I/O each step cost.
    Get { dir: PathBuf, key: String },
    /// Write a value and explain what it cost: bytes to the log or WAL, the sync it waited
    /// for, and what the merge or flush and compaction policy will make it cost again.
    Put {
        dir: PathBuf,
        key: String,
        value: String,
    },
    /// Explain a scan of [FROM, TO) (an empty string is unbounded): the sources it merges and
    /// the I/O each did.
    Scan {
        dir: PathBuf,
        from: String,
        to: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Bitcask,
    Lsm,
}

/// Prints a line to stdout; a closed stdout (`kv scan DIR | head`) ends the command quietly
/// instead of panicking as `println!` would.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Failure::StdoutClosed
            } else {
                Failure::Message(format!("cannot write to stdout: {e}"))
            }
        })?
    };
}

/// Why a command did not succeed.
enum Failure {
    /// Whoever read our output stopped reading: not an error of ours.
    StdoutClosed,
    /// A message for the user.
    Message(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) | Err(Failure::StdoutClosed) => ExitCode::SUCCESS,
        Err(Failure::Message(message)) => {
            eprintln!("kv: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let bytes = |s: &str| parse_bytes(s, cli.hex);
    match &cli.command {
        Command::Inspect { dir } => inspect(&*open(dir, cli.engine, true)?),
        Command::Get { dir, key } => {
            let engine = open(dir, cli.engine, true)?;
            match engine.get(&bytes(key)?).map_err(|e| e.to_string())? {
                Some(value) => say!("{}", show(&value)),
                None => return Err(format!("{key}: not found").into()),
            }
            Ok(())
        }
        Command::Put { dir, key, value } => {
            let engine = open(dir, cli.engine, false)?;
            Ok(engine
                .put(&bytes(key)?, &bytes(value)?)
                .map_err(|e| e.to_string())?)
        }
        Command::Delete { dir, key } => {
            let engine = open(dir, cli.engine, false)?;
            Ok(engine.delete(&bytes(key)?).map_err(|e| e.to_string())?)
        }
        Command::Scan {
            dir,
            from,
            to,
            limit,
        } => {
            let from = from.as_deref().map(bytes).transpose()?;
            let to = to.as_deref().map(bytes).transpose()?;
            scan(&*open(dir, cli.engine, true)?, from, to, *limit)
        }
        Command::Compact { dir } => {
            let engine = open(dir, cli.engine, false)?;
            let summary = engine.compact().map_err(|e| e.to_string())?;
            say!("{summary:#?}");
            Ok(())
        }
        Command::Repair { dir } => match kind_of(dir, cli.engine, true)? {
            Kind::Lsm => repair_lsm(dir),
            Kind::Bitcask => repair_bitcask(dir),
        },
        Command::Explain {
            op: ExplainOp::Get { dir, key },
        } => explain_get(&*open(dir, cli.engine, true)?, &bytes(key)?),
        Command::Explain {
            op: ExplainOp::Put { dir, key, value },
        } => {
            let (engine, tally) = open_tallied(dir, cli.engine, false)?;
            print(explain::put(
                &*engine,
                &tally,
                SyncPolicy::Always,
                &bytes(key)?,
                &bytes(value)?,
            )?)
        }
        Command::Explain {
            op: ExplainOp::Scan { dir, from, to },
        } => {
            let bound = |s: &String| (!s.is_empty()).then(|| bytes(s)).transpose();
            let (engine, tally) = open_tallied(dir, cli.engine, true)?;
            print(explain::scan(
                &*engine,
                &tally,
                dir,
                bound(from)?,
                bound(to)?,
            )?)
        }
    }
}

fn parse_bytes(s: &str, hex: bool) -> Result<Vec<u8>, String> {
    if !hex {
        return Ok(s.as_bytes().to_vec());
    }
    if !s.len().is_multiple_of(2) {
        return Err(format!("{s:?} is not hex: odd number of digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("{s:?} is not hex"))
        })
        .collect()
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Recognises the engine of an existing directory from its files.
fn detect(dir: &Path) -> Result<Option<Kind>, String> {
    if !dir.exists() {
        return Ok(None);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    // Not only CURRENT: a directory that lost it is still an LSM (one to repair).
    let lsm = |n: &String| n == "CURRENT" || n.starts_with("MANIFEST-") || n.ends_with(".sst");
    if names.iter().any(lsm) {
        Ok(Some(Kind::Lsm))
    } else if names.iter().any(|n| n.ends_with(".data")) {
        Ok(Some(Kind::Bitcask))
    } else {
        Ok(None)
    }
}

/// The engine of `dir`: recognised, or as asked for a new directory.
fn kind_of(dir: &Path, asked: Option<Kind>, existing: bool) -> Result<Kind, String> {
    let found = detect(dir)?;
    match (found, asked) {
        (Some(found), Some(asked)) if found != asked => Err(format!(
            "{} holds a {found:?} database, not {asked:?}",
            dir.display()
        )),
        (Some(kind), _) | (None, Some(kind)) => Ok(kind),
        (None, None) if existing => Err(format!(
            "{} holds no database of either engine",
            dir.display()
        )),
        (None, None) => Err(format!(
            "{} holds no database yet: say which engine with --engine bitcask|lsm",
            dir.display()
        )),
    }
}

fn open(dir: &Path, asked: Option<Kind>, read_only: bool) -> Result<Arc<dyn Engine>, String> {
    open_on(dir, asked, read_only, common(read_only))
}

/// Opens with every file's I/O tallied, for `explain put` and `explain scan`.
fn open_tallied(
    dir: &Path,
    asked: Option<Kind>,
    read_only: bool,
) -> Result<(Arc<dyn Engine>, TallyStorage), String> {
    let tally = TallyStorage::new(Arc::new(OsStorage::new()));
    let common = CommonOptions {
        storage: Arc::new(tally.clone()),
        ..common(read_only)
    };
    Ok((open_on(dir, asked, read_only, common)?, tally))
}

fn open_on(
    dir: &Path,
    asked: Option<Kind>,
    read_only: bool,
    common: CommonOptions,
) -> Result<Arc<dyn Engine>, String> {
    let kind = kind_of(dir, asked, read_only)?;
    let opened: engine_api::Result<Arc<dyn Engine>> = match kind {
        Kind::Bitcask => BitcaskEngine::open(
            dir,
            BitcaskOptions {
                common,
                ..BitcaskOptions::default()
            },
        )
        .map(|e| Arc::new(e) as Arc<dyn Engine>),
        Kind::Lsm => LsmEngine::open(
            dir,
            LsmOptions {
                common,
                ..LsmOptions::default()
            },
        )
        .map(|e| Arc::new(e) as Arc<dyn Engine>),
    };
    opened.map_err(|e| format!("cannot open {}: {e}", dir.display()))
}

fn common(read_only: bool) -> CommonOptions {
    CommonOptions {
        sync: SyncPolicy::Always,
        read_only,
        create_if_missing: !read_only,
        ..CommonOptions::default()
    }
}

fn repair_lsm(dir: &Path) -> Result<(), Failure> {
    let options = LsmOptions {
        common: CommonOptions {
            create_if_missing: false,
            ..common(false)
        },
        salvage: true,
        ..LsmOptions::default()
    };
    let engine = LsmEngine::open(dir, options)
        .map_err(|e| format!("cannot repair {}: {e}", dir.display()))?;
    let r = engine.recovery_report();
    let Some(cause) = &r.rebuilt_after else {
        say!("lsm: nothing to repair");
        return Ok(());
    };
    say!("lsm: rebuilt the table set after: {cause}");
    say!(
        "read {} table(s) and {} WAL(s) ({} batches); kept {} live entries in {} new table(s)",
        r.tables_read,
        r.wals_read,
        r.wal_batches,
        r.entries_kept,
        r.tables_written
    );
    for d in &r.skipped {
        say!(
            "skipped {} bytes at offset {} of {}: {}",
            d.len,
            d.offset,
            d.path.display(),
            d.reason
        );
    }
    for path in &r.moved_aside {
        say!("kept aside: {}", path.display());
    }
    Ok(())
}

fn repair_bitcask(dir: &Path) -> Result<(), Failure> {
    let options = BitcaskOptions {
        common: CommonOptions {
            create_if_missing: false,
            ..common(false)
        },
        salvage: true,
        ..BitcaskOptions::default()
    };
    let engine = BitcaskEngine::open(dir, options)
        .map_err(|e| format!("cannot repair {}: {e}", dir.display()))?;
    let r = engine.recovery_report().clone();
    if r.skipped.is_empty() {
        say!("bitcask: nothing to repair ({} live keys)", r.keys);
        return Ok(());
    }
    for d in &r.skipped {
        say!(
            "skipped {} bytes at offset {} of {}: {}",
            d.len,
            d.offset,
            d.path.display(),
            d.reason
        );
    }
    // A salvage merge rewrites the files without the damage, so the next open needs no salvage.
    engine.compact().map_err(|e| e.to_string())?;
    say!("bitcask: merged the damage away ({} live keys)", r.keys);
    Ok(())
}

fn inspect(engine: &dyn Engine) -> Result<(), Failure> {
    let stats = engine.stats();
    say!(
        "engine {}: {} live keys, {} files, {} bytes on disk, index memory {} bytes",
        stats.engine,
        stats.live_keys,
        stats.file_count,
        stats.disk_bytes,
        stats.index_memory_bytes
    );
    if !stats.levels.is_empty() {
        print_levels(&stats)?;
    }
    print_files(&stats)
}

fn print_levels(stats: &Stats) -> Result<(), Failure> {
    say!(
        "\n{:>5} {:>6} {:>12} {:>12} {:>7}",
        "level",
        "files",
        "bytes",
        "target",
        "score"
    );
    for level in &stats.levels {
        say!(
            "{:>5} {:>6} {:>12} {:>12} {:>7.2}",
            format!("L{}", level.level),
            level.files,
            level.bytes,
            level.target_bytes,
            level.score
        );
    }
    Ok(())
}

fn print_files(stats: &Stats) -> Result<(), Failure> {
    say!(
        "\n{:<22} {:>5} {:>12} {:>12} {:>6} {:>9}  key range",
        "file",
        "level",
        "bytes",
        "live bytes",
        "live%",
        "entries"
    );
    for file in &stats.files {
        let level = file.level.map_or("-".to_string(), |l| format!("L{l}"));
        let live = file.live_bytes.map_or("-".to_string(), |b| b.to_string());
        let ratio = file
            .live_ratio()
            .map_or("-".to_string(), |r| format!("{:.0}", r * 100.0));
        let range = match (&file.smallest_key, &file.largest_key) {
            (Some(a), Some(b)) => format!("{} .. {}", show(a), show(b)),
            _ => String::new(),
        };
        say!(
            "{:<22} {:>5} {:>12} {:>12} {:>6} {:>9}  {range}",
            file.name,
            level,
            file.bytes,
            live,
            ratio,
            file.entries
        );
    }
    Ok(())
}

fn scan(
    engine: &dyn Engine,
    from: Option<Vec<u8>>,
    to: Option<Vec<u8>>,
    limit: usize,
) -> Result<(), Failure> {
    use std::ops::Bound;
    let range = KeyRange {
        start: from.map_or(Bound::Unbounded, Bound::Included),
        end: to.map_or(Bound::Unbounded, Bound::Excluded),
    };
    let pairs = engine.scan(range).map_err(|e| e.to_string())?;
    for pair in pairs.take(limit) {
        let (key, value) = pair.map_err(|e| e.to_string())?;
        say!("{} = {}", show(&key), show(&value));
    }
    Ok(())
}

fn explain_get(engine: &dyn Engine, key: &[u8]) -> Result<(), Failure> {
    let trace = engine.explain_get(key).map_err(|e| e.to_string())?;
    say!("get {} on {}:", show(key), engine.name());
    for (i, step) in trace.steps.iter().enumerate() {
        let io = if step.cached {
            format!("{} bytes from cache", step.bytes)
        } else if step.reads == 0 {
            "no I/O".to_string()
        } else {
            format!("{} read(s), {} bytes", step.reads, step.bytes)
        };
        say!("  {}. {} [{io}]", i + 1, step.what);
    }
    match &trace.value {
        Some(value) => say!("=> found {} bytes: {}", value.len(), show(value)),
        None => say!("=> not found"),
    }
    say!(
        "total: {} storage read(s), {} bytes",
        trace.reads(),
        trace.bytes()
    );
    Ok(())
}

fn print(lines: Vec<String>) -> Result<(), Failure> {
    for line in lines {
        say!("{line}");
    }
    Ok(())
}
