//! Blocks of sorted entries with prefix-compressed keys and restart points (data and index
//! blocks). Spec: `docs/formats/sstable.md` ("Data and index blocks").
//!
//! ```text
//! entry    = shared (varint) | unshared (varint) | value_len (varint) | key[shared..] | value
//! block    = entry* | restart (u32 LE)* | num_restarts (u32 LE)
//! ```
//! A restart entry stores its whole key (`shared = 0`); seeks binary-search the restarts.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use engine_api::{Error, Result};

use crate::coding::{Reader, put_varint, u32_at, u32_of};
use crate::key;

/// Builds one block.
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    since_restart: usize,
    interval: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    pub(crate) fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            since_restart: 0,
            interval: restart_interval.max(1),
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Adds an entry; keys must arrive in strictly increasing internal-key order.
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        let shared = if self.since_restart < self.interval {
            common_prefix(&self.last_key, key)
        } else {
            self.restarts.push(u32_of(self.buf.len()));
            self.since_restart = 0;
            0
        };
        let unshared = key.get(shared..).unwrap_or_default();
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, unshared.len() as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(unshared);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.since_restart += 1;
        self.entries += 1;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The size the block would have if finished now.
    pub(crate) fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// The encoded block; the builder is reset for the next one.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        // The next block starts at this one's size: one allocation per block, not a doubling
        // series of them.
        let next = Vec::with_capacity(self.buf.capacity());
        let mut out = std::mem::replace(&mut self.buf, next);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&u32_of(self.restarts.len()).to_le_bytes());
        self.restarts.clear();
        self.restarts.push(0);
        self.since_restart = 0;
        self.entries = 0;
        self.last_key.clear();
        out
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A parsed, immutable block. Cloning is cheap (reference-counted bytes).
#[derive(Clone, Debug)]
pub(crate) struct Block {
    data: Bytes,
    restarts_at: usize,
    num_restarts: usize,
    /// The file and offset the block came from, for corruption errors.
    path: Arc<Path>,
    offset: u64,
}

impl Block {
    /// Parses a block's restart array; the entries are checked as they are read.
    pub(crate) fn parse(data: Bytes, path: Arc<Path>, offset: u64) -> Result<Block> {
        let bad = || Error::corruption(&*path, offset, "a block with a valid restart array");
        let len = data.len();
        let count_at = len.checked_sub(4).ok_or_else(bad)?;
        let num = usize::try_from(u32_at(&data, count_at).ok_or_else(bad)?).map_err(|_| bad())?;
        let restarts_at = num
            .checked_mul(4)
            .and_then(|r| count_at.checked_sub(r))
            .ok_or_else(bad)?;
        if num == 0 {
            return Err(bad());
        }
        Ok(Block {
            data,
            restarts_at,
            num_restarts: num,
            path,
            offset,
        })
    }

    /// Bytes held.
    pub(crate) fn size(&self) -> usize {
        self.data.len()
    }

    /// The block's bytes (for the block cache to reuse an evicted block's buffer).
    pub(crate) fn into_data(self) -> Bytes {
        self.data
    }

    fn corrupt(&self, what: &str) -> Error {
        Error::corruption(&*self.path, self.offset, what)
    }

    fn restart(&self, i: usize) -> Result<usize> {
        let at = self.restarts_at + 4 * i;
        let r = u32_at(&self.data, at).ok_or_else(|| self.corrupt("a restart offset"))?;
        let r = usize::try_from(r).map_err(|_| self.corrupt("a restart offset"))?;
        if r >= self.restarts_at && !(r == 0 && self.restarts_at == 0) {
            return Err(self.corrupt("a restart offset inside the entries"));
        }
        Ok(r)
    }

    /// The key of the entry at restart `i`, read in place: a restart entry stores its whole key
    /// (`shared = 0`), so a seek's binary search needs neither a copy nor a full decode. The key
    /// is not checked as an internal key here; the entry a seek lands on is, by `decode`.
    fn restart_key(&self, i: usize) -> Result<&[u8]> {
        let bad = || self.corrupt("a well-formed restart entry");
        let entries = self.data.get(..self.restarts_at).unwrap_or_default();
        let mut r = Reader::new(entries.get(self.restart(i)?..).ok_or_else(bad)?);
        let shared = r.varint_usize().ok_or_else(bad)?;
        let unshared = r.varint_usize().ok_or_else(bad)?;
        r.varint_usize().ok_or_else(bad)?;
        if shared != 0 {
            return Err(bad());
        }
        r.take(unshared).ok_or_else(bad)
    }

    pub(crate) fn iter(&self) -> BlockIter {
        self.iter_with_buffer(Vec::new())
    }

    /// An iterator that keeps its current key in `key` (whose contents are dropped): a point
    /// read hands the index iterator's buffer on to the data block's iterator.
    pub(crate) fn iter_with_buffer(&self, mut key: Vec<u8>) -> BlockIter {
        key.clear();
        BlockIter {
            block: self.clone(),
            current: self.restarts_at,
            next: self.restarts_at,
            key,
            value: (0, 0),
        }
    }
}

/// An iterator over one block's entries.
pub(crate) struct BlockIter {
    block: Block,
    /// Offset of the current entry; `restarts_at` when not valid.
    current: usize,
    next: usize,
    key: Vec<u8>,
    value: (usize, usize),
}

impl BlockIter {
    pub(crate) fn valid(&self) -> bool {
        self.current < self.block.restarts_at
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    /// The key buffer, for [`Block::iter_with_buffer`].
    pub(crate) fn into_key_buffer(self) -> Vec<u8> {
        self.key
    }

    pub(crate) fn value(&self) -> Bytes {
        self.block.data.slice(self.value.0..self.value.1)
    }

    /// The value without a reference-count increment.
    pub(crate) fn value_slice(&self) -> &[u8] {
        self.block
            .data
            .get(self.value.0..self.value.1)
            .unwrap_or_default()
    }

    /// Decodes the entry at `at` (the key so far is the previous entry's key).
    fn decode(&mut self, at: usize) -> Result<()> {
        if at >= self.block.restarts_at {
            self.current = self.block.restarts_at;
            return Ok(());
        }
        let entries = self
            .block
            .data
            .get(..self.block.restarts_at)
            .unwrap_or_default();
        let bad = || self.block.corrupt("a well-formed block entry");
        let mut r = Reader::new(entries.get(at..).ok_or_else(bad)?);
        let shared = r.varint_usize().ok_or_else(bad)?;
        let unshared = r.varint_usize().ok_or_else(bad)?;
        let vlen = r.varint_usize().ok_or_else(bad)?;
        if shared > self.key.len() {
            return Err(bad());
        }
        let suffix = r.take(unshared).ok_or_else(bad)?;
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        let value_at = at + r.pos();
        r.take(vlen).ok_or_else(bad)?;
        if key::parse(&self.key).is_none() {
            return Err(self.block.corrupt("an internal key with a valid trailer"));
        }
        self.current = at;
        self.value = (value_at, value_at + vlen);
        self.next = value_at + vlen;
        Ok(())
    }

    pub(crate) fn seek_to_first(&mut self) -> Result<()> {
        self.key.clear();
        self.decode(0)
    }

    pub(crate) fn next(&mut self) -> Result<()> {
        if !self.valid() {
            return Ok(());
        }
        self.decode(self.next)
    }

    /// Moves to the first entry whose key is at or after `target` (internal-key order).
    pub(crate) fn seek(&mut self, target: &[u8]) -> Result<()> {
        // The last restart point whose key is before the target.
        let (mut lo, mut hi) = (0usize, self.block.num_restarts);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if key::compare(self.block.restart_key(mid)?, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.key.clear();
        self.decode(self.block.restart(lo)?)?;
        while self.valid() && key::compare(&self.key, target) == Ordering::Less {
            self.next()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Kind, encode};

    fn build(n: u32, interval: usize) -> Block {
        let mut b = BlockBuilder::new(interval);
        for i in 0..n {
            b.add(
                &encode(format!("key{i:05}").as_bytes(), 7, Kind::Put),
                b"value",
            );
        }
        Block::parse(Bytes::from(b.finish()), Arc::from(Path::new("t")), 0).unwrap()
    }

    #[test]
    fn seek_finds_every_key_and_the_gaps() {
        for interval in [1, 2, 16] {
            let block = build(100, interval);
            let mut it = block.iter();
            for i in 0..100u32 {
                it.seek(&key::seek_key(format!("key{i:05}").as_bytes(), 100))
                    .unwrap();
                assert!(it.valid());
                assert_eq!(key::user_key(it.key()), format!("key{i:05}").as_bytes());
                assert_eq!(it.value_slice(), b"value");
            }
            it.seek(&key::seek_key(b"key00050x", 100)).unwrap();
            assert_eq!(key::user_key(it.key()), b"key00051");
            it.seek(&key::seek_key(b"zzz", 100)).unwrap();
            assert!(!it.valid());
            it.seek_to_first().unwrap();
            let mut n = 0;
            while it.valid() {
                n += 1;
                it.next().unwrap();
            }
            assert_eq!(n, 100);
        }
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let good = {
            let mut b = BlockBuilder::new(4);
            for i in 0..20u32 {
                b.add(&encode(format!("k{i:03}").as_bytes(), 1, Kind::Put), b"v");
            }
            b.finish()
        };
        for i in 0..good.len() {
            for flip in [1u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                let Ok(block) = Block::parse(Bytes::from(bad), Arc::from(Path::new("t")), 0) else {
                    continue;
                };
                let mut it = block.iter();
                let _ = it.seek(&key::seek_key(b"k010", 5));
                if it.seek_to_first().is_ok() {
                    for _ in 0..40 {
                        if it.next().is_err() || !it.valid() {
                            break;
                        }
                    }
                }
            }
        }
    }
}
