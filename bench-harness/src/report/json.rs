//! Machine-readable output: one JSON object per interval per line, and one summary document.

use serde::Serialize;

use crate::error::{HarnessError, Result};
use crate::suite::SuiteResult;

fn to_json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> Result<String> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.map_err(|e| HarnessError::Report(format!("JSON: {e}")))
}

/// Every interval of every engine, one JSON object per line, in run order.
///
/// # Errors
/// [`HarnessError::Report`] if a record cannot be serialised.
pub fn intervals_jsonl(result: &SuiteResult) -> Result<String> {
    let mut out = String::new();
    for run in &result.runs {
        for interval in &run.intervals {
            out.push_str(&to_json(interval, false)?);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The whole result without its intervals (they are in the JSON lines file): machine, data set,
/// phases, and per engine its settings, phase summaries and totals.
#[derive(Serialize)]
struct Summary<'a> {
    machine: &'a crate::machine::Machine,
    dataset: &'a crate::workload::Dataset,
    sync: &'a str,
    quick: bool,
    seconds: f64,
    load_average_end: f64,
    command: Option<&'a str>,
    phases: &'a [crate::runner::Phase],
    engines: Vec<EngineSummary<'a>>,
}

#[derive(Serialize)]
struct EngineSummary<'a> {
    engine: &'a str,
    settings: &'a [(String, String)],
    seam_accounting: bool,
    peak_rss_is_own: bool,
    /// How many runs the figures below come from.
    repeats: usize,
    /// The median run's (see [`SuiteResult::runs`]).
    totals: &'a crate::metrics::RunTotals,
    /// The median run's.
    phases: &'a [crate::metrics::PhaseSummary],
    /// The median run's crash recoveries.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    recovery: &'a [crate::runner::RecoverySummary],
    /// The median run's bandwidth fill.
    #[serde(skip_serializing_if = "Option::is_none")]
    bandwidth: Option<&'a crate::bandwidth::Bandwidth>,
    /// With repeats: `totals` and `phases` again, every number replaced by
    /// `{"median", "min", "max"}` over the repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    spread: Option<serde_json::Value>,
}

/// The summary document, pretty-printed.
///
/// # Errors
/// [`HarnessError::Report`] if it cannot be serialised.
pub fn summary_json(result: &SuiteResult) -> Result<String> {
    let summary = Summary {
        machine: &result.machine,
        dataset: &result.dataset,
        sync: &result.sync,
        quick: result.quick,
        seconds: result.seconds,
        load_average_end: result.load_average_end,
        command: result.command.as_deref(),
        phases: &result.phases,
        engines: result
            .runs
            .iter()
            .zip(result.engine_repeats())
            .map(|(r, repeats)| {
                Ok(EngineSummary {
                    engine: &r.engine,
                    settings: &r.settings,
                    seam_accounting: r.seam_accounting,
                    peak_rss_is_own: r.peak_rss_is_own,
                    repeats: repeats.len(),
                    totals: &r.totals,
                    phases: &r.phases,
                    recovery: &r.recovery,
                    bandwidth: r.bandwidth.as_ref(),
                    spread: engine_spread(repeats)?,
                })
            })
            .collect::<Result<_>>()?,
    };
    let mut text = to_json(&summary, true)?;
    text.push('\n');
    Ok(text)
}

/// Every number of an engine's totals and phases as its spread over the repeats; `None` for a
/// single run.
fn engine_spread(repeats: &[crate::metrics::EngineRun]) -> Result<Option<serde_json::Value>> {
    if repeats.len() < 2 {
        return Ok(None);
    }
    let values = repeats
        .iter()
        .map(|r| serde_json::to_value((&r.totals, &r.phases)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| HarnessError::Report(format!("JSON: {e}")))?;
    Ok(Some(spread_value(&values)))
}

/// Walks equal-shaped JSON trees together: a number becomes `{"median", "min", "max"}`;
/// anything else is the first tree's.
pub fn spread_value(trees: &[serde_json::Value]) -> serde_json::Value {
    use serde_json::Value;
    let Some(first) = trees.first() else {
        return Value::Null;
    };
    match first {
        Value::Number(_) => {
            let spread = crate::report::spread::Spread::of(trees.iter().filter_map(Value::as_f64));
            spread.map_or(
                Value::Null,
                |s| serde_json::json!({"median": s.median, "min": s.min, "max": s.max}),
            )
        }
        Value::Array(items) => Value::Array(
            (0..items.len())
                .map(|i| spread_value(&children(trees, |v| v.get(i))))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.keys()
                .map(|k| (k.clone(), spread_value(&children(trees, |v| v.get(k)))))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn children(
    trees: &[serde_json::Value],
    child: impl Fn(&serde_json::Value) -> Option<&serde_json::Value>,
) -> Vec<serde_json::Value> {
    trees.iter().filter_map(child).cloned().collect()
}
