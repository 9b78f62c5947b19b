//! The `compare` driver: the default suite, the checks on what the user asked for, and the loop
//! that runs every phase against every engine, each in its own temporary directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bitcask_engine::{MAX_FILE_SIZE_LIMIT, MIN_FILE_SIZE};
use engine_api::{OsStorage, Storage, SyncPolicy};
use serde::Serialize;

use crate::bandwidth::{self, Bandwidth};
use crate::engines::{self, EngineConfig, EngineEntry, Tuning};
use crate::error::{HarnessError, Result};
use crate::isolation::{self, Isolation, PageCache};
use crate::machine::Machine;
use crate::metrics::{EngineRun, PhaseSummary};
use crate::runner::{Freezer, Phase, Runner};
use crate::workload::{Dataset, KeyCodec, StreamPlan, Workload};

/// Keys loaded by the default suite.
pub const DEFAULT_KEYS: u64 = 1_000_000;
/// Keys loaded by `--quick`.
pub const QUICK_KEYS: u64 = 50_000;
/// Largest key count accepted.
pub const MAX_KEYS: u64 = 1_000_000_000;
/// Largest key accepted, in bytes.
pub const MAX_KEY_SIZE: usize = 1024;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_SIZE: usize = 1 << 20;
/// Largest data set accepted (keys × record size), in bytes.
pub const MAX_DATASET_BYTES: u64 = 64 << 30;
/// The workloads that only read: `--cold` starts each of them with an empty page cache.
pub const READ_ONLY: [&str; 5] = [
    "readrandom",
    "readmissing",
    "readseq",
    "seekrandom",
    "ycsb-c",
];
/// Most repeats accepted.
pub const MAX_REPEAT: usize = 50;
/// Largest operation count accepted for one phase.
pub const MAX_OPS: u64 = 10_000_000_000;
/// Most worker threads accepted.
pub const MAX_THREADS: usize = 256;
/// The shortest a phase that can be extended lasts by default (`--min-phase-secs`): long
/// enough that its p99.9 is not its maximum and a one-second sampler sees it twice.
pub const DEFAULT_MIN_PHASE_SECS: f64 = 2.0;
/// The default uncounted warm-up before each phase that can have one (`--warmup-secs`).
pub const DEFAULT_WARMUP_SECS: f64 = 1.0;
/// Longest `--min-phase-secs` or `--warmup-secs` accepted.
pub const MAX_PHASE_SECS: f64 = 3_600.0;

/// What the user asked for, before it is checked.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// Engines to compare; `None` for the default suite's.
    pub engines: Option<Vec<String>>,
    /// Workloads to run after the load; `None` for the default suite.
    pub workloads: Option<Vec<String>>,
    /// The quick suite: a small data set, done in well under a minute.
    pub quick: bool,
    /// Keys to load; `None` for the suite's default.
    pub key_count: Option<u64>,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// Operations per non-pass phase; `None` for each workload's default.
    pub ops: Option<u64>,
    /// Worker threads.
    pub threads: usize,
    /// Durability policy for every engine.
    pub sync: SyncPolicy,
    /// Seed of every op stream.
    pub seed: u64,
    /// Where the engines' temporary directories go; `None` for the system's temporary directory.
    pub data_dir: Option<PathBuf>,
    /// Progress bars on stderr.
    pub progress: bool,
    /// Bitcask's data file size; `None` sizes files to the data set
    /// ([`EngineConfig::bitcask_file_size_for`]).
    pub bitcask_file_size: Option<u64>,
    /// How many times the whole suite runs, the engine order rotated each time.
    pub repeat: usize,
    /// Operations per second for every phase, in the open loop; `None` for the closed loop
    /// (see [`Phase::rate`]).
    pub rate: Option<f64>,
    /// Drop the OS page cache before every read-only phase (Linux, root).
    pub cold: bool,
    /// The shortest a phase lasts, in seconds, if its workload can go on past its count
    /// ([`crate::Workload::extends`]); `None` for [`DEFAULT_MIN_PHASE_SECS`] (0 with `quick`).
    pub min_phase_secs: Option<f64>,
    /// Seconds of uncounted warm-up before each phase that can have one; `None` for
    /// [`DEFAULT_WARMUP_SECS`] (0 with `quick`).
    pub warmup_secs: Option<f64>,
    /// Measure crash recovery after the load and after the overwrites (see
    /// [`Runner::measure_recovery`]); default true.
    pub recovery: bool,
    /// Measure each engine's sequential-write bandwidth beside the device's
    /// ([`crate::bandwidth`]); default true.
    pub bandwidth: bool,
    /// A data set that outgrows memory, with its own operation counts; `None` for the default
    /// suite (or `quick`).
    pub preset: Option<Preset>,
    /// Aligned shapes (the default) or every engine at its own defaults.
    pub tuning: Tuning,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            engines: None,
            workloads: None,
            quick: false,
            key_count: None,
            key_size: 16,
            value_size: 100,
            ops: None,
            threads: 1,
            sync: SyncPolicy::Never,
            seed: 0x5EED,
            data_dir: None,
            progress: false,
            bitcask_file_size: None,
            repeat: 1,
            rate: None,
            cold: false,
            min_phase_secs: None,
            warmup_secs: None,
            recovery: true,
            bandwidth: true,
            preset: None,
            tuning: Tuning::Aligned,
        }
    }
}

/// A checked suite, ready to run.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// The engines, in run order.
    pub engines: Vec<EngineEntry>,
    /// The data set.
    pub dataset: Dataset,
    /// The phases every engine runs, in order.
    pub phases: Vec<Phase>,
    /// What every engine is opened with.
    pub engine_config: EngineConfig,
    /// Parent of the engines' temporary directories.
    pub data_dir: PathBuf,
    /// Progress bars on stderr.
    pub progress: bool,
    /// Whether this is the quick suite.
    pub quick: bool,
    /// How many times the suite runs (see [`SuiteOptions::repeat`]).
    pub repeat: usize,
    /// Whether each engine runs in this process or a child of its own.
    pub isolation: Isolation,
    /// Whether the page cache is dropped before each engine run.
    pub page_cache: PageCache,
    /// Keep each engine's data directory after its run (`--keep-data`) instead of removing it;
    /// [`Event::DataKept`] names it.
    pub keep_data: bool,
    /// Whether crash recovery is measured after the load and the overwrites.
    pub recovery: bool,
    /// Bytes of each sequential-write bandwidth measurement; `None` to skip them.
    pub bandwidth_bytes: Option<u64>,
}

/// The default suite: load, steady-state overwrites until the user has written three times the
/// data set, reads, a full compaction, the same reads again, YCSB, reads beside a writer, and
/// deletes followed by a compaction (space reclaimed). Each entry is (workload, label suffix,
/// operations per loaded key). Scans are few: a hash-indexed engine pays O(keys) for each.
const DEFAULT_PHASES: [(&str, &str, f64); 16] = [
    ("fillrandom", "", 1.0),
    ("overwrite", "", 3.0),
    ("readrandom", "", 0.5),
    ("readmissing", "", 0.5),
    ("seekrandom", "", 0.001),
    ("readseq", "", 1.0),
    ("compact", "", 0.0),
    ("readrandom", " (compacted)", 0.5),
    ("readmissing", " (compacted)", 0.5),
    ("seekrandom", " (compacted)", 0.001),
    ("ycsb-a", "", 0.5),
    ("ycsb-b", "", 0.5),
    ("ycsb-e", "", 0.0005),
    ("readwhilewriting", "", 0.25),
    ("deleterandom", "", 0.5),
    ("compact", " (after deletes)", 0.0),
];

/// A data set that outgrows memory (`--preset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// 20,000,000 keys (16 + 100 bytes, about 2.3 GB): many times the block cache, and fits a
    /// 2-core, 24 GiB, 80 GB machine.
    Large,
    /// 100,000,000 keys (about 11.6 GB), for bigger machines.
    Huge,
}

impl Preset {
    /// The preset called `name` (`large` or `huge`).
    ///
    /// # Errors
    /// [`HarnessError::InvalidInput`] for another name.
    pub fn named(name: &str) -> Result<Preset> {
        match name.trim().to_ascii_lowercase().as_str() {
            "large" => Ok(Preset::Large),
            "huge" => Ok(Preset::Huge),
            other => Err(HarnessError::invalid(format!(
                "unknown preset '{other}'; presets: large, huge"
            ))),
        }
    }

    /// Keys it loads unless `--keys` says otherwise.
    pub fn keys(self) -> u64 {
        match self {
            Preset::Large => 20_000_000,
            Preset::Huge => 100_000_000,
        }
    }
}

/// The suite of the presets: the default suite's phases with operation counts scaled to a data
/// set that outgrows memory. Overwrites write the data set once more (not three times); reads
/// and YCSB take a twentieth of the keys; scans, which a hash-indexed engine pays O(keys) for
/// each, are a few hundred, and `readseq` (one full pass in chunks) is left out.
const PRESET_PHASES: [(&str, &str, f64); 15] = [
    ("fillrandom", "", 1.0),
    ("overwrite", "", 1.0),
    ("readrandom", "", 0.05),
    ("readmissing", "", 0.05),
    ("seekrandom", "", 0.000_01),
    ("compact", "", 0.0),
    ("readrandom", " (compacted)", 0.05),
    ("readmissing", " (compacted)", 0.05),
    ("seekrandom", " (compacted)", 0.000_01),
    ("ycsb-a", "", 0.05),
    ("ycsb-b", "", 0.05),
    ("ycsb-e", "", 0.000_01),
    ("readwhilewriting", "", 0.025),
    ("deleterandom", "", 0.05),
    ("compact", " (after deletes)", 0.0),
];

/// Operations per loaded key a workload runs when the user names it without `--ops`.
fn default_ops_per_key(workload: &Workload) -> f64 {
    match workload.name.as_str() {
        "overwrite" => 3.0,
        "seekrandom" | "ycsb-e" => 0.001,
        _ => 0.5,
    }
}

fn scaled(keys: u64, per_key: f64) -> u64 {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "op counts far below 2^52, per_key positive"
    )]
    let ops = (keys as f64 * per_key).ceil() as u64;
    ops.max(1)
}

impl SuiteOptions {
    /// Checks everything and builds the suite. Nothing is run or written.
    ///
    /// # Errors
    /// [`HarnessError::InvalidInput`] with a message naming the option and the accepted range.
    pub fn build(&self) -> Result<SuiteConfig> {
        let dataset = self.dataset()?;
        check_range("--threads", self.threads as u64, 1, MAX_THREADS as u64)?;
        check_range("--repeat", self.repeat as u64, 1, MAX_REPEAT as u64)?;
        if let Some(ops) = self.ops {
            check_range("--ops", ops, 1, MAX_OPS)?;
        }
        if let Some(rate) = self.rate {
            check_range("--rate", rate as u64, 1, 1_000_000_000)?;
        }
        let (min_secs, warmup) = self.phase_times()?;
        let phases: Vec<Phase> = self
            .phases(dataset.key_count)?
            .into_iter()
            .map(|p| {
                let cold = self.cold && READ_ONLY.contains(&p.workload.name.as_str());
                p.at_rate(self.rate)
                    .cold(cold)
                    .lasting(min_secs)
                    .warmed(warmup)
            })
            .collect();
        if self.cold {
            isolation::drop_page_cache().map_err(|why| {
                HarnessError::invalid(format!(
                    "--cold drops the page cache before each read phase, which needs Linux \
                     and root: {why}"
                ))
            })?;
        }
        check_key_size(&dataset, &phases)?;
        let data_dir = self.data_dir.clone().unwrap_or_else(std::env::temp_dir);
        check_data_dir(&data_dir)?;
        Ok(SuiteConfig {
            engines: self.engines()?,
            engine_config: self.engine_config(&dataset)?,
            dataset,
            phases,
            data_dir,
            progress: self.progress,
            quick: self.quick,
            repeat: self.repeat,
            isolation: Isolation::InProcess,
            page_cache: PageCache::Kept,
            keep_data: false,
            recovery: self.recovery,
            bandwidth_bytes: self.bandwidth.then_some(if self.quick {
                crate::bandwidth::QUICK_BYTES
            } else {
                crate::bandwidth::DEFAULT_BYTES
            }),
        })
    }

    /// `--min-phase-secs` and `--warmup-secs`, checked, with their defaults.
    fn phase_times(&self) -> Result<(f64, f64)> {
        let (min_default, warmup_default) = if self.quick {
            (0.0, 0.0)
        } else {
            (DEFAULT_MIN_PHASE_SECS, DEFAULT_WARMUP_SECS)
        };
        let check = |option: &str, value: f64| {
            if value.is_finite() && (0.0..=MAX_PHASE_SECS).contains(&value) {
                Ok(value)
            } else {
                Err(HarnessError::invalid(format!(
                    "{option} must be between 0 and {MAX_PHASE_SECS} seconds, not {value}"
                )))
            }
        };
        Ok((
            check(
                "--min-phase-secs",
                self.min_phase_secs.unwrap_or(min_default),
            )?,
            check("--warmup-secs", self.warmup_secs.unwrap_or(warmup_default))?,
        ))
    }

    fn engine_config(&self, dataset: &Dataset) -> Result<EngineConfig> {
        let mut config = EngineConfig::new(self.sync);
        config.tuning = self.tuning;
        config.bitcask_max_file_size = match self.bitcask_file_size {
            Some(bytes) => {
                check_range(
                    "--bitcask-file-size",
                    bytes,
                    MIN_FILE_SIZE,
                    MAX_FILE_SIZE_LIMIT,
                )?;
                bytes
            }
            None if self.tuning == Tuning::Defaults => config.bitcask_max_file_size,
            None => EngineConfig::bitcask_file_size_for(dataset.bytes()),
        };
        Ok(config)
    }

    fn dataset(&self) -> Result<Dataset> {
        let default_keys = match (self.preset, self.quick) {
            (Some(preset), _) => preset.keys(),
            (None, true) => QUICK_KEYS,
            (None, false) => DEFAULT_KEYS,
        };
        let key_count = self.key_count.unwrap_or(default_keys);
        check_range("--keys", key_count, 1, MAX_KEYS)?;
        check_range("--key-size", self.key_size as u64, 1, MAX_KEY_SIZE as u64)?;
        check_range(
            "--value-size",
            self.value_size as u64,
            0,
            MAX_VALUE_SIZE as u64,
        )?;
        let dataset = Dataset {
            key_count,
            key_size: self.key_size,
            value_size: self.value_size,
            seed: self.seed,
        };
        let bytes = key_count.checked_mul(dataset.record_bytes());
        if bytes.is_none_or(|b| b > MAX_DATASET_BYTES) {
            return Err(HarnessError::invalid(format!(
                "a data set of {key_count} keys of {} bytes each is larger than the {} GiB the \
                 harness accepts",
                dataset.record_bytes(),
                MAX_DATASET_BYTES >> 30
            )));
        }
        Ok(dataset)
    }

    fn phases(&self, keys: u64) -> Result<Vec<Phase>> {
        let Some(names) = &self.workloads else {
            let table: &[(&str, &str, f64)] = if self.preset.is_some() {
                &PRESET_PHASES
            } else {
                &DEFAULT_PHASES
            };
            return table
                .iter()
                .map(|(name, suffix, per_key)| {
                    let workload = Workload::named(name)?;
                    let label = format!("{name}{suffix}");
                    let ops = self.ops.unwrap_or_else(|| scaled(keys, *per_key));
                    Ok(Phase::new(workload, ops, self.threads).labelled(label))
                })
                .collect();
        };
        if names.is_empty() {
            return Err(HarnessError::invalid(
                "--workloads needs at least one workload",
            ));
        }
        let workloads = names
            .iter()
            .map(|n| Workload::named(n))
            .collect::<Result<Vec<_>>>()?;
        let mut phases = Vec::new();
        if !workloads.first().is_some_and(Workload::is_fill) {
            phases.push(Phase::new(
                Workload::named("fillrandom")?,
                keys,
                self.threads,
            ));
        }
        for workload in workloads {
            let ops = self
                .ops
                .unwrap_or_else(|| scaled(keys, default_ops_per_key(&workload)));
            phases.push(Phase::new(workload, ops, self.threads));
        }
        Ok(unique_labels(phases))
    }

    fn engines(&self) -> Result<Vec<EngineEntry>> {
        let Some(names) = &self.engines else {
            return Ok(engines::default_suite());
        };
        if names.is_empty() {
            return Err(HarnessError::invalid("--engines needs at least one engine"));
        }
        let mut out: Vec<EngineEntry> = Vec::new();
        for name in names {
            let entry = engines::find(name)?;
            if out.iter().any(|e| e.name == entry.name) {
                return Err(HarnessError::invalid(format!(
                    "engine '{}' is named twice",
                    entry.name
                )));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// Labels repeated workloads `name`, `name #2`, ...
fn unique_labels(mut phases: Vec<Phase>) -> Vec<Phase> {
    let mut seen: Vec<String> = Vec::new();
    for phase in &mut phases {
        let n = seen.iter().filter(|l| **l == phase.label).count();
        seen.push(phase.label.clone());
        if n > 0 {
            phase.label = format!("{} #{}", phase.label, n + 1);
        }
    }
    phases
}

fn check_range(option: &str, value: u64, min: u64, max: u64) -> Result<()> {
    if value < min || value > max {
        return Err(HarnessError::invalid(format!(
            "{option} must be between {min} and {max}, not {value}"
        )));
    }
    Ok(())
}

/// Every id the phases can write must fit the key size.
fn check_key_size(dataset: &Dataset, phases: &[Phase]) -> Result<()> {
    let mut next_insert = dataset.key_count;
    for phase in phases {
        let plan = StreamPlan {
            workload: phase.workload.clone(),
            ops: phase.ops,
            threads: phase.threads,
            key_count: dataset.key_count,
            insert_base: next_insert,
            seed: 0,
            value_offsets: 1,
        };
        next_insert = next_insert.saturating_add(plan.insert_capacity());
    }
    let max_id = next_insert.saturating_sub(1);
    let codec = KeyCodec::new(dataset.key_size);
    if !codec.fits(max_id) {
        let digits = KeyCodec::digits(max_id);
        return Err(HarnessError::invalid(format!(
            "--key-size {} is too small: keys are decimal ids and this suite writes ids up to \
             {max_id}, which need {digits} bytes; use --key-size {digits} or more",
            dataset.key_size
        )));
    }
    Ok(())
}

/// The engines' temporary directories go here: it must exist and take a new directory.
fn check_data_dir(dir: &Path) -> Result<()> {
    tempfile::Builder::new()
        .prefix(".bench-harness-probe-")
        .tempdir_in(dir)
        .map(drop)
        .map_err(|e| HarnessError::io("create a temporary directory in", dir, e))
        .map_err(|e| HarnessError::invalid(format!("--data-dir: {e}")))
}

/// Whether the suite measures crash recovery after `phase`: after the load, when recovery
/// replays or scans everything written, and after the overwrites, when the files also hold
/// every overwritten version.
fn crashes_after(phase: &Phase) -> bool {
    phase.workload.is_fill() || phase.workload.name == "overwrite"
}

/// Progress of a suite, for the caller to show.
#[derive(Debug)]
pub enum Event<'a> {
    /// An engine was opened.
    EngineOpened {
        /// Its name.
        engine: &'a str,
        /// Its temporary directory.
        dir: &'a Path,
    },
    /// A phase ended.
    PhaseDone {
        /// The engine.
        engine: &'a str,
        /// The phase's summary.
        summary: &'a PhaseSummary,
    },
    /// An engine's run ended and its data directory was kept (`keep_data`).
    DataKept {
        /// The engine.
        engine: &'a str,
        /// Its data directory, left as the engine closed it.
        dir: &'a Path,
    },
}

/// Everything a suite measured.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteResult {
    /// The machine it ran on.
    pub machine: Machine,
    /// The data set.
    pub dataset: Dataset,
    /// The durability policy.
    pub sync: String,
    /// Whether this was the quick suite.
    pub quick: bool,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Every engine's median run (by the sum of its phases' durations), in the order of the
    /// first repeat: what the charts draw.
    pub runs: Vec<EngineRun>,
    /// Every run of every engine, in the order of `runs`: `repeats[i]` are `runs[i].engine`'s.
    pub repeats: Vec<Vec<EngineRun>>,
    /// Whether each engine ran in a process of its own.
    pub isolated: bool,
    /// What became of the page cache before each engine run: `None` if it was left alone,
    /// else whether dropping it worked (and why not).
    pub page_cache: Option<std::result::Result<(), String>>,
    /// Wall-clock seconds of the whole suite.
    pub seconds: f64,
    /// The 1-minute load average when the suite ended (the machine description has the one at
    /// the start).
    pub load_average_end: f64,
    /// The command line that ran the suite, if the caller records one (the binary does).
    pub command: Option<String>,
}

/// Runs every phase against every engine, each engine in a fresh temporary directory under the
/// data directory (removed afterwards), one engine at a time; `repeat` times over, the engine
/// order rotated by one each time so that no engine always runs first (or last, after the
/// others have warmed the machine).
///
/// # Errors
/// The first engine error, wrong answer or I/O failure; nothing is reported for a failed suite.
pub fn run_suite(config: &SuiteConfig, on_event: &mut dyn FnMut(Event<'_>)) -> Result<SuiteResult> {
    let started = Instant::now();
    let machine = Machine::describe(&config.data_dir);
    let count = config.engines.len();
    let mut repeats: Vec<Vec<EngineRun>> = vec![Vec::new(); count];
    let mut page_cache = None;
    for round in 0..config.repeat.max(1) {
        for i in (0..count).map(|k| (k + round) % count) {
            if config.page_cache == PageCache::Dropped {
                let dropped = isolation::drop_page_cache();
                page_cache = Some(page_cache.unwrap_or(Ok(())).and(dropped));
            }
            repeats[i].push(run_isolated(config, &config.engines[i], on_event)?);
        }
    }
    let runs = repeats.iter().map(|r| median_run(r)).collect();
    Ok(SuiteResult {
        machine,
        dataset: config.dataset,
        sync: config.engine_config.sync.label(),
        quick: config.quick,
        phases: config.phases.clone(),
        runs,
        repeats,
        isolated: matches!(config.isolation, Isolation::Child { .. }),
        page_cache,
        seconds: started.elapsed().as_secs_f64(),
        load_average_end: crate::machine::load_average(),
        command: None,
    })
}

/// The run whose total phase time is the median of an engine's repeats.
fn median_run(repeats: &[EngineRun]) -> EngineRun {
    let total = |r: &EngineRun| r.phases.iter().map(|p| p.seconds).sum::<f64>();
    repeats[crate::report::spread::median_index(repeats, total)].clone()
}

impl SuiteResult {
    /// Each engine's repeats, in the order of [`SuiteResult::runs`] (its one run where the
    /// result holds no repeats).
    pub fn engine_repeats(&self) -> impl Iterator<Item = &[EngineRun]> {
        self.runs.iter().enumerate().map(|(i, run)| {
            self.repeats
                .get(i)
                .filter(|r| !r.is_empty())
                .map_or(std::slice::from_ref(run), Vec::as_slice)
        })
    }

    /// How many times each engine ran.
    pub fn repeat_count(&self) -> usize {
        self.repeats.iter().map(Vec::len).max().unwrap_or(1).max(1)
    }
}

fn run_isolated(
    config: &SuiteConfig,
    entry: &EngineEntry,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<EngineRun> {
    match &config.isolation {
        Isolation::InProcess => run_engine(config, entry, on_event),
        Isolation::Child { program, args } => {
            isolation::run_in_child(program, args, entry, &config.data_dir)
        }
    }
}

fn run_engine(
    config: &SuiteConfig,
    entry: &EngineEntry,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<EngineRun> {
    let temp = tempfile::Builder::new()
        .prefix(&format!("bench-{}-", entry.name))
        .tempdir_in(&config.data_dir)
        .map_err(|e| HarnessError::io("create a temporary directory in", &config.data_dir, e))?;
    let dir = temp.path().join("db");
    // Our engines count into the harness's own counters, on a storage that can hold their
    // changes still for a crash image; peers bypass the seam.
    let freezer = Arc::new(Freezer::new(Arc::new(OsStorage::new())));
    let frozen_config = EngineConfig {
        storage: Some(Arc::clone(&freezer) as Arc<dyn Storage>),
        ..config.engine_config.clone()
    };
    let (engine_config, counters) = frozen_config.counted();
    let reopen = |image: &Path| {
        let (reopened, counters) = config.engine_config.counted();
        Ok(((entry.open)(image, &reopened)?, counters))
    };
    let measures_recovery = config.recovery && entry.seam_accounting;
    let cold = config.phases.iter().any(|p| p.cold);
    let engine = (entry.open)(&dir, &engine_config).map_err(|source| HarnessError::Engine {
        engine: entry.name.to_string(),
        phase: "open".to_string(),
        source,
    })?;
    on_event(Event::EngineOpened {
        engine: entry.name,
        dir: &dir,
    });
    let mut runner = Runner::new(engine, &dir, config.dataset)?
        .with_name(entry.name)
        .with_progress(config.progress);
    if entry.seam_accounting {
        runner = runner.with_io_counters(counters);
    } else {
        runner = runner.without_seam();
    }
    let mut synced_device = Vec::new();
    for phase in &config.phases {
        let summary = runner.run_phase(phase)?;
        on_event(Event::PhaseDone {
            engine: entry.name,
            summary: &summary,
        });
        let device = synced_device_after(config, &summary, temp.path())?;
        synced_device.push((summary.phase.clone(), device));
        if measures_recovery && crashes_after(phase) {
            runner.take_crash_image(&phase.label, &freezer)?;
        }
    }
    let mut run =
        runner.finish_and_recover((entry.settings)(&config.engine_config), &reopen, cold)?;
    for (label, device) in synced_device {
        if let Some(phase) = run.phases.iter_mut().find(|p| p.phase == label) {
            phase.synced_device = device;
        }
    }
    if config.keep_data {
        let kept = temp.keep().join("db");
        on_event(Event::DataKept {
            engine: entry.name,
            dir: &kept,
        });
    } else {
        // The engine was dropped with the runner; now its files can go.
        temp.close()
            .map_err(|e| HarnessError::io("remove the temporary directory", &dir, e))?;
    }
    if let Some(bytes) = config.bandwidth_bytes {
        run.bandwidth = Some(bandwidth_run(config, entry, bytes)?);
    }
    Ok(run)
}

/// Under `--sync always`, after a phase that wrote: the device's synced appends of a record of
/// the run's size, in the directory holding the engine's (beside it, not in it: the engine owns
/// its directory's names).
fn synced_device_after(
    config: &SuiteConfig,
    summary: &PhaseSummary,
    dir: &Path,
) -> Result<Option<bandwidth::SyncedAppends>> {
    if config.engine_config.sync != SyncPolicy::Always || summary.writes() == 0 {
        return Ok(None);
    }
    let record = (config.dataset.key_size + config.dataset.value_size) as u64;
    bandwidth::synced_appends(dir, record, bandwidth::SYNCED_APPEND_SECS).map(Some)
}

/// A `fillseq` of 4 KiB values under `--sync never` plus one final sync, in a fresh directory,
/// then the device's own sequential-write bandwidth in the same directory.
fn bandwidth_run(config: &SuiteConfig, entry: &EngineEntry, bytes: u64) -> Result<Bandwidth> {
    let temp = tempfile::Builder::new()
        .prefix(&format!("bench-{}-bandwidth-", entry.name))
        .tempdir_in(&config.data_dir)
        .map_err(|e| HarnessError::io("create a temporary directory in", &config.data_dir, e))?;
    let dir = temp.path().join("db");
    let dataset = Dataset {
        key_count: (bytes / bandwidth::FILL_VALUE_SIZE as u64).max(1),
        key_size: 16,
        value_size: bandwidth::FILL_VALUE_SIZE,
        seed: config.dataset.seed,
    };
    let engine_config = EngineConfig {
        sync: SyncPolicy::Never,
        bitcask_max_file_size: EngineConfig::bitcask_file_size_for(dataset.bytes()),
        ..config.engine_config.clone()
    };
    let engine_error = |source| HarnessError::Engine {
        engine: entry.name.to_string(),
        phase: "bandwidth fillseq".to_string(),
        source,
    };
    let engine = (entry.open)(&dir, &engine_config).map_err(engine_error)?;
    let mut runner = Runner::new(engine, &dir, dataset)?.with_name(entry.name);
    let fill = runner.run_phase(&Phase::new(Workload::named("fillseq")?, 0, 1))?;
    let synced = Instant::now();
    runner.engine().sync().map_err(engine_error)?;
    let sync_s = synced.elapsed().as_secs_f64();
    drop(runner);
    let buffered_mb_s = bandwidth::buffered_write(temp.path(), bytes)?;
    let direct = bandwidth::direct_write(temp.path(), bytes);
    let user = fill.counts.user_bytes_written;
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let engine_mb_s = user as f64 / (fill.seconds + sync_s).max(1e-9) / 1e6;
    Ok(Bandwidth {
        bytes: user,
        engine_mb_s,
        engine_fill_s: fill.seconds,
        engine_sync_s: sync_s,
        buffered_mb_s,
        direct_mb_s: direct.as_ref().ok().copied(),
        direct_error: direct.err(),
    })
}
