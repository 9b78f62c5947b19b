//! The contract every engine of this workspace implements, and the tools to hold engines to it.
//!
//! - [`Engine`]: the key-value interface (put, get, delete, atomic batches, ordered scans, sync,
//!   compact, stats). Host code holds engines as `Arc<dyn Engine>`.
//! - [`Error`]: one `#[non_exhaustive]` error that tells I/O from corruption from bad arguments
//!   from a poisoned engine from a locked directory.
//! - [`SyncPolicy`] and [`CommonOptions`]: the durability policy and storage every engine takes.
//! - [`Storage`]: the filesystem seam. [`OsStorage`] is the real one, [`SimStorage`] simulates
//!   power loss and faults in memory, [`CountingStorage`] measures I/O per [`IoClass`].
//! - [`Stats`]: what engines report, in one shape.
//! - [`GroupCommit`], [`Poison`], [`PeriodicTask`]: the durability building blocks both engines
//!   share.
//! - With the `testing` feature, `testing`: a conformance suite every engine runs, a
//!   `BTreeMap` model test with crash steps, and a small reference engine.
//!
//! # Example: what a power loss keeps
//!
//! ```
//! use std::path::Path;
//! use engine_api::{CrashMode, IoClass, SimStorage, Storage};
//!
//! # fn main() -> engine_api::Result<()> {
//! let sim = SimStorage::new();
//! let dir = Path::new("/db");
//! sim.create_dir_all(dir)?;
//! let log = sim.create(&dir.join("log"), IoClass::Log)?;
//! log.append(b"synced ")?;
//! log.sync()?;
//! sim.sync_dir(dir)?;
//! log.append(b"not synced")?;
//!
//! let after = sim.crash(CrashMode::DropUnsynced, 7);
//! let file = after.open(&dir.join("log"), IoClass::Recovery)?;
//! assert_eq!(file.read_all()?, b"synced ");
//! # Ok(())
//! # }
//! ```

mod durability;
mod engine;
mod error;
mod options;
mod stats;
mod storage;

#[cfg(feature = "testing")]
pub mod testing;

pub use durability::{
    GroupCommit, GroupCommitStats, PeriodicTask, Poison, in_periodic_task, thread_cpu_time,
};
pub use engine::{
    BatchOp, CompactionSummary, Engine, KeyRange, MAX_BATCH_BYTES, MAX_KEY_LEN, MAX_VALUE_LEN,
    ReadTrace, Scan, TraceStep, Value, WriteBatch, check_key, check_value,
};
pub use error::{Error, Result};
pub use options::{CommonOptions, SyncPolicy};
pub use stats::{ClassIo, FileStats, IoStats, LevelStats, StallCause, StallStats, Stats, ratio};
pub use storage::{
    CountingStorage, CrashMode, FaultOp, FileLock, IoCause, IoClass, IoCounters, LockMode,
    OsStorage, ReadableFile, SimStorage, Storage, WritableFile, atomic_replace, io_cause,
};

/// Re-exported so engines and hosts name one `Bytes` type.
pub use bytes::Bytes;
