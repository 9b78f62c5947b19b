//! The one error type of the workspace.
//!
//! Callers branch on the variant: an [`Error::Io`] may go away on retry or with more disk space,
//! an [`Error::Corruption`] will not, [`Error::Poisoned`] means the handle must be dropped and the
//! directory reopened, and [`Error::InvalidArgument`] is a bug in the caller.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// `Result` with the workspace's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in an engine of this workspace.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    Io {
        /// What the engine was doing, such as `"append"` or `"sync"`.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the storage returned.
        source: io::Error,
    },
    /// Bytes on disk are not what the format allows: a checksum mismatch, a bad length, a bad
    /// magic number. Retrying will not help.
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged record or block within the file.
        offset: u64,
        /// What the reader expected to find there.
        expected: String,
    },
    /// The caller passed something the engine does not accept: an empty or oversized key, an
    /// oversized value or batch, a reversed range, a bad option.
    InvalidArgument(String),
    /// A sync failed earlier. The engine refuses all writes from then on and never retries the
    /// sync, because after a failed `fsync` the kernel may have dropped the dirty pages and a
    /// second `fsync` can report success for data that is gone. Reads are still served. Drop
    /// the engine and reopen the directory to recover from what is on disk. Also returned once
    /// a background job (an LSM compaction) has stopped on something it cannot retry, such as
    /// a damaged input: `cause` says which, and a reopen meets the same damage.
    Poisoned {
        /// The error that poisoned the engine, rendered as text.
        cause: String,
    },
    /// Another open engine (in this process or another) holds the directory's lock.
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The engine was opened read-only and a write was attempted.
    ReadOnly,
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corruption`].
    pub fn corruption(path: impl Into<PathBuf>, offset: u64, expected: impl Into<String>) -> Self {
        Error::Corruption {
            path: path.into(),
            offset,
            expected: expected.into(),
        }
    }

    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// True when the storage reported that the disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => {
                write!(f, "I/O error during {op} on {}: {source}", path.display())
            }
            Error::Corruption {
                path,
                offset,
                expected,
            } => write!(
                f,
                "corruption in {} at offset {offset}: expected {expected}",
                path.display()
            ),
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::Poisoned { cause } => write!(
                f,
                "engine is poisoned ({cause}); writes are refused, reopen to recover"
            ),
            Error::Locked { path } => write!(
                f,
                "directory is locked by another open engine (lock file {})",
                path.display()
            ),
            Error::ReadOnly => write!(f, "engine was opened read-only"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
