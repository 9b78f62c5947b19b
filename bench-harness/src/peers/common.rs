//! What the peer adapters share: user-traffic counters, error conversion and settings lines.

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

/// One line of an engine's settings for the report.
pub(crate) fn setting(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// What a peer's `compact` reports: one job and its wall time (peers tell no more).
pub(crate) fn one_job(started: std::time::Instant) -> engine_api::CompactionSummary {
    let mut summary = engine_api::CompactionSummary::default();
    summary.jobs = 1;
    summary.duration = started.elapsed();
    summary
}

/// A peer's stats as far as the harness knows them: its name and the user traffic it took.
pub(crate) fn peer_stats(name: &str, counters: &UserCounters) -> engine_api::Stats {
    let mut stats = engine_api::Stats::default();
    stats.engine = name.to_string();
    counters.fill(&mut stats);
    stats
}
