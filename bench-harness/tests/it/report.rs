//! The report's charts: every over-time chart shades and names each phase of each engine, and
//! the per-phase comparison is on a linear axis, relative to the fastest engine.

use bench_harness::metrics::IntervalRecord;
use bench_harness::report::{charts, timeline};
use bench_harness::suite::{SuiteOptions, SuiteResult, run_suite};

fn interval(phase: &str, t: f64, seconds: f64) -> IntervalRecord {
    IntervalRecord {
        engine: "e".into(),
        phase: phase.into(),
        t,
        seconds,
        ops: 1,
        ops_per_sec: 1.0,
        mb_per_sec: 0.0,
        latency: None,
        user_bytes_total: 0,
        seam_bytes_written_total: 0,
        write_amp: 0.0,
        disk_bytes: 0,
        live_keys: 0,
        space_amp: 0.0,
        rss_bytes: 0,
        compactions: 0,
        stall_s: 0.0,
    }
}

#[test]
fn bands_span_each_phase_of_the_intervals() {
    let intervals = [
        interval("load", 1.0, 1.0),
        interval("load", 1.5, 0.5),
        interval("read", 2.6, 1.0),
        interval("compact", 2.9, 0.2),
    ];
    let bands = timeline::bands(&intervals);
    let spans: Vec<(&str, f64, f64)> = bands
        .iter()
        .map(|b| (b.phase.as_str(), b.start, b.end))
        .collect();
    assert_eq!(spans.len(), 3);
    assert_eq!((spans[0].0, spans[0].1, spans[0].2), ("load", 0.0, 1.5));
    assert_eq!(spans[1].0, "read");
    assert!((spans[1].1 - 1.6).abs() < 1e-9 && (spans[1].2 - 2.6).abs() < 1e-9);
    assert_eq!(spans[2].0, "compact");
    assert!(timeline::bands(&[]).is_empty());
}

fn quick_result() -> Result<SuiteResult, Box<dyn std::error::Error>> {
    let options = SuiteOptions {
        engines: Some(vec!["reference".into(), "bitcask".into()]),
        quick: true,
        key_count: Some(2_000),
        ..SuiteOptions::default()
    };
    Ok(run_suite(&options.build()?, &mut |_| {})?)
}

#[test]
fn over_time_charts_shade_and_name_every_phase_of_every_engine()
-> Result<(), Box<dyn std::error::Error>> {
    let result = quick_result()?;
    type Render = fn(&SuiteResult) -> bench_harness::Result<String>;
    let charts: [(&str, Render); 5] = [
        ("throughput", charts::throughput),
        ("latency", charts::latency),
        ("write amplification", charts::write_amplification),
        ("space amplification", charts::space_amplification),
        ("disk size", charts::disk_size),
    ];
    for (name, render) in charts {
        let svg = render(&result)?;
        for run in &result.runs {
            assert!(
                svg.contains(&format!(">\n{}\n</text>", run.engine)),
                "{name}: no panel for {}",
                run.engine
            );
            for band in timeline::bands(&run.intervals) {
                let label = format!(">\n{}\n</text>", band.phase.replace('&', "&amp;"));
                let count = svg.matches(&label).count();
                assert!(
                    count >= 1,
                    "{name}: {} of {} unnamed",
                    band.phase,
                    run.engine
                );
            }
        }
        // One shaded rectangle per band, in two alternating shades.
        let bands: usize = result
            .runs
            .iter()
            .map(|r| timeline::bands(&r.intervals).len())
            .sum();
        let shaded =
            svg.matches("fill=\"#E4EAF4\"").count() + svg.matches("fill=\"#F6F0E2\"").count();
        assert!(
            shaded >= bands,
            "{name}: {shaded} shaded rectangles for {bands} phases"
        );
    }
    Ok(())
}

#[test]
fn comparison_bars_are_fractions_of_the_fastest_engine_with_their_throughput()
-> Result<(), Box<dyn std::error::Error>> {
    let result = quick_result()?;
    let svg = charts::comparison(&result)?;
    assert!(svg.contains("relative to the fastest engine"), "{svg}");
    assert!(!svg.contains("log scale"));
    // Every phase with operations has each engine's figure written beside its bar.
    for run in &result.runs {
        for p in run.phases.iter().filter(|p| p.counts.ops > 0) {
            let text = format!(
                "{} kops/s",
                bench_harness::report::table::num(p.ops_per_sec / 1000.0)
            );
            assert!(
                svg.contains(&text),
                "{} {}: {text} missing",
                run.engine,
                p.phase
            );
        }
    }
    Ok(())
}

#[test]
fn headline_shows_memory_per_key_at_the_end_of_the_load() -> Result<(), Box<dyn std::error::Error>>
{
    use bench_harness::report::table::{headline_table, num};
    let result = quick_result()?;
    let table = headline_table(&result);
    let column = |name: &str| {
        table
            .header
            .iter()
            .position(|h| h == name)
            .ok_or(name.to_string())
    };
    let (index, rss) = (column("index B/key (load)")?, column("RSS B/key (load)")?);
    for (run, row) in result.runs.iter().zip(&table.rows) {
        let load = &run.phases[0];
        #[expect(clippy::cast_precision_loss, reason = "display")]
        let expected = if load.index_memory_bytes > 0 {
            num(load.index_memory_bytes as f64 / load.live_keys as f64)
        } else {
            "n/a".to_string()
        };
        assert_eq!(row[index], expected, "{}", run.engine);
        assert_ne!(
            row[rss], "n/a",
            "{}: every engine has an RSS per key",
            run.engine
        );
    }
    // The report names every engine whose resident memory the index does not explain.
    let md = bench_harness::report::markdown::report(&result);
    for run in &result.runs {
        let (Some(i), Some(r)) = (
            bench_harness::report::table::index_per_key(run),
            bench_harness::report::table::rss_per_key(run),
        ) else {
            continue;
        };
        let named = md.contains(&format!("{} ({} B/key resident", run.engine, num(r)));
        assert_eq!(named, r > 1.5 * i, "{}: {r} vs {i}\n{md}", run.engine);
    }
    // Bitcask's keydir holds every 16-byte key and its location: more than the key, per key.
    let bitcask = result
        .runs
        .iter()
        .position(|r| r.engine == "bitcask")
        .ok_or("bitcask")?;
    let per_key: f64 = table.rows[bitcask][index].parse()?;
    assert!(per_key > 16.0, "{per_key}");
    Ok(())
}
