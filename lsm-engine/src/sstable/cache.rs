//! The block cache: a sharded CLOCK (second-chance) cache of parsed data blocks keyed by
//! (table number, block offset).
//!
//! Table numbers are never reused, so a key names one block forever and entries of deleted
//! tables simply age out. Each shard is a hash map plus a ring of its keys in insertion order.
//! A hit only sets the entry's reference bit (exact LRU would reorder a list on every hit, the
//! largest cost of a cached read in the profile, `docs/results/profiles/`); eviction takes keys
//! from the front of the ring and gives each referenced one a second chance at the back, as
//! RocksDB's clock cache does. The hash is one multiply of the two numbers rather than SipHash:
//! the keys are not chosen by users, so flooding is not a concern.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use parking_lot::Mutex;

use super::block::Block;

const SHARDS: usize = 16;
/// Bookkeeping charged per entry on top of the block's bytes.
const ENTRY_OVERHEAD: usize = 96;

type CacheKey = (u64, u64);

thread_local! {
    /// Blocks an insert evicted, handled once the shard's lock is released. Kept per thread so
    /// that the list allocates once.
    static EVICTED: Cell<Vec<Block>> = const { Cell::new(Vec::new()) };

    /// One evicted block's buffer that no reader still held, for this thread's next block read
    /// ([`read_buffer`]). With the cache full, every miss evicts about one block: a fresh,
    /// zeroed buffer per read and the evicted one's `free` (often into another thread's `malloc`
    /// arena) were ~13 % of a 4-thread readrandom's samples (`docs/results/profiles/`). At
    /// most one buffer per thread, outside the cache's charge.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest block whose buffer is kept as a spare: a block holding one large value would
/// otherwise stay allocated, uncharged, for as long as its thread lives.
const SPARE_MAX: usize = 64 << 10;

/// Keeps `block`'s buffer as this thread's spare if nothing else holds it.
fn keep_spare(block: Block) {
    if block.size() > SPARE_MAX {
        return;
    }
    if let Ok(data) = block.into_data().try_into_mut() {
        SPARE.set(Vec::from(data));
    }
}

/// A buffer of `len` bytes for a block read: this thread's spare when it fits (its contents
/// are stale, the read overwrites them), else a new one. A spare more than an eighth larger
/// is not used: the block would hold memory the cache does not charge it for.
pub(crate) fn read_buffer(len: usize) -> Vec<u8> {
    let mut buf = SPARE.take();
    if buf.capacity() < len || buf.capacity() > len.saturating_add(len / 8) {
        return vec![0; len];
    }
    buf.resize(len, 0);
    buf
}

/// A bounded cache of blocks.
#[derive(Debug)]
pub(crate) struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    shard_capacity: usize,
}

/// A cached block and its reference bit.
#[derive(Debug)]
struct Entry {
    block: Block,
    referenced: bool,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<CacheKey, Entry, BuildHasherDefault<KeyHasher>>,
    /// Every key of `map` once, oldest insertion first.
    ring: VecDeque<CacheKey>,
    used: usize,
}

/// Mixes the two numbers of a cache key (written as two `u64`s).
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Shard {
    /// Evicts unreferenced entries from the front of the ring until the shard fits; a
    /// referenced entry loses its bit and goes to the back instead.
    fn evict(&mut self, capacity: usize, evicted: &mut Vec<Block>) {
        while self.used > capacity {
            let Some(key) = self.ring.pop_front() else {
                break;
            };
            match self.map.get_mut(&key) {
                Some(e) if e.referenced => {
                    e.referenced = false;
                    self.ring.push_back(key);
                }
                Some(_) => {
                    if let Some(old) = self.map.remove(&key) {
                        self.used -= old.block.size() + ENTRY_OVERHEAD;
                        evicted.push(old.block);
                    }
                }
                None => {}
            }
        }
    }
}

impl BlockCache {
    /// A cache holding about `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: capacity / SHARDS,
        }
    }

    fn shard(&self, key: CacheKey) -> Option<&Mutex<Shard>> {
        let h = key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (key.1 >> 6);
        #[expect(clippy::cast_possible_truncation, reason = "modulo a small count")]
        let i = (h % SHARDS as u64) as usize;
        self.shards.get(i)
    }

    /// The cached block, marking it referenced.
    pub(crate) fn get(&self, table: u64, offset: u64) -> Option<Block> {
        let key = (table, offset);
        let mut shard = self.shard(key)?.lock();
        let e = shard.map.get_mut(&key)?;
        e.referenced = true;
        Some(e.block.clone())
    }

    /// Inserts a block, evicting entries beyond capacity (second chance for referenced ones).
    pub(crate) fn insert(&self, table: u64, offset: u64, block: Block) {
        let charge = block.size() + ENTRY_OVERHEAD;
        if charge > self.shard_capacity {
            return;
        }
        let key = (table, offset);
        let Some(shard) = self.shard(key) else {
            return;
        };
        let mut evicted = EVICTED.take();
        let mut shard = shard.lock();
        let entry = Entry {
            block,
            referenced: false,
        };
        match shard.map.insert(key, entry) {
            Some(old) => {
                shard.used -= old.block.size() + ENTRY_OVERHEAD;
                evicted.push(old.block);
            }
            None => shard.ring.push_back(key),
        }
        shard.used += charge;
        shard.evict(self.shard_capacity, &mut evicted);
        drop(shard);
        for block in evicted.drain(..) {
            keep_spare(block);
        }
        EVICTED.set(evicted);
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.shards.iter().map(|s| s.lock().used).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    fn block(n: usize) -> Block {
        let mut data = vec![0u8; n];
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        Block::parse(Bytes::from(data), Arc::from(Path::new("t")), 0).unwrap()
    }

    /// A block of `n + 8` bytes in a buffer of that capacity, as a block read makes.
    fn read_block_like(n: usize) -> Block {
        let mut data = Vec::with_capacity(n + 9);
        data.resize(n, 0);
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        Block::parse(Bytes::from(data), Arc::from(Path::new("t")), 0).unwrap()
    }

    #[test]
    fn a_block_nobody_holds_lends_its_buffer_to_the_next_read() {
        let b = read_block_like(1000);
        let at = b.clone().into_data().as_ptr();
        keep_spare(b);
        let buf = read_buffer(1008);
        assert_eq!((buf.as_ptr(), buf.len()), (at, 1008));
    }

    #[test]
    fn a_block_still_held_or_too_large_lends_nothing() {
        let b = read_block_like(1000);
        let held = b.clone().into_data();
        keep_spare(b);
        let buf = read_buffer(1008);
        assert_ne!(buf.as_ptr(), held.as_ptr());
        keep_spare(read_block_like(1000));
        let small = read_buffer(500);
        assert!(small.capacity() < 1000, "a 1 KB buffer for a 500 B block");
        keep_spare(read_block_like(SPARE_MAX + 1));
        let spare = SPARE.take();
        assert_eq!(
            spare.capacity(),
            0,
            "a block over SPARE_MAX kept as a spare"
        );
    }

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let cache = BlockCache::new(SHARDS * 3000);
        for i in 0..100u64 {
            cache.insert(1, i * 1000, block(1000));
            assert!(cache.used() <= SHARDS * 3000);
        }
        let kept = (0..100u64)
            .filter(|i| cache.get(1, i * 1000).is_some())
            .count();
        assert!(kept > 0 && kept < 100, "kept {kept}");
        assert!(
            cache.get(1, 99_000).is_some(),
            "the newest entry was evicted"
        );
    }

    #[test]
    fn a_block_read_since_it_was_cached_outlives_one_that_was_not() {
        let cache = BlockCache::new(SHARDS * 3000);
        // Table numbers chosen so that every key lands in shard 0 (offset 0: h = table * K).
        let same_shard: Vec<u64> = (1..10_000u64)
            .filter(|t| t.wrapping_mul(0x9e37_79b9_7f4a_7c15) % SHARDS as u64 == 0)
            .take(4)
            .collect();
        let [a, b, c, d] = same_shard[..] else {
            panic!("four tables in one shard");
        };
        cache.insert(a, 0, block(1000));
        cache.insert(b, 0, block(1000));
        assert!(cache.get(a, 0).is_some());
        cache.insert(c, 0, block(1000));
        cache.insert(d, 0, block(1000));
        assert!(
            cache.get(a, 0).is_some(),
            "the referenced block was evicted"
        );
        assert!(
            cache.get(b, 0).is_none(),
            "the unreferenced older block survived"
        );
        assert!(cache.used() <= SHARDS * 3000);
    }
}
