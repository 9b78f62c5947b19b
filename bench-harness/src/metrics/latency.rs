//! Latency histograms (HdrHistogram), one per class of operation.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The kinds of operation whose latencies are kept apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpClass {
    /// `get`, hit or miss.
    Read,
    /// `put`: load, update or insert.
    Write,
    /// `delete`.
    Delete,
    /// `scan`, timed to the last entry read.
    Scan,
    /// A `get` and a `put` of the same key, timed together.
    ReadModifyWrite,
}

impl OpClass {
    /// Every class, in report order.
    pub const ALL: [OpClass; 5] = [
        OpClass::Read,
        OpClass::Write,
        OpClass::Delete,
        OpClass::Scan,
        OpClass::ReadModifyWrite,
    ];

    fn index(self) -> usize {
        match self {
            OpClass::Read => 0,
            OpClass::Write => 1,
            OpClass::Delete => 2,
            OpClass::Scan => 3,
            OpClass::ReadModifyWrite => 4,
        }
    }

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Read => "read",
            OpClass::Write => "write",
            OpClass::Delete => "delete",
            OpClass::Scan => "scan",
            OpClass::ReadModifyWrite => "rmw",
        }
    }
}

/// Longest latency recorded exactly; longer ones saturate here (ten minutes, in nanoseconds).
const MAX_NANOS: u64 = 600_000_000_000;

/// One histogram per [`OpClass`], created when the class is first recorded.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    hists: [Option<Histogram<u64>>; 5],
}

/// Bounds and precision are constants `new_with_bounds` accepts, so this is always `Some`.
fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_NANOS, 3).ok()
}

fn slot_of(slot: &mut Option<Histogram<u64>>) -> Option<&mut Histogram<u64>> {
    if slot.is_none() {
        *slot = new_histogram();
    }
    slot.as_mut()
}

impl Latencies {
    /// Records one operation of `class` that took `nanos`.
    pub fn record(&mut self, class: OpClass, nanos: u64) {
        if let Some(hist) = self.hists.get_mut(class.index()).and_then(slot_of) {
            hist.saturating_record(nanos.max(1));
        }
    }

    /// Adds every sample of `other`.
    pub fn add(&mut self, other: &Latencies) {
        for (mine, theirs) in self.hists.iter_mut().zip(&other.hists) {
            if let (Some(theirs), Some(mine)) = (theirs, slot_of(mine)) {
                // Both histograms share bounds, so adding cannot fail; a failure would only
                // lose samples, never corrupt them.
                let _ = mine.add(theirs);
            }
        }
    }

    /// Forgets every sample, keeping the allocations.
    pub fn reset(&mut self) {
        for h in self.hists.iter_mut().flatten() {
            h.reset();
        }
    }

    /// Operations recorded over all classes.
    pub fn count(&self) -> u64 {
        self.hists.iter().flatten().map(Histogram::len).sum()
    }

    /// Percentiles of one class, if it has samples.
    pub fn summary(&self, class: OpClass) -> Option<LatencySummary> {
        let hist = self.hists.get(class.index())?.as_ref()?;
        LatencySummary::of(hist)
    }

    /// Percentiles over every class together.
    pub fn overall(&self) -> Option<LatencySummary> {
        let mut all = new_histogram()?;
        for h in self.hists.iter().flatten() {
            let _ = all.add(h);
        }
        LatencySummary::of(&all)
    }

    /// Percentiles of every class that has samples.
    pub fn by_class(&self) -> Vec<(OpClass, LatencySummary)> {
        OpClass::ALL
            .iter()
            .filter_map(|c| self.summary(*c).map(|s| (*c, s)))
            .collect()
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
}

#[expect(clippy::cast_precision_loss, reason = "nanoseconds to microseconds")]
fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1000.0
}

impl LatencySummary {
    /// The summary of a histogram of nanoseconds, if it has samples.
    pub fn of(hist: &Histogram<u64>) -> Option<Self> {
        if hist.is_empty() {
            return None;
        }
        Some(LatencySummary {
            count: hist.len(),
            mean_us: hist.mean() / 1000.0,
            p50_us: micros(hist.value_at_quantile(0.5)),
            p99_us: micros(hist.value_at_quantile(0.99)),
            p999_us: micros(hist.value_at_quantile(0.999)),
            max_us: micros(hist.max()),
        })
    }
}
