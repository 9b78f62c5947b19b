//! Running each engine in a process of its own, with a cold page cache: so no engine inherits
//! another's allocator state, resident memory or cached file pages, and its peak RSS is its own.
//!
//! The parent (`compare`) starts `bench-harness compare … --engines NAME --child-result FILE`
//! once per engine run; the child runs the suite in-process against that one engine and writes
//! its [`EngineRun`] as JSON to `FILE`, which the parent reads back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::engines::EngineEntry;
use crate::error::{HarnessError, Result};
use crate::metrics::EngineRun;

/// How `compare` runs each engine.
#[derive(Clone, Debug, Default)]
pub enum Isolation {
    /// In this process, one engine after another (the library's default: tests, examples).
    #[default]
    InProcess,
    /// Each run in a child process: `program` with `args` (every suite option but the engines)
    /// plus `--engines NAME --child-result FILE`.
    Child {
        /// The harness binary.
        program: PathBuf,
        /// The options that shape the suite.
        args: Vec<String>,
    },
}

/// Whether the OS page cache is dropped before each engine run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PageCache {
    /// Left as it is (the library's default).
    #[default]
    Kept,
    /// Dropped before each engine run (Linux, root): every engine starts cold.
    Dropped,
}

/// Writes back dirty pages, then asks Linux to drop clean page-cache pages.
///
/// # Errors
/// Why it could not (not Linux, not root, no `/proc/sys/vm/drop_caches`).
pub fn drop_page_cache() -> std::result::Result<(), String> {
    // Dirty pages cannot be dropped: write them back first.
    let synced = Command::new("sync").status();
    if !synced.is_ok_and(|s| s.success()) {
        return Err("`sync` failed".to_string());
    }
    std::fs::write("/proc/sys/vm/drop_caches", "1")
        .map_err(|e| format!("cannot write /proc/sys/vm/drop_caches: {e}"))
}

/// Runs one engine through the suite in a child process and reads its result.
///
/// # Errors
/// The child could not start, failed (its own message is on stderr), or left no readable result.
pub fn run_in_child(
    program: &Path,
    args: &[String],
    entry: &EngineEntry,
    scratch: &Path,
) -> Result<EngineRun> {
    let file = tempfile::Builder::new()
        .prefix(&format!("bench-{}-result-", entry.name))
        .suffix(".json")
        .tempfile_in(scratch)
        .map_err(|e| HarnessError::io("create a result file in", scratch, e))?;
    let status = Command::new(program)
        .args(args)
        .args(["--engines", entry.name, "--child-result"])
        .arg(file.path())
        .stdin(Stdio::null())
        .status()
        .map_err(|e| HarnessError::io("start the harness as a child process:", program, e))?;
    if !status.success() {
        return Err(HarnessError::Report(format!(
            "the child process running {} failed ({status}); its error is above",
            entry.name
        )));
    }
    read_result(file.path())
}

fn read_result(path: &Path) -> Result<EngineRun> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HarnessError::io("read the child's result", path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| HarnessError::Report(format!("the child's result {}: {e}", path.display())))
}

/// The child's side: writes its one run where the parent asked (temp file, then rename, so the
/// parent never reads half a result).
///
/// # Errors
/// The run cannot be serialised or written.
pub fn write_result(run: &EngineRun, path: &Path) -> Result<()> {
    let text =
        serde_json::to_string(run).map_err(|e| HarnessError::Report(format!("JSON: {e}")))?;
    let temp = path.with_extension("partial");
    std::fs::write(&temp, text).map_err(|e| HarnessError::io("write", &temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| HarnessError::io("rename into", path, e))
}
