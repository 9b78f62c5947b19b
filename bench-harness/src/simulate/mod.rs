//! `bench-harness simulate`: the engines' real policy code (the LSM's compaction picker, the
//! Bitcask's merge policy: the very functions the engines call) driven over a seeded synthetic
//! write stream with no I/O. The data is modelled (which keys each table or file holds and how
//! many bytes that takes), the decisions are not: every flush, compaction and merge happens
//! where the policy says, so a student can move one knob and watch write and space
//! amplification move within seconds. `tests/it/simulate.rs` runs the real engines on the
//! same stream and checks the two agree.
//!
//! Simplifications (each makes the simulator a little more eager than the engines): a flush
//! happens the moment the memtable is full and every due compaction runs at once, one at a
//! time; the Bitcask merge policy is consulted after every write (the engine: after every
//! rotation and every `check_interval`).

mod bitcask;
mod chart;
mod cli;
mod lsm;

use std::fmt;
use std::str::FromStr;

use bitcask_engine::MergeOptions;
use lsm_engine::LsmOptions;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use bitcask::BitcaskModel;
pub use chart::sweep_chart;
pub use cli::{SimulateArgs, main};
pub use lsm::LsmModel;

/// The synthetic write stream: uniform overwrites of a fixed key space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// Writes in the stream.
    pub writes: u64,
    /// Distinct keys the writes draw from.
    pub keys: u64,
    /// Key size in bytes (keys are zero-padded decimal numbers).
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// Seed of the key sequence.
    pub seed: u64,
}

impl Stream {
    /// The key indices of the stream, in order.
    pub fn key_indices(&self) -> impl Iterator<Item = u64> + use<> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let keys = self.keys.max(1);
        (0..self.writes).map(move |_| rng.gen_range(0..keys))
    }

    /// Key `index` as bytes, as the engines get it in the agreement test.
    pub fn key(&self, index: u64) -> Vec<u8> {
        format!("{index:0width$}", width = self.key_size).into_bytes()
    }

    /// The value written with the `n`th write.
    pub fn value(&self, n: u64) -> Vec<u8> {
        let mut v = vec![b'v'; self.value_size];
        for (slot, b) in v.iter_mut().zip(n.to_le_bytes()) {
            *slot = b;
        }
        v
    }

    /// Bytes the user writes per operation.
    pub fn record_bytes(&self) -> u64 {
        (self.key_size + self.value_size) as u64
    }
}

/// What a model measured after some writes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Writes applied.
    pub writes: u64,
    /// Bytes of keys and values written by the user.
    pub user_bytes: u64,
    /// Bytes appended to the log (Bitcask data log, LSM WAL).
    pub log_bytes: u64,
    /// Bytes written by background work: flushes and compactions, or merges.
    pub background_bytes: u64,
    /// Bytes of the files on disk now.
    pub disk_bytes: u64,
    /// Live keys now.
    pub live_keys: u64,
    /// Background jobs run (compactions, merges; flushes not counted).
    pub jobs: u64,
}

impl Sample {
    /// Write amplification: everything written over user bytes.
    pub fn write_amp(&self) -> f64 {
        engine_api::ratio(self.log_bytes + self.background_bytes, self.user_bytes)
    }

    /// Write amplification of the background work alone (flush + compaction, or merge).
    pub fn background_amp(&self) -> f64 {
        engine_api::ratio(self.background_bytes, self.user_bytes)
    }

    /// Space amplification: bytes on disk over live keys and values.
    pub fn space_amp(&self, record_bytes: u64) -> f64 {
        engine_api::ratio(self.disk_bytes, self.live_keys * record_bytes)
    }
}

/// A model the simulator drives: one write at a time.
pub trait Model {
    /// Applies the write of key `index`, running whatever the policy says is due.
    fn write(&mut self, index: u64);
    /// The figures so far.
    fn sample(&self) -> Sample;
}

/// One knob a sweep moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knob {
    /// `level_size_multiplier`.
    LsmMultiplier,
    /// `l0_compaction_trigger`.
    LsmL0Trigger,
    /// `max_bytes_for_level_base`.
    LsmLevelBase,
    /// `frag_trigger` (and `frag_threshold` no higher).
    BitcaskFragmentation,
    /// `dead_bytes_trigger` (and `dead_bytes_threshold` no higher).
    BitcaskDeadBytes,
    /// `max_file_size`.
    BitcaskFileSize,
}

impl Knob {
    /// Every knob, as named on the command line.
    pub const ALL: [(&'static str, Knob); 6] = [
        ("lsm.multiplier", Knob::LsmMultiplier),
        ("lsm.l0_trigger", Knob::LsmL0Trigger),
        ("lsm.level_base", Knob::LsmLevelBase),
        ("bitcask.fragmentation", Knob::BitcaskFragmentation),
        ("bitcask.dead_bytes", Knob::BitcaskDeadBytes),
        ("bitcask.file_size", Knob::BitcaskFileSize),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Knob::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }

    /// Whether the knob belongs to the LSM.
    pub fn is_lsm(self) -> bool {
        matches!(
            self,
            Knob::LsmMultiplier | Knob::LsmL0Trigger | Knob::LsmLevelBase
        )
    }

    /// The values a sweep tries, for the given configuration.
    pub fn values(self, cfg: &Config) -> Vec<f64> {
        let scale = |base: u64, factors: &[f64]| -> Vec<f64> {
            #[expect(clippy::cast_precision_loss, reason = "byte sizes well below 2^52")]
            let b = base as f64;
            factors.iter().map(|f| (b * f).round()).collect()
        };
        match self {
            Knob::LsmMultiplier => vec![2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0],
            Knob::LsmL0Trigger => vec![1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0],
            Knob::LsmLevelBase => scale(
                cfg.lsm.memtable_bytes as u64,
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
            ),
            Knob::BitcaskFragmentation => vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
            Knob::BitcaskDeadBytes => scale(cfg.bitcask_file_size, &[0.1, 0.2, 0.3, 0.5, 0.7, 0.9]),
            Knob::BitcaskFileSize => scale(cfg.bitcask_file_size, &[0.25, 0.5, 1.0, 2.0, 4.0, 8.0]),
        }
    }

    /// `cfg` with this knob set to `value`.
    pub fn apply(self, cfg: &Config, value: f64) -> Config {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "knob values are small positive numbers"
        )]
        let int = value.max(1.0).round() as u64;
        let mut c = cfg.clone();
        match self {
            Knob::LsmMultiplier => c.lsm.level_size_multiplier = int.max(2),
            Knob::LsmL0Trigger => c.lsm.l0_compaction_trigger = usize::try_from(int).unwrap_or(1),
            Knob::LsmLevelBase => c.lsm.max_bytes_for_level_base = int,
            Knob::BitcaskFragmentation => {
                c.merge.frag_trigger = value;
                c.merge.frag_threshold = c.merge.frag_threshold.min(value);
            }
            Knob::BitcaskDeadBytes => {
                c.merge.dead_bytes_trigger = int;
                c.merge.dead_bytes_threshold = c.merge.dead_bytes_threshold.min(int);
            }
            Knob::BitcaskFileSize => c.bitcask_file_size = int.max(bitcask_engine::MIN_FILE_SIZE),
        }
        c
    }
}

impl FromStr for Knob {
    type Err = String;

    fn from_str(s: &str) -> Result<Knob, String> {
        Knob::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = Knob::ALL.iter().map(|(n, _)| *n).collect();
                format!("unknown knob {s:?}; one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a simulation runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The write stream.
    pub stream: Stream,
    /// The LSM's options (memtable size, level base, multiplier, L0 trigger, table size...).
    pub lsm: LsmOptions,
    /// The Bitcask's merge options.
    pub merge: MergeOptions,
    /// The Bitcask's `max_file_size`.
    pub bitcask_file_size: u64,
    /// Simulated writes per second (the time axis of the printed series).
    pub rate: u64,
}

impl Config {
    /// The default simulation: 1,000,000 writes of 16 + 100 bytes over 100,000 keys (an 11 MiB
    /// data set overwritten ten times), engines scaled down to match (1 MiB memtables and
    /// tables, a 4 MiB level base, 2 MiB Bitcask files, merge triggers at the engine defaults'
    /// ratios).
    pub fn scaled_default() -> Config {
        let lsm = LsmOptions {
            memtable_bytes: 256 << 10,
            target_file_bytes: 256 << 10,
            max_bytes_for_level_base: 1 << 20,
            ..LsmOptions::default()
        };
        let file = 2 << 20;
        let merge = MergeOptions {
            // The engine defaults relative to its 128 MiB files: 4x and 1x a file of dead bytes.
            dead_bytes_trigger: 4 * file,
            dead_bytes_threshold: file,
            small_file_threshold: file / 12,
            ..MergeOptions::default()
        };
        Config {
            stream: Stream {
                writes: 1_000_000,
                keys: 200_000,
                key_size: 16,
                value_size: 100,
                seed: 0x5EED,
            },
            lsm,
            merge,
            bitcask_file_size: file,
            rate: 100_000,
        }
    }
}

/// Feeds `stream` to `model`, sampling every `every` writes (and after the last).
pub fn run(model: &mut dyn Model, stream: &Stream, every: u64) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut n = 0u64;
    for index in stream.key_indices() {
        model.write(index);
        n += 1;
        if every > 0 && n.is_multiple_of(every) {
            out.push(model.sample());
        }
    }
    if out.last().is_none_or(|s| s.writes != n) {
        out.push(model.sample());
    }
    out
}

/// One point of a sweep: the knob's value and both amplifications.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepPoint {
    /// The knob's value.
    pub value: f64,
    /// The end-of-stream sample (write amplification is cumulative: read it here).
    pub sample: Sample,
    /// Space amplification averaged over the second half of the stream: at any one instant it
    /// depends on where the engine is in its merge or compaction cycle.
    pub space_amp: f64,
}

/// Runs the knob's engine once per value of the knob.
pub fn sweep(knob: Knob, cfg: &Config) -> Vec<SweepPoint> {
    knob.values(cfg)
        .into_iter()
        .map(|value| {
            let c = knob.apply(cfg, value);
            let mut model = model_for(knob.is_lsm(), &c);
            let samples = run(&mut *model, &c.stream, c.stream.writes.div_ceil(50));
            let sample = samples.last().copied().unwrap_or_default();
            SweepPoint {
                value,
                sample,
                space_amp: mean_space_amp(&samples, c.stream.record_bytes()),
            }
        })
        .collect()
}

/// Space amplification averaged over the samples of the second half of the stream.
fn mean_space_amp(samples: &[Sample], record_bytes: u64) -> f64 {
    let late = samples.get(samples.len() / 2..).unwrap_or_default();
    #[expect(clippy::cast_precision_loss, reason = "a handful of samples")]
    let n = late.len().max(1) as f64;
    late.iter().map(|s| s.space_amp(record_bytes)).sum::<f64>() / n
}

/// The model of the LSM (`lsm` true) or of the Bitcask under `cfg`.
pub fn model_for(lsm: bool, cfg: &Config) -> Box<dyn Model> {
    if lsm {
        Box::new(LsmModel::new(cfg.lsm.clone(), &cfg.stream))
    } else {
        Box::new(BitcaskModel::new(
            cfg.merge.clone(),
            cfg.bitcask_file_size,
            &cfg.stream,
        ))
    }
}
