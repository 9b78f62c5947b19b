//! Reports of a suite: a terminal table ([`table`]), JSON lines and a JSON summary ([`json`]), a
//! Markdown report ([`markdown`]) and SVG charts ([`charts`]); the tables as CSV ([`csv`]); and
//! the comparison of two runs' summaries ([`diff`]).
//!
//! [`write_report`] renders every file in memory first and only then writes them, each through
//! a temporary name and a rename, so a failure never leaves a half-written report behind.

pub mod charts;
pub mod csv;
pub mod diff;
pub mod json;
pub mod markdown;
pub mod rum;
pub mod spread;
pub mod table;
pub mod timeline;

use std::path::{Path, PathBuf};

use crate::error::{HarnessError, Result};
use crate::suite::SuiteResult;

/// The files of a report, by name.
pub const FILES: [&str; 11] = [
    "report.md",
    "summary.json",
    "intervals.jsonl",
    "throughput.svg",
    "write-amplification.svg",
    "disk-size.svg",
    "comparison.svg",
    "amplification.svg",
    "latency.svg",
    "space-amplification.svg",
    "rum.svg",
];

/// Renders every file of the report: `(file name, contents)`, in [`FILES`] order.
///
/// # Errors
/// [`HarnessError::Report`] if a chart or a JSON document cannot be rendered.
pub fn render(result: &SuiteResult) -> Result<Vec<(&'static str, String)>> {
    let [
        md,
        summary,
        intervals,
        tput,
        wa,
        disk,
        cmp,
        amp,
        lat,
        sa,
        rum_svg,
    ] = FILES;
    Ok(vec![
        (md, markdown::report(result)),
        (summary, json::summary_json(result)?),
        (intervals, json::intervals_jsonl(result)?),
        (tput, charts::throughput(result)?),
        (wa, charts::write_amplification(result)?),
        (disk, charts::disk_size(result)?),
        (cmp, charts::comparison(result)?),
        (amp, charts::amplification(result)?),
        (lat, charts::latency(result)?),
        (sa, charts::space_amplification(result)?),
        (rum_svg, rum::chart(&json::summary_json(result)?)?),
    ])
}

/// Creates `dir` if needed and checks that files can be created in it, before anything runs.
///
/// # Errors
/// [`HarnessError::InvalidInput`] naming the directory and the operating system's reason.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    let probe = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let file = tempfile::NamedTempFile::new_in(dir)?;
        file.close()
    };
    probe().map_err(|e| {
        HarnessError::invalid(format!(
            "output directory {} is not writable: {e}",
            dir.display()
        ))
    })
}

/// Renders the report and writes it into `dir`, replacing any earlier report there. Returns the
/// paths written.
///
/// # Errors
/// [`HarnessError::Report`] if rendering fails (nothing is written then); [`HarnessError::Io`]
/// if writing fails (temporary files are removed).
pub fn write_report(result: &SuiteResult, dir: &Path) -> Result<Vec<PathBuf>> {
    let files = render(result)?;
    write_files(dir, &files)
}

/// Writes `(file name, contents)` pairs into `dir`: every file to a temporary name first, then
/// each renamed into place, so a failed write leaves none of them half-written.
///
/// # Errors
/// [`HarnessError::Io`] if writing fails (temporary files are removed).
pub fn write_files(dir: &Path, files: &[(impl AsRef<str>, String)]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| HarnessError::io("create", dir, e))?;
    let mut staged = Vec::new();
    for (name, contents) in files {
        let name = name.as_ref();
        let tmp = dir.join(format!(".{name}.tmp"));
        if let Err(e) = std::fs::write(&tmp, contents) {
            for (path, _) in &staged {
                let _ = std::fs::remove_file(path);
            }
            let _ = std::fs::remove_file(&tmp);
            return Err(HarnessError::io("write", tmp, e));
        }
        staged.push((tmp, dir.join(name)));
    }
    let mut written = Vec::new();
    for (tmp, path) in staged {
        std::fs::rename(&tmp, &path).map_err(|e| HarnessError::io("rename into", &path, e))?;
        written.push(path);
    }
    Ok(written)
}
