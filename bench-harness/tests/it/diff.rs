//! `bench-harness diff` and the CSV tables: every shared figure side by side with its ratio,
//! marked only where the two runs' min–max ranges do not overlap; `--csv` beside the JSON.

use std::path::Path;
use std::process::{Command, Output};

use bench_harness::report::csv::to_csv;
use bench_harness::report::diff::{Change, diff};
use bench_harness::report::table::Table;
use serde_json::{Value, json};

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench-harness"))
        .args(args)
        .output()
        .expect("the harness binary runs")
}

/// A summary of one engine whose `fillrandom` ran at `ops` (the median) within `range`.
fn summary(ops: f64, range: Option<(f64, f64)>, seconds: f64) -> Value {
    let phase = json!({"phase": "fillrandom", "ops_per_sec": ops, "seconds": seconds,
                       "latency": {"p99_us": 5.0}, "io": {"log": {"reads": 0}}});
    let mut engine = json!({"engine": "bitcask", "repeats": 1,
                            "totals": {"disk_bytes": 1000}, "phases": [phase]});
    if let Some((min, max)) = range {
        let s = |m: f64, lo: f64, hi: f64| json!({"median": m, "min": lo, "max": hi});
        engine["repeats"] = json!(3);
        engine["spread"] = json!([
            {"disk_bytes": s(1000.0, 1000.0, 1000.0)},
            [{"phase": "fillrandom", "ops_per_sec": s(ops, min, max),
              "seconds": s(seconds, seconds - 0.1, seconds + 0.1),
              "latency": {"p99_us": s(5.0, 5.0, 5.0)}, "io": {"log": {"reads": s(0.0, 0.0, 0.0)}}}],
        ]);
    }
    json!({"dataset": {"key_count": 10}, "sync": "never", "quick": true, "engines": [engine]})
}

fn row<'a>(
    d: &'a bench_harness::report::diff::Diff,
    figure: &str,
) -> Option<&'a bench_harness::report::diff::Row> {
    d.engines[0].1.iter().find(|r| r.figure == figure)
}

#[test]
fn diff_marks_only_changes_beyond_the_spread() {
    let old = summary(100.0, Some((90.0, 110.0)), 2.0);
    // Throughput up 50 % with disjoint ranges; seconds 5 % up with overlapping ranges.
    let new = summary(150.0, Some((140.0, 160.0)), 2.1);
    let d = diff(&old, &new);
    assert_eq!(d.engines.len(), 1);
    let ops = row(&d, "fillrandom.ops_per_sec").expect("shared figure");
    assert_eq!(ops.change, Change::Up);
    assert_eq!(ops.ratio, Some(1.5));
    let secs = row(&d, "fillrandom.seconds").expect("shared figure");
    assert_eq!(secs.change, Change::Within, "{secs:?}");
    assert_eq!(
        row(&d, "totals.disk_bytes").map(|r| r.change),
        Some(Change::Within)
    );
    // Zero in both runs: left out and counted in a note.
    assert!(row(&d, "fillrandom.io.log.reads").is_none());
    assert!(
        d.notes.iter().any(|n| n.contains("zero in both")),
        "{:?}",
        d.notes
    );
    // The reverse direction is a fall.
    let back = diff(&new, &old);
    assert_eq!(
        row(&back, "fillrandom.ops_per_sec").map(|r| r.change),
        Some(Change::Down)
    );
    // One repeated side is enough: a single run outside the repeated range is marked.
    let single = summary(50.0, None, 2.0);
    let d = diff(&old, &single);
    assert_eq!(
        row(&d, "fillrandom.ops_per_sec").map(|r| r.change),
        Some(Change::Down)
    );
}

#[test]
fn single_runs_mark_nothing_and_say_so() {
    let d = diff(&summary(100.0, None, 2.0), &summary(300.0, None, 1.0));
    let ops = row(&d, "fillrandom.ops_per_sec").expect("shared figure");
    assert_eq!(ops.ratio, Some(3.0));
    assert!(d.engines[0].1.iter().all(|r| r.change == Change::Within));
    assert!(
        d.notes.iter().any(|n| n.contains("no spread is known")),
        "{:?}",
        d.notes
    );
    let csv = d.to_csv();
    assert!(csv.starts_with("engine,figure,old_median,"), "{csv}");
    assert!(
        csv.contains("bitcask,fillrandom.ops_per_sec,100,100,100,300,300,300,3,"),
        "{csv}"
    );
}

#[test]
fn csv_quotes_commas_and_quotes() {
    let table = Table {
        header: vec!["a".into(), "b".into()],
        rows: vec![vec!["1,5 (1–2)".into(), "say \"hi\"".into()]],
    };
    assert_eq!(to_csv(&table), "a,b\n\"1,5 (1–2)\",\"say \"\"hi\"\"\"\n");
}

fn quick_run(dir: &Path, out: &str) -> Result<(), Box<dyn std::error::Error>> {
    let data = dir.to_str().ok_or("path")?;
    let out_dir = dir.join(out);
    let o = harness(&[
        "compare",
        "--quick",
        "--keys",
        "2000",
        "--engines",
        "reference",
        "--repeat",
        "2",
        "--in-process",
        "--keep-page-cache",
        "--no-progress",
        "--csv",
        "--out",
        out_dir.to_str().ok_or("path")?,
        "--data-dir",
        data,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Ok(())
}

#[test]
fn diff_command_prints_ratios_and_writes_csv_beside_the_json()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    quick_run(tmp.path(), "old")?;
    quick_run(tmp.path(), "new")?;
    let new = tmp.path().join("new");
    // compare --csv: every table beside summary.json, each with its header row.
    for (file, first) in [
        ("headline.csv", "engine,"),
        ("phases.csv", "phase,"),
        ("totals.csv", "whole run,"),
        ("latency-reference.csv", "phase,"),
    ] {
        let text = std::fs::read_to_string(new.join(file))?;
        assert!(text.starts_with(first), "{file}: {text}");
        assert!(text.lines().count() > 1, "{file}: {text}");
    }
    let old_json = tmp.path().join("old/summary.json");
    let o = harness(&[
        "diff",
        old_json.to_str().ok_or("path")?,
        new.to_str().ok_or("path")?,
        "--csv",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("## reference:") && stdout.contains("new/old"),
        "{stdout}"
    );
    assert!(stdout.contains("fillrandom.ops_per_sec"), "{stdout}");
    let csv = std::fs::read_to_string(new.join("diff.csv"))?;
    assert!(csv.starts_with("engine,figure,"), "{csv}");
    assert!(csv.contains("reference,fillrandom.ops_per_sec,"), "{csv}");
    // --only keeps the figures whose name contains the text.
    let o = harness(&[
        "diff",
        old_json.to_str().ok_or("path")?,
        new.to_str().ok_or("path")?,
        "--only",
        "ops_per_sec",
    ]);
    let only = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && only.contains("fillrandom.ops_per_sec"),
        "{only}"
    );
    assert!(
        !only.contains("latency.p99_us") && !only.contains("totals."),
        "{only}"
    );
    // Bad input is a message and exit code 2.
    let missing = tmp.path().join("nowhere/summary.json");
    let o = harness(&[
        "diff",
        missing.to_str().ok_or("path")?,
        new.to_str().ok_or("path")?,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
    Ok(())
}
