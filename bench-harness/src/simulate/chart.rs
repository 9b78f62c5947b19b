//! The sweep chart: write and space amplification at the end of the stream against the knob.

use plotters::prelude::*;

use super::{Knob, SweepPoint};
use crate::error::{HarnessError, Result};
use crate::report::charts::color;

fn err<E: std::fmt::Debug>(e: E) -> HarnessError {
    HarnessError::Report(format!("sweep chart: {e:?}"))
}

/// An SVG line chart of write amplification (total and background alone) and space
/// amplification against `knob`, one marker per simulated value.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn sweep_chart(knob: Knob, points: &[SweepPoint]) -> Result<String> {
    let series: [(&str, Vec<(f64, f64)>); 3] = [
        (
            "write amplification (log + background)",
            pts(points, |p| p.sample.write_amp()),
        ),
        (
            "background alone (flush + compaction, or merge)",
            pts(points, |p| p.sample.background_amp()),
        ),
        (
            "space amplification (mean over the second half)",
            pts(points, |p| p.space_amp),
        ),
    ];
    let x_max = points.iter().map(|p| p.value).fold(0.0, f64::max) * 1.05;
    let x_min = points
        .iter()
        .map(|p| p.value)
        .fold(f64::INFINITY, f64::min)
        .min(x_max)
        * 0.95;
    let y_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.4;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("simulated amplification against {knob}"),
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x_min..x_max, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(knob.name())
            .y_desc("amplification (x)")
            .draw()
            .map_err(err)?;
        for (i, (name, line)) in series.iter().enumerate() {
            let style = color(i).stroke_width(2);
            chart
                .draw_series(LineSeries::new(line.iter().copied(), style))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart
                .draw_series(line.iter().map(|p| Circle::new(*p, 4, color(i).filled())))
                .map_err(err)?;
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

fn pts(points: &[SweepPoint], y: impl Fn(&SweepPoint) -> f64) -> Vec<(f64, f64)> {
    points.iter().map(|p| (p.value, y(p))).collect()
}
