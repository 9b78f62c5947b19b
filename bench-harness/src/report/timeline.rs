//! Charts over time that say which phase each stretch belongs to: one panel per engine (each on
//! its own clock, since the engines ran one after another), every phase a shaded band with its
//! name written in it, the figure drawn over the bands.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::charts::color;
use super::table::num;
use crate::error::{HarnessError, Result};
use crate::metrics::{EngineRun, IntervalRecord};
use crate::suite::SuiteResult;

fn err<E: std::fmt::Debug>(e: E) -> HarnessError {
    HarnessError::Report(format!("chart: {e:?}"))
}

/// One phase's stretch of an engine's run, in seconds since the engine was opened.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// The phase's label.
    pub phase: String,
    /// When its first interval began.
    pub start: f64,
    /// When its last interval ended.
    pub end: f64,
}

/// The phases of a run as bands, in run order, from its intervals (a phase with no interval
/// has no band).
pub fn bands(intervals: &[IntervalRecord]) -> Vec<Band> {
    let mut out: Vec<Band> = Vec::new();
    for i in intervals {
        let start = (i.t - i.seconds).max(0.0);
        match out.last_mut() {
            Some(b) if b.phase == i.phase => b.end = b.end.max(i.t),
            _ => out.push(Band {
                phase: i.phase.clone(),
                start,
                end: i.t,
            }),
        }
    }
    out
}

/// What a timeline draws: the figure of each interval (`None` leaves a gap), and its scale.
pub struct Figure<'a> {
    /// The chart's title.
    pub title: &'a str,
    /// The y axis's description.
    pub y_desc: &'a str,
    /// The figure of an interval.
    pub value: &'a dyn Fn(&IntervalRecord) -> Option<f64>,
    /// A log10 y axis (for figures spanning orders of magnitude between phases).
    pub log: bool,
}

/// Lines of `(t, y)` split where the figure is missing or a log axis cannot show it.
fn segments(run: &EngineRun, figure: &Figure<'_>) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for i in &run.intervals {
        let y = (figure.value)(i).filter(|y| y.is_finite() && (!figure.log || *y > 0.0));
        match (y, out.last_mut()) {
            (Some(y), Some(seg)) => seg.push((i.t, if figure.log { y.log10() } else { y })),
            (None, Some(seg)) if !seg.is_empty() => out.push(Vec::new()),
            _ => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The y range every panel shares.
fn y_range(lines: &[Vec<Vec<(f64, f64)>>], log: bool) -> (f64, f64) {
    let ys = || lines.iter().flatten().flatten().map(|p| p.1);
    let hi = ys().fold(f64::NEG_INFINITY, f64::max);
    if !hi.is_finite() {
        return (0.0, 1.0);
    }
    // Room above the highest point for the phase names: a third of the panel.
    if log {
        let lo = ys().fold(f64::INFINITY, f64::min).floor();
        let top = hi.ceil().max(lo + 1.0);
        (lo, top + (top - lo) * 0.5)
    } else {
        (0.0, if hi > 0.0 { hi * 1.5 } else { 1.0 })
    }
}

const WIDTH: u32 = 1100;
const PANEL_HEIGHT: u32 = 330;

/// Renders `figure` over time, one panel per engine of `result`.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn timeline(result: &SuiteResult, figure: &Figure<'_>) -> Result<String> {
    let lines: Vec<_> = result.runs.iter().map(|r| segments(r, figure)).collect();
    let y = y_range(&lines, figure.log);
    let panels = u32::try_from(result.runs.len().max(1)).unwrap_or(1);
    let mut svg = String::new();
    {
        let size = (WIDTH, 40 + PANEL_HEIGHT * panels);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(figure.title, ("sans-serif", 20)).map_err(err)?;
        let areas = root.split_evenly((panels as usize, 1));
        let scale = Scale {
            lo: y.0,
            hi: y.1,
            data_top: lines
                .iter()
                .flatten()
                .flatten()
                .map(|p| p.1)
                .fold(f64::NEG_INFINITY, f64::max),
        };
        for (i, (run, area)) in result.runs.iter().zip(&areas).enumerate() {
            panel(area, run, i, &lines[i], &scale, figure)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The y axis every panel shares: its range, and the highest point drawn (no ticks above it:
/// the headroom is for the phase names).
struct Scale {
    lo: f64,
    hi: f64,
    data_top: f64,
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    run: &EngineRun,
    index: usize,
    lines: &[Vec<(f64, f64)>],
    scale: &Scale,
    figure: &Figure<'_>,
) -> Result<()> {
    let (y_lo, y_hi) = (scale.lo, scale.hi);
    let bands = bands(&run.intervals);
    let x_max = bands.last().map_or(1.0, |b| b.end).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(
            &run.engine,
            ("sans-serif", 16).into_font().color(&color(index)),
        )
        .margin(8)
        .margin_right(20)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..x_max, y_lo..y_hi)
        .map_err(err)?;
    let log = figure.log;
    let format_y = |v: &f64| {
        if *v > scale.data_top + (y_hi - y_lo) * 0.1 {
            String::new()
        } else {
            num(if log { 10f64.powf(*v) } else { *v })
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("seconds since the engine was opened")
        .y_desc(figure.y_desc)
        .y_label_formatter(&format_y)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    shade(&mut chart, &bands, (y_lo, y_hi))?;
    let style = color(index).stroke_width(2);
    for seg in lines {
        chart
            .draw_series(LineSeries::new(seg.iter().copied(), style))
            .map_err(err)?;
        if seg.len() == 1 {
            chart
                .draw_series(seg.iter().map(|p| Circle::new(*p, 2, style.filled())))
                .map_err(err)?;
        }
    }
    label(area, &chart, &bands, y_hi)
}

/// Alternating shades, so neighbouring phases stay apart however narrow.
fn shade(chart: &mut Chart<'_, '_>, bands: &[Band], (lo, hi): (f64, f64)) -> Result<()> {
    let shades = [RGBColor(228, 234, 244), RGBColor(246, 240, 226)];
    let rects = bands
        .iter()
        .enumerate()
        .map(|(i, b)| Rectangle::new([(b.start, lo), (b.end, hi)], shades[i % 2].filled()));
    chart.draw_series(rects).map_err(err)?;
    Ok(())
}

/// Each band's phase name at the top of the band: across where it fits, else written upwards;
/// an upward name that would touch the previous one moves right just far enough to stay
/// readable.
fn label(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &Chart<'_, '_>,
    bands: &[Band],
    y_hi: f64,
) -> Result<()> {
    let font = ("sans-serif", 11).into_font();
    let across = TextStyle::from(font.clone()).pos(Pos::new(HPos::Center, VPos::Top));
    let upward = TextStyle::from(font.transform(FontTransform::Rotate270))
        .pos(Pos::new(HPos::Right, VPos::Top));
    let (ox, oy) = area.get_base_pixel();
    let mut last = i32::MIN;
    for b in bands {
        let (x0, top) = chart.backend_coord(&(b.start, y_hi));
        let (x1, _) = chart.backend_coord(&(b.end, y_hi));
        // About 6 pixels per character at this size.
        let half = 3 * i32::try_from(b.phase.len()).unwrap_or(i32::MAX / 8) + 4;
        let centre = ((x0 + x1) / 2).max(last + 13 + half);
        let (x, style) = if centre + half <= x1 {
            (centre, &across)
        } else {
            (((x0 + x1) / 2 - 6).max(last + 13), &upward)
        };
        last = if std::ptr::eq(style, &across) {
            x + half
        } else {
            x
        };
        let text = Text::new(b.phase.clone(), (x - ox, top - oy + 4), style.clone());
        area.draw(&text).map_err(err)?;
    }
    Ok(())
}
