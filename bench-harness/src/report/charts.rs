//! SVG charts (plotters): throughput, write amplification and disk size over time, one line per
//! engine, and horizontal bar charts for the final comparison. Rendered into strings so a report
//! is written only once every chart has rendered.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::table::num;
use crate::error::{HarnessError, Result};
use crate::metrics::{EngineRun, IntervalRecord};
use crate::suite::SuiteResult;

/// One named line or bar group: the engine and its points.
pub type Series<T> = (String, Vec<T>);

const SIZE: (u32, u32) = (960, 520);

fn err<E: std::fmt::Debug>(e: E) -> HarnessError {
    HarnessError::Report(format!("chart: {e:?}"))
}

/// A color per engine, stable across charts.
pub fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
    ];
    COLORS.get(i % COLORS.len()).copied().unwrap_or(BLACK)
}

fn upper(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    if max > 0.0 { max * 1.08 } else { 1.0 }
}

/// Splits a line at points that a log scale cannot show (zero throughput while compacting), so
/// the gap shows instead of a line across it; maps y to log10 when `log`.
fn segments(points: &[(f64, f64)], log: bool) -> Vec<Vec<(f64, f64)>> {
    if !log {
        return vec![points.to_vec()];
    }
    let mut out = vec![Vec::new()];
    for (x, y) in points {
        match out.last_mut() {
            Some(current) if *y > 0.0 => current.push((*x, y.log10())),
            Some(current) if !current.is_empty() => out.push(Vec::new()),
            _ => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// A line chart of `series` (x in seconds since each engine was opened); with `log`, y is on a
/// log10 scale (throughput spans orders of magnitude between phases).
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn line_chart(
    title: &str,
    y_desc: &str,
    series: &[Series<(f64, f64)>],
    log: bool,
) -> Result<String> {
    let lines: Vec<Vec<Vec<(f64, f64)>>> = series.iter().map(|(_, p)| segments(p, log)).collect();
    let points = || lines.iter().flatten().flatten();
    let x_max = upper(points().map(|p| p.0));
    let (y_min, y_max) = if log {
        let lo = points().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = points().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() {
            (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
        } else {
            (0.0, 1.0)
        }
    } else {
        (0.0, upper(points().map(|p| p.1)))
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..x_max, y_min..y_max)
            .map_err(err)?;
        let format_y = |v: &f64| num(if log { 10f64.powf(*v) } else { *v });
        chart
            .configure_mesh()
            .x_desc("seconds since the engine was opened")
            .y_desc(y_desc)
            .y_label_formatter(&format_y)
            .draw()
            .map_err(err)?;
        for (i, ((name, _), segs)) in series.iter().zip(&lines).enumerate() {
            let style = color(i).stroke_width(2);
            for (j, seg) in segs.iter().enumerate() {
                let drawn = chart
                    .draw_series(LineSeries::new(seg.iter().copied(), style))
                    .map_err(err)?;
                if j == 0 {
                    drawn
                        .label(name)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                }
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Horizontal grouped bars: one group per category (top to bottom), one bar per series. With
/// `log`, bar lengths are on a log10 scale (for throughputs that span orders of magnitude).
/// Missing values leave a gap.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn bar_chart(
    title: &str,
    x_desc: &str,
    categories: &[String],
    series: &[Series<Option<f64>>],
    log: bool,
) -> Result<String> {
    bars(title, x_desc, categories, series, log, None)
}

/// [`bar_chart`] on a linear axis with a text at the end of every bar (`labels[series][category]`),
/// and room on the right for it.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn labelled_bar_chart(
    title: &str,
    x_desc: &str,
    categories: &[String],
    series: &[Series<Option<f64>>],
    labels: &[Vec<Option<String>>],
) -> Result<String> {
    bars(title, x_desc, categories, series, false, Some(labels))
}

fn bars(
    title: &str,
    x_desc: &str,
    categories: &[String],
    series: &[Series<Option<f64>>],
    log: bool,
    labels: Option<&[Vec<Option<String>>]>,
) -> Result<String> {
    let scale = |v: f64| if log { v.max(1e-9).log10() } else { v };
    let values = || series.iter().flat_map(|(_, v)| v.iter().flatten().copied());
    let (lo, hi) = if log {
        let min = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
        let max = values().fold(0.0, f64::max);
        let lo = if min.is_finite() {
            scale(min).floor()
        } else {
            0.0
        };
        (lo, scale(max.max(1e-9)).ceil().max(lo + 1.0))
    } else if labels.is_some() {
        (0.0, upper(values()) * 1.3)
    } else {
        (0.0, upper(values()))
    };
    let mut svg = String::new();
    {
        let height = SIZE.1.max(80 + 34 * categories.len() as u32);
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = categories.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(200)
            .build_cartesian_2d(lo..hi, 0f64..n)
            .map_err(err)?;
        let format_x = |v: &f64| {
            if log { num(10f64.powf(*v)) } else { num(*v) }
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc(x_desc)
            .x_label_formatter(&format_x)
            .draw()
            .map_err(err)?;
        let band = 0.8 / series.len().max(1) as f64;
        for (i, (name, values)) in series.iter().enumerate() {
            let style = color(i).filled();
            let bars = values.iter().enumerate().filter_map(|(c, v)| {
                let top = n - c as f64 - 0.1 - band * i as f64;
                v.map(|v| Rectangle::new([(lo, top - band), (scale(v).max(lo), top)], style))
            });
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], style));
            if let Some(texts) = labels.and_then(|l| l.get(i)) {
                let font = ("sans-serif", 11).into_font();
                let at = |c: usize| (n - c as f64 - 0.1 - band * (i as f64 + 0.5), c);
                let texts = values
                    .iter()
                    .zip(texts)
                    .enumerate()
                    .filter_map(|(c, (v, t))| {
                        let (y, _) = at(c);
                        let style =
                            TextStyle::from(font.clone()).pos(Pos::new(HPos::Left, VPos::Center));
                        Some(Text::new(
                            format!(" {}", t.as_ref()?),
                            (scale((*v)?), y),
                            style,
                        ))
                    });
                chart.draw_series(texts).map_err(err)?;
            }
        }
        label_categories(&root, &chart, categories, lo, n)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Category names right-aligned left of the plot, centred on their groups: plotters' own axis
/// labels sit at round numbers, not at group centres.
fn label_categories<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    categories: &[String],
    lo: f64,
    n: f64,
) -> Result<()> {
    let style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (c, name) in categories.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(lo, n - c as f64 - 0.5));
        root.draw(&Text::new(name.clone(), (x - 8, y), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

fn timeline(
    result: &SuiteResult,
    title: &str,
    y_desc: &str,
    value: &dyn Fn(&IntervalRecord) -> Option<f64>,
    log: bool,
) -> Result<String> {
    super::timeline::timeline(
        result,
        &super::timeline::Figure {
            title,
            y_desc,
            value,
            log,
        },
    )
}

/// Operations per second, interval by interval, over the phase bands.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn throughput(result: &SuiteResult) -> Result<String> {
    timeline(
        result,
        "Throughput per one-second interval",
        "kops/s (log scale)",
        &|i| Some(i.ops_per_sec / 1000.0),
        true,
    )
}

/// The 99th-percentile latency of each one-second interval, over the phase bands.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn latency(result: &SuiteResult) -> Result<String> {
    timeline(
        result,
        "p99 latency per one-second interval",
        "p99 µs (log scale)",
        &|i| i.latency.map(|l| l.p99_us),
        true,
    )
}

/// Cumulative write amplification since open (seam, or `wchar` for peers).
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn write_amplification(result: &SuiteResult) -> Result<String> {
    timeline(
        result,
        "Write amplification since open (bytes written / user bytes)",
        "write amplification",
        &|i| Some(i.write_amp),
        false,
    )
}

/// Space amplification (`du` over live logical bytes), interval by interval.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn space_amplification(result: &SuiteResult) -> Result<String> {
    timeline(
        result,
        "Space amplification (du of the directory / live key and value bytes)",
        "space amplification",
        &|i| Some(i.space_amp),
        false,
    )
}

/// Disk usage of each engine's directory.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn disk_size(result: &SuiteResult) -> Result<String> {
    #[expect(clippy::cast_precision_loss, reason = "display")]
    let mb = |i: &IntervalRecord| Some(i.disk_bytes as f64 / 1e6);
    timeline(
        result,
        "Disk usage (du of the engine's directory)",
        "MB",
        &mb,
        false,
    )
}

/// Each engine's throughput per phase as a fraction of the fastest engine's in that phase, on a
/// linear axis (a log axis makes 2x look like 10 %); every bar is labelled with its kops/s.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn comparison(result: &SuiteResult) -> Result<String> {
    let phases: Vec<String> = result
        .phases
        .iter()
        .filter(|p| p.workload.pattern != crate::workload::Pattern::Compact)
        .map(|p| p.label.clone())
        .collect();
    let kops = |run: &EngineRun, label: &str| run.phase(label).map(|p| p.ops_per_sec / 1000.0);
    let best: Vec<f64> = phases
        .iter()
        .map(|l| {
            result
                .runs
                .iter()
                .filter_map(|r| kops(r, l))
                .fold(0.0, f64::max)
        })
        .collect();
    let series: Vec<Series<Option<f64>>> = result
        .runs
        .iter()
        .map(|run| {
            let values = phases
                .iter()
                .zip(&best)
                .map(|(l, b)| kops(run, l).filter(|_| *b > 0.0).map(|k| k / b))
                .collect();
            (run.engine.clone(), values)
        })
        .collect();
    let labels: Vec<Vec<Option<String>>> = result
        .runs
        .iter()
        .map(|run| {
            phases
                .iter()
                .map(|l| kops(run, l).map(|k| format!("{} kops/s", num(k))))
                .collect()
        })
        .collect();
    labelled_bar_chart(
        "Throughput per phase, relative to the fastest engine in the phase",
        "fraction of the fastest engine's throughput (linear; label: kops/s)",
        &phases,
        &series,
        &labels,
    )
}

/// Whole-run amplification and memory, engines side by side.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn amplification(result: &SuiteResult) -> Result<String> {
    type Metric = (&'static str, fn(&EngineRun) -> Option<f64>);
    let metrics: [Metric; 5] = [
        ("write amp (seam total)", |r| {
            r.seam_accounting.then_some(r.totals.write_amp.seam_total)
        }),
        ("write amp (/proc wchar)", |r| {
            Some(r.totals.write_amp.proc_wchar)
        }),
        ("space amp (end)", |r| Some(r.totals.space_amp)),
        ("space amp (peak)", |r| Some(r.totals.peak_space_amp)),
        ("reads per get (readrandom)", |r| {
            let ra = r.phase("readrandom")?.read_amp?;
            r.seam_accounting.then_some(ra.seam_reads_per_get)
        }),
    ];
    let categories: Vec<String> = metrics.iter().map(|(n, _)| (*n).to_string()).collect();
    let series: Vec<Series<Option<f64>>> = result
        .runs
        .iter()
        .map(|run| {
            (
                run.engine.clone(),
                metrics.iter().map(|(_, f)| f(run)).collect(),
            )
        })
        .collect();
    bar_chart(
        "Amplification over the whole run",
        "ratio",
        &categories,
        &series,
        false,
    )
}
