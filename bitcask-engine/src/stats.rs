//! [`engine_api::Stats`] for a Bitcask.

use std::sync::atomic::Ordering;

use engine_api::Stats;

use crate::engine::{Inner, disk_usage};

/// A snapshot of the engine's counters and shape.
pub(crate) fn stats(inner: &Inner) -> Stats {
    let mut s = Stats::default();
    s.engine = "bitcask".to_string();
    s.user_bytes_written = inner.counters.user_bytes.load(Ordering::Relaxed);
    s.user_writes = inner.counters.user_writes.load(Ordering::Relaxed);
    s.io = inner.storage.counters().snapshot();
    {
        let merges = inner.counters.merges.lock();
        s.compactions = merges.summary.jobs;
        s.compaction_wall = merges.summary.duration;
        s.compaction_cpu = merges.cpu;
    }
    s.live_keys = inner.keydir.len() as u64;
    let (disk_bytes, file_count) = disk_usage(inner);
    s.disk_bytes = disk_bytes;
    s.file_count = file_count;
    s.index_memory_bytes = inner.keydir.memory_bytes() as u64;
    s.files = inner.files.read().values().map(|f| f.stats()).collect();
    s
}
