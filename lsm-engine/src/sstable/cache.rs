//! The block cache: a sharded LRU of parsed data blocks keyed by (table number, block offset).
//!
//! Table numbers are never reused, so a key names one block forever and entries of deleted
//! tables simply age out. Each shard is a hash map plus an ordered map from a use tick to the
//! key, which gives O(log n) LRU order without unsafe intrusive lists.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::block::Block;

const SHARDS: usize = 16;
/// Bookkeeping charged per entry on top of the block's bytes.
const ENTRY_OVERHEAD: usize = 96;

type CacheKey = (u64, u64);

/// A bounded LRU cache of blocks.
#[derive(Debug)]
pub(crate) struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    shard_capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<CacheKey, (Block, u64)>,
    lru: BTreeMap<u64, CacheKey>,
    used: usize,
    tick: u64,
}

impl BlockCache {
    /// A cache holding about `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: capacity / SHARDS,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: CacheKey) -> Option<&Mutex<Shard>> {
        let h = key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (key.1 >> 6);
        #[expect(clippy::cast_possible_truncation, reason = "modulo a small count")]
        let i = (h % SHARDS as u64) as usize;
        self.shards.get(i)
    }

    /// The cached block, marking it recently used.
    pub(crate) fn get(&self, table: u64, offset: u64) -> Option<Block> {
        let key = (table, offset);
        let mut shard = self.shard(key)?.lock();
        shard.tick += 1;
        let tick = shard.tick;
        let found = shard.map.get_mut(&key).map(|(block, used)| {
            let old = std::mem::replace(used, tick);
            (block.clone(), old)
        });
        match found {
            Some((block, old)) => {
                shard.lru.remove(&old);
                shard.lru.insert(tick, key);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(block)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Inserts a block, evicting the least recently used ones beyond capacity.
    pub(crate) fn insert(&self, table: u64, offset: u64, block: Block) {
        let charge = block.size() + ENTRY_OVERHEAD;
        if charge > self.shard_capacity {
            return;
        }
        let key = (table, offset);
        let Some(shard) = self.shard(key) else {
            return;
        };
        let mut shard = shard.lock();
        shard.tick += 1;
        let tick = shard.tick;
        if let Some((old, used)) = shard.map.insert(key, (block, tick)) {
            shard.lru.remove(&used);
            shard.used -= old.size() + ENTRY_OVERHEAD;
        }
        shard.lru.insert(tick, key);
        shard.used += charge;
        while shard.used > self.shard_capacity {
            let Some((_, victim)) = shard.lru.pop_first() else {
                break;
            };
            if let Some((old, _)) = shard.map.remove(&victim) {
                shard.used -= old.size() + ENTRY_OVERHEAD;
            }
        }
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
}
