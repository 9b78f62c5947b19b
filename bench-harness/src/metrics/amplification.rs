//! The amplification formulas, as pure functions of counters, so they can be checked on known
//! numbers. Definitions follow `shared/reference/bench.md` §2: write amplification is bytes
//! written to storage over bytes the user wrote; space amplification is bytes on disk over live
//! logical bytes; read amplification is storage reads per get.

use engine_api::{IoClass, IoStats, ratio};
use serde::{Deserialize, Serialize};

use super::process::ProcIo;

/// Write amplification over one stretch of a run, in every view the report shows.
///
/// Seam views come from [`engine_api::Stats::io`], counted below the engine by
/// [`engine_api::CountingStorage`]; process views from `/proc/self/io`, for engines without a
/// seam (the peers) and as a cross-check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteAmplification {
    /// The denominator: key and value bytes the workload put (a delete counts its key).
    pub user_bytes: u64,
    /// Every byte written through the seam, all classes, over user bytes.
    pub seam_total: f64,
    /// Bitcask, appends only: log bytes over user bytes.
    pub log: f64,
    /// Bitcask, appends + merge + hints: (log + compaction + hint) over user bytes.
    pub log_merge_hint: f64,
    /// LSM, RocksDB's `Sum` W-Amp: (flush + compaction) over flushed bytes; `None` before the
    /// first flush.
    pub flush_compaction_per_flush: Option<f64>,
    /// LSM, `benchmark.sh`'s view: (flush + compaction) over user bytes.
    pub flush_compaction: f64,
    /// LSM, the full view: (WAL + flush + compaction) over user bytes.
    pub wal_flush_compaction: f64,
    /// `/proc/self/io` `wchar` (bytes handed to write calls) over user bytes.
    pub proc_wchar: f64,
    /// `/proc/self/io` `write_bytes - cancelled_write_bytes` (bytes sent toward the device)
    /// over user bytes.
    pub proc_device: f64,
}

/// Computes every view of write amplification from seam and process counters that cover the
/// same stretch of time, and the user bytes written in it.
pub fn write_amplification(io: &IoStats, proc: &ProcIo, user_bytes: u64) -> WriteAmplification {
    let written = |classes: &[IoClass]| io.sum(classes).bytes_written;
    let flush = written(&[IoClass::Flush]);
    let flush_compaction = written(&[IoClass::Flush, IoClass::Compaction]);
    WriteAmplification {
        user_bytes,
        seam_total: ratio(io.total().bytes_written, user_bytes),
        log: ratio(written(&[IoClass::Log]), user_bytes),
        log_merge_hint: ratio(
            written(&[IoClass::Log, IoClass::Compaction, IoClass::Hint]),
            user_bytes,
        ),
        flush_compaction_per_flush: (flush > 0).then(|| ratio(flush_compaction, flush)),
        flush_compaction: ratio(flush_compaction, user_bytes),
        wal_flush_compaction: ratio(
            written(&[IoClass::Log, IoClass::Flush, IoClass::Compaction]),
            user_bytes,
        ),
        proc_wchar: ratio(proc.wchar, user_bytes),
        proc_device: ratio(proc.device_write_bytes(), user_bytes),
    }
}

/// Space amplification: bytes on disk over live logical bytes (`live_keys` × record size), or 0
/// with nothing live. The denominator counts live data only, never every byte ever written.
pub fn space_amplification(disk_bytes: u64, live_keys: u64, record_bytes: u64) -> f64 {
    ratio(disk_bytes, live_keys.saturating_mul(record_bytes))
}

/// Read amplification of a stretch of gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadAmplification {
    /// Gets issued (hits and misses; a read-modify-write counts one).
    pub gets: u64,
    /// Storage reads through the seam (`UserRead` class) per get.
    pub seam_reads_per_get: f64,
    /// Bytes those reads returned, per get.
    pub seam_bytes_per_get: f64,
    /// `/proc/self/io` `read_bytes` (fetched from the device, not the page cache) per get.
    pub device_bytes_per_get: f64,
}

/// Read amplification from the seam's `UserRead` counters and the process's device reads over
/// the same stretch as `gets`.
pub fn read_amplification(io: &IoStats, proc: &ProcIo, gets: u64) -> ReadAmplification {
    let reads = io.class(IoClass::UserRead);
    ReadAmplification {
        gets,
        seam_reads_per_get: ratio(reads.reads, gets),
        seam_bytes_per_get: ratio(reads.bytes_read, gets),
        device_bytes_per_get: ratio(proc.read_bytes, gets),
    }
}
