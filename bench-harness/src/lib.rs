//! The bench harness: one seeded workload generator, one runner, one set of metrics and one
//! report for every engine of the workspace, so that the engines can be compared on identical
//! traffic.
//!
//! - [`workload`]: db_bench's and YCSB's workloads as seeded op streams ([`Workload`],
//!   [`Mix`], [`Dataset`]); the same seed gives the same operations, keys and values.
//! - [`runner`]: [`Runner`] runs [`Phase`]s against any [`engine_api::Engine`], with worker
//!   threads, HdrHistogram latencies and a sample every second.
//! - [`metrics`]: what a run measures, and the amplification formulas.
//! - [`engines`]: the engines the binary can compare, by name.
//! - [`suite`]: the default suite and the `compare` driver.
//! - [`report`]: terminal table, JSON lines and summary, Markdown and SVG charts.
//!
//! # Example: a custom workload against the reference engine
//!
//! ```
//! use std::sync::Arc;
//! use bench_harness::{Dataset, Mix, Phase, Runner, Workload};
//! use engine_api::testing::RefEngine;
//! use engine_api::{CommonOptions, SyncPolicy};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let options = CommonOptions { sync: SyncPolicy::Never, ..CommonOptions::default() };
//! let engine = Arc::new(RefEngine::open(dir.path(), options)?);
//! let dataset = Dataset { key_count: 2_000, key_size: 16, value_size: 100, seed: 42 };
//! let mut runner = Runner::new(engine, dir.path(), dataset)?;
//!
//! runner.run_phase(&Phase::new(Workload::named("fillrandom")?, 0, 1))?;
//! let mostly_reads = Mix { read: 0.9, update: 0.1, ..Mix::default() };
//! let mixed = runner.run_phase(&Phase::new(Workload::custom("90-10", mostly_reads), 5_000, 2))?;
//!
//! assert_eq!(mixed.counts.ops, 5_000);
//! assert_eq!(mixed.counts.found, mixed.counts.gets); // every key was loaded
//! assert!(mixed.write_amp.seam_total >= 1.0); // the log holds at least what was written
//! let run = runner.finish(Vec::new());
//! assert_eq!(run.totals.live_keys, 2_000);
//! # Ok(())
//! # }
//! ```

pub mod bandwidth;
pub mod engines;
mod error;
pub mod explain;
pub mod isolation;
pub mod machine;
pub mod metrics;
pub mod peers;
pub mod report;
pub mod runner;
pub mod simulate;
pub mod suite;
pub mod workload;

pub use error::{HarnessError, Result};
pub use runner::{Phase, Runner};
pub use workload::{Dataset, Distribution, Mix, ScanLength, Workload};
