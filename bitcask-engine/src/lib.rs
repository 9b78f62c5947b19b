//! A crash-safe, concurrent Bitcask behind [`engine_api::Engine`].
//!
//! Writes append records to one active data file and point an in-memory hash index, the
//! *keydir*, at them; a `get` is one keydir lookup and one positional read. Data files are
//! sealed at `max_file_size` and never written again; a background merge rewrites the live
//! records of fragmented files and switches over at one atomic commit record.
//!
//! - **Records** carry a CRC32, a sequence number that totally orders writes, and an explicit
//!   kind (put, tombstone, batch member, batch end, seal): `docs/formats/bitcask-record.md`.
//! - **Recovery** keeps, per key, the record with the highest sequence number, so it never
//!   depends on which file has the highest id. Sealed files load from checksummed hint files
//!   (`docs/formats/bitcask-hint.md`) or by a scan; a torn tail of the active file is cut;
//!   damage anywhere else is [`engine_api::Error::Corruption`] unless [`BitcaskOptions::salvage`].
//! - **Merges** copy a record only while the keydir points at it, move keys by compare-and-set
//!   so concurrent writes win, keep tombstones that might still shadow an older record, and
//!   commit with one durable `MERGE-<id>` record: `docs/bitcask.md`.
//! - **Scans** are sorted and consistent, at the price of a walk of the whole keydir.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use bitcask_engine::{BitcaskEngine, BitcaskOptions};
//! use engine_api::{CommonOptions, Engine, KeyRange, SimStorage};
//!
//! # fn main() -> engine_api::Result<()> {
//! let options = BitcaskOptions {
//!     common: CommonOptions {
//!         storage: Arc::new(SimStorage::new()),
//!         ..CommonOptions::default()
//!     },
//!     max_file_size: 4096,
//!     ..BitcaskOptions::default()
//! };
//! let db = BitcaskEngine::open("/db", options.clone())?;
//! db.put(b"apple", b"red")?;
//! db.put(b"pear", b"green")?;
//! db.delete(b"apple")?;
//! assert_eq!(db.get(b"pear")?.as_deref(), Some(&b"green"[..]));
//! let summary = db.compact()?;
//! assert_eq!(summary.tombstones_dropped, 1);
//! drop(db);
//!
//! let db = BitcaskEngine::open("/db", options)?;
//! let keys: Vec<_> = db.scan(KeyRange::all())?.map(|r| r.map(|(k, _)| k)).collect::<Result<_, _>>()?;
//! assert_eq!(keys, vec![&b"pear"[..]]);
//! # Ok(())
//! # }
//! ```

mod datafile;
mod engine;
#[doc(hidden)]
pub mod fuzzing;
mod group;
mod hint;
mod keydir;
mod manifest;
mod merge;
mod options;
mod reader;
mod record;
mod recovery;
mod rewrite;
mod scan;
mod stats;
mod worker;
mod writer;

pub use engine::BitcaskEngine;
/// The merge policy's pure entry point, for simulators.
pub use merge::policy::simulate as merge_policy;
pub use options::{BitcaskOptions, MAX_FILE_SIZE_LIMIT, MIN_FILE_SIZE, MergeOptions};
pub use reader::Damage;
pub use recovery::RecoveryReport;
