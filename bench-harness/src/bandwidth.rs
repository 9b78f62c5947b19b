//! How close an engine's sequential writes get to the device: a `fillseq` of 4 KiB values under
//! `--sync never`, in MB/s, beside the sequential-write bandwidth the harness measures itself on
//! the same directory, once through the page cache (a large buffered write and one `fsync`) and
//! once with direct I/O (`O_DIRECT`, where the file system allows it). And the reference for
//! synced writes: one writer's appends of a record, each followed by `fdatasync`, per second
//! ([`synced_appends`]).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};

/// Value size of the bandwidth fill.
pub const FILL_VALUE_SIZE: usize = 4096;
/// Bytes written by each measurement of the default suite.
pub const DEFAULT_BYTES: u64 = 256 << 20;
/// Bytes written by each measurement of `--quick`.
pub const QUICK_BYTES: u64 = 8 << 20;
/// Size of one write call of the device measurements (a multiple of every sector size).
const CHUNK: usize = 1 << 20;

/// One engine's bandwidth fill beside the device's own figures, measured one after the other
/// on the same directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Bytes each measurement wrote (user bytes for the engine).
    pub bytes: u64,
    /// The engine's `fillseq` of 4 KiB values plus one final `sync`, in MB/s (10^6 bytes) of
    /// user bytes.
    pub engine_mb_s: f64,
    /// Seconds of the engine's fill, and of its final sync.
    pub engine_fill_s: f64,
    /// Seconds of the engine's final sync.
    pub engine_sync_s: f64,
    /// The device through the page cache: one large buffered write and one `fsync`, in MB/s.
    pub buffered_mb_s: f64,
    /// The device with direct I/O, in MB/s, where the file system allowed it.
    pub direct_mb_s: Option<f64>,
    /// Why direct I/O could not be measured, if it could not.
    pub direct_error: Option<String>,
}

#[expect(clippy::cast_precision_loss, reason = "a rate")]
fn mb_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds.max(1e-9) / 1e6
}

/// Writes `bytes` to a new file in `dir` in 1 MiB calls, then syncs it once; the file is
/// removed. Returns MB/s.
///
/// # Errors
/// The file cannot be created, written or synced.
pub fn buffered_write(dir: &Path, bytes: u64) -> Result<f64> {
    let path = dir.join(".bench-bandwidth-buffered");
    let file = File::create(&path).map_err(|e| HarnessError::io("create", &path, e))?;
    let seconds = timed_writes(file, &path, bytes, &vec![0x5A; CHUNK]);
    let _ = std::fs::remove_file(&path);
    seconds.map(|s| mb_s(bytes, s))
}

/// As [`buffered_write`] with `O_DIRECT` (the page cache bypassed), from a 4 KiB-aligned
/// buffer. Returns MB/s.
///
/// # Errors
/// Why not: the platform has no `O_DIRECT` the harness knows, or the file system refused it
/// (tmpfs does).
pub fn direct_write(dir: &Path, bytes: u64) -> std::result::Result<f64, String> {
    let flag = o_direct().ok_or("direct I/O is not known to the harness on this platform")?;
    let path = dir.join(".bench-bandwidth-direct");
    let file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(flag)
            .open(&path)
            .map_err(|e| format!("O_DIRECT open refused: {e}"))?
    };
    // A buffer aligned to 4 KiB without `unsafe`: over-allocate, then start at the aligned
    // offset.
    let raw = vec![0x5Au8; CHUNK + 4096];
    let offset = raw.as_ptr().align_offset(4096).min(4096);
    let aligned = raw.get(offset..offset + CHUNK).unwrap_or_default();
    let seconds = timed_writes(file, &path, bytes, aligned);
    let _ = std::fs::remove_file(&path);
    seconds.map(|s| mb_s(bytes, s)).map_err(|e| e.to_string())
}

/// `O_DIRECT` on the Linux targets whose value the harness knows.
fn o_direct() -> Option<i32> {
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        Some(0o40000)
    } else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
        Some(0o200000)
    } else {
        None
    }
}

/// Writes `bytes` from `chunk` (whole chunks, rounded up), syncs once; seconds taken.
fn timed_writes(mut file: File, path: &Path, bytes: u64, chunk: &[u8]) -> Result<f64> {
    let started = Instant::now();
    let mut written = 0u64;
    while written < bytes {
        file.write_all(chunk)
            .map_err(|e| HarnessError::io("write", path, e))?;
        written += chunk.len() as u64;
    }
    file.sync_all()
        .map_err(|e| HarnessError::io("sync", path, e))?;
    Ok(started.elapsed().as_secs_f64())
}

/// How long each synced-append measurement runs (a phase under `--sync always` is followed by
/// one).
pub const SYNCED_APPEND_SECS: f64 = 1.0;

/// The device's rate of synced writes, the reference for an engine under `--sync always`: one
/// writer appending a record of the run's size to one file, then `fdatasync`, in a loop, on the
/// directory the engine ran in, right after the phase (so under the same neighbours).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SyncedAppends {
    /// Bytes of each record (the run's key plus value size).
    pub record_bytes: u64,
    /// Appends, each followed by its `fdatasync`.
    pub syncs: u64,
    /// Seconds they took.
    pub seconds: f64,
    /// Synced appends per second.
    pub per_sec: f64,
}

/// Appends `record_bytes` then `fdatasync`s, repeatedly, to a new file in `dir` for about
/// `seconds` (at least 10 times); the file is removed.
///
/// # Errors
/// The file cannot be created, written or synced.
pub fn synced_appends(dir: &Path, record_bytes: u64, seconds: f64) -> Result<SyncedAppends> {
    let path = dir.join(".bench-synced-appends");
    let mut file = File::create(&path).map_err(|e| HarnessError::io("create", &path, e))?;
    let record = vec![0x5A; usize::try_from(record_bytes.max(1)).unwrap_or(4096)];
    let started = Instant::now();
    let mut syncs = 0u64;
    let outcome = loop {
        let elapsed = started.elapsed().as_secs_f64();
        if syncs >= 10 && elapsed >= seconds {
            break Ok(elapsed);
        }
        if let Err(e) = file.write_all(&record).and_then(|()| file.sync_data()) {
            break Err(HarnessError::io("append and fdatasync", &path, e));
        }
        syncs += 1;
    };
    let _ = std::fs::remove_file(&path);
    let seconds = outcome?;
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let per_sec = syncs as f64 / seconds.max(1e-9);
    Ok(SyncedAppends {
        record_bytes,
        syncs,
        seconds,
        per_sec,
    })
}
