//! [`LsmOptions`]: everything the engine can be tuned by.

use engine_api::{CommonOptions, Error, Result};

/// Options of an [`crate::LsmEngine`]. Start from `LsmOptions::default()` and change fields.
///
/// ```
/// let options = lsm_engine::LsmOptions {
///     memtable_bytes: 1 << 20,
///     ..lsm_engine::LsmOptions::default()
/// };
/// assert_eq!(options.block_bytes, 4096);
/// ```
#[derive(Clone, Debug)]
pub struct LsmOptions {
    /// Durability policy, storage, create and read-only flags shared by every engine.
    pub common: CommonOptions,
    /// A memtable is rotated (sealed and queued for flushing) once it holds about this many
    /// bytes. Default: 8 MiB.
    pub memtable_bytes: usize,
    /// Sealed memtables waiting to be flushed before writers stop and wait for the flush thread.
    /// Default: 2.
    pub max_immutable_memtables: usize,
    /// Target size of an SSTable data block before it is cut. Default: 4 KiB.
    pub block_bytes: usize,
    /// A full key is stored every this many entries of a data block (a restart point).
    /// Default: 16.
    pub block_restart_interval: usize,
    /// Bloom filter bits per key; 0 builds no filter. Default: 10 (about 1 % false positives).
    pub bloom_bits_per_key: u32,
    /// Capacity of the LRU cache of data blocks, in bytes; 0 disables it. Default: 32 MiB.
    pub block_cache_bytes: usize,
    /// Compaction outputs are cut into tables of about this size. Default: 8 MiB.
    pub target_file_bytes: u64,
    /// Number of levels (L0 to L`num_levels - 1`). Default: 7.
    pub num_levels: usize,
    /// The manifest is rolled over to a fresh snapshot once it grows past this. Default: 4 MiB.
    pub manifest_rollover_bytes: u64,
}

impl Default for LsmOptions {
    fn default() -> Self {
        LsmOptions {
            common: CommonOptions::default(),
            memtable_bytes: 8 << 20,
            max_immutable_memtables: 2,
            block_bytes: 4096,
            block_restart_interval: 16,
            bloom_bits_per_key: 10,
            block_cache_bytes: 32 << 20,
            target_file_bytes: 8 << 20,
            num_levels: 7,
            manifest_rollover_bytes: 4 << 20,
        }
    }
}

impl LsmOptions {
    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::invalid(format!("LsmOptions: {what}")));
        if self.memtable_bytes == 0 {
            return bad("memtable_bytes must be positive");
        }
        if self.max_immutable_memtables == 0 {
            return bad("max_immutable_memtables must be at least 1");
        }
        if self.block_bytes == 0 || self.block_bytes > (64 << 20) {
            return bad("block_bytes must be between 1 and 64 MiB");
        }
        if self.block_restart_interval == 0 {
            return bad("block_restart_interval must be positive");
        }
        if self.bloom_bits_per_key > 64 {
            return bad("bloom_bits_per_key must be at most 64");
        }
        if self.target_file_bytes == 0 {
            return bad("target_file_bytes must be positive");
        }
        if !(2..=16).contains(&self.num_levels) {
            return bad("num_levels must be between 2 and 16");
        }
        if self.manifest_rollover_bytes == 0 {
            return bad("manifest_rollover_bytes must be positive");
        }
        Ok(())
    }
}
