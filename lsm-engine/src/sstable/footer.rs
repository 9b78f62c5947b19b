//! Block handles, block trailers, the properties block and the footer.
//! Spec: `docs/formats/sstable.md`.
//!
//! ```text
//! block trailer = kind (u8) | crc32 (u32 LE over block bytes and kind)
//! footer (64)   = filter handle | props handle | index handle   (offset u64 LE, size u64 LE each)
//!                 | format_version (u32 LE) | crc32 (u32 LE over the 52 bytes before it)
//!                 | magic (u64 LE)
//! ```

use crate::coding::{Reader, put_bytes, put_varint};

/// Bytes after every block.
pub(crate) const BLOCK_TRAILER: usize = 5;
/// Bytes of the footer.
pub(crate) const FOOTER_LEN: usize = 64;
/// The footer's magic number ("LSMTABLE" as a little-endian u64 of its ASCII bytes).
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"LSMTABLE");
/// The one format version written and read.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// What a block holds; checked on read so a misplaced block is caught. DO NOT CHANGE: on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockKind {
    Data = 1,
    Index = 2,
    Filter = 3,
    Props = 4,
}

impl BlockKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BlockKind::Data => "data block",
            BlockKind::Index => "index block",
            BlockKind::Filter => "filter block",
            BlockKind::Props => "properties block",
        }
    }
}

/// Where a block lives: offset and size (without its trailer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct BlockHandle {
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

impl BlockHandle {
    /// The varint form used as an index-block value.
    pub(crate) fn encode_varint(self, out: &mut Vec<u8>) {
        put_varint(out, self.offset);
        put_varint(out, self.size);
    }

    pub(crate) fn decode_varint(bytes: &[u8]) -> Option<BlockHandle> {
        let mut r = Reader::new(bytes);
        let h = BlockHandle {
            offset: r.varint()?,
            size: r.varint()?,
        };
        r.is_empty().then_some(h)
    }
}

/// The trailer of a block of `kind` holding `data`.
pub(crate) fn block_trailer(data: &[u8], kind: BlockKind) -> [u8; BLOCK_TRAILER] {
    let crc = block_crc(data, kind as u8);
    let c = crc.to_le_bytes();
    [kind as u8, c[0], c[1], c[2], c[3]]
}

pub(crate) fn block_crc(data: &[u8], kind: u8) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h.update(&[kind]);
    h.finalize()
}

/// The fixed-size footer at the end of every table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) filter: BlockHandle,
    pub(crate) props: BlockHandle,
    pub(crate) index: BlockHandle,
}

impl Footer {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FOOTER_LEN);
        for h in [self.filter, self.props, self.index] {
            out.extend_from_slice(&h.offset.to_le_bytes());
            out.extend_from_slice(&h.size.to_le_bytes());
        }
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out
    }

    /// Decodes a footer; `Err` says what was wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Footer, &'static str> {
        let mut r = Reader::new(bytes);
        let mut handle = || -> Option<BlockHandle> {
            Some(BlockHandle {
                offset: r.u64()?,
                size: r.u64()?,
            })
        };
        let short = "a 64-byte footer";
        let (filter, props, index) = (
            handle().ok_or(short)?,
            handle().ok_or(short)?,
            handle().ok_or(short)?,
        );
        let version = r.u32().ok_or(short)?;
        let crc = r.u32().ok_or(short)?;
        let magic = r.u64().ok_or(short)?;
        if magic != MAGIC {
            return Err("the table magic number in the footer");
        }
        if crc32fast::hash(bytes.get(..52).unwrap_or_default()) != crc {
            return Err("a footer whose CRC-32 matches its bytes");
        }
        if version != FORMAT_VERSION {
            return Err("table format version 1");
        }
        Ok(Footer {
            filter,
            props,
            index,
        })
    }
}

/// Table properties: key and sequence ranges and counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Props {
    /// Smallest and largest internal keys (empty for an empty table).
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
    pub(crate) min_seq: u64,
    pub(crate) max_seq: u64,
    pub(crate) entries: u64,
    pub(crate) tombstones: u64,
    pub(crate) data_blocks: u64,
    pub(crate) raw_key_bytes: u64,
    pub(crate) raw_value_bytes: u64,
    pub(crate) bloom_bits_per_key: u32,
}

impl Props {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, &self.smallest);
        put_bytes(&mut out, &self.largest);
        for v in [
            self.min_seq,
            self.max_seq,
            self.entries,
            self.tombstones,
            self.data_blocks,
            self.raw_key_bytes,
            self.raw_value_bytes,
            u64::from(self.bloom_bits_per_key),
        ] {
            put_varint(&mut out, v);
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Props> {
        let mut r = Reader::new(bytes);
        let p = Props {
            smallest: r.bytes()?.to_vec(),
            largest: r.bytes()?.to_vec(),
            min_seq: r.varint()?,
            max_seq: r.varint()?,
            entries: r.varint()?,
            tombstones: r.varint()?,
            data_blocks: r.varint()?,
            raw_key_bytes: r.varint()?,
            raw_value_bytes: r.varint()?,
            bloom_bits_per_key: u32::try_from(r.varint()?).ok()?,
        };
        r.is_empty().then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trips_and_checks() {
        let f = Footer {
            filter: BlockHandle { offset: 1, size: 2 },
            props: BlockHandle { offset: 3, size: 4 },
            index: BlockHandle { offset: 5, size: 6 },
        };
        let bytes = f.encode();
        assert_eq!(bytes.len(), FOOTER_LEN);
        assert_eq!(Footer::decode(&bytes), Ok(f));
        for i in 0..FOOTER_LEN {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(Footer::decode(&bad).is_err(), "flip at {i} undetected");
        }
    }
}
