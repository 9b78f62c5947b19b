//! The policy simulator tells the truth: the simulator and the real engine, on the same write
//! stream at small size, agree on write amplification within 15 %. The simulator drives the
//! engines' own policy functions over modelled files; the engines here run for real on
//! `SimStorage`, their I/O counted at the storage seam.

use std::process::Command;
use std::sync::Arc;

use bench_harness::simulate::{
    BitcaskModel, Config, Knob, LsmModel, Model, Sample, Stream, run, sweep,
};
use bitcask_engine::{BitcaskEngine, BitcaskOptions, MergeOptions};
use engine_api::{CommonOptions, Engine, IoClass, SimStorage, Stats, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

/// A few seconds of work: 30,000 writes over 6,000 keys (a 700 KB data set overwritten five
/// times), with engines scaled down until several levels and dozens of merges happen.
fn small() -> Config {
    let mut c = Config::scaled_default();
    c.stream = Stream {
        writes: 30_000,
        keys: 6_000,
        key_size: 16,
        value_size: 100,
        seed: 7,
    };
    c.lsm = LsmOptions {
        memtable_bytes: 16 << 10,
        target_file_bytes: 16 << 10,
        max_bytes_for_level_base: 64 << 10,
        level_size_multiplier: 4,
        ..LsmOptions::default()
    };
    c.merge = MergeOptions {
        frag_trigger: 0.5,
        frag_threshold: 0.3,
        dead_bytes_trigger: 1 << 30,
        dead_bytes_threshold: 1 << 30,
        small_file_threshold: 4 << 10,
        ..MergeOptions::default()
    };
    c.bitcask_file_size = 64 << 10;
    c
}

fn common() -> CommonOptions {
    CommonOptions {
        storage: Arc::new(SimStorage::new()),
        sync: SyncPolicy::Never,
        ..CommonOptions::default()
    }
}

fn written(stats: &Stats, classes: &[IoClass]) -> u64 {
    stats.io.sum(classes).bytes_written
}

/// The real LSM on the stream: the memtable is flushed where the simulator flushes it (every
/// `memtable_bytes` of keys and values), and the tree is left to settle after each flush, one
/// job at a time, as the simulator runs them.
fn real_lsm(c: &Config) -> Sample {
    let options = LsmOptions {
        common: common(),
        memtable_bytes: 1 << 30,
        max_background_compactions: 1,
        max_subcompactions: 1,
        ..c.lsm.clone()
    };
    let db = LsmEngine::open("/lsm", options).expect("open");
    let mut since_flush = 0u64;
    for (n, index) in c.stream.key_indices().enumerate() {
        db.put(&c.stream.key(index), &c.stream.value(n as u64))
            .expect("put");
        since_flush += c.stream.record_bytes();
        if since_flush >= c.lsm.memtable_bytes as u64 {
            db.flush().expect("flush");
            db.compaction_manager().wait_idle();
            since_flush = 0;
        }
    }
    let stats = db.stats();
    sample_of(
        &stats,
        &[IoClass::Log],
        &[IoClass::Flush, IoClass::Compaction],
    )
}

/// The real Bitcask on the stream, its merge policy consulted after every write as the
/// simulator consults it.
fn real_bitcask(c: &Config) -> Sample {
    let options = BitcaskOptions {
        common: common(),
        max_file_size: c.bitcask_file_size,
        merge: MergeOptions {
            auto: false,
            ..c.merge.clone()
        },
        ..BitcaskOptions::default()
    };
    let db = BitcaskEngine::open("/bitcask", options).expect("open");
    for (n, index) in c.stream.key_indices().enumerate() {
        db.put(&c.stream.key(index), &c.stream.value(n as u64))
            .expect("put");
        db.merge_if_needed().expect("merge");
    }
    let stats = db.stats();
    sample_of(&stats, &[IoClass::Log], &[IoClass::Compaction])
}

fn sample_of(stats: &Stats, log: &[IoClass], background: &[IoClass]) -> Sample {
    Sample {
        writes: stats.user_writes,
        user_bytes: stats.user_bytes_written,
        log_bytes: written(stats, log),
        background_bytes: written(stats, background),
        disk_bytes: stats.disk_bytes,
        live_keys: stats.live_keys,
        jobs: stats.compactions,
    }
}

fn simulated(model: &mut dyn Model, c: &Config) -> Sample {
    run(model, &c.stream, 0).last().copied().expect("a sample")
}

/// How far apart two amplifications are, relative to the engine's.
fn apart(sim: f64, real: f64) -> f64 {
    (sim - real).abs() / real
}

/// Asserts the simulator run with a wrongly set policy is told apart from the engine: the
/// 15 % band is narrower than one step of a knob.
fn disagree(engine: &str, wrong: &Sample, real: &Sample) {
    let off = apart(wrong.background_amp(), real.background_amp());
    eprintln!("{engine} with a mis-set knob: {:.1} % apart", off * 100.0);
    assert!(
        off > 0.15,
        "{engine}: a mis-set knob is within the band ({:.1} %)",
        off * 100.0
    );
}

/// Asserts the two agree within 15 % on total and background write amplification.
fn agree(engine: &str, sim: &Sample, real: &Sample) {
    assert_eq!(sim.user_bytes, real.user_bytes, "{engine}: the same stream");
    for (what, s, r) in [
        ("write amplification", sim.write_amp(), real.write_amp()),
        (
            "background amplification",
            sim.background_amp(),
            real.background_amp(),
        ),
    ] {
        let off = apart(s, r);
        eprintln!(
            "{engine} {what}: simulated {s:.3}, engine {r:.3} ({:.1} % apart)",
            off * 100.0
        );
        assert!(
            off <= 0.15,
            "{engine} {what}: simulated {s:.3} vs engine {r:.3}, {:.1} % apart",
            off * 100.0
        );
    }
    eprintln!(
        "{engine} jobs: simulated {}, engine {}",
        sim.jobs, real.jobs
    );
}

#[test]
fn simulated_lsm_write_amplification_matches_the_engine() {
    let c = small();
    let mut model = LsmModel::new(c.lsm.clone(), &c.stream);
    let sim = simulated(&mut model, &c);
    assert!(
        model.level_files().iter().filter(|&&n| n > 0).count() >= 3,
        "the stream builds several levels: {:?}",
        model.level_files()
    );
    let real = real_lsm(&c);
    agree("lsm", &sim, &real);
    let mis_set = LsmOptions {
        l0_compaction_trigger: 1,
        ..c.lsm.clone()
    };
    let wrong = simulated(&mut LsmModel::new(mis_set, &c.stream), &c);
    disagree("lsm", &wrong, &real);
}

#[test]
fn simulated_bitcask_write_amplification_matches_the_engine() {
    let c = small();
    let mut model = BitcaskModel::new(c.merge.clone(), c.bitcask_file_size, &c.stream);
    let sim = simulated(&mut model, &c);
    assert!(sim.jobs >= 5, "the stream triggers merges: {}", sim.jobs);
    let real = real_bitcask(&c);
    agree("bitcask", &sim, &real);
    let mis_set = MergeOptions {
        frag_trigger: 0.7,
        ..c.merge.clone()
    };
    let wrong = simulated(
        &mut BitcaskModel::new(mis_set, c.bitcask_file_size, &c.stream),
        &c,
    );
    disagree("bitcask", &wrong, &real);
}

#[test]
fn sweeps_move_amplification_the_way_the_policies_say() {
    let c = small();
    let frag = sweep(Knob::BitcaskFragmentation, &c);
    let (eager, lazy) = (frag.first().expect("points"), frag.last().expect("points"));
    assert!(
        eager.sample.write_amp() > lazy.sample.write_amp(),
        "merging at 10 % dead rewrites more than at 90 %"
    );
    let mult = sweep(Knob::LsmMultiplier, &c);
    let (two, sixteen) = (mult.first().expect("points"), mult.last().expect("points"));
    assert!(
        two.space_amp > sixteen.space_amp,
        "more, smaller levels hold more stale versions"
    );
}

#[test]
fn simulate_command_writes_its_sweep_chart() {
    let out = tempfile::tempdir().expect("temp dir");
    let run = Command::new(env!("CARGO_BIN_EXE_bench-harness"))
        .args([
            "simulate",
            "--sweep",
            "lsm.l0_trigger",
            "--writes",
            "20000",
            "--keys",
            "4000",
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("bench-harness runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("lsm.l0_trigger"), "{stdout}");
    let svg = std::fs::read_to_string(out.path().join("sweep-lsm-l0_trigger.svg")).expect("chart");
    assert!(
        svg.contains("<svg") && svg.contains("lsm.l0_trigger"),
        "an SVG chart"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_bench-harness"))
        .args(["simulate", "--sweep", "lsm.nonsense"])
        .output()
        .expect("bench-harness runs");
    assert!(!bad.status.success(), "an unknown knob is refused");
}
