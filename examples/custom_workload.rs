//! Running a custom workload through the harness as a library: the same seeded operations
//! against both engines, compared on throughput, latency and amplification.
//!
//! `cargo run --release -p docs --example custom_workload`

use std::sync::Arc;

use bench_harness::{Dataset, Mix, Phase, Runner, Workload};
use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{CommonOptions, Engine, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

fn common() -> CommonOptions {
    CommonOptions {
        sync: SyncPolicy::Never,
        ..CommonOptions::default()
    }
}

/// Runs the example.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dataset = Dataset {
        key_count: 20_000,
        key_size: 16,
        value_size: 100,
        seed: 7,
    };
    // 70% reads, 30% updates, zipfian over the keys (YCSB's default distribution).
    let read_mostly = Mix {
        read: 0.7,
        update: 0.3,
        ..Mix::default()
    };
    for name in ["bitcask", "lsm"] {
        let dir = tempfile::tempdir()?;
        let engine: Arc<dyn Engine> = match name {
            "lsm" => Arc::new(LsmEngine::open(
                dir.path(),
                LsmOptions {
                    common: common(),
                    ..LsmOptions::default()
                },
            )?),
            _ => Arc::new(BitcaskEngine::open(
                dir.path(),
                BitcaskOptions {
                    common: common(),
                    ..BitcaskOptions::default()
                },
            )?),
        };
        let mut runner = Runner::new(engine, dir.path(), dataset)?;
        runner.run_phase(&Phase::new(Workload::named("fillrandom")?, 0, 1))?;
        let phase = Phase::new(Workload::custom("read-mostly", read_mostly), 40_000, 2);
        let result = runner.run_phase(&phase)?;
        assert_eq!(
            result.counts.found, result.counts.gets,
            "every key was loaded"
        );
        let read_p99 = result
            .latency_by_class
            .get("read")
            .map_or(0.0, |l| l.p99_us);
        println!(
            "{name:<8} {:>9.0} ops/s  read p99 {read_p99:>7.1} us  write amplification {:.2}",
            result.ops_per_sec, result.write_amp.seam_total,
        );
    }
    Ok(())
}
