//! Synced writes in the report: under `--sync always`, each phase that wrote carries the log
//! syncs per write and the device's synced appends measured beside the engine.

use bench_harness::report::{json, markdown};
use bench_harness::suite::{self, SuiteOptions, SuiteResult};
use engine_api::SyncPolicy;

fn run(sync: SyncPolicy) -> Result<SuiteResult, Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let config = SuiteOptions {
        quick: true,
        key_count: Some(300),
        engines: Some(vec!["bitcask".to_string(), "lsm".to_string()]),
        workloads: Some(vec!["fillrandom".to_string(), "readrandom".to_string()]),
        data_dir: Some(data.path().to_path_buf()),
        sync,
        recovery: false,
        bandwidth: false,
        ..SuiteOptions::default()
    }
    .build()?;
    Ok(suite::run_suite(&config, &mut |_| {})?)
}

#[test]
fn one_synced_writer_pays_one_log_sync_per_write_beside_the_device()
-> Result<(), Box<dyn std::error::Error>> {
    let result = run(SyncPolicy::Always)?;
    for run in &result.runs {
        let fill = run.phase("fillrandom").ok_or("no fill phase")?;
        let device = fill.synced_device.as_ref().ok_or("no device reference")?;
        assert_eq!(device.record_bytes, 16 + 100, "{}", run.engine);
        assert!(device.syncs >= 10 && device.per_sec > 0.0, "{device:?}");
        // One writer shares its syncs with no one: at least one per write, and only a few more
        // (a rotation's) at most.
        let per_write = fill.syncs_per_write().ok_or("no sync counts")?;
        assert!(
            (1.0..1.1).contains(&per_write),
            "{}: {per_write}",
            run.engine
        );
        // A phase that wrote nothing has no reference.
        let read = run.phase("readrandom").ok_or("no read phase")?;
        assert!(read.synced_device.is_none(), "{}", run.engine);
    }
    let md = markdown::report(&result);
    assert!(md.contains("## Synced writes"), "{md}");
    assert!(json::summary_json(&result)?.contains("\"synced_device\""));
    Ok(())
}

#[test]
fn without_synced_writes_there_is_no_device_reference() -> Result<(), Box<dyn std::error::Error>> {
    let result = run(SyncPolicy::Never)?;
    for run in &result.runs {
        assert!(run.phases.iter().all(|p| p.synced_device.is_none()));
    }
    assert!(!markdown::report(&result).contains("## Synced writes"));
    Ok(())
}
