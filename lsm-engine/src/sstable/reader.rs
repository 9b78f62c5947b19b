//! Reading a table: footer, index, filter and properties at open; data blocks on demand, through
//! the block cache. Every block is checked (checksum, kind, bounds) before use, and any damage is
//! an [`Error::Corruption`] naming the file and the block's offset, never a panic.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use engine_api::{Error, IoClass, ReadableFile, Result, Storage};
use parking_lot::Mutex;

use super::block::{Block, BlockIter};
use super::bloom::{BloomFilter, key_hash};
use super::cache::{self, BlockCache};
use super::footer::{BLOCK_TRAILER, BlockHandle, BlockKind, FOOTER_LEN, Footer, Props, block_crc};
use crate::iter::InternalIterator;
use crate::key::{self, Kind, SeqNo};
use crate::memtable::Lookup;
use crate::obsolete::ObsoleteFiles;

thread_local! {
    /// A point read's key buffer, kept by its thread between probes: a fresh one per probe was
    /// a `malloc` and a `free` per table a get reads a block of.
    static KEY_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// An open table.
pub(crate) struct Table {
    number: u64,
    path: Arc<Path>,
    file: Box<dyn ReadableFile>,
    size: u64,
    index: Block,
    index_at: u64,
    filter: Option<BloomFilter>,
    props: Props,
    cache: Option<Arc<BlockCache>>,
    /// Set once a committed edit removed the table: the file goes when the table is dropped.
    obsolete: Mutex<Option<(Arc<ObsoleteFiles>, u64)>>,
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Some((queue, epoch)) = self.obsolete.get_mut().take() {
            queue.push(self.path.to_path_buf(), epoch);
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("number", &self.number)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// What one table lookup did, for `explain_get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeInfo {
    /// The bloom filter ruled the key out; no block was read.
    FilterSaysAbsent,
    /// The key sorts after the table's last block.
    PastLastBlock,
    /// A data block was consulted.
    Block {
        offset: u64,
        bytes: u64,
        cached: bool,
    },
}

impl Table {
    /// Opens table `number` at `path`, reading and checking its footer, index, filter and
    /// properties. Reads of `class` are counted as such; `cache` is used for data blocks.
    pub(crate) fn open(
        storage: &dyn Storage,
        path: &Path,
        number: u64,
        class: IoClass,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<Table> {
        let file = storage.open(path, class)?;
        let size = file.len()?;
        let path: Arc<Path> = Arc::from(path);
        let footer_at = size
            .checked_sub(FOOTER_LEN as u64)
            .ok_or_else(|| Error::corruption(&*path, 0, "a file long enough for a table footer"))?;
        let footer = file.read_vec(footer_at, FOOTER_LEN)?;
        let footer =
            Footer::decode(&footer).map_err(|what| Error::corruption(&*path, footer_at, what))?;
        let read = |h: BlockHandle, kind| read_block(&*file, &path, footer_at, h, kind);
        let index = Block::parse(
            read(footer.index, BlockKind::Index)?,
            path.clone(),
            footer.index.offset,
        )?;
        let filter = BloomFilter::parse(read(footer.filter, BlockKind::Filter)?).map_err(|()| {
            Error::corruption(&*path, footer.filter.offset, "a well-formed filter block")
        })?;
        let props = Props::decode(&read(footer.props, BlockKind::Props)?).ok_or_else(|| {
            Error::corruption(
                &*path,
                footer.props.offset,
                "a well-formed properties block",
            )
        })?;
        check_props(&props, &path, footer.props.offset)?;
        Ok(Table {
            number,
            path,
            file,
            size,
            index,
            index_at: footer.index.offset,
            filter,
            props,
            cache,
            obsolete: Mutex::new(None),
        })
    }

    /// Marks the table obsolete: its file is queued for removal when the last reference goes.
    /// Only call this after the edit removing it (manifest record `epoch`) is durable.
    pub(crate) fn mark_obsolete(&self, queue: &Arc<ObsoleteFiles>, epoch: u64) {
        *self.obsolete.lock() = Some((Arc::clone(queue), epoch));
    }

    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn props(&self) -> &Props {
        &self.props
    }

    /// Memory held for the index block and the filter.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.index.size() + self.filter.as_ref().map_or(0, BloomFilter::size)
    }

    /// Bytes of the filter alone.
    pub(crate) fn filter_bytes(&self) -> usize {
        self.filter.as_ref().map_or(0, BloomFilter::size)
    }

    /// Whether the filter rules the key out.
    pub(crate) fn filter_excludes(&self, user: &[u8]) -> bool {
        self.filter
            .as_ref()
            .is_some_and(|f| !f.may_contain(key_hash(user)))
    }

    /// A data block, from the cache if it is there; the flag says whether it was.
    fn data_block(&self, handle: BlockHandle) -> Result<(Block, bool)> {
        if let Some(block) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(self.number, handle.offset))
        {
            return Ok((block, true));
        }
        let data = read_block(
            &*self.file,
            &self.path,
            self.index_end(),
            handle,
            BlockKind::Data,
        )?;
        let block = Block::parse(data, self.path.clone(), handle.offset)?;
        if let Some(cache) = &self.cache {
            cache.insert(self.number, handle.offset, block.clone());
        }
        Ok((block, false))
    }

    /// Data blocks lie before the footer; bounding reads by it catches wild handles.
    fn index_end(&self) -> u64 {
        self.size.saturating_sub(FOOTER_LEN as u64)
    }

    fn handle_at(&self, index: &BlockIter) -> Result<BlockHandle> {
        BlockHandle::decode_varint(index.value_slice()).ok_or_else(|| {
            Error::corruption(
                &*self.path,
                self.index_offset(),
                "a block handle in the index block",
            )
        })
    }

    fn index_offset(&self) -> u64 {
        self.index_at
    }

    /// The newest version of `user` visible at `seq`, and what the probe cost.
    pub(crate) fn get(&self, user: &[u8], seq: SeqNo) -> Result<(Option<Lookup>, ProbeInfo)> {
        self.get_at(&key::seek_key(user, seq))
    }

    /// As [`Table::get`], for a read that built its seek key (a [`key::seek_key`]) once.
    pub(crate) fn get_at(&self, target: &[u8]) -> Result<(Option<Lookup>, ProbeInfo)> {
        let user = key::user_key(target);
        if self.filter_excludes(user) {
            return Ok((None, ProbeInfo::FilterSaysAbsent));
        }
        let mut index = self.index.iter_with_buffer(KEY_BUFFER.take());
        index.seek(target)?;
        if !index.valid() {
            KEY_BUFFER.set(index.into_key_buffer());
            return Ok((None, ProbeInfo::PastLastBlock));
        }
        let handle = self.handle_at(&index)?;
        let (block, cached) = self.data_block(handle)?;
        let mut it = block.iter_with_buffer(index.into_key_buffer());
        it.seek(target)?;
        let found = if it.valid() {
            key::parse(it.key())
                .filter(|p| p.user == user)
                .map(|p| match p.kind {
                    Kind::Put => Lookup::Value(it.value()),
                    Kind::Delete => Lookup::Deleted,
                })
        } else {
            None
        };
        KEY_BUFFER.set(it.into_key_buffer());
        let info = ProbeInfo::Block {
            offset: handle.offset,
            bytes: handle.size + BLOCK_TRAILER as u64,
            cached,
        };
        Ok((found, info))
    }

    /// The handles of every data block, in key order (for a salvage, which reads each block on
    /// its own so that one damaged block costs only its own entries).
    pub(crate) fn data_handles(&self) -> Result<Vec<BlockHandle>> {
        let mut index = self.index.iter();
        index.seek_to_first()?;
        let mut handles = Vec::new();
        while index.valid() {
            handles.push(self.handle_at(&index)?);
            index.next()?;
        }
        Ok(handles)
    }

    /// The data block at `handle`, read and checked (bounds, kind, checksum, entries).
    pub(crate) fn read_data_block(&self, handle: BlockHandle) -> Result<Block> {
        self.data_block(handle).map(|(block, _)| block)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// An iterator over every entry.
    pub(crate) fn iter(self: &Arc<Self>) -> TableIter {
        TableIter {
            index: self.index.iter(),
            data: None,
            table: Arc::clone(self),
        }
    }
}

/// Reads the block at `handle`, checks its bounds (it must end before `limit`), trailer kind and
/// checksum.
fn read_block(
    file: &dyn ReadableFile,
    path: &Path,
    limit: u64,
    handle: BlockHandle,
    kind: BlockKind,
) -> Result<Bytes> {
    let corrupt = |what: String| Error::corruption(path, handle.offset, what);
    let total = handle
        .size
        .checked_add(BLOCK_TRAILER as u64)
        .filter(|t| {
            handle
                .offset
                .checked_add(*t)
                .is_some_and(|end| end <= limit)
        })
        .ok_or_else(|| corrupt(format!("a {} handle inside the file", kind.name())))?;
    let total =
        usize::try_from(total).map_err(|_| corrupt("a block that fits in memory".into()))?;
    let mut buf = cache::read_buffer(total);
    file.read_exact_at(&mut buf, handle.offset)?;
    let split = total - BLOCK_TRAILER;
    // Read in place and cut off: `split_off` allocated a `Vec` for the five bytes per block read.
    let (stored_kind, crc) = match buf.get(split..) {
        Some(&[k, c0, c1, c2, c3]) => (k, u32::from_le_bytes([c0, c1, c2, c3])),
        _ => return Err(corrupt("a block trailer".into())),
    };
    buf.truncate(split);
    if block_crc(&buf, stored_kind) != crc {
        return Err(corrupt(format!(
            "a {} whose CRC-32 matches its bytes",
            kind.name()
        )));
    }
    if stored_kind != kind as u8 {
        return Err(corrupt(format!(
            "a {} (found block kind {stored_kind})",
            kind.name()
        )));
    }
    Ok(Bytes::from(buf))
}

fn check_props(props: &Props, path: &Path, offset: u64) -> Result<()> {
    let keys_ok = if props.entries == 0 {
        props.smallest.is_empty() && props.largest.is_empty()
    } else {
        key::parse(&props.smallest).is_some()
            && key::parse(&props.largest).is_some()
            && key::compare(&props.smallest, &props.largest) != std::cmp::Ordering::Greater
    };
    let seqs_ok = props.min_seq <= props.max_seq && props.max_seq <= key::MAX_SEQ;
    if !keys_ok || !seqs_ok || props.tombstones > props.entries {
        return Err(Error::corruption(
            path,
            offset,
            "consistent table properties",
        ));
    }
    Ok(())
}

/// A two-level iterator: the index block picks data blocks, read in turn.
pub(crate) struct TableIter {
    table: Arc<Table>,
    index: BlockIter,
    data: Option<BlockIter>,
}

impl TableIter {
    fn load_block(&mut self) -> Result<()> {
        self.data = None;
        if self.index.valid() {
            let handle = self.table.handle_at(&self.index)?;
            let (block, _) = self.table.data_block(handle)?;
            self.data = Some(block.iter());
        }
        Ok(())
    }

    /// Skips empty or exhausted blocks forward.
    fn settle(&mut self) -> Result<()> {
        while self.data.as_ref().is_some_and(|d| !d.valid()) {
            self.index.next()?;
            self.load_block()?;
            if let Some(d) = &mut self.data {
                d.seek_to_first()?;
            }
        }
        Ok(())
    }
}

impl InternalIterator for TableIter {
    fn valid(&self) -> bool {
        self.data.as_ref().is_some_and(BlockIter::valid)
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.index.seek_to_first()?;
        self.load_block()?;
        if let Some(d) = &mut self.data {
            d.seek_to_first()?;
        }
        self.settle()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.index.seek(target)?;
        self.load_block()?;
        if let Some(d) = &mut self.data {
            d.seek(target)?;
        }
        self.settle()
    }

    fn next(&mut self) -> Result<()> {
        if let Some(d) = &mut self.data {
            d.next()?;
        }
        self.settle()
    }

    fn key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], BlockIter::key)
    }

    fn value(&self) -> Bytes {
        self.data.as_ref().map_or_else(Bytes::new, BlockIter::value)
    }
}
