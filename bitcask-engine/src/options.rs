//! [`BitcaskOptions`] and [`MergeOptions`].

use std::time::Duration;

use engine_api::{CommonOptions, Error, Result};

/// Largest accepted `max_file_size`: record offsets are stored in 32 bits, and a file may
/// overshoot its limit by one batch.
pub const MAX_FILE_SIZE_LIMIT: u64 = 1 << 30;

/// Smallest accepted `max_file_size` (tests use tiny files to rotate and merge constantly).
pub const MIN_FILE_SIZE: u64 = 64;

/// Options of a [`crate::BitcaskEngine`].
#[derive(Clone, Debug)]
pub struct BitcaskOptions {
    /// Sync policy, storage, create-if-missing and read-only.
    pub common: CommonOptions,
    /// A data file is sealed and a new one started once the next record would take it past
    /// this size (a single record or batch larger than it gets a file of its own). Default
    /// 128 MiB; from [`MIN_FILE_SIZE`] to [`MAX_FILE_SIZE_LIMIT`].
    pub max_file_size: u64,
    /// When and how background merges run.
    pub merge: MergeOptions,
    /// Opt-in salvage open: damaged records inside sealed files are skipped and reported by
    /// [`crate::BitcaskEngine::recovery_report`] instead of failing the open, and merges skip
    /// them too (which is how a salvaged directory gets rid of its damage). Default false.
    pub salvage: bool,
}

impl Default for BitcaskOptions {
    fn default() -> Self {
        BitcaskOptions {
            common: CommonOptions::default(),
            max_file_size: 128 << 20,
            merge: MergeOptions::default(),
            salvage: false,
        }
    }
}

impl BitcaskOptions {
    /// Checks every option.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first bad option.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_FILE_SIZE..=MAX_FILE_SIZE_LIMIT).contains(&self.max_file_size) {
            return Err(Error::invalid(format!(
                "max_file_size {} is outside {MIN_FILE_SIZE}..={MAX_FILE_SIZE_LIMIT}",
                self.max_file_size
            )));
        }
        self.merge.validate()
    }
}

/// Merge triggers and thresholds, after basho/bitcask: a merge is *triggered* when any sealed
/// file crosses a trigger (or there are too many sealed files); once triggered, every sealed
/// file crossing a threshold is merged along. The active file is never merged.
#[derive(Clone, Debug)]
pub struct MergeOptions {
    /// Run merges on a background thread when the triggers say so. `compact()` merges on demand
    /// whatever this says. Default true.
    pub auto: bool,
    /// How often the background thread checks the triggers (it also checks after every
    /// rotation). Default 1 s.
    pub check_interval: Duration,
    /// Trigger: a sealed file whose dead fraction of bytes (overwritten or deleted records,
    /// tombstones, framing) reaches this. Default 0.6.
    pub frag_trigger: f64,
    /// Trigger: a sealed file with at least this many dead bytes. Default 512 MiB.
    pub dead_bytes_trigger: u64,
    /// Trigger: more sealed files than this, when merging them all would leave at most half
    /// this many (otherwise a merge would be triggered again within a few rotations and
    /// rewrite every live byte each time). Default 64.
    pub max_sealed_files: usize,
    /// Threshold: files at least this fragmented join a triggered merge. Default 0.4.
    pub frag_threshold: f64,
    /// Threshold: files with at least this many dead bytes join a triggered merge. Default
    /// 128 MiB.
    pub dead_bytes_threshold: u64,
    /// Threshold: files smaller than this join a triggered merge (small files coalesce).
    /// Default 10 MiB.
    pub small_file_threshold: u64,
    /// At most this many input bytes per merge (files are taken oldest first). Default none.
    pub max_merge_bytes: Option<u64>,
    /// Limits a merge's reads plus writes to this many bytes per second, so that it does not
    /// starve foreground I/O. Default none.
    pub rate_limit: Option<u64>,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            auto: true,
            check_interval: Duration::from_secs(1),
            frag_trigger: 0.6,
            dead_bytes_trigger: 512 << 20,
            max_sealed_files: 64,
            frag_threshold: 0.4,
            dead_bytes_threshold: 128 << 20,
            small_file_threshold: 10 << 20,
            max_merge_bytes: None,
            rate_limit: None,
        }
    }
}

impl MergeOptions {
    /// Checks the ratios and the interval.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first bad option.
    pub fn validate(&self) -> Result<()> {
        let ratio_ok = |r: f64| (0.0..=1.0).contains(&r);
        if !ratio_ok(self.frag_trigger) || !ratio_ok(self.frag_threshold) {
            return Err(Error::invalid(
                "merge fragmentation ratios must lie in 0..=1",
            ));
        }
        if self.check_interval.is_zero() {
            return Err(Error::invalid("merge check_interval must not be zero"));
        }
        if self.rate_limit == Some(0) {
            return Err(Error::invalid("merge rate_limit must not be zero"));
        }
        Ok(())
    }
}
