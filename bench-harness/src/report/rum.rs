//! The RUM picture (read, update and memory overhead; Athanassoulis et al., EDBT 2016: bound
//! two and the third suffers): every engine of a comparison, peers included, placed by its
//! measured read cost (bytes read per get in the `readrandom` phase: from the device when that
//! phase ran cold, else at the storage seam, or the process's `rchar` for engines the seam does
//! not see), update cost (write amplification over the run) and memory cost (index bytes per
//! live key). Left: a RUM triangle, each engine pulled toward the corners of the costs it keeps
//! low. Right: the three costs on three aligned log axes. Built from `summary.json` alone, so
//! the chart shows exactly the figures the report publishes.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

use super::charts::color;
use super::table::num;
use crate::error::{HarnessError, Result};

/// One engine's three costs; `None` where the run did not measure it.
#[derive(Clone, Debug, PartialEq)]
pub struct RumPoint {
    /// The engine.
    pub engine: String,
    /// Bytes read per get.
    pub read: Option<f64>,
    /// Where `read` came from: `"device"`, `"seam"` or `"rchar"`.
    pub read_source: &'static str,
    /// Write amplification over the whole run.
    pub update: Option<f64>,
    /// Index memory per live key, in bytes.
    pub memory: Option<f64>,
}

fn err<E: std::fmt::Debug>(e: E) -> HarnessError {
    HarnessError::Report(format!("rum chart: {e:?}"))
}

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn positive(x: Option<f64>) -> Option<f64> {
    x.filter(|x| x.is_finite() && *x > 0.0)
}

/// The `readrandom` phase of an engine and whether it ran cold (from the suite's phases).
fn read_phase<'a>(summary: &Value, engine: &'a Value) -> Option<(&'a Value, bool)> {
    let phases = engine.get("phases")?.as_array()?;
    let i = phases
        .iter()
        .position(|p| p.get("phase").and_then(Value::as_str) == Some("readrandom"))?;
    let cold = summary
        .get("phases")
        .and_then(|p| p.get(i))
        .and_then(|p| p.get("cold"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some((phases.get(i)?, cold))
}

fn read_cost(summary: &Value, engine: &Value, seam: bool) -> (Option<f64>, &'static str) {
    let Some((phase, cold)) = read_phase(summary, engine) else {
        return (None, "-");
    };
    if cold {
        return (
            positive(f(phase, &["read_amp", "device_bytes_per_get"])),
            "device",
        );
    }
    if seam {
        return (
            positive(f(phase, &["read_amp", "seam_bytes_per_get"])),
            "seam",
        );
    }
    let gets = f(phase, &["read_amp", "gets"]).unwrap_or(0.0);
    let rchar = f(phase, &["proc_io", "rchar"]).unwrap_or(0.0);
    (positive((gets > 0.0).then(|| rchar / gets)), "rchar")
}

/// The three costs of every engine in a `summary.json` document.
pub fn points(summary: &Value) -> Vec<RumPoint> {
    let engines = summary
        .get("engines")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    engines
        .iter()
        .map(|e| {
            let seam = e.get("seam_accounting").and_then(Value::as_bool) == Some(true);
            let (read, read_source) = read_cost(summary, e, seam);
            let wa = if seam { "seam_total" } else { "proc_wchar" };
            let live = f(e, &["totals", "live_keys"]).unwrap_or(0.0);
            let index = f(e, &["totals", "index_memory_bytes"]).unwrap_or(0.0);
            RumPoint {
                engine: e
                    .get("engine")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                read,
                read_source,
                update: positive(f(e, &["totals", "write_amp", wa])),
                memory: positive((live > 0.0).then(|| index / live)),
            }
        })
        .collect()
}

/// The RUM chart of a `summary.json` document, as SVG.
///
/// # Errors
/// [`HarnessError::Report`] if the document is not JSON or plotters fails.
pub fn chart(summary_json: &str) -> Result<String> {
    let summary: Value = serde_json::from_str(summary_json).map_err(err)?;
    render(&points(&summary))
}

/// The three axes: title, and each point's value on it.
type Axis = (&'static str, fn(&RumPoint) -> Option<f64>);

const AXES: [Axis; 3] = [
    ("read: bytes read per get", |p| p.read),
    ("update: write amplification", |p| p.update),
    ("memory: index bytes per live key", |p| p.memory),
];

/// `log10` range over the measured values of one axis, padded so no point sits on an edge.
fn log_range(points: &[RumPoint], value: fn(&RumPoint) -> Option<f64>) -> (f64, f64) {
    let logs: Vec<f64> = points.iter().filter_map(value).map(f64::log10).collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() {
        (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
    } else {
        (0.0, 1.0)
    }
}

/// Renders the triangle and the aligned axes side by side.
///
/// # Errors
/// [`HarnessError::Report`] if plotters fails.
pub fn render(points: &[RumPoint]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root
            .titled(
                "The RUM picture: read, update and memory cost of each engine",
                ("sans-serif", 20),
            )
            .map_err(err)?;
        let (left, right) = root.split_horizontally(470);
        triangle(&left, points)?;
        aligned_axes(&right, points)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// How cheap `value` is on its axis among the engines: 1 the cheapest, 0 the dearest; 0.5 when
/// unmeasured.
fn cheapness(points: &[RumPoint], p: &RumPoint, value: fn(&RumPoint) -> Option<f64>) -> f64 {
    let (lo, hi) = log_range(points, value);
    value(p).map_or(0.5, |v| 1.0 - (v.log10() - lo) / (hi - lo).max(1e-9))
}

fn triangle<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, points: &[RumPoint]) -> Result<()> {
    let corners = [(235.0, 60.0), (50.0, 400.0), (420.0, 400.0)];
    let names = ["read-optimised", "update-optimised", "memory-optimised"];
    let px = |(x, y): (f64, f64)| (x.round() as i32, y.round() as i32);
    let mut outline: Vec<(i32, i32)> = corners.iter().copied().map(px).collect();
    outline.push(px(corners[0]));
    area.draw(&PathElement::new(outline, BLACK.stroke_width(1)))
        .map_err(err)?;
    let anchors = [
        Pos::new(HPos::Center, VPos::Bottom),
        Pos::new(HPos::Left, VPos::Top),
        Pos::new(HPos::Right, VPos::Top),
    ];
    for (((c, name), anchor), dy) in corners.iter().zip(names).zip(anchors).zip([-6, 8, 8]) {
        let (x, y) = px(*c);
        let style = ("sans-serif", 15).into_font().color(&BLACK).pos(anchor);
        area.draw(&Text::new(name, (x, y + dy), style))
            .map_err(err)?;
    }
    for (i, p) in points.iter().enumerate() {
        let weights: Vec<f64> = AXES
            .iter()
            .map(|(_, value)| cheapness(points, p, *value).powi(2) + 0.02)
            .collect();
        let total: f64 = weights.iter().sum();
        let at = corners
            .iter()
            .zip(&weights)
            .fold((0.0, 0.0), |(x, y), (c, w)| {
                (x + c.0 * w / total, y + c.1 * w / total)
            });
        let (x, y) = px(at);
        // Hollow: a cost was not measured, so its pull is a guess (the middle).
        let measured = AXES.iter().all(|(_, value)| value(p).is_some());
        let style = if measured {
            color(i).filled()
        } else {
            color(i).stroke_width(2)
        };
        area.draw(&Circle::new((x, y), 7, style)).map_err(err)?;
        let style = ("sans-serif", 14).into_font().color(&color(i));
        area.draw(&Text::new(p.engine.clone(), (x + 10, y - 8), style))
            .map_err(err)?;
    }
    let note = ("sans-serif", 12).into_font().color(&BLACK.mix(0.7));
    area.draw(&Text::new(
        "each engine is pulled toward the corners whose cost it keeps low",
        (20, 470),
        note.clone(),
    ))
    .map_err(err)?;
    area.draw(&Text::new(
        "(log-scaled rank among the engines shown; hollow: a cost not measured)",
        (20, 488),
        note,
    ))
    .map_err(err)?;
    Ok(())
}

fn aligned_axes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    points: &[RumPoint],
) -> Result<()> {
    let (x0, x1) = (40i32, 580i32);
    let rows = [90i32, 230, 370];
    let mut placed: Vec<Vec<(i32, i32)>> = vec![Vec::new(); points.len()];
    for ((title, value), y) in AXES.iter().zip(rows) {
        let (lo, hi) = log_range(points, *value);
        let x_of = |v: f64| x0 + ((v.log10() - lo) / (hi - lo) * f64::from(x1 - x0)).round() as i32;
        area.draw(&PathElement::new(
            vec![(x0, y), (x1, y)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        let head = ("sans-serif", 15).into_font().color(&BLACK);
        area.draw(&Text::new(
            format!("{title} (log; left is cheaper)"),
            (x0, y - 52),
            head,
        ))
        .map_err(err)?;
        ticks(area, lo, hi, y, x_of)?;
        let slots = label_slots(points, *value, &x_of);
        for (i, p) in points.iter().enumerate() {
            let Some(v) = value(p) else {
                let style = ("sans-serif", 12).into_font().color(&color(i));
                let y_note = y + 30 + 14 * i32::try_from(i).unwrap_or(0);
                area.draw(&Text::new(
                    format!("{}: not measured", p.engine),
                    (x1 - 120, y_note),
                    style,
                ))
                .map_err(err)?;
                continue;
            };
            let x = x_of(v);
            placed[i].push((x, y));
            area.draw(&Circle::new((x, y), 6, color(i).filled()))
                .map_err(err)?;
            let label = if title.starts_with("read") && p.read_source != "seam" {
                format!("{} {} ({})", p.engine, num(v), p.read_source)
            } else {
                format!("{} {}", p.engine, num(v))
            };
            let style = ("sans-serif", 12)
                .into_font()
                .color(&color(i))
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            let dy = match slots.get(i).copied().unwrap_or(0) {
                0 => -10,
                1 => 40,
                _ => -24,
            };
            area.draw(&Text::new(label, (x, y + dy), style))
                .map_err(err)?;
        }
    }
    for (i, line) in placed.into_iter().enumerate() {
        if line.len() > 1 {
            area.draw(&PathElement::new(line, color(i).mix(0.35).stroke_width(1)))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Where each point's label goes on one axis (0 above, 1 below, 2 higher above), so labels of
/// points close together do not overlap.
fn label_slots(
    points: &[RumPoint],
    value: fn(&RumPoint) -> Option<f64>,
    x_of: &impl Fn(f64) -> i32,
) -> Vec<u8> {
    let mut order: Vec<(i32, usize)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| value(p).map(|v| (x_of(v), i)))
        .collect();
    order.sort_unstable();
    let mut slots = vec![0u8; points.len()];
    let mut last: Option<(i32, u8)> = None;
    for (x, i) in order {
        let slot = match last {
            Some((px, ps)) if x - px < 110 => (ps + 1) % 3,
            _ => 0,
        };
        if let Some(s) = slots.get_mut(i) {
            *s = slot;
        }
        last = Some((x, slot));
    }
    slots
}

fn ticks<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lo: f64,
    hi: f64,
    y: i32,
    x_of: impl Fn(f64) -> i32,
) -> Result<()> {
    let style = ("sans-serif", 11)
        .into_font()
        .color(&BLACK.mix(0.6))
        .pos(Pos::new(HPos::Center, VPos::Top));
    let (lo, hi) = (lo.round() as i32, hi.round() as i32);
    for e in lo..=hi {
        let v = 10f64.powi(e);
        let x = x_of(v);
        area.draw(&PathElement::new(
            vec![(x, y - 4), (x, y + 4)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        area.draw(&Text::new(num(v), (x, y + 8), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn engine(name: &str, seam: bool, index: u64) -> Value {
        json!({
            "engine": name,
            "seam_accounting": seam,
            "totals": {
                "live_keys": 1000,
                "index_memory_bytes": index,
                "write_amp": { "seam_total": 2.5, "proc_wchar": 4.0 },
            },
            "phases": [
                { "phase": "fillrandom" },
                {
                    "phase": "readrandom",
                    "read_amp": { "gets": 100, "seam_bytes_per_get": 135.0, "device_bytes_per_get": 9.0 },
                    "proc_io": { "rchar": 30000 },
                },
            ],
        })
    }

    #[test]
    fn each_cost_comes_from_the_figure_the_run_measured() {
        let warm = json!({
            "phases": [{ "label": "fillrandom" }, { "label": "readrandom" }],
            "engines": [engine("bitcask", true, 50_000), engine("peer", false, 0)],
        });
        let p = points(&warm);
        assert_eq!((p[0].read, p[0].read_source), (Some(135.0), "seam"));
        assert_eq!((p[1].read, p[1].read_source), (Some(300.0), "rchar"));
        assert_eq!((p[0].update, p[1].update), (Some(2.5), Some(4.0)));
        assert_eq!(
            (p[0].memory, p[1].memory),
            (Some(50.0), None),
            "0 is not reported"
        );
        let cold = json!({
            "phases": [{ "label": "fillrandom" }, { "label": "readrandom", "cold": true }],
            "engines": [engine("bitcask", true, 50_000)],
        });
        assert_eq!(points(&cold)[0].read_source, "device");
        let svg = chart(&warm.to_string()).expect("renders");
        assert!(
            svg.contains("bitcask") && svg.contains("peer: not measured"),
            "{svg}"
        );
        assert!(chart("not json").is_err());
    }
}
