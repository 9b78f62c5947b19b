//! The binary end to end: a quick run writes every report file; bad input exits non-zero with a
//! message and writes nothing.

use std::path::Path;
use std::process::{Command, Output};

use bench_harness::report::FILES;

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench-harness"))
        .args(args)
        .output()
        .expect("the harness binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn quick_run_writes_every_report_file() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let out_dir = tmp.path().join("report");
    let out = harness(&[
        "compare",
        "--quick",
        "--keys",
        "3000",
        "--engines",
        "reference",
        "--keep-page-cache",
        "--out",
        out_dir.to_str().ok_or("path")?,
        "--data-dir",
        tmp.path().to_str().ok_or("path")?,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("readrandom (compacted)"), "{stdout}");
    assert!(stdout.contains(&out_dir.join("report.md").display().to_string()));
    for name in FILES {
        let path = out_dir.join(name);
        let text = std::fs::read_to_string(&path)?;
        assert!(!text.is_empty(), "{name} is empty");
        if name.ends_with(".svg") {
            assert!(
                text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
                "{name}"
            );
        }
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json"))?)?;
    assert_eq!(summary["engines"][0]["engine"], "reference");
    assert_eq!(summary["dataset"]["key_count"], 3000);
    let intervals = std::fs::read_to_string(out_dir.join("intervals.jsonl"))?;
    for line in intervals.lines() {
        let record: serde_json::Value = serde_json::from_str(line)?;
        assert_eq!(record["engine"], "reference");
    }
    let md = std::fs::read_to_string(out_dir.join("report.md"))?;
    assert!(md.contains("](throughput.svg)") && md.contains("identical operations"));
    assert!(
        md.contains("## Headline") && md.contains("| reference |"),
        "{md}"
    );
    // Only the report is left behind: the engine's temporary directory is gone.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("report")]);
    Ok(())
}

fn assert_refused(args: &[&str], message: &str, out_dir: &Path) {
    let mut all = vec!["compare", "--out", out_dir.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let out = harness(&all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(message),
        "{args:?}: expected '{message}' in: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(
        !out_dir.join("report.md").exists(),
        "{args:?} wrote a report"
    );
}

#[test]
fn bad_input_exits_with_a_message() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("out");
    let cases: [(&[&str], &str); 10] = [
        (
            &["--workloads", "fillsideways"],
            "unknown workload 'fillsideways'",
        ),
        (&["--engines", "nosuchdb"], "unknown engine 'nosuchdb'"),
        (&["--keys", "0"], "--keys must be between 1 and"),
        (
            &["--value-size", "999999999"],
            "--value-size must be between 0 and",
        ),
        (
            &["--key-size", "100000"],
            "--key-size must be between 1 and",
        ),
        (
            &["--keys", "1000", "--key-size", "2"],
            "--key-size 2 is too small",
        ),
        (&["--threads", "0"], "--threads must be between 1 and"),
        (&["--ops", "0"], "--ops must be between 1 and"),
        (&["--sync", "sometimes"], "not a sync policy"),
        (&["--keys", "lots"], "invalid value 'lots'"),
    ];
    for (args, message) in cases {
        assert_refused(args, message, &out);
    }
    assert!(!out.exists(), "a refused run created the output directory");
    Ok(())
}

#[test]
fn unwritable_directories_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    // A regular file where a directory should be: unwritable even for root.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory")?;
    let below_file = file.join("report");
    assert_refused(&["--quick"], "is not writable", &below_file);
    let out = tmp.path().join("out");
    assert_refused(
        &["--quick", "--data-dir", below_file.to_str().ok_or("path")?],
        "--data-dir",
        &out,
    );
    Ok(())
}

#[test]
fn list_names_engines_and_workloads() {
    let out = harness(&["list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reference") && text.contains("ycsb-e") && text.contains("readwhilewriting")
    );
}

#[test]
fn cargo_run_picks_the_harness() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo run -p bench-harness -- compare` (the README's main command) must not stop at
    // "could not determine which binary to run".
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))?;
    assert!(manifest.contains("default-run = \"bench-harness\""));
    Ok(())
}

/// A 2,000-key `readrandom` comparison of `engines` with `extra` options, its data and report
/// under `tmp`; returns the run and the report's directory.
fn small_readrandom(
    tmp: &Path,
    engines: &str,
    extra: &[&str],
) -> Result<(Output, std::path::PathBuf), Box<dyn std::error::Error>> {
    let out_dir = tmp.join("report");
    let mut args = vec!["compare", "--keys", "2000", "--workloads", "readrandom"];
    args.extend(["--engines", engines]);
    args.extend(extra);
    args.extend(["--out", out_dir.to_str().ok_or("path")?]);
    args.extend(["--data-dir", tmp.to_str().ok_or("path")?]);
    Ok((harness(&args), out_dir))
}

#[test]
fn repeats_rotate_the_order_and_report_the_spread() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let (out, out_dir) = small_readrandom(tmp.path(), "reference,bitcask", &["--repeat", "2"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let opened: Vec<String> = stderr(&out)
        .lines()
        .filter_map(|l| l.split_once(": opened in").map(|(e, _)| e.to_string()))
        .collect();
    assert_eq!(opened, ["reference", "bitcask", "bitcask", "reference"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json"))?)?;
    for engine in summary["engines"].as_array().ok_or("engines")? {
        assert_eq!(engine["repeats"], 2);
        let ops = &engine["spread"][1][1]["ops_per_sec"];
        let (min, median, max) = (
            ops["min"].as_f64(),
            ops["median"].as_f64(),
            ops["max"].as_f64(),
        );
        assert!(min <= median && median <= max && min > Some(0.0), "{ops}");
    }
    let md = std::fs::read_to_string(out_dir.join("report.md"))?;
    assert!(md.contains("**median (min–max)** of the 2 runs"), "{md}");
    assert!(md.contains("**process of its own**"), "{md}");
    assert!(
        md.contains("page cache was **dropped**") || md.contains("could **not** be dropped"),
        "{md}"
    );
    Ok(())
}

#[test]
fn cold_reads_drop_the_page_cache_or_say_why_not() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let (out, out_dir) = small_readrandom(tmp.path(), "bitcask", &["--cold"])?;
    if out.status.success() {
        let md = std::fs::read_to_string(out_dir.join("report.md"))?;
        assert!(
            md.contains("| readrandom | readrandom, page cache dropped first |"),
            "{md}"
        );
        assert!(md.contains("readrandom: device bytes (/proc)"), "{md}");
    } else {
        // Not root, or not Linux: refused before anything ran, with the reason.
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("--cold drops the page cache"),
            "{}",
            stderr(&out)
        );
    }
    Ok(())
}

/// `--defaults` reaches the engine's own process: Bitcask runs with its default file size
/// there, not the one sized to the data set.
#[test]
fn defaults_reach_each_engines_process() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let quiet = ["--defaults", "--no-recovery", "--no-bandwidth", "--quick"];
    let (out, out_dir) = small_readrandom(tmp.path(), "bitcask", &quiet)?;
    assert!(out.status.success(), "{}", stderr(&out));
    let md = std::fs::read_to_string(out_dir.join("report.md"))?;
    let default_size = bitcask_engine::BitcaskOptions::default().max_file_size;
    assert!(
        md.contains(&format!("`max_file_size` = {default_size}")),
        "{md}"
    );
    Ok(())
}
