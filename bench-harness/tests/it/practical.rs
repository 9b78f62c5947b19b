//! Practical details of a run: `--keep-data` leaves each engine's directory for `kv inspect`;
//! a memory-backed data directory is warned about; scan-heavy phases stop at their time limit.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use bench_harness::machine::memory_backed;
use bench_harness::{Dataset, Phase, Runner, Workload};
use engine_api::testing::RefEngine;
use engine_api::{CommonOptions, SyncPolicy};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The directory the harness said it kept for `engine`.
fn kept_dir(stdout: &str, engine: &str) -> Option<String> {
    let prefix = format!("{engine}: data kept in ");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::to_string)
}

fn quick(data: &Path, out: &Path, extra: &[&str]) -> Result<Output, Box<dyn std::error::Error>> {
    let mut args = vec![
        "compare",
        "--quick",
        "--keys",
        "2000",
        "--keep-page-cache",
        "--no-progress",
        "--out",
        out.to_str().ok_or("path")?,
        "--data-dir",
        data.to_str().ok_or("path")?,
    ];
    args.extend_from_slice(extra);
    Ok(run(env!("CARGO_BIN_EXE_bench-harness"), &args))
}

#[test]
fn keep_data_leaves_each_engine_directory_for_kv_inspect() -> Result<(), Box<dyn std::error::Error>>
{
    let tmp = tempfile::tempdir()?;
    let out_dir = tmp.path().join("report");
    let out = quick(
        tmp.path(),
        &out_dir,
        &["--engines", "bitcask,lsm", "--keep-data"],
    )?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json"))?)?;
    let live = summary["engines"][0]["totals"]["live_keys"]
        .as_u64()
        .ok_or("live keys")?;
    let bitcask = kept_dir(&stdout, "bitcask").ok_or(format!("no kept bitcask dir: {stdout}"))?;
    let inspect = run(env!("CARGO_BIN_EXE_kv"), &["inspect", &bitcask]);
    let shown = text(&inspect.stdout);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    assert!(
        shown.contains(&format!("engine bitcask: {live} live keys")),
        "{shown}"
    );
    let lsm = kept_dir(&stdout, "lsm").ok_or(format!("no kept lsm dir: {stdout}"))?;
    let inspect = run(env!("CARGO_BIN_EXE_kv"), &["inspect", &lsm]);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    assert!(
        text(&inspect.stdout).contains("engine lsm:"),
        "{}",
        text(&inspect.stdout)
    );
    // The report says scan-heavy phases are capped by time.
    let md = std::fs::read_to_string(out_dir.join("report.md"))?;
    assert!(
        md.contains("(`--scan-phase-secs`)") && md.contains("stopped after 30 s"),
        "{md}"
    );
    Ok(())
}

#[test]
fn without_keep_data_nothing_is_left_behind() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let out = quick(
        tmp.path(),
        &tmp.path().join("report"),
        &["--engines", "reference"],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(kept_dir(&text(&out.stdout), "reference").is_none());
    let left: Vec<_> = std::fs::read_dir(tmp.path())?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("report")]);
    Ok(())
}

const MOUNTS: &str = "/dev/vda / ext4 rw,relatime 0 0\n\
tmpfs /dev/shm tmpfs rw,nosuid 0 0\n\
/dev/zram0 /scratch ext4 rw 0 0\n\
ramfs /mnt/ram ramfs rw 0 0\n";

#[test]
fn memory_backed_file_systems_are_recognised() {
    let warning = memory_backed(Path::new("/dev/shm/bench"), MOUNTS).expect("tmpfs warns");
    assert!(
        warning.contains("tmpfs") && warning.contains("fsync"),
        "{warning}"
    );
    assert!(
        memory_backed(Path::new("/scratch/x"), MOUNTS).is_some(),
        "zram device"
    );
    assert!(
        memory_backed(Path::new("/mnt/ram"), MOUNTS).is_some(),
        "ramfs"
    );
    assert_eq!(memory_backed(Path::new("/home/user"), MOUNTS), None);
    // The longest mount point wins: /dev/shm under / is tmpfs, / itself is not.
    assert_eq!(memory_backed(Path::new("/dev"), MOUNTS), None);
}

#[test]
fn a_run_on_tmpfs_warns_and_says_so_in_the_report() -> Result<(), Box<dyn std::error::Error>> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let shm = Path::new("/dev/shm");
    if memory_backed(shm, &mounts).is_none() {
        eprintln!("skipped: /dev/shm is not a tmpfs here");
        return Ok(());
    }
    let data = tempfile::tempdir_in(shm)?;
    let report = tempfile::tempdir()?;
    let out = quick(
        data.path(),
        report.path(),
        &["--engines", "reference", "--workloads", "fillrandom"],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: the data directory"),
        "{}",
        text(&out.stderr)
    );
    let md = std::fs::read_to_string(report.path().join("report.md"))?;
    assert!(
        md.contains("> **Warning**: the data directory") && md.contains("tmpfs"),
        "{md}"
    );
    Ok(())
}

#[test]
fn a_time_limited_scan_phase_stops_before_its_operations_run_out()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = CommonOptions {
        sync: SyncPolicy::Never,
        ..CommonOptions::default()
    };
    let engine = Arc::new(RefEngine::open(dir.path(), options)?);
    let dataset = Dataset {
        key_count: 2_000,
        key_size: 12,
        value_size: 40,
        seed: 3,
    };
    let mut runner = Runner::new(engine, dir.path(), dataset)?;
    runner.run_phase(&Phase::new(Workload::named("fillseq")?, 0, 1))?;
    // Far more scans than 0.2 s allows on any machine.
    let planned = 10_000_000_000;
    let seek = Phase::new(Workload::named("seekrandom")?, planned, 1).time_limited(Some(0.2));
    assert!(seek.is_scan_heavy());
    let summary = runner.run_phase(&seek)?;
    assert!(
        summary.counts.ops > 0 && summary.counts.ops < planned,
        "{:?}",
        summary.counts
    );
    assert_eq!(summary.counts.scans, summary.counts.ops);
    // Without a limit, the same phase runs every operation.
    let all = runner.run_phase(&Phase::new(Workload::named("seekrandom")?, 500, 1))?;
    assert_eq!(all.counts.ops, 500);
    assert!(!Phase::new(Workload::named("readrandom")?, 1, 1).is_scan_heavy());
    Ok(())
}
