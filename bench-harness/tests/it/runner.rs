//! The runner against the reference engine: counts, answers checked, identical traffic.

use std::sync::Arc;

use bench_harness::metrics::EngineRun;
use bench_harness::{Dataset, Phase, Runner, Workload};
use engine_api::testing::RefEngine;
use engine_api::{CommonOptions, SyncPolicy};

fn dataset() -> Dataset {
    Dataset {
        key_count: 3_000,
        key_size: 12,
        value_size: 40,
        seed: 17,
    }
}

fn run(phases: &[(&str, u64, usize)]) -> Result<EngineRun, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = CommonOptions {
        sync: SyncPolicy::Never,
        ..CommonOptions::default()
    };
    let engine = Arc::new(RefEngine::open(dir.path(), options)?);
    let mut runner = Runner::new(engine, dir.path(), dataset())?;
    for (name, ops, threads) in phases {
        runner.run_phase(&Phase::new(Workload::named(name)?, *ops, *threads))?;
    }
    Ok(runner.finish(vec![("k".into(), "v".into())]))
}

#[test]
fn phases_count_what_they_issue() -> Result<(), Box<dyn std::error::Error>> {
    let run = run(&[
        ("fillseq", 0, 2),
        ("readrandom", 1_000, 2),
        ("readmissing", 500, 1),
        ("ycsb-e", 200, 1),
        ("deleterandom", 300, 1),
        ("compact", 0, 1),
    ])?;
    let record = 52;
    let fill = &run.phases[0];
    assert_eq!(fill.counts.puts, 3_000);
    assert_eq!(fill.counts.user_bytes_written, 3_000 * record);
    assert!(fill.write_amp.seam_total >= 1.0, "the log holds every byte");
    let reads = &run.phases[1];
    assert_eq!((reads.counts.gets, reads.counts.found), (1_000, 1_000));
    assert!(reads.read_amp.is_some() && reads.latency.is_some());
    assert_eq!(
        run.phases[2].counts.found, 0,
        "missing keys are never found"
    );
    assert!(run.phases[3].counts.scan_entries > run.phases[3].counts.scans);
    let deletes = &run.phases[4];
    assert_eq!(deletes.counts.deletes, 300);
    let before = run.phases[3].live_keys;
    assert!(deletes.live_keys < before && deletes.live_keys >= before - 300);
    assert_eq!(
        deletes.live_keys, deletes.engine_live_keys,
        "harness and engine agree"
    );
    assert!(run.phases[5].compact_summary.is_some());
    assert_eq!(run.totals.live_keys, run.phases[5].live_keys);
    assert!(run.totals.space_amp > 0.0);
    assert!(!run.intervals.is_empty());
    assert_eq!(run.settings, vec![("k".to_string(), "v".to_string())]);
    Ok(())
}

#[test]
fn same_phases_give_the_same_counts() -> Result<(), Box<dyn std::error::Error>> {
    let phases = [
        ("fillrandom", 0, 1),
        ("ycsb-a", 2_000, 1),
        ("ycsb-d", 1_000, 1),
    ];
    let (a, b) = (run(&phases)?, run(&phases)?);
    for (x, y) in a.phases.iter().zip(&b.phases) {
        assert_eq!(x.counts, y.counts, "phase {}", x.phase);
    }
    Ok(())
}

#[test]
fn keys_that_do_not_fit_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let engine = Arc::new(RefEngine::open(dir.path(), CommonOptions::default())?);
    let small = Dataset {
        key_size: 3,
        ..dataset()
    };
    let mut runner = Runner::new(engine, dir.path(), small)?;
    let err = runner
        .run_phase(&Phase::new(Workload::named("fillseq")?, 0, 1))
        .unwrap_err();
    assert!(err.is_input_error(), "{err}");
    Ok(())
}

/// Runs the same phases on a named engine of the registry.
fn run_named(
    name: &str,
    phases: &[(&str, u64, usize)],
) -> Result<EngineRun, Box<dyn std::error::Error>> {
    use bench_harness::engines::{self, EngineConfig};
    let dir = tempfile::tempdir()?;
    let entry = engines::find(name)?;
    let engine = (entry.open)(dir.path(), &EngineConfig::new(SyncPolicy::Never))?;
    let mut runner = Runner::new(engine, dir.path(), dataset())?;
    for (workload, ops, threads) in phases {
        runner.run_phase(&Phase::new(Workload::named(workload)?, *ops, *threads))?;
    }
    Ok(runner.finish(Vec::new()))
}

/// An engine (or a peer's adapter) must answer exactly as the reference engine does on identical
/// traffic: the same hits, the same scan results.
fn matches_reference(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let phases = [
        ("fillrandom", 0, 1),
        ("readrandom", 2_000, 1),
        ("readmissing", 1_000, 1),
        ("ycsb-e", 300, 1),
        ("readseq", 0, 1),
        ("deleterandom", 1_000, 1),
        ("compact", 0, 1),
        ("readrandom", 2_000, 1),
        ("seekrandom", 300, 1),
    ];
    let (peer, reference) = (run_named(name, &phases)?, run(&phases)?);
    for (p, r) in peer.phases.iter().zip(&reference.phases) {
        assert_eq!(p.counts, r.counts, "{name}, phase {}", p.phase);
    }
    assert_eq!(peer.totals.live_keys, reference.totals.live_keys);
    Ok(())
}

#[test]
fn bitcask_answers_like_the_reference() -> Result<(), Box<dyn std::error::Error>> {
    matches_reference("bitcask")
}

#[test]
fn lsm_answers_like_the_reference() -> Result<(), Box<dyn std::error::Error>> {
    matches_reference("lsm")
}

#[cfg(feature = "fjall")]
#[test]
fn fjall_answers_like_the_reference() -> Result<(), Box<dyn std::error::Error>> {
    matches_reference("fjall")
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_answers_like_the_reference() -> Result<(), Box<dyn std::error::Error>> {
    matches_reference("rocksdb")
}

/// The reference engine, with one `get` (the `stall_at`-th) taking 50 ms.
struct StallOnce {
    inner: RefEngine,
    gets: std::sync::atomic::AtomicU64,
    stall_at: u64,
}

impl engine_api::Engine for StallOnce {
    fn name(&self) -> &'static str {
        "stall-once"
    }
    fn put(&self, key: &[u8], value: &[u8]) -> engine_api::Result<()> {
        self.inner.put(key, value)
    }
    fn get(&self, key: &[u8]) -> engine_api::Result<Option<engine_api::Value>> {
        let n = self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n == self.stall_at {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.inner.get(key)
    }
    fn delete(&self, key: &[u8]) -> engine_api::Result<()> {
        self.inner.delete(key)
    }
    fn write(&self, batch: &engine_api::WriteBatch) -> engine_api::Result<()> {
        self.inner.write(batch)
    }
    fn scan(&self, range: engine_api::KeyRange) -> engine_api::Result<engine_api::Scan<'_>> {
        self.inner.scan(range)
    }
    fn sync(&self) -> engine_api::Result<()> {
        self.inner.sync()
    }
    fn compact(&self) -> engine_api::Result<engine_api::CompactionSummary> {
        self.inner.compact()
    }
    fn stats(&self) -> engine_api::Stats {
        self.inner.stats()
    }
}

/// Mean read latency (µs) and seconds of 200 reads at 1,000 per second (or closed-loop), one
/// of them stalled for 50 ms.
fn stalled_reads(rate: Option<f64>) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = CommonOptions {
        sync: SyncPolicy::Never,
        ..CommonOptions::default()
    };
    let engine = Arc::new(StallOnce {
        inner: RefEngine::open(dir.path(), options)?,
        gets: 0.into(),
        stall_at: 10,
    });
    let mut runner = Runner::new(engine, dir.path(), dataset())?;
    runner.run_phase(&Phase::new(Workload::named("fillseq")?, 0, 1))?;
    let reads = Phase::new(Workload::named("readrandom")?, 200, 1).at_rate(rate);
    let summary = runner.run_phase(&reads)?;
    Ok((summary.latency.ok_or("latency")?.mean_us, summary.seconds))
}

#[test]
fn the_open_loop_counts_the_queue_behind_a_stall() -> Result<(), Box<dyn std::error::Error>> {
    let (open, seconds) = stalled_reads(Some(1_000.0))?;
    // 200 operations one millisecond apart cannot finish before the last one is due.
    assert!(seconds >= 0.199, "the schedule was not kept: {seconds} s");
    // The ~49 reads due during the stall wait for it: at least 1,225 ms over 200 reads.
    assert!(open >= 6_000.0, "open-loop mean {open} µs hides the queue");
    let (closed, _) = stalled_reads(None)?;
    // Closed, the stall is one slow sample among 200.
    assert!(closed < 3_000.0, "closed-loop mean {closed} µs");
    Ok(())
}

#[test]
fn readwhilewriting_reports_the_readers() -> Result<(), Box<dyn std::error::Error>> {
    let run = run(&[("fillseq", 0, 1), ("readwhilewriting", 2_000, 2)])?;
    let p = &run.phases[1];
    assert_eq!(p.counts.gets, 2_000, "every read ran");
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let readers = p.counts.gets as f64 / p.seconds;
    assert!(
        (p.ops_per_sec - readers).abs() <= 1e-6 * readers,
        "{} vs {readers}",
        p.ops_per_sec
    );
    Ok(())
}

/// A small tree for the LSM and small files for Bitcask, so a few thousand keys flush, compact
/// and merge.
fn busy_config() -> bench_harness::engines::EngineConfig {
    let mut config = bench_harness::engines::EngineConfig::new(SyncPolicy::Never);
    config.lsm.memtable_bytes = 16 << 10;
    config.lsm.target_file_bytes = 16 << 10;
    config.lsm.max_bytes_for_level_base = 64 << 10;
    config.lsm.l0_compaction_trigger = 2;
    config.bitcask_max_file_size = 32 << 10;
    config
}

/// Runs `phases` on a named engine opened with [`busy_config`].
fn run_busy(name: &str, phases: &[(&str, u64)]) -> Result<EngineRun, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let entry = bench_harness::engines::find(name)?;
    let engine = (entry.open)(dir.path(), &busy_config())?;
    let mut runner = Runner::new(engine, dir.path(), dataset())?;
    for (workload, ops) in phases {
        runner.run_phase(&Phase::new(Workload::named(workload)?, *ops, 1))?;
    }
    Ok(runner.finish(Vec::new()))
}

/// Flushes, compactions and merges read what they rewrite; none of that is a user's read. A load
/// and overwrites with no get or scan must count no user-read byte, whatever ran behind them.
#[test]
fn background_work_is_not_counted_as_user_reads() -> Result<(), Box<dyn std::error::Error>> {
    for name in ["lsm", "bitcask"] {
        let run = run_busy(
            name,
            &[("fillrandom", 0), ("overwrite", 6_000), ("compact", 0)],
        )?;
        let background: u64 = run.phases.iter().map(|p| p.compaction.count).sum();
        assert!(background > 0, "{name}: nothing compacted or merged");
        for phase in &run.phases {
            let user = phase.io.class(engine_api::IoClass::UserRead);
            assert_eq!(
                user.bytes_read, 0,
                "{name}, {}: {} bytes counted as user reads without a get",
                phase.phase, user.bytes_read
            );
        }
    }
    Ok(())
}

/// The harness counts our engines' I/O itself, through the storage it passes them; what it
/// counts is what the engine reports of itself (both see every call under the same class).
#[test]
fn the_harness_counts_what_the_engine_reports() -> Result<(), Box<dyn std::error::Error>> {
    for name in ["lsm", "bitcask"] {
        let dir = tempfile::tempdir()?;
        let entry = bench_harness::engines::find(name)?;
        let (config, counters) = busy_config().counted();
        let engine = (entry.open)(dir.path(), &config)?;
        let mut runner =
            Runner::new(engine, dir.path(), dataset())?.with_io_counters(Arc::clone(&counters));
        for (workload, ops) in [
            ("fillrandom", 0),
            ("overwrite", 3_000),
            ("readrandom", 1_000),
        ] {
            runner.run_phase(&Phase::new(Workload::named(workload)?, ops, 1))?;
        }
        let reads = runner.phases()[2].io.class(engine_api::IoClass::UserRead);
        assert!(reads.reads > 0, "{name}: the gets' reads were not counted");
        // Background work may still run: read between two equal engine reports, and retry
        // while an I/O is between the two counters (each counts it a moment apart).
        let mut last = None;
        for _ in 0..1_000 {
            let before = runner.engine().stats().io;
            let harness = counters.snapshot();
            if runner.engine().stats().io == before {
                if harness == before {
                    last = None;
                    break;
                }
                last = Some((before, harness));
            }
        }
        if let Some((engine_io, harness_io)) = last {
            assert_eq!(engine_io, harness_io, "{name}: the two counts differ");
        }
    }
    Ok(())
}

/// A fresh runner on the reference engine with the data set loaded.
fn loaded_runner() -> Result<(tempfile::TempDir, Runner), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = CommonOptions {
        sync: SyncPolicy::Never,
        ..CommonOptions::default()
    };
    let engine = Arc::new(RefEngine::open(dir.path(), options)?);
    let mut runner = Runner::new(engine, dir.path(), dataset())?;
    runner.run_phase(&Phase::new(Workload::named("fillseq")?, 0, 1))?;
    Ok((dir, runner))
}

/// `--min-phase-secs`: a phase of reads that finishes its count sooner keeps going on the same
/// stream, and reports every operation it ran.
#[test]
fn a_short_phase_lasts_its_minimum() -> Result<(), Box<dyn std::error::Error>> {
    let (_dir, mut runner) = loaded_runner()?;
    for (name, threads) in [("readrandom", 1), ("readseq", 1), ("ycsb-b", 2)] {
        let phase = Phase::new(Workload::named(name)?, 100, threads).lasting(0.5);
        let p = runner.run_phase(&phase)?;
        assert!(p.seconds >= 0.5, "{name} lasted {} s", p.seconds);
        assert!(p.counts.ops > 100, "{name} ran only {} ops", p.counts.ops);
        let planned = if name == "readseq" { 3 } else { 100 };
        assert_eq!(
            p.planned_ops, planned,
            "{name}: a pass plans its own length"
        );
        let latency = p.latency.ok_or("latency")?;
        assert_eq!(
            latency.count, p.counts.ops,
            "{name}: every op is in the histogram"
        );
    }
    Ok(())
}

/// Phases that change the key set run exactly their count, whatever the minimum: the next
/// phase must find the same keys on every engine.
#[test]
fn phases_that_change_the_key_set_run_their_count() -> Result<(), Box<dyn std::error::Error>> {
    let (_dir, mut runner) = loaded_runner()?;
    let deletes = Phase::new(Workload::named("deleterandom")?, 50, 1)
        .lasting(0.3)
        .warmed(0.3);
    let p = runner.run_phase(&deletes)?;
    assert_eq!((p.counts.ops, p.warmup_ops), (50, 0));
    let inserts = Phase::new(Workload::named("ycsb-d")?, 50, 1).lasting(0.3);
    assert_eq!(runner.run_phase(&inserts)?.counts.ops, 50);
    Ok(())
}

/// `--warmup-secs`: the warm-up's operations run before the phase and are counted nowhere in
/// it: not in its counts, its histogram or its seconds.
#[test]
fn warmup_operations_are_not_counted() -> Result<(), Box<dyn std::error::Error>> {
    let (_dir, mut runner) = loaded_runner()?;
    let phase = Phase::new(Workload::named("readrandom")?, 200, 2).warmed(0.3);
    let p = runner.run_phase(&phase)?;
    assert!(
        p.warmup_ops > 0 && p.warmup_s >= 0.3,
        "{} ops in {} s",
        p.warmup_ops,
        p.warmup_s
    );
    assert_eq!((p.counts.ops, p.counts.gets), (200, 200));
    assert_eq!(p.latency.ok_or("latency")?.count, 200);
    assert!(p.seconds < p.warmup_s + 5.0);
    let intervals: u64 = runner_intervals_ops(runner, "readrandom");
    assert_eq!(
        intervals, 200,
        "the per-second records hold only measured ops"
    );
    Ok(())
}

fn runner_intervals_ops(runner: Runner, phase: &str) -> u64 {
    let run = runner.finish(Vec::new());
    run.intervals
        .iter()
        .filter(|i| i.phase == phase)
        .map(|i| i.ops)
        .sum()
}

/// The default suite asks every phase for two seconds and one of warm-up; `--quick` for none.
#[test]
fn phase_times_default_by_suite() -> Result<(), Box<dyn std::error::Error>> {
    use bench_harness::suite::SuiteOptions;
    let full = SuiteOptions::default().build()?;
    assert!(
        full.phases
            .iter()
            .all(|p| p.min_secs == 2.0 && p.warmup_secs == 1.0)
    );
    let quick = SuiteOptions {
        quick: true,
        ..SuiteOptions::default()
    }
    .build()?;
    assert!(
        quick
            .phases
            .iter()
            .all(|p| p.min_secs == 0.0 && p.warmup_secs == 0.0)
    );
    let bad = SuiteOptions {
        min_phase_secs: Some(-1.0),
        ..SuiteOptions::default()
    };
    assert!(bad.build().unwrap_err().is_input_error());
    Ok(())
}

/// Crash recovery: the engine's files are copied as a kill would leave them, the copy is
/// reopened and timed, and the run goes on on the original. Bitcask's copy is opened again
/// without its hints, which makes the open read every data file.
#[test]
fn recovery_reopens_a_crash_image() -> Result<(), Box<dyn std::error::Error>> {
    use bench_harness::runner::Freezer;
    for name in ["bitcask", "lsm"] {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().join("db");
        let entry = bench_harness::engines::find(name)?;
        let freezer = Arc::new(Freezer::new(Arc::new(engine_api::OsStorage::new())));
        let frozen = bench_harness::engines::EngineConfig {
            storage: Some(Arc::clone(&freezer) as Arc<dyn engine_api::Storage>),
            ..busy_config()
        };
        let (config, counters) = frozen.counted();
        let engine = (entry.open)(&dir, &config)?;
        let mut runner = Runner::new(engine, &dir, dataset())?.with_io_counters(counters);
        for (workload, ops) in [("fillrandom", 0), ("compact", 0), ("overwrite", 1_000)] {
            runner.run_phase(&Phase::new(Workload::named(workload)?, ops, 1))?;
        }
        let reopen = |image: &std::path::Path| {
            let (config, counters) = busy_config().counted();
            Ok(((entry.open)(image, &config)?, counters))
        };
        let opened = runner.measure_recovery("overwrite", &freezer, &reopen, false)?;
        let images: Vec<&str> = opened.iter().map(|r| r.image.as_str()).collect();
        let expected = if name == "bitcask" {
            vec!["as left", "hints removed"]
        } else {
            vec!["as left"]
        };
        assert_eq!(images, expected, "{name}");
        for r in &opened {
            assert_eq!(r.keys, 3_000, "{name}");
            assert!(r.keys_checked >= 500 && r.open_s > 0.0 && r.keys_per_sec > 0.0);
            assert!(
                r.bytes_read > 0 && r.index_memory_bytes > 0,
                "{name}: {r:?}"
            );
        }
        if let [hinted, bare] = opened.as_slice() {
            assert!(bare.bytes_read > hinted.bytes_read, "{hinted:?} {bare:?}");
        }
        let after = runner.run_phase(&Phase::new(Workload::named("readrandom")?, 500, 1))?;
        assert_eq!(after.counts.found, 500, "{name}: the run goes on");
        assert_eq!(runner.recoveries().len(), opened.len());
        let leftovers = std::fs::read_dir(temp.path())?.count();
        assert_eq!(leftovers, 1, "{name}: the crash images are removed");
    }
    Ok(())
}

/// The suite crashes each of our engines after the load and after the overwrites, and the
/// report and `summary.json` show the recoveries.
#[test]
fn the_suite_reports_recovery_after_load_and_overwrites() -> Result<(), Box<dyn std::error::Error>>
{
    use bench_harness::suite;
    let data = tempfile::tempdir()?;
    let config = quick_suite(
        data.path(),
        2_000,
        &["bitcask", "lsm"],
        &["overwrite", "readrandom"],
    )
    .build()?;
    let result = suite::run_suite(&config, &mut |_| {})?;
    for run in &result.runs {
        let after: Vec<&str> = run.recovery.iter().map(|r| r.after.as_str()).collect();
        assert!(
            after.contains(&"fillrandom") && after.contains(&"overwrite"),
            "{}: {after:?}",
            run.engine
        );
        assert!(run.recovery.iter().all(|r| r.keys == 2_000));
    }
    let json = bench_harness::report::json::summary_json(&result)?;
    assert!(json.contains("\"recovery\"") && json.contains("keys_per_sec"));
    let md = bench_harness::report::markdown::report(&result);
    assert!(md.contains("## Recovery after a crash"));
    Ok(())
}

/// The bandwidth fill: each engine's 4 KiB `fillseq` beside the device's own sequential-write
/// figures, in the report and `summary.json`.
#[test]
fn the_suite_reports_write_bandwidth_beside_the_device() -> Result<(), Box<dyn std::error::Error>> {
    use bench_harness::suite::{self, SuiteOptions};
    let data = tempfile::tempdir()?;
    let config = SuiteOptions {
        recovery: false,
        ..quick_suite(data.path(), 1_000, &["bitcask", "lsm"], &["readrandom"])
    }
    .build()?;
    let result = suite::run_suite(&config, &mut |_| {})?;
    for run in &result.runs {
        let b = run.bandwidth.as_ref().ok_or("no bandwidth figures")?;
        assert_eq!(
            b.bytes,
            2_048 * (16 + 4_096),
            "{}: every key written",
            run.engine
        );
        assert!(b.engine_mb_s > 0.0 && b.buffered_mb_s > 0.0, "{b:?}");
        assert!(b.direct_mb_s.is_some() != b.direct_error.is_some(), "{b:?}");
        assert!(run.recovery.is_empty());
    }
    let md = bench_harness::report::markdown::report(&result);
    assert!(md.contains("## Sequential-write bandwidth"));
    assert!(bench_harness::report::json::summary_json(&result)?.contains("buffered_mb_s"));
    Ok(())
}

/// `--preset large`: at least 20 M keys of 16 + 100 bytes, every default phase but the full
/// `readseq` pass, counts scaled to the data set; `huge` is larger still.
#[test]
fn the_large_preset_outgrows_memory() -> Result<(), Box<dyn std::error::Error>> {
    use bench_harness::suite::{Preset, SuiteOptions};
    let options = SuiteOptions {
        preset: Some(Preset::Large),
        ..SuiteOptions::default()
    };
    let large = options.build()?;
    let d = large.dataset;
    assert!(d.key_count >= 20_000_000 && d.key_size == 16 && d.value_size == 100);
    let ops = |label: &str| {
        large
            .phases
            .iter()
            .find(|p| p.label == label)
            .map(|p| p.ops)
    };
    assert_eq!(ops("fillrandom"), Some(d.key_count));
    assert_eq!(ops("overwrite"), Some(d.key_count));
    assert_eq!(ops("readrandom"), Some(d.key_count / 20));
    assert!(ops("seekrandom").is_some_and(|n| n <= 1_000));
    assert_eq!(ops("readseq"), None);
    let huge = SuiteOptions {
        preset: Some(Preset::Huge),
        ..SuiteOptions::default()
    }
    .build()?;
    assert!(huge.dataset.key_count >= 100_000_000);
    assert!(Preset::named("medium").unwrap_err().is_input_error());
    Ok(())
}

/// The report's phase durations: every phase with each engine's seconds, operations and
/// warm-up, and the minimum in effect.
#[test]
fn the_report_shows_phase_durations() -> Result<(), Box<dyn std::error::Error>> {
    use bench_harness::suite::{self, SuiteOptions};
    let data = tempfile::tempdir()?;
    let config = SuiteOptions {
        recovery: false,
        bandwidth: false,
        min_phase_secs: Some(0.3),
        warmup_secs: Some(0.1),
        ..quick_suite(data.path(), 1_000, &["bitcask"], &["readrandom"])
    }
    .build()?;
    let result = suite::run_suite(&config, &mut |_| {})?;
    let table = bench_harness::report::table::phase_duration_table(&result);
    assert_eq!(table.rows.len(), 2);
    let reads = &table.rows[1];
    assert_eq!(reads[0], "readrandom");
    let seconds: f64 = reads[1].parse()?;
    let ops: f64 = reads[2].parse()?;
    assert!(seconds >= 0.3 && ops > 500.0, "{reads:?}");
    let md = bench_harness::report::markdown::report(&result);
    assert!(md.contains("## Phase durations") && md.contains("under 0.300 s"));
    Ok(())
}

/// The freezer holds every change while the harness copies: an append started during the
/// freeze lands only after it, so the copy never holds it.
#[test]
fn the_freezer_holds_changes_until_the_copy_is_done() -> Result<(), Box<dyn std::error::Error>> {
    use bench_harness::runner::Freezer;
    use engine_api::{IoClass, Storage};
    let dir = tempfile::tempdir()?;
    let freezer = Freezer::new(Arc::new(engine_api::OsStorage::new()));
    let path = dir.path().join("log");
    let file = freezer.create(&path, IoClass::Log)?;
    file.append(b"before")?;
    let (started, seen) = std::sync::mpsc::channel();
    let len_in_freeze = std::thread::scope(|s| {
        let appended = freezer.frozen(|| {
            let writer = s.spawn(|| {
                let _ = started.send(());
                file.append(b" during")
            });
            let _ = seen.recv();
            // Give the append every chance to land: it must not.
            std::thread::sleep(std::time::Duration::from_millis(50));
            (std::fs::metadata(&path).map(|m| m.len()), writer)
        });
        let (len, writer) = appended;
        let joined = writer.join().map_err(|_| "the writer panicked");
        (len, joined)
    });
    let (len, joined) = len_in_freeze;
    assert_eq!(len?, 6, "an append landed during the freeze");
    joined??;
    assert_eq!(std::fs::read(&path)?, b"before during");
    Ok(())
}

/// Taking a crash image copies the engine's files inside its process, and opening it starts a
/// second engine: neither may count in the run's own figures. The run's `/proc/self/io` writes
/// stay those of the engine (the seam's bytes), not the engine's plus the copies'; before, every
/// copy was added to the whole-run `wchar` write amplification (and the reopened index to the
/// peak resident memory, the open running beside the measured engine).
#[test]
fn crash_images_are_not_counted_in_the_runs_own_figures() -> Result<(), Box<dyn std::error::Error>>
{
    // Through the binary, each engine in a child process of its own: `/proc/self/io` is the
    // whole process's, and in this test binary other tests write beside this one (a
    // bandwidth test writes tens of MB), which made the check flaky in process.
    let data = tempfile::tempdir()?;
    let out_dir = data.path().join("report");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bench-harness"))
        .args([
            "compare",
            "--quick",
            "--keys",
            "20000",
            "--engines",
            "bitcask,lsm",
        ])
        .args(["--workloads", "overwrite,readrandom", "--no-bandwidth"])
        .args(["--keep-page-cache", "--no-progress", "--out"])
        .arg(&out_dir)
        .arg("--data-dir")
        .arg(data.path())
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json"))?)?;
    for run in summary["engines"].as_array().ok_or("engines")? {
        let wa = &run["totals"]["write_amp"];
        let user = wa["user_bytes"].as_f64().ok_or("user bytes")?;
        let wchar = wa["proc_wchar"].as_f64().ok_or("wchar")? * user;
        let seam = wa["seam_total"].as_f64().ok_or("seam")? * user;
        let images = run["recovery"].as_array().ok_or("recovery")?;
        let copied: f64 = images
            .iter()
            .filter_map(|r| r["image_bytes"].as_f64())
            .sum();
        assert!(copied > 0.0, "{}: no crash image was taken", run["engine"]);
        assert!(
            wchar < seam + copied / 2.0,
            "{}: wchar {wchar} counts the crash images' copies ({copied} bytes) beside the \
             engine's {seam}",
            run["engine"]
        );
    }
    Ok(())
}

/// Phases kept going to their minimum duration run each engine's own number of operations (the
/// same stream, continued): the traffic check must compare what every engine was planned to
/// run, not call the engines different. Before, every default run's report said "engines
/// differ".
#[test]
fn extended_phases_do_not_fail_the_traffic_check() -> Result<(), Box<dyn std::error::Error>> {
    use bench_harness::suite::{self, SuiteOptions};
    let data = tempfile::tempdir()?;
    let config = SuiteOptions {
        recovery: false,
        bandwidth: false,
        min_phase_secs: Some(0.3),
        warmup_secs: Some(0.0),
        ..quick_suite(data.path(), 1_000, &["bitcask", "lsm"], &["readrandom"])
    }
    .build()?;
    let result = suite::run_suite(&config, &mut |_| {})?;
    let ops: Vec<u64> = result.runs.iter().map(|r| r.phases[1].counts.ops).collect();
    assert_ne!(
        ops[0], ops[1],
        "both engines ran the same count: nothing was extended"
    );
    let check = bench_harness::report::markdown::traffic_check(&result);
    assert!(check.starts_with("every engine issued"), "{check}");
    Ok(())
}

/// A quick suite of `workloads` over `keys` keys against `engines`, its data under `dir`.
fn quick_suite(
    dir: &std::path::Path,
    keys: u64,
    engines: &[&str],
    workloads: &[&str],
) -> bench_harness::suite::SuiteOptions {
    let strings = |names: &[&str]| names.iter().map(ToString::to_string).collect();
    bench_harness::suite::SuiteOptions {
        quick: true,
        key_count: Some(keys),
        engines: Some(strings(engines)),
        workloads: Some(strings(workloads)),
        data_dir: Some(dir.to_path_buf()),
        ..bench_harness::suite::SuiteOptions::default()
    }
}
