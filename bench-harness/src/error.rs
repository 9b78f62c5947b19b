//! [`HarnessError`]: what can stop a benchmark, split by who has to act on it.

use std::fmt;
use std::path::PathBuf;

/// `Result` with the harness's [`HarnessError`].
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// Everything that can stop the harness.
///
/// The binary maps [`HarnessError::InvalidInput`] to exit code 2 (the user asked for something
/// impossible; nothing was run) and everything else to exit code 1.
#[derive(Debug)]
#[non_exhaustive]
pub enum HarnessError {
    /// A bad option: an unknown workload or engine, zero keys, sizes out of range.
    InvalidInput(String),
    /// An engine failed (or answered wrongly) during a phase.
    Engine {
        /// The engine's name.
        engine: String,
        /// The phase that was running.
        phase: String,
        /// What went wrong.
        source: engine_api::Error,
    },
    /// An engine returned data the workload never wrote.
    WrongAnswer {
        /// The engine's name.
        engine: String,
        /// The phase that was running.
        phase: String,
        /// What the harness expected and what it got.
        detail: String,
    },
    /// A file or directory of the harness itself (output, temporary data) could not be used.
    Io {
        /// What the harness was doing.
        action: String,
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A report could not be rendered.
    Report(String),
}

impl HarnessError {
    /// Builds a [`HarnessError::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        HarnessError::InvalidInput(msg.into())
    }

    /// Builds a [`HarnessError::Io`].
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HarnessError::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }

    /// Whether the error is the user's input rather than a failure while running.
    pub fn is_input_error(&self) -> bool {
        matches!(self, HarnessError::InvalidInput(_))
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::InvalidInput(msg) => write!(f, "{msg}"),
            HarnessError::Engine {
                engine,
                phase,
                source,
            } => write!(f, "engine {engine} failed during phase {phase}: {source}"),
            HarnessError::WrongAnswer {
                engine,
                phase,
                detail,
            } => write!(
                f,
                "engine {engine} answered wrongly during phase {phase}: {detail}"
            ),
            HarnessError::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            HarnessError::Report(msg) => write!(f, "cannot render the report: {msg}"),
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Engine { source, .. } => Some(source),
            HarnessError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
