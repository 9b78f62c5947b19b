//! `bench-harness simulate`: the command line of the policy simulator.

use std::path::PathBuf;
use std::time::Instant;

use super::{Config, Knob, Model, Sample, model_for, run, sweep, sweep_chart};
use crate::error::{HarnessError, Result};

/// Options of `bench-harness simulate`.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Sweep one knob and chart amplification against it: lsm.multiplier, lsm.l0_trigger,
    /// lsm.level_base, bitcask.fragmentation, bitcask.dead_bytes or bitcask.file_size. Without
    /// it, both engines run once and print amplification over simulated time.
    #[arg(long)]
    pub sweep: Option<Knob>,
    /// Writes in the stream (default 1,000,000).
    #[arg(long)]
    pub writes: Option<u64>,
    /// Distinct keys the writes overwrite (default 100,000).
    #[arg(long)]
    pub keys: Option<u64>,
    /// Seed of the key sequence.
    #[arg(long)]
    pub seed: Option<u64>,
    /// LSM level size multiplier (default 10).
    #[arg(long)]
    pub multiplier: Option<u64>,
    /// LSM L0 compaction trigger, in files (default 4).
    #[arg(long)]
    pub l0_trigger: Option<usize>,
    /// LSM base level target in bytes (default 4 MiB).
    #[arg(long)]
    pub level_base: Option<u64>,
    /// LSM memtable size in bytes of keys and values (default 1 MiB).
    #[arg(long)]
    pub memtable_bytes: Option<usize>,
    /// Bitcask merge trigger: a file's dead fraction (default 0.6).
    #[arg(long)]
    pub frag_trigger: Option<f64>,
    /// Bitcask merge trigger: a file's dead bytes (default 8 MiB).
    #[arg(long)]
    pub dead_bytes_trigger: Option<u64>,
    /// Bitcask data file size in bytes (default 2 MiB).
    #[arg(long)]
    pub file_size: Option<u64>,
    /// Simulated writes per second: the time axis of the series.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Where the sweep chart goes.
    #[arg(long, default_value = "target/simulate")]
    pub out: PathBuf,
}

impl SimulateArgs {
    /// The configuration: the scaled default with the given overrides.
    pub fn config(&self) -> Result<Config> {
        let mut c = Config::scaled_default();
        let s = &mut c.stream;
        s.writes = self.writes.unwrap_or(s.writes);
        s.keys = self.keys.unwrap_or(s.keys);
        s.seed = self.seed.unwrap_or(s.seed);
        let l = &mut c.lsm;
        l.level_size_multiplier = self.multiplier.unwrap_or(l.level_size_multiplier);
        l.l0_compaction_trigger = self.l0_trigger.unwrap_or(l.l0_compaction_trigger);
        l.max_bytes_for_level_base = self.level_base.unwrap_or(l.max_bytes_for_level_base);
        l.memtable_bytes = self.memtable_bytes.unwrap_or(l.memtable_bytes);
        let m = &mut c.merge;
        m.frag_trigger = self.frag_trigger.unwrap_or(m.frag_trigger);
        m.dead_bytes_trigger = self.dead_bytes_trigger.unwrap_or(m.dead_bytes_trigger);
        c.bitcask_file_size = self.file_size.unwrap_or(c.bitcask_file_size);
        c.rate = self.rate.unwrap_or(c.rate).max(1);
        c.lsm
            .validate()
            .map_err(|e| HarnessError::invalid(e.to_string()))?;
        c.merge
            .validate()
            .map_err(|e| HarnessError::invalid(e.to_string()))?;
        if c.stream.keys == 0 || c.stream.writes == 0 {
            return Err(HarnessError::invalid(
                "--keys and --writes must be positive",
            ));
        }
        Ok(c)
    }
}

/// Runs the command.
///
/// # Errors
/// Bad options ([`HarnessError::is_input_error`]), or the chart cannot be written.
pub fn main(args: &SimulateArgs) -> Result<()> {
    let cfg = args.config()?;
    let started = Instant::now();
    match args.sweep {
        Some(knob) => run_sweep(knob, &cfg, args)?,
        None => series(&cfg),
    }
    println!("simulated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn describe(cfg: &Config) {
    let s = &cfg.stream;
    let l = &cfg.lsm;
    println!(
        "stream: {} writes of {}+{} bytes over {} keys (seed {:#x}), {} writes/s simulated",
        s.writes, s.key_size, s.value_size, s.keys, s.seed, cfg.rate
    );
    println!(
        "lsm: memtable {} B, level base {} B, multiplier {}, L0 trigger {}, tables {} B",
        l.memtable_bytes,
        l.max_bytes_for_level_base,
        l.level_size_multiplier,
        l.l0_compaction_trigger,
        l.target_file_bytes
    );
    let m = &cfg.merge;
    println!(
        "bitcask: files {} B, merge at {:.0}% dead or {} dead bytes; files {:.0}% dead or {} dead bytes join",
        cfg.bitcask_file_size,
        m.frag_trigger * 100.0,
        m.dead_bytes_trigger,
        m.frag_threshold * 100.0,
        m.dead_bytes_threshold
    );
}

fn row(engine: &str, seconds: f64, s: &Sample, record: u64) {
    println!(
        "{seconds:>8.2} {engine:<8} {:>10} {:>8.2} {:>11.2} {:>8.2} {:>6}",
        s.writes,
        s.write_amp(),
        s.background_amp(),
        s.space_amp(record),
        s.jobs
    );
}

fn header() {
    println!(
        "{:>8} {:<8} {:>10} {:>8} {:>11} {:>8} {:>6}",
        "time s", "engine", "writes", "write-x", "background", "space-x", "jobs"
    );
}

/// Both engines over simulated time, ten samples each.
fn series(cfg: &Config) {
    describe(cfg);
    header();
    let every = cfg.stream.writes.div_ceil(10);
    for (name, lsm) in [("bitcask", false), ("lsm", true)] {
        let mut model: Box<dyn Model> = model_for(lsm, cfg);
        for s in run(&mut *model, &cfg.stream, every) {
            #[expect(clippy::cast_precision_loss, reason = "write counts well below 2^52")]
            let seconds = s.writes as f64 / cfg.rate as f64;
            row(name, seconds, &s, cfg.stream.record_bytes());
        }
    }
}

fn run_sweep(knob: Knob, cfg: &Config, args: &SimulateArgs) -> Result<()> {
    describe(cfg);
    let points = sweep(knob, cfg);
    println!(
        "{:>12} {:>8} {:>11} {:>8} {:>6}",
        knob.name(),
        "write-x",
        "background",
        "space-x",
        "jobs"
    );
    for p in &points {
        let s = &p.sample;
        println!(
            "{:>12} {:>8.2} {:>11.2} {:>8.2} {:>6}",
            p.value,
            s.write_amp(),
            s.background_amp(),
            p.space_amp,
            s.jobs
        );
    }
    let svg = sweep_chart(knob, &points)?;
    std::fs::create_dir_all(&args.out).map_err(|e| HarnessError::Report(e.to_string()))?;
    let path = args
        .out
        .join(format!("sweep-{}.svg", knob.name().replace('.', "-")));
    std::fs::write(&path, svg).map_err(|e| HarnessError::Report(e.to_string()))?;
    println!("chart: {}", path.display());
    Ok(())
}
