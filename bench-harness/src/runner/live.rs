//! [`LiveSet`]: which key ids hold a value right now, as the harness knows from acknowledged
//! writes. Its count is the denominator of space amplification, so SA never depends on an
//! engine's own (possibly estimated) key count.

use std::sync::atomic::{AtomicU64, Ordering};

/// A concurrent bitmap of live key ids with a running count.
#[derive(Debug, Default)]
pub struct LiveSet {
    words: Vec<AtomicU64>,
    count: AtomicU64,
}

impl LiveSet {
    /// An empty set able to hold ids `0..capacity`.
    pub fn new(capacity: u64) -> Self {
        let mut set = LiveSet::default();
        set.grow(capacity);
        set
    }

    /// Makes room for ids `0..capacity` (never shrinks).
    pub fn grow(&mut self, capacity: u64) {
        let words = usize::try_from(capacity.div_ceil(64)).unwrap_or(usize::MAX);
        if words > self.words.len() {
            self.words.resize_with(words, AtomicU64::default);
        }
    }

    fn slot(&self, id: u64) -> Option<(&AtomicU64, u64)> {
        let word = usize::try_from(id / 64).ok()?;
        Some((self.words.get(word)?, 1u64 << (id % 64)))
    }

    /// Marks `id` live (after an acknowledged put). Ids past the capacity are ignored.
    pub fn insert(&self, id: u64) {
        if let Some((word, bit)) = self.slot(id)
            && word.fetch_or(bit, Ordering::Relaxed) & bit == 0
        {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Marks `id` dead (after an acknowledged delete).
    pub fn remove(&self, id: u64) {
        if let Some((word, bit)) = self.slot(id)
            && word.fetch_and(!bit, Ordering::Relaxed) & bit != 0
        {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether `id` is live.
    pub fn contains(&self, id: u64) -> bool {
        self.slot(id)
            .is_some_and(|(word, bit)| word.load(Ordering::Relaxed) & bit != 0)
    }

    /// Live ids.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}
