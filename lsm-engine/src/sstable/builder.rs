//! Writing a table: entries in internal-key order in, a synced SSTable out.
//! Spec: `docs/formats/sstable.md`.

use std::path::PathBuf;

use engine_api::{Result, WritableFile};

use super::block::BlockBuilder;
use super::bloom::{BloomBuilder, key_hash};
use super::footer::{BlockHandle, BlockKind, Footer, Props, block_trailer};
use crate::key::{self, Kind};

/// Appends are gathered into writes of about this size.
const WRITE_BUFFER: usize = 256 * 1024;

/// How tables are cut into blocks and filtered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BuildOptions {
    pub(crate) block_bytes: usize,
    pub(crate) restart_interval: usize,
    pub(crate) bloom_bits_per_key: u32,
}

/// Builds one table into a freshly created file.
pub(crate) struct TableBuilder {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    opts: BuildOptions,
    data: BlockBuilder,
    index: BlockBuilder,
    bloom: BloomBuilder,
    buffer: Vec<u8>,
    offset: u64,
    props: Props,
    last_user: Option<Vec<u8>>,
}

/// What a finished table holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BuiltTable {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) props: Props,
}

impl TableBuilder {
    pub(crate) fn new(file: Box<dyn WritableFile>, opts: BuildOptions) -> Self {
        TableBuilder {
            path: file.path().to_path_buf(),
            file,
            opts,
            data: BlockBuilder::new(opts.restart_interval),
            index: BlockBuilder::new(1),
            bloom: BloomBuilder::new(opts.bloom_bits_per_key),
            buffer: Vec::new(),
            offset: 0,
            props: Props {
                min_seq: u64::MAX,
                bloom_bits_per_key: opts.bloom_bits_per_key,
                ..Props::default()
            },
            last_user: None,
        }
    }

    /// Adds an entry. Keys must be valid internal keys in strictly increasing order.
    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        let parsed = key::parse(ikey).ok_or_else(|| {
            engine_api::Error::invalid("table builder: key without an internal-key trailer")
        })?;
        if self.last_user.as_deref() != Some(parsed.user) {
            self.bloom.add_hash(key_hash(parsed.user));
            // Reused, not reallocated: this runs once per entry of every flush and compaction.
            let last = self.last_user.get_or_insert_with(Vec::new);
            last.clear();
            last.extend_from_slice(parsed.user);
        }
        if self.props.entries == 0 {
            self.props.smallest = ikey.to_vec();
        }
        self.props.entries += 1;
        if parsed.kind == Kind::Delete {
            self.props.tombstones += 1;
        }
        self.props.min_seq = self.props.min_seq.min(parsed.seq);
        self.props.max_seq = self.props.max_seq.max(parsed.seq);
        self.props.raw_key_bytes += ikey.len() as u64;
        self.props.raw_value_bytes += value.len() as u64;
        self.data.add(ikey, value);
        if self.data.estimated_size() >= self.opts.block_bytes {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// The file size if finished now, roughly.
    pub(crate) fn estimated_size(&self) -> u64 {
        self.offset + self.buffer.len() as u64 + self.data.estimated_size() as u64
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let last = self.data.last_key().to_vec();
        let block = self.data.finish();
        let handle = self.write_block(&block, BlockKind::Data)?;
        let mut value = Vec::new();
        handle.encode_varint(&mut value);
        self.index.add(&last, &value);
        self.props.largest = last;
        self.props.data_blocks += 1;
        Ok(())
    }

    fn write_block(&mut self, block: &[u8], kind: BlockKind) -> Result<BlockHandle> {
        let handle = BlockHandle {
            offset: self.offset,
            size: block.len() as u64,
        };
        self.buffer.extend_from_slice(block);
        self.buffer.extend_from_slice(&block_trailer(block, kind));
        self.offset += (block.len() + super::footer::BLOCK_TRAILER) as u64;
        if self.buffer.len() >= WRITE_BUFFER {
            self.file.append(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(handle)
    }

    /// Writes the filter, properties, index and footer, then syncs the file. The caller makes
    /// the name durable (a directory sync) before relying on it.
    pub(crate) fn finish(mut self) -> Result<BuiltTable> {
        self.flush_data_block()?;
        if self.props.entries == 0 {
            self.props.min_seq = 0;
        }
        let filter = self.bloom.finish();
        let filter = self.write_block(&filter, BlockKind::Filter)?;
        let props = self.props.encode();
        let props = self.write_block(&props, BlockKind::Props)?;
        let index = self.index.finish();
        let index = self.write_block(&index, BlockKind::Index)?;
        let footer = Footer {
            filter,
            props,
            index,
        };
        self.buffer.extend_from_slice(&footer.encode());
        self.file.append(&self.buffer)?;
        self.file.sync()?;
        Ok(BuiltTable {
            size: self.file.len(),
            path: self.path,
            props: self.props,
        })
    }
}
