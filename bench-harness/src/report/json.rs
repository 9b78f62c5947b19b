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
    totals: &'a crate::metrics::RunTotals,
    phases: &'a [crate::metrics::PhaseSummary],
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
            .map(|r| EngineSummary {
                engine: &r.engine,
                settings: &r.settings,
                seam_accounting: r.seam_accounting,
                peak_rss_is_own: r.peak_rss_is_own,
                totals: &r.totals,
                phases: &r.phases,
            })
            .collect(),
    };
    let mut text = to_json(&summary, true)?;
    text.push('\n');
    Ok(text)
}
