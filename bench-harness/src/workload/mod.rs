//! The workloads: db_bench's micro-workloads and YCSB's core workloads A to F, all generated from
//! one seeded op stream so every engine receives byte-identical traffic.
//!
//! A [`Workload`] is a name and a [`Pattern`]. Passes (`fillseq`, `fillrandom`, `readseq`) visit
//! every key once; mixes ([`Mix`]) draw each operation from fixed proportions and each key from a
//! [`Distribution`]; `readwhilewriting` runs readers beside one writer; `compact` asks the engine
//! for a full compaction or merge. Host code can define its own mix with [`Workload::custom`].

mod keys;
mod stream;
pub mod zipf;

use serde::Serialize;

pub use keys::{KeyCodec, ValuePool};
pub use stream::{Op, OpStream, StreamPlan};

use crate::error::{HarnessError, Result};

/// The data set: how many keys are loaded and how large keys and values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Dataset {
    /// Keys written by the load phase.
    pub key_count: u64,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// The seed every op stream and the value pool derive from.
    pub seed: u64,
}

impl Dataset {
    /// Bytes of one key plus one value.
    pub fn record_bytes(&self) -> u64 {
        (self.key_size + self.value_size) as u64
    }

    /// Logical bytes of the loaded data set.
    pub fn bytes(&self) -> u64 {
        self.key_count.saturating_mul(self.record_bytes())
    }
}

/// How a mix picks the keys it reads and updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// Every loaded key equally likely.
    Uniform,
    /// YCSB's scrambled zipfian, constant 0.99.
    Zipfian,
    /// YCSB's skewed-latest: the most recently inserted keys are the most popular.
    Latest,
}

/// How long a mix's scans are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanLength {
    /// Always this many entries.
    Fixed(u32),
    /// Uniform in `1..=max` (YCSB's `scanlengthdistribution=uniform`).
    UniformUpTo(u32),
}

/// Proportions of each operation in a mix. They need not sum to one; they are normalised.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Mix {
    /// Gets of loaded keys.
    pub read: f64,
    /// Puts that overwrite a loaded key with a full new value.
    pub update: f64,
    /// Puts of new keys, past the loaded ones.
    pub insert: f64,
    /// Short ordered scans from a chosen key.
    pub scan: f64,
    /// A get followed by a put of the same key.
    pub read_modify_write: f64,
    /// Deletes of loaded keys.
    pub delete: f64,
    /// Gets of keys that were never written.
    pub read_missing: f64,
    /// How keys are chosen.
    pub distribution: Distribution,
    /// How long scans are.
    pub scan_length: ScanLength,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            read: 0.0,
            update: 0.0,
            insert: 0.0,
            scan: 0.0,
            read_modify_write: 0.0,
            delete: 0.0,
            read_missing: 0.0,
            distribution: Distribution::Uniform,
            scan_length: ScanLength::UniformUpTo(YCSB_MAX_SCAN_LENGTH),
        }
    }
}

impl Mix {
    /// The proportions in a fixed order (read, update, insert, scan, rmw, delete, missing).
    pub(crate) fn weights(&self) -> [f64; 7] {
        [
            self.read,
            self.update,
            self.insert,
            self.scan,
            self.read_modify_write,
            self.delete,
            self.read_missing,
        ]
    }

    /// Rejects negative, non-finite or all-zero proportions and empty scans.
    ///
    /// # Errors
    /// [`HarnessError::InvalidInput`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        let weights = self.weights();
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(HarnessError::invalid(
                "mix proportions must be finite and non-negative",
            ));
        }
        if weights.iter().sum::<f64>() <= 0.0 {
            return Err(HarnessError::invalid("a mix needs at least one operation"));
        }
        if matches!(
            self.scan_length,
            ScanLength::Fixed(0) | ScanLength::UniformUpTo(0)
        ) {
            return Err(HarnessError::invalid("scans must read at least one entry"));
        }
        Ok(())
    }
}

/// YCSB workload E's `maxscanlength`.
pub const YCSB_MAX_SCAN_LENGTH: u32 = 100;

/// Entries per `seekrandom` scan (RocksDB `benchmark.sh`'s `NUM_NEXTS_PER_SEEK`).
pub const SEEK_NEXTS: u32 = 10;

/// Entries per scan call of `readseq`.
pub const READSEQ_CHUNK: u32 = 1000;

/// What a workload does.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Put every loaded key once, in key order.
    FillSeq,
    /// Put every loaded key once, in a seeded random order.
    FillRandom,
    /// Read every loaded key once, in key order, by scans of [`READSEQ_CHUNK`] entries.
    ReadSeq,
    /// Random operations drawn from a mix.
    Mix(Mix),
    /// Uniform random reads on every worker thread, plus one extra thread overwriting uniformly
    /// random keys: as many overwrites as one reader does reads.
    ReadWhileWriting,
    /// A full compaction (LSM) or merge (Bitcask), through [`engine_api::Engine::compact`].
    Compact,
}

/// A named workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// The name shown in reports.
    pub name: String,
    /// What it does.
    pub pattern: Pattern,
}

/// Every built-in workload name, in the order `list` shows them.
pub const WORKLOAD_NAMES: [&str; 16] = [
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readmissing",
    "readseq",
    "seekrandom",
    "deleterandom",
    "readwhilewriting",
    "ycsb-a",
    "ycsb-b",
    "ycsb-c",
    "ycsb-d",
    "ycsb-e",
    "ycsb-f",
    "compact",
];

fn ycsb(read: f64, update: f64, insert: f64, scan: f64, rmw: f64, dist: Distribution) -> Mix {
    Mix {
        read,
        update,
        insert,
        scan,
        read_modify_write: rmw,
        distribution: dist,
        ..Mix::default()
    }
}

fn uniform(set: impl FnOnce(&mut Mix)) -> Mix {
    let mut mix = Mix::default();
    set(&mut mix);
    mix
}

impl Workload {
    /// A custom mix under a name of the caller's choosing.
    pub fn custom(name: impl Into<String>, mix: Mix) -> Self {
        Workload {
            name: name.into(),
            pattern: Pattern::Mix(mix),
        }
    }

    /// The built-in workload called `name` (see [`WORKLOAD_NAMES`]; `scan` is accepted for
    /// `seekrandom`, and YCSB letters in either case).
    ///
    /// # Errors
    /// [`HarnessError::InvalidInput`] for an unknown name, listing the known ones.
    pub fn named(name: &str) -> Result<Self> {
        use Distribution::{Latest, Zipfian};
        let lower = name.trim().to_ascii_lowercase();
        let pattern = match lower.as_str() {
            "fillseq" => Pattern::FillSeq,
            "fillrandom" => Pattern::FillRandom,
            "readseq" => Pattern::ReadSeq,
            "readwhilewriting" => Pattern::ReadWhileWriting,
            "compact" => Pattern::Compact,
            "overwrite" => Pattern::Mix(uniform(|m| m.update = 1.0)),
            "readrandom" => Pattern::Mix(uniform(|m| m.read = 1.0)),
            "readmissing" => Pattern::Mix(uniform(|m| m.read_missing = 1.0)),
            "deleterandom" => Pattern::Mix(uniform(|m| m.delete = 1.0)),
            "seekrandom" | "scan" => Pattern::Mix(uniform(|m| {
                m.scan = 1.0;
                m.scan_length = ScanLength::Fixed(SEEK_NEXTS);
            })),
            "ycsb-a" => Pattern::Mix(ycsb(0.5, 0.5, 0.0, 0.0, 0.0, Zipfian)),
            "ycsb-b" => Pattern::Mix(ycsb(0.95, 0.05, 0.0, 0.0, 0.0, Zipfian)),
            "ycsb-c" => Pattern::Mix(ycsb(1.0, 0.0, 0.0, 0.0, 0.0, Zipfian)),
            "ycsb-d" => Pattern::Mix(ycsb(0.95, 0.0, 0.05, 0.0, 0.0, Latest)),
            "ycsb-e" => Pattern::Mix(ycsb(0.0, 0.0, 0.05, 0.95, 0.0, Zipfian)),
            "ycsb-f" => Pattern::Mix(ycsb(0.5, 0.0, 0.0, 0.0, 0.5, Zipfian)),
            _ => {
                return Err(HarnessError::invalid(format!(
                    "unknown workload '{name}'; known workloads: {}",
                    WORKLOAD_NAMES.join(", ")
                )));
            }
        };
        let name = if lower == "scan" {
            "seekrandom".to_string()
        } else {
            lower
        };
        Ok(Workload { name, pattern })
    }

    /// Whether the workload visits the whole key space once, whatever the op count.
    pub fn is_pass(&self) -> bool {
        matches!(
            self.pattern,
            Pattern::FillSeq | Pattern::FillRandom | Pattern::ReadSeq
        )
    }

    /// Whether a phase of this workload may run past its operation count, drawing more of the
    /// same stream (`--min-phase-secs`), or start with an uncounted warm-up (`--warmup-secs`):
    /// reads, scans and updates of existing keys, which leave the key set (and so every later
    /// phase's keys) the same whatever the number of operations. Fills, inserts, deletes and
    /// `compact` run exactly their count.
    pub fn extends(&self) -> bool {
        match &self.pattern {
            Pattern::Mix(mix) => mix.insert == 0.0 && mix.delete == 0.0,
            Pattern::ReadSeq | Pattern::ReadWhileWriting => true,
            Pattern::FillSeq | Pattern::FillRandom | Pattern::Compact => false,
        }
    }

    /// Whether the workload loads the data set (so it can open a suite).
    pub fn is_fill(&self) -> bool {
        matches!(self.pattern, Pattern::FillSeq | Pattern::FillRandom)
    }
}
