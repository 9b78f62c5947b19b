//! Iterators over internal keys: the trait every source implements, the merging iterator, and
//! the user-facing iterator that applies a snapshot and hides shadowed versions and tombstones.

mod level;
mod merge;
mod user;

use bytes::Bytes;
use engine_api::Result;

pub(crate) use level::LevelIter;
pub(crate) use merge::MergingIter;
pub(crate) use user::UserIter;

/// A sorted source of internal-key entries (memtable, table, level). Positioned by `seek` or
/// `seek_to_first`; `key` and `value` are meaningful only while `valid`.
pub(crate) trait InternalIterator: Send {
    /// Whether the iterator is at an entry.
    fn valid(&self) -> bool;
    /// Moves to the first entry.
    fn seek_to_first(&mut self) -> Result<()>;
    /// Moves to the first entry at or after `target` in internal-key order.
    fn seek(&mut self, target: &[u8]) -> Result<()>;
    /// Moves to the next entry.
    fn next(&mut self) -> Result<()>;
    /// The current encoded internal key.
    fn key(&self) -> &[u8];
    /// The current value (a cheap reference-counted slice).
    fn value(&self) -> Bytes;
}

impl InternalIterator for Box<dyn InternalIterator> {
    fn valid(&self) -> bool {
        (**self).valid()
    }
    fn seek_to_first(&mut self) -> Result<()> {
        (**self).seek_to_first()
    }
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        (**self).seek(target)
    }
    fn next(&mut self) -> Result<()> {
        (**self).next()
    }
    fn key(&self) -> &[u8] {
        (**self).key()
    }
    fn value(&self) -> Bytes {
        (**self).value()
    }
}
