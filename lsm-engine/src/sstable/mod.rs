//! Sorted string tables: immutable files of sorted internal-key entries in checksummed blocks,
//! with an index block, a bloom filter, properties and a footer.
//! Spec: `docs/formats/sstable.md`.

pub(crate) mod block;
pub(crate) mod bloom;
mod builder;
pub(crate) mod cache;
mod external;
pub(crate) mod footer;
mod reader;

pub(crate) use builder::{BuildOptions, TableBuilder};
pub(crate) use cache::BlockCache;
pub use external::{SstEntries, SstEntry, SstFileReader, SstFileWriter, SstInfo, SstOptions};
pub(crate) use footer::Props;
pub(crate) use reader::{ProbeInfo, Table, TableIter};
