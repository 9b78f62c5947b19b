//! What the peer adapters share: user-traffic counters, error conversion, and chunked scans.

use std::fmt::Display;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// User traffic a peer has acknowledged, for its [`engine_api::Stats`].
#[derive(Debug, Default)]
pub(crate) struct UserCounters {
    bytes: AtomicU64,
    writes: AtomicU64,
}

impl UserCounters {
    pub(crate) fn add(&self, writes: u64, bytes: usize) {
        self.writes.fetch_add(writes, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn fill(&self, stats: &mut engine_api::Stats) {
        stats.user_writes = self.writes.load(Ordering::Relaxed);
        stats.user_bytes_written = self.bytes.load(Ordering::Relaxed);
    }
}

/// A peer's error as an [`engine_api::Error::Io`], keeping its message.
pub(crate) fn peer_error(op: &'static str, dir: &Path, e: impl Display) -> engine_api::Error {
    engine_api::Error::io(op, dir, std::io::Error::other(e.to_string()))
}

use std::collections::VecDeque;
use std::ops::Bound;

use engine_api::Value;

/// Reads up to `limit` pairs from `start` (to `end`) in key order.
pub(crate) type ChunkReader = Box<
    dyn FnMut(&Bound<Vec<u8>>, &Bound<Vec<u8>>, usize) -> engine_api::Result<Vec<(Value, Value)>>
        + Send,
>;

/// A scan over a store whose iterators cannot cross threads (`Engine::scan` must be `Send`):
/// reads in chunks, each through a fresh iterator starting after the last key returned. Chunks
/// start small (short scans stay cheap) and double up to 1024 entries. Unlike our engines'
/// scans, a chunked scan does not see one consistent view across chunks; the workloads never
/// write what a concurrent scan reads in a way that this changes.
pub(crate) struct ChunkedScan {
    read: ChunkReader,
    next: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    buffer: VecDeque<(Value, Value)>,
    chunk: usize,
    done: bool,
}

impl ChunkedScan {
    pub(crate) fn new(range: engine_api::KeyRange, read: ChunkReader) -> Self {
        ChunkedScan {
            read,
            next: range.start,
            end: range.end,
            buffer: VecDeque::new(),
            chunk: 16,
            done: false,
        }
    }

    fn refill(&mut self) -> engine_api::Result<()> {
        let pairs = (self.read)(&self.next, &self.end, self.chunk)?;
        if pairs.len() < self.chunk {
            self.done = true;
        }
        if let Some((last, _)) = pairs.last() {
            self.next = Bound::Excluded(last.to_vec());
        }
        self.buffer.extend(pairs);
        self.chunk = (self.chunk * 2).min(1024);
        Ok(())
    }
}

impl Iterator for ChunkedScan {
    type Item = engine_api::Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty()
            && !self.done
            && let Err(e) = self.refill()
        {
            self.done = true;
            return Some(Err(e));
        }
        self.buffer.pop_front().map(Ok)
    }
}
