//! The report's tables as CSV (`compare --csv`, `diff --csv`), for spreadsheets and scripts:
//! the same rows as the Markdown tables, one file per table.

use super::table::{self, Table};
use crate::suite::SuiteResult;

/// One field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn line(cells: &[String]) -> String {
    let fields: Vec<String> = cells.iter().map(|c| field(c)).collect();
    fields.join(",") + "\n"
}

/// A table as CSV: the header line, then one line per row.
pub fn to_csv(table: &Table) -> String {
    let mut out = line(&table.header);
    for row in &table.rows {
        out.push_str(&line(row));
    }
    out
}

/// Every table of the report as `(file name, CSV)`: the headline, phases, whole-run totals,
/// read amplification, and one latency table per engine (`latency-<engine>.csv`).
pub fn report_tables(result: &SuiteResult) -> Vec<(String, String)> {
    let mut files = vec![
        ("headline.csv".to_string(), table::headline_table(result)),
        ("phases.csv".to_string(), table::phase_table(result)),
        ("totals.csv".to_string(), table::totals_table(result)),
        (
            "read-amplification.csv".to_string(),
            table::read_amp_table(result),
        ),
    ];
    for (run, repeats) in result.runs.iter().zip(result.engine_repeats()) {
        files.push((
            format!("latency-{}.csv", run.engine),
            table::latency_table(repeats),
        ));
    }
    files
        .into_iter()
        .map(|(name, t)| (name, to_csv(&t)))
        .collect()
}
