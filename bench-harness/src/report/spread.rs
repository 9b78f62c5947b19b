//! How much a figure moves between repeated runs: every table cell is the median of the
//! repeats with their minimum and maximum beside it, so a reader sees the noise next to the
//! number.

use crate::metrics::EngineRun;

use super::table::num;

/// One figure over the repeats of one engine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value seen.
    pub min: f64,
    /// The largest value seen.
    pub max: f64,
    /// How many repeats had the figure.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`, or `None` if there are none (NaNs are left out).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len().is_multiple_of(2) {
            (v[mid - 1] + v[mid]) / 2.0
        } else {
            v[mid]
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
            n: v.len(),
        })
    }

    /// `median (min–max)`, or the bare number when there is one value or no spread.
    pub fn show(&self) -> String {
        let (median, min, max) = (num(self.median), num(self.min), num(self.max));
        if self.n < 2 || min == max {
            median
        } else {
            format!("{median} ({min}–{max})")
        }
    }
}

/// The spread of `figure` over an engine's repeats, shown; `"n/a"` where no repeat has it.
pub fn cell(repeats: &[EngineRun], figure: impl Fn(&EngineRun) -> Option<f64>) -> String {
    Spread::of(repeats.iter().filter_map(figure)).map_or("n/a".to_string(), |s| s.show())
}

/// The index of the median repeat by `key`: the run the charts draw.
pub fn median_index(repeats: &[EngineRun], key: impl Fn(&EngineRun) -> f64) -> usize {
    let mut order: Vec<(f64, usize)> = repeats.iter().map(&key).zip(0..).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    order
        .get(order.len().saturating_sub(1) / 2)
        .map_or(0, |o| o.1)
}
