//! A leveled LSM-tree storage engine implementing [`engine_api::Engine`].
//!
//! Writes go to a write-ahead log (one checksummed record per batch, group commit under the
//! shared [`engine_api::SyncPolicy`]) and then to a memtable. Full memtables are sealed and
//! flushed by a background thread into L0 SSTables (prefix-compressed blocks, an index block, a
//! cache-line-blocked bloom filter, properties and a checksummed footer), each flush committed
//! through one edit of an append-only manifest. Reads consult the memtables, then L0 newest
//! first, then one table per deeper level, each table's bloom filter before any of its blocks,
//! through a CLOCK block cache. Scans merge every source at one sequence number; [`Snapshot`]s
//! pin one. [`engine_api::Engine::compact`] runs a full compaction into the last level.
//!
//! Formats: `docs/formats/wal.md`, `docs/formats/sstable.md`, `docs/formats/manifest.md`.
//! Protocols (write path, flush, manifest rollover, compaction commit, recovery): `docs/lsm.md`.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use engine_api::{CommonOptions, Engine, KeyRange, SimStorage};
//! use lsm_engine::{LsmEngine, LsmOptions};
//!
//! # fn main() -> engine_api::Result<()> {
//! let options = LsmOptions {
//!     common: CommonOptions {
//!         storage: Arc::new(SimStorage::new()),
//!         ..CommonOptions::default()
//!     },
//!     memtable_bytes: 4096,
//!     ..LsmOptions::default()
//! };
//! let db = LsmEngine::open("/db", options)?;
//! db.put(b"apple", b"red")?;
//! db.put(b"pear", b"green")?;
//! let before = db.snapshot();
//! db.delete(b"apple")?;
//! db.compact()?;
//! assert_eq!(db.get(b"apple")?, None);
//! assert_eq!(db.get_at(&before, b"apple")?.as_deref(), Some(&b"red"[..]));
//! let keys: Vec<_> = db
//!     .scan(KeyRange::all())?
//!     .map(|kv| kv.map(|(k, _)| k))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(keys, vec![&b"pear"[..]]);
//! # Ok(())
//! # }
//! ```

mod coding;
mod compaction;
mod db;
mod filename;
mod flush;
#[doc(hidden)]
pub mod fuzzing;
mod iter;
mod key;
mod memtable;
mod obsolete;
mod op;
mod options;
mod recovery;
mod repair;
mod snapshot;
mod sstable;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;
mod version;
mod wal;

/// The compaction picker's pure entry point, for simulators.
pub use compaction::picker::policy as compaction_policy;
pub use compaction::{
    CompactionManager, CompactionOutput, CompactionTask, JobCounts, JobInfo, JobKind, KeySpan,
    OutputTable, ReservedRange, TaskInput, run_compaction,
};
pub use db::LsmEngine;
pub use options::LsmOptions;
pub use repair::{Damage, RecoveryReport};
pub use snapshot::Snapshot;
pub use sstable::{SstEntries, SstEntry, SstFileReader, SstFileWriter, SstInfo, SstOptions};
pub use stats::compaction_table;
