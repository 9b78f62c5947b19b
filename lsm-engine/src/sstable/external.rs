//! Standalone access to table files (as RocksDB's `SstFileWriter` and `SstFileReader`): write a
//! table from sorted entries, open one and read it back. Used by tools and tests; the engine
//! itself uses the same builder and reader.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use engine_api::{Error, IoClass, Result, Storage};

use super::{BlockCache, BuildOptions, Props, Table, TableBuilder, TableIter};
use crate::iter::InternalIterator;
use crate::key::{self, Kind, MAX_SEQ};
use crate::memtable::Lookup;

/// How a standalone table is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SstOptions {
    /// Target data block size. Default: 4 KiB.
    pub block_bytes: usize,
    /// Entries between restart points. Default: 16.
    pub restart_interval: usize,
    /// Bloom filter bits per key; 0 for none. Default: 10.
    pub bloom_bits_per_key: u32,
}

impl Default for SstOptions {
    fn default() -> Self {
        SstOptions {
            block_bytes: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
        }
    }
}

/// One entry of a table: a version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstEntry {
    /// The user key.
    pub key: Bytes,
    /// The version's sequence number.
    pub seq: u64,
    /// The value, or `None` for a tombstone.
    pub value: Option<Bytes>,
}

/// A table's properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstInfo {
    /// File size in bytes.
    pub size: u64,
    /// Entries (versions), tombstones included.
    pub entries: u64,
    /// Tombstones.
    pub tombstones: u64,
    /// Data blocks.
    pub data_blocks: u64,
    /// Smallest and largest user keys (empty for an empty table).
    pub smallest_key: Vec<u8>,
    /// See `smallest_key`.
    pub largest_key: Vec<u8>,
    /// Smallest and largest sequence numbers.
    pub min_seq: u64,
    /// See `min_seq`.
    pub max_seq: u64,
}

fn info(size: u64, p: &Props) -> SstInfo {
    SstInfo {
        size,
        entries: p.entries,
        tombstones: p.tombstones,
        data_blocks: p.data_blocks,
        smallest_key: key::user_key(&p.smallest).to_vec(),
        largest_key: key::user_key(&p.largest).to_vec(),
        min_seq: p.min_seq,
        max_seq: p.max_seq,
    }
}

/// Writes one table file.
pub struct SstFileWriter {
    builder: TableBuilder,
    last: Option<Vec<u8>>,
}

impl SstFileWriter {
    /// Creates the file at `path` (which must not exist).
    ///
    /// # Errors
    /// I/O errors; [`Error::InvalidArgument`] for a zero block size or restart interval.
    pub fn create(storage: &dyn Storage, path: &Path, options: SstOptions) -> Result<Self> {
        if options.block_bytes == 0 || options.restart_interval == 0 {
            return Err(Error::invalid(
                "block size and restart interval must be positive",
            ));
        }
        let file = storage.create(path, IoClass::Other)?;
        let opts = BuildOptions {
            block_bytes: options.block_bytes,
            restart_interval: options.restart_interval,
            bloom_bits_per_key: options.bloom_bits_per_key,
        };
        Ok(SstFileWriter {
            builder: TableBuilder::new(file, opts),
            last: None,
        })
    }

    /// Adds a version: `value` `None` is a tombstone. Entries must come in ascending key order,
    /// and for one key in descending sequence order.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an out-of-order entry or a sequence number over 2^56 - 1;
    /// I/O errors.
    pub fn add(&mut self, key: &[u8], seq: u64, value: Option<&[u8]>) -> Result<()> {
        engine_api::check_key(key)?;
        if seq > MAX_SEQ {
            return Err(Error::invalid("sequence number over 2^56 - 1"));
        }
        let kind = if value.is_some() {
            Kind::Put
        } else {
            Kind::Delete
        };
        let ikey = key::encode(key, seq, kind);
        if let Some(last) = &self.last
            && key::compare(last, &ikey).is_ge()
        {
            return Err(Error::invalid("entries out of order"));
        }
        self.builder.add(&ikey, value.unwrap_or_default())?;
        self.last = Some(ikey);
        Ok(())
    }

    /// Writes the index, filter, properties and footer and syncs the file.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(self) -> Result<SstInfo> {
        let built = self.builder.finish()?;
        Ok(info(built.size, &built.props))
    }
}

/// Reads one table file. Every block is checked; damage is [`Error::Corruption`].
pub struct SstFileReader {
    table: Arc<Table>,
}

impl SstFileReader {
    /// Opens the table at `path`, reading and checking its footer, index, filter and
    /// properties.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the file and block; I/O errors.
    pub fn open(storage: &dyn Storage, path: &Path) -> Result<Self> {
        Self::open_cached(storage, path, 0)
    }

    /// As [`SstFileReader::open`], with a block cache of `cache_bytes` for data blocks (0: none).
    ///
    /// # Errors
    /// As [`SstFileReader::open`].
    pub fn open_cached(storage: &dyn Storage, path: &Path, cache_bytes: usize) -> Result<Self> {
        let cache = (cache_bytes > 0).then(|| Arc::new(BlockCache::new(cache_bytes)));
        let table = Table::open(storage, path, 0, IoClass::Other, cache)?;
        Ok(SstFileReader {
            table: Arc::new(table),
        })
    }

    /// The table's properties.
    pub fn info(&self) -> SstInfo {
        info(self.table.size(), self.table.props())
    }

    /// The newest version of `key` with a sequence number at most `seq`: `None` if the table
    /// has none, `Some(None)` for a tombstone.
    ///
    /// # Errors
    /// [`Error::Corruption`], I/O errors.
    pub fn get(&self, key: &[u8], seq: u64) -> Result<Option<Option<Bytes>>> {
        let (found, _) = self.table.get(key, seq)?;
        Ok(found.map(|l| match l {
            Lookup::Value(v) => Some(v),
            Lookup::Deleted => None,
        }))
    }

    /// Whether the bloom filter lets `key` through (false: it is certainly absent).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        !self.table.filter_excludes(key)
    }

    /// Bytes of the bloom filter.
    pub fn filter_bytes(&self) -> usize {
        self.table.filter_bytes()
    }

    /// Every entry in order.
    pub fn entries(&self) -> SstEntries {
        SstEntries {
            it: self.table.iter(),
            started: false,
            failed: false,
        }
    }
}

/// The iterator of [`SstFileReader::entries`]; after an error it ends.
pub struct SstEntries {
    it: TableIter,
    started: bool,
    failed: bool,
}

impl SstEntries {
    fn step(&mut self) -> Result<Option<SstEntry>> {
        if self.started {
            self.it.next()?;
        } else {
            self.it.seek_to_first()?;
            self.started = true;
        }
        if !self.it.valid() {
            return Ok(None);
        }
        let p = key::parse(self.it.key())
            .ok_or_else(|| Error::invalid("entry without an internal-key trailer"))?;
        Ok(Some(SstEntry {
            key: Bytes::copy_from_slice(p.user),
            seq: p.seq,
            value: (p.kind == Kind::Put).then(|| self.it.value()),
        }))
    }
}

impl Iterator for SstEntries {
    type Item = Result<SstEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(entry) => entry.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
